"""`afbox data warm`: read files through the facility's XCache once, so that a class finds them cached
(thirty students opening the same files at once otherwise all wait on the origin)."""
from __future__ import annotations

import fnmatch
import os
from typing import Iterator
from urllib.parse import urlsplit

from ..client import record_data_env
from ..demo.on_facility import running_record
from ..errors import AfboxError

CHUNK = 8 * 1024 ** 2


def split(url: str, origin: str) -> str:
    """The path of url on the XCache's origin; a URL naming another server is refused."""
    if url.startswith("/"):
        return url
    u, o = urlsplit(url), urlsplit(origin)
    if u.scheme not in ("root", "xroot"):
        raise AfboxError(f"{url}: not a root:// URL or a /path")
    if (u.hostname, u.port or 1094) != (o.hostname, o.port or 1094) and u.hostname not in ("localhost", "127.0.0.1") \
            or (u.hostname in ("localhost", "127.0.0.1") and (u.port or 1094) != (o.port or 1094)):
        raise AfboxError(f"{url}: the XCache reads from {origin}, not from {u.hostname}:{u.port or 1094}",
                         hint="give a path on the facility's origin, or bring the facility up with --origin that server")
    return "/" + u.path.lstrip("/")


def warm(name: str, url: str, pattern: str = "*") -> Iterator[tuple[str, int]]:
    """(path, bytes) of every file read through the cache."""
    rec = running_record(name)
    xc = rec.services.get("xcache")
    if not xc or xc.unavailable:
        raise AfboxError(f"facility {rec.facility!r} has no XCache running")
    os.environ.update(record_data_env(rec.model_dump(mode="json")))  # XrdCl reads these when it starts
    from XRootD import client
    from XRootD.client.flags import DirListFlags, OpenFlags

    origin = xc.urls["origin"]
    path = split(url, origin)
    listing_status, listing = client.FileSystem(origin).dirlist(path, DirListFlags.STAT)
    if not listing_status.ok:
        names = [path]  # a single file
    else:
        names = [f"{path.rstrip('/')}/{e.name}" for e in listing if not e.statinfo.flags & 0x2  # kXR_isDir
                 and fnmatch.fnmatch(e.name, pattern)]
    cache = xc.urls["root"].rstrip("/")
    for p in names:
        f = client.File()
        st, _ = f.open(f"{cache}/{p}", OpenFlags.READ)
        if not st.ok:
            raise AfboxError(f"{p}: the XCache could not open it: {st.message}")
        total, offset = 0, 0
        while True:
            st, data = f.read(offset, CHUNK)
            if not st.ok:
                raise AfboxError(f"{p}: read failed at byte {offset}: {st.message}")
            if not data:
                break
            offset += len(data)
            total += len(data)
        f.close()
        yield p, total
