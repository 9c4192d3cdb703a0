"""The environments on disk: content-addressed dirs, names pointing at them, what uses them."""
from __future__ import annotations

import json
import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from .. import events as ev
from .. import record
from ..errors import AfboxError
from ..runtimes import apptainer
from .paths import envs_root, jupyter_dir, kernel_name

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,30}$")
MARKER = "afbox-env.json"
KEY_PACKAGES = ("dask", "distributed", "coffea", "awkward", "uproot")


@dataclass(frozen=True)
class Env:
    name: str
    digest: str
    dir: Path
    meta: dict
    created: float

    @property
    def prefix(self) -> Path:
        return (self.dir / self.meta.get("prefix", ".")).resolve()

    @property
    def bin_dir(self) -> Path:
        return self.prefix / "bin"

    @property
    def python(self) -> Path:
        return self.bin_dir / "python"

    def version(self, package: str) -> str | None:
        return self.meta.get("packages", {}).get(package)

    @property
    def image(self) -> Path | None:
        """The container image an image environment runs in (in its dir, or where the user keeps it)."""
        return self.dir / self.meta["image"] if self.meta.get("image") else None

    def python_argv(self, binds: tuple[str, ...] = ()) -> tuple[str, ...]:
        """How to run the environment's python: directly, or inside its image."""
        if self.image:
            return apptainer.exec_argv(str(self.image), ("python",), binds=binds, gpus=False)
        return (str(self.python),)


def _name_file(name: str) -> Path:
    return envs_root() / "names" / f"{name}.json"


def check_name(name: str) -> None:
    if not NAME_RE.match(name):
        raise AfboxError(f"bad environment name {name!r}",
                         hint="use lowercase letters, digits, '-' and '_' (at most 31 characters)")


def get(name: str) -> Env:
    check_name(name)
    try:
        entry = json.loads(_name_file(name).read_text())
        d = envs_root() / entry["digest"]
        meta = json.loads((d / MARKER).read_text())
    except (OSError, ValueError, KeyError):
        raise AfboxError(f"no environment {name!r}",
                         hint=f"create it with: afbox env create {name} --requirements requirements.txt") from None
    return Env(name, entry["digest"], d, meta, entry["created"])


def all_envs() -> list[Env]:
    names = sorted(p.stem for p in (envs_root() / "names").glob("*.json"))
    out = []
    for n in names:
        try:
            out.append(get(n))
        except AfboxError:
            continue  # a name whose env was removed by hand: not listed
    return out


def tree_size(path: Path) -> int:
    """Bytes of the files under path, each inode once (uv hard-links files from its cache)."""
    seen, total = set(), 0
    for root, _, files in os.walk(path):
        for f in files:
            st = os.lstat(os.path.join(root, f))
            if st.st_ino not in seen:
                seen.add(st.st_ino)
                total += st.st_size
    return total


def _existing_name(name: str) -> str | None:
    try:
        return json.loads(_name_file(name).read_text())["digest"]
    except (OSError, ValueError, KeyError):
        return None


def _name(name: str, key: str) -> None:
    path = _name_file(name)
    if _existing_name(name) == key:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"name": name, "digest": key, "created": time.time()}))
    tmp.replace(path)


def users(env: Env) -> list[str]:
    """What runs from this environment now: named clusters of any facility, kernels, other processes."""
    import psutil

    from ..state import FacilityState, known_facilities

    out = []
    clusters = set()  # their supervised processes are named by the cluster's line
    for fac in known_facilities():
        rec = record.read(FacilityState(fac))
        for cname, c in (rec.clusters if rec else {}).items():
            if c.digest == env.digest:
                clusters.add(f"cluster-{cname}-")
                out.append(f"cluster {cname!r} of facility {fac!r} (stop it: afbox cluster down {cname} --name {fac})")
    prefixes = tuple({str(env.dir) + os.sep, str(env.dir.resolve()) + os.sep})
    image = str(env.image) if env.image else None
    for p in psutil.process_iter(["pid", "cmdline"]):
        cmd = p.info["cmdline"] or []
        kernel = "ipykernel_launcher" in cmd
        if any(a.startswith(prefixes) for a in cmd[:2]) or (image and image in cmd) or (
                image and kernel and _kernel_of(p, env.name)):
            if _supervised_as(p).startswith(tuple(clusters) or ("\0",)):
                continue
            if kernel:
                out.append(f"Jupyter kernel pid {p.info['pid']} (\"Python ({env.name})\"): shut it down in "
                           "JupyterLab (Kernel > Shut Down Kernel)")
            else:
                shown = " ".join(os.path.basename(a) if i == 0 else a for i, a in enumerate(cmd[:4]))
                out.append(f"process {p.info['pid']} ({shown[:80]}): end it (kill {p.info['pid']}) or let it finish")
    return out


def _supervised_as(proc) -> str:
    """The supervisord program a process belongs to ('' for any other): supervisord names it in the
    environment of what it starts, and children inherit it."""
    import psutil
    try:
        return proc.environ().get("SUPERVISOR_PROCESS_NAME", "")
    except psutil.Error:
        return ""


def _kernel_of(proc, name: str) -> bool:
    """A kernel started from this environment's kernelspec (inside a container its argv names no path
    of the environment; its environment variables still say)."""
    import psutil
    try:
        return proc.environ().get("AFBOX_ENV") == name
    except psutil.Error:  # gone meanwhile, or not ours to read
        return False


def remove(name: str) -> Iterator[ev.Event]:
    env = get(name)
    sharing = [e.name for e in all_envs() if e.digest == env.digest and e.name != name]
    if not sharing:
        busy = users(env)
        if busy:
            raise AfboxError(f"environment {name!r} is in use by:", details=busy,
                             hint="stop those first; the environment stays until nothing uses it")
    shutil.rmtree(jupyter_dir() / "kernels" / kernel_name(name), ignore_errors=True)
    _name_file(name).unlink(missing_ok=True)
    if sharing:
        yield ev.Event(ev.INFO, "", f"removed the name {name!r}; its files stay for {', '.join(sharing)}")
        return
    # renamed first, so a half-deleted tree is never taken for an environment
    trash = envs_root() / f".rm-{env.digest}-{os.getpid()}"
    env.dir.rename(trash)
    shutil.rmtree(trash, ignore_errors=True)
    yield ev.Event(ev.INFO, "", f"removed environment {name!r} ({env.digest})")
