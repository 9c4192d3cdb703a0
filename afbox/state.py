"""Where a facility keeps its state (XDG state dir, one folder per facility name), and which facility a
command means when none is named."""
from __future__ import annotations

import json
import os
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{0,30}$")
NAME_RULE = "A name is 1 to 31 lowercase letters, digits and dashes, starting with a letter or digit."
ENV_FACILITY = "AFBOX_FACILITY"  # set inside the facility's JupyterLab; names the facility commands mean


def name_problem(name: str) -> str | None:
    """What is wrong with a facility name, in words; None when it is fine."""
    if NAME_PATTERN.match(name or ""):
        return None
    shown = name if len(name) <= 40 else name[:37] + "..."
    return f"{shown!r} is not a facility name: {NAME_RULE[0].lower()}{NAME_RULE[1:]}"


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


def replace_private(path: Path, data: str | bytes, owner: tuple[int, int] | None = None) -> None:
    """A file readable only by its owner (`owner`: uid, gid to give it), 0600 from the start and put
    in place by rename, so a reader never sees half of it (tokens that are renewed while read)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb" if isinstance(data, bytes) else "w") as f:
        f.write(data)
    os.chmod(tmp, 0o600)  # the umask may have narrowed it, never widened
    if owner:
        os.chown(tmp, *owner)
    os.replace(tmp, path)


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
    """The named facility; else $AFBOX_FACILITY (as kubectl honours its context); else the one running;
    else 'default'. Several running and none named: ask which."""
    from .errors import AfboxError
    chosen = name or os.environ.get(ENV_FACILITY) or None
    if chosen:
        if problem := name_problem(chosen):
            source = "" if name else f" (from ${ENV_FACILITY})"
            raise AfboxError(problem + source, hint=f"unset {ENV_FACILITY}, or set it to a facility's name"
                             if not name else "e.g. --name ci")
        return chosen
    running = known_facilities()
    if len(running) > 1:
        raise AfboxError(f"{len(running)} facilities are running: {', '.join(running)}",
                         hint=f"say which one with --name NAME, or for every command: export {ENV_FACILITY}=NAME")
    return running[0] if running else "default"


# -- how a facility was started, for hints that say how to start it again -------------------------
def remember_start(name: str, argv: list[str]) -> None:
    """Keep the `afbox up` flags that made this facility (names, ports, files: never a secret)."""
    try:
        state = FacilityState(name)
        state.dir.mkdir(parents=True, exist_ok=True)
        (state.dir / "started-with.json").write_text(json.dumps(argv))
    except OSError:
        pass  # only hints read it


def start_command(name: str) -> str:
    """The `afbox up` that starts this facility again: its last flags, or at least its name."""
    try:
        argv = json.loads((FacilityState(name).dir / "started-with.json").read_text())
        if isinstance(argv, list) and all(isinstance(a, str) for a in argv):
            return shlex.join(["afbox", "up", *argv])
    except (OSError, ValueError):
        pass
    return "afbox up" if name == "default" else f"afbox up --name {name}"


def start_hint(name: str) -> str:
    return f"start it with: {start_command(name)}"
