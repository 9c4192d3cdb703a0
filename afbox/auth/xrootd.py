"""What xrootd's token plugins (ztn + XrdAccSciTokens, xrootd 5.5) need from the facility.

libSciTokens fetches an issuer's JWKS with libcurl and trusts only the system CA bundle, so it
cannot reach the facility issuer (signed by the facility CA) without root changing system trust.
Instead the issuer keys are written into its key cache, a sqlite db under the server's
$XDG_CACHE_HOME; it keeps using cached keys while a refresh fails, until `expires`.  Rewrite the
cache on every `up` and key rotation: a new kid is not found otherwise.
"""
from __future__ import annotations

import json
import os
import sqlite3
import time
from pathlib import Path

from ..run import require, run

KEYCACHE_VALID = 30 * 86400


def keycache_path(cache_home: Path) -> Path:
    return Path(cache_home) / "scitokens" / "scitokens_cpp.sqllite"


def write_keycache(cache_home: Path, issuer: str, jwks: dict, valid_for: float = KEYCACHE_VALID,
                   owner: tuple[int, int] | None = None) -> Path:
    """Put `issuer`'s keys in the cache libSciTokens reads (owner: xrootd's uid/gid when root)."""
    path = keycache_path(cache_home)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    now = int(time.time())
    entry = json.dumps({"jwks": jwks, "next_update": now + int(valid_for), "expires": now + int(valid_for)})
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE IF NOT EXISTS keycache (issuer text UNIQUE PRIMARY KEY NOT NULL,"
                   "keys text NOT NULL)")
        db.execute("INSERT OR REPLACE INTO keycache VALUES (?, ?)", (issuer, entry))
    db.close()
    if owner:
        for p in (path.parent, path):
            os.chown(p, *owner)  # the plugin also writes to it (refresh bookkeeping)
    return path


def scitokens_config(issuers: dict[str, str], audience: str | list[str], base_path: str = "/") -> str:
    """The plugin's INI config: one [Issuer name] section per trusted issuer URL."""
    aud = audience if isinstance(audience, str) else ",".join(audience)
    lines = ["[Global]", f"audience = {aud}", ""]
    for name, url in issuers.items():
        lines += [f"[Issuer {name}]", f"issuer = {url}", f"base_path = {base_path}", ""]
    return "\n".join(lines)


def server_directives(cert: Path, key: Path, ca_file: Path, scitokens_cfg: Path) -> list[str]:
    """Token-only access: ztn (which requires TLS) authenticates, the SciTokens plugin authorizes."""
    return [
        f"xrd.tls {cert} {key}",
        f"xrd.tlsca certfile {ca_file}",
        "xrootd.seclib libXrdSec.so",
        "sec.protocol ztn",
        "ofs.authorize 1",
        f"ofs.authlib libXrdAccSciTokens.so config={scitokens_cfg}",
    ]


def hashed_ca_dir(ca_file: Path, dest: Path) -> Path:
    """A CA directory for xrootd clients (X509_CERT_DIR): they read only hashed dirs, not files."""
    dest.mkdir(parents=True, exist_ok=True)
    h = run([require("openssl"), "x509", "-hash", "-noout", "-in", str(ca_file)], timeout=10).stdout.strip()
    (dest / f"{h}.0").write_bytes(Path(ca_file).read_bytes())
    return dest
