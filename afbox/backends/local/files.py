"""What a spec needs on disk before it starts: its dirs and files, owned by the user it runs as."""
from __future__ import annotations

import os
import pwd
from pathlib import Path

from ...auth.xrootd import KEYCACHE_FILL, make_keycache
from ...spec import ConfigFile, ServiceSpec
from ...state import FacilityState, data_root, shared_cache_root, state_root

FILLS = {KEYCACHE_FILL: make_keycache}  # kind -> maker(text, path, owner) -> warnings


def lay_out(specs: list[ServiceSpec], state: FacilityState) -> list[str]:
    """Create each runnable spec's dirs and write its files; returns warnings for the user."""
    warnings: list[str] = []
    for s in specs:
        if s.unavailable:
            continue
        owner = _owner(s.run_as)
        for d in (*s.state_dirs, *(v.path for v in s.volumes)):
            Path(d).mkdir(parents=True, exist_ok=True)
        for f in s.files:
            warnings += write(f, state, owner)
        if owner:
            hand_over(s, owner)
    return warnings


def write(f: ConfigFile, state: FacilityState, owner: tuple[int, int] | None) -> list[str]:
    path = Path(f.path)
    private = not f.mode & 0o077
    if not path.parent.exists():
        path.parent.mkdir(parents=True, mode=0o700 if private else 0o777)
        if owner:
            os.chown(path.parent, *owner)
    if f.fill:
        return FILLS[f.fill](f.text, path, owner)
    data = (state.secrets / f.secret).read_bytes() if f.secret else f.text.encode()
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, f.mode)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    os.chmod(tmp, f.mode)
    if owner:
        os.chown(tmp, *owner)
    tmp.replace(path)
    return []


def _owner(user: str) -> tuple[int, int] | None:
    if not user or os.geteuid() != 0:
        return None
    pw = pwd.getpwnam(user)
    return pw.pw_uid, pw.pw_gid


def hand_over(s: ServiceSpec, owner: tuple[int, int]) -> None:
    """As root, a service that drops to its own user (xrootd) owns its dirs and reads its data."""
    for d in s.state_dirs:
        os.chown(d, *owner)
    for v in s.volumes:
        if v.read_only:
            os.chmod(v.path, os.stat(v.path).st_mode | 0o755)
        else:
            _chown_tree(Path(v.path), owner)
    for d in (*s.state_dirs, *(v.path for v in s.volumes)):
        traversable(Path(d))


def _chown_tree(path: Path, owner: tuple[int, int]) -> None:
    """Walked only the first time, so a big cache is not re-chowned at every start."""
    if path.stat().st_uid == owner[0]:
        return
    for root, dirs, files in os.walk(path):
        for n in [root, *(os.path.join(root, d) for d in dirs), *(os.path.join(root, f) for f in files)]:
            os.lchown(n, *owner)


def traversable(path: Path) -> None:
    """The dirs above path, within afbox's own roots, may be passed through (not listed) by others;
    a user's home itself is never opened."""
    roots = [r.resolve() for r in (state_root(), shared_cache_root(), data_root())]
    for d in path.resolve().parents:
        if not any(d == r or d.is_relative_to(r) for r in roots):
            break
        os.chmod(d, os.stat(d).st_mode | 0o711)
