"""Where a facility keeps its state (XDG state dir, one folder per facility name), and which facility a
command means when none is named."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


def state_root() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state")
    return Path(base) / "afbox"


def shared_cache_root() -> Path:
    # xrootd runs as its own user when afbox runs as root; /root is 0700, so root's cache lives in /var.
    if os.geteuid() == 0 and "XDG_CACHE_HOME" not in os.environ:
        return Path("/var/cache/afbox")
    base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return Path(base) / "afbox"


def write_private(path: Path, text: str) -> None:
    """Write a file readable only by its owner (tokens, keys, configs holding secrets)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(path, 0o600)


def data_root() -> Path:
    """Where a facility's own origin keeps its files: user data, never purged by afbox."""
    if os.geteuid() == 0 and "XDG_DATA_HOME" not in os.environ:
        return Path("/var/lib/afbox")  # readable by xrootd's user, unlike /root
    base = os.environ.get("XDG_DATA_HOME") or os.path.expanduser("~/.local/share")
    return Path(base) / "afbox"


@dataclass(frozen=True)
class FacilityState:
    """Paths of one facility's state; nothing here is user work."""
    name: str

    @property
    def dir(self) -> Path:
        return state_root() / self.name

    @property
    def logs(self) -> Path:
        return self.dir / "logs"

    @property
    def secrets(self) -> Path:
        return self.dir / "secrets"

    @property
    def token_file(self) -> Path:
        """The facility owner's data token (storage.read, compute.create), kept fresh by the issuer."""
        return self.secrets / "tokens" / "data.token"

    @property
    def run(self) -> Path:
        return self.dir / "run"

    @property
    def record_file(self) -> Path:
        return self.dir / "facility.json"

    def ensure(self) -> None:
        for d in (self.dir, self.logs, self.run):
            d.mkdir(parents=True, exist_ok=True)
        self.secrets.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.dir, 0o700)
        os.chmod(self.secrets, 0o700)

    def clear(self) -> None:
        self.record_file.unlink(missing_ok=True)


def known_facilities() -> list[str]:
    root = state_root()
    return sorted(p.name for p in root.iterdir() if (p / "facility.json").exists()) if root.exists() else []


def resolve_name(name: str | None) -> str:
    """The named facility; else the one running; else 'default'. Several running: ask which."""
    from .errors import AfboxError
    if name:
        return name
    running = known_facilities()
    if len(running) > 1:
        raise AfboxError(f"{len(running)} facilities are running: {', '.join(running)}",
                         hint="say which one with --name NAME")
    return running[0] if running else "default"
