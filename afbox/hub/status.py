"""A running class as the tutor sees it: who has logged in, their server, kernels, Dask processes and
memory, and whether the box admits more. Read from the hub's REST API and the students' processes
(as root each runs as the student's unix user; otherwise it carries AFBOX_STUDENT in its environment);
`afbox class status` and the console show it."""
from __future__ import annotations

import contextlib
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx
import psutil

from .. import record
from ..errors import AfboxError
from ..state import FacilityState
from ..run import which
from . import isolation, limits, roster
from .paths import ClassPaths
from .setup import load_settings, paths_of

STUDENT_ENV = "AFBOX_STUDENT"


@dataclass
class Student:
    name: str
    role: str
    logged_in: bool               # has set their password
    server: str = "stopped"       # ready, starting, stopping, stopped
    last_activity: float | None = None
    kernels: int = 0
    dask: int = 0                 # scheduler and worker processes
    memory: int = 0               # bytes, all their processes, shared pages divided among sharers (PSS)
    oom_kills: int = 0


@dataclass
class ClassStatus:
    facility: str
    hub: str
    isolation: str
    limits: str
    free_memory: int
    admit_free: int
    students: list[Student] = field(default_factory=list)
    error: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


def class_record(name: str):
    """The record of facility `name`, which runs a class; an error when it does not."""
    rec = record.read(FacilityState(name))
    if not rec or "hub" not in rec.services:
        raise AfboxError(f"facility {name!r} is not running a class",
                         hint="start one: afbox up --profile masterclass --students N")
    return rec


def hub_url(rec) -> str:
    return rec.services["hub"].urls["hub"].removesuffix("/hub/")


def locate(name: str) -> tuple[dict, ClassPaths, str]:
    """Settings, paths and public URL of facility `name`'s class; an error when it has none."""
    rec = class_record(name)
    if rec.backend == "k3s":
        raise AfboxError(f"facility {name!r} runs its class on k3s: its accounts are on the class's volume in "
                         "the hub's pod, which only `afbox class sheet` reaches so far",
                         hint=f"tutors manage students and servers at {hub_url(rec)}/hub/admin "
                              "(`afbox class sheet --tutors` prints the tutors' codes)")
    settings = load_settings(Path(FacilityState(name).dir) / "hub" / "jupyterhub_config.py")
    return settings, paths_of(settings), hub_url(rec)


def hub_users(settings: dict, paths: ClassPaths) -> list[dict]:
    token = paths.api_token.read_text().strip()
    r = httpx.get(f"http://127.0.0.1:{settings['hub_port']}/hub/api/users", timeout=10,
                  headers={"Authorization": f"token {token}"})
    r.raise_for_status()
    return r.json()


FORKED_DASK = ("dask-scheduler", "dask-worker")  # names of the gateway's forked processes (afbox.plugins.forkserver)


def _kind(p: psutil.Process) -> str:
    """kernel, dask, server or '' (none of a student's)."""
    argv = p.info["cmdline"] or []
    if p.info["name"] in FORKED_DASK:
        return "dask"  # forked: its command line and environment are the forkserver's
    cmd = " ".join(argv)
    if not argv or Path(argv[0]).name == "bwrap" or "python" not in cmd:
        return ""
    return next((kind for key, kind in (("ipykernel", "kernel"), ("dask", "dask"), ("afbox.hub.singleuser", "server"))
                 if key in cmd), "")


def student_processes(users: dict[int, str] | None = None) -> dict[str, list[tuple[psutil.Process, str]]]:
    """Each student's processes with their kind: by their unix user where `users` maps uids to
    students, else by the marker in their environment."""
    out: dict[str, list[tuple[psutil.Process, str]]] = {}
    for p in psutil.process_iter(["cmdline", "name", "uids"]):
        kind = _kind(p)
        if not kind:
            continue
        if users is not None:
            who = users.get(p.info["uids"].real) if p.info["uids"] else None
        else:
            try:
                who = p.environ().get(STUDENT_ENV)
            except (psutil.Error, OSError):
                continue
        if who:
            out.setdefault(who, []).append((p, kind))
    return out


def unix_users(facility: str, names) -> dict[int, str]:
    """uid -> student, for the students that have a unix user (a class run as root)."""
    import pwd
    out = {}
    for name in names:
        try:
            out[pwd.getpwnam(isolation.unix_name(facility, name)).pw_uid] = name
        except KeyError:
            pass
    return out


def _server_state(user: dict) -> str:
    server = (user.get("servers") or {}).get("", {})
    if not server:
        return "stopped"
    if server.get("ready"):
        return "ready"
    return server.get("pending") or "starting"


def memory_of(procs: list[psutil.Process]) -> tuple[int, int]:
    """(proportional, resident) bytes: PSS divides a page among the processes sharing it (libraries,
    and what the gateway's forked Dask processes share with their forkserver); RSS counts it in each."""
    pss = rss = 0
    for p in procs:
        try:
            full = p.memory_full_info()
            pss, rss = pss + full.pss, rss + full.rss
        except psutil.AccessDenied:  # smaps is not ours to read: what the resident size says at least
            with contextlib.suppress(psutil.Error):
                rss += p.memory_info().rss
        except psutil.Error:
            continue
    return pss, rss


def class_status(name: str) -> ClassStatus:
    settings, paths, hub = locate(name)
    accts = roster.load(paths.accounts)
    groups = limits.detect(settings["as_root"], f"afbox/{settings['facility']}")
    mode = isolation.choose(settings["isolation"], settings["as_root"], which("bwrap"))[0] or "none"
    out = ClassStatus(facility=name, hub=hub, isolation=mode, limits=groups.kind,
                      free_memory=psutil.virtual_memory().available, admit_free=settings["admit_free"])
    try:
        users = {u["name"]: u for u in hub_users(settings, paths)}
    except (OSError, httpx.HTTPError) as e:
        users, out.error = {}, f"the hub did not answer: {e}"
    procs = student_processes(unix_users(settings["facility"], accts.accounts) if mode == "users" else None)
    for a in sorted(accts.accounts.values(), key=lambda a: (a.role != "student", a.name)):
        u = users.get(a.name, {})
        mine = procs.get(a.name, [])
        kinds = [k for _, k in mine]
        last = u.get("last_activity")
        out.students.append(Student(
            name=a.name, role=a.role, logged_in=a.password is not None, server=_server_state(u) if u else "stopped",
            last_activity=_epoch(last) if last else None, kernels=kinds.count("kernel"), dask=kinds.count("dask"),
            memory=memory_of([p for p, _ in mine])[0], oom_kills=groups.oom_kills(a.name)))
    return out


def _epoch(iso: str) -> float:
    from datetime import datetime
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def idle_for(s: Student, now: float | None = None) -> float | None:
    return None if s.last_activity is None else (now or time.time()) - s.last_activity
