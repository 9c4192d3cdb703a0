"""A warm interpreter the gateway forks its clusters' schedulers and workers from.

Each `dask scheduler` / `dask worker` the gateway starts is otherwise a fresh interpreter that spends
about a second of CPU importing distributed, the dashboard (bokeh) and the preloads before it
listens: the larger part of a cluster's start on a small box, and of a class's thirty. This process
imports them once (when the box has a core to spare, or at the first request); a child forked from
it starts listening in tens of milliseconds and shares those pages with its siblings.

    python -m afbox.plugins.forkserver ROOT SOCKET [PARENT_PID]    (it ends when its parent does)

It answers on a unix socket (0600, and only to its own uid) one request per connection, a JSON
`Request` after its 4-byte length, with the child's pid or why not. It runs only the two dask
commands, never an arbitrary program, in a directory under ROOT (the gateway's clusters directory,
which also makes `ps` show whose they are). Children start a session of their own (like the gateway's
own subprocesses) and, where asked, enter cgroups and drop to a user, in the order
afbox.hub.isolation.drop_to does.

A child is a copy of this process's memory, and a student's tasks run in it: so nothing secret ever
enters this process. It starts with a bare environment, and a child's (which holds its cluster's
gateway token) comes in a file in its work dir that only the child reads.
"""
from __future__ import annotations

import asyncio
import atexit
import gc
import json
import os
import signal
import socket
import struct
import sys
import time
from dataclasses import asdict, dataclass, field

COMMANDS = {"scheduler": "distributed.cli.dask_scheduler", "worker": "distributed.cli.dask_worker"}
# imported once here: what a gateway cluster's processes import before they listen
PRELOAD = (*COMMANDS.values(), "distributed.dashboard.scheduler", "dask_gateway.scheduler_preload",
           "afbox.plugins.dask_dashboard")
MAX_REQUEST = 1 << 20
QUIET_IDLE = 40      # % of the CPUs idle over two samples in a row: the box is quiet
QUIET_WAIT_S = 30.0  # import anyway after this long


@dataclass
class Request:
    command: str                          # a key of COMMANDS
    args: list[str]                       # its arguments (what follows `dask scheduler`)
    env_file: str                         # the child's whole environment, JSON: read as the child, then removed
    cwd: str
    log: str                              # created (not there before), stdout and stderr go to it
    user: tuple[int, int] | None = None   # (uid, gid) to drop to
    cgroups: list[str] = field(default_factory=list)  # cgroup.procs files to enter first


def command_of(argv: list[str]) -> tuple[str, list[str]] | None:
    """(command, args) where argv is one of the dask commands this server runs, from this very
    interpreter's environment (another environment's dask must run in its own), else None."""
    here = os.path.dirname(os.path.abspath(sys.executable))
    if len(argv) >= 2 and argv[0] == os.path.join(here, "dask") and argv[1] in COMMANDS:
        return argv[1], list(argv[2:])
    return None


def _frame(obj: dict) -> bytes:
    data = json.dumps(obj).encode()
    return struct.pack("!I", len(data)) + data


def _recv(conn: socket.socket) -> dict:
    with conn.makefile("rb") as f:
        (size,) = struct.unpack("!I", f.read(4))
        if size > MAX_REQUEST:
            raise ValueError(f"request of {size} bytes")
        return json.loads(f.read(size))


async def request(path: str, req: Request, timeout: float = 30.0) -> int:
    """Ask the server at `path` for a child; its pid. OSError/RuntimeError when it cannot."""
    async def ask() -> dict:
        reader, writer = await asyncio.open_unix_connection(path)
        try:
            writer.write(_frame(asdict(req)))
            await writer.drain()
            (size,) = struct.unpack("!I", await reader.readexactly(4))
            return json.loads(await reader.readexactly(size))
        finally:
            writer.close()
    try:
        answer = await asyncio.wait_for(ask(), timeout)
    except (asyncio.IncompleteReadError, asyncio.TimeoutError) as e:
        raise RuntimeError(f"no answer from the forkserver ({type(e).__name__})") from e
    if "pid" not in answer:
        raise RuntimeError(answer.get("error", "no answer"))
    return int(answer["pid"])


def _child(req: Request, log_fd: int) -> None:
    """In the forked child: become the requested process, run the dask command, exit with its code."""
    code = 1
    try:
        os.setsid()
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(log_fd, 1)
        os.dup2(log_fd, 2)
        os.closerange(3, os.sysconf("SC_OPEN_MAX"))  # the log, /dev/null and this server's sockets
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        _name(f"dask-{req.command}")
        for procs in req.cgroups:
            with open(procs, "w") as f:
                f.write(str(os.getpid()))
        if req.user:
            os.setgroups([])
            os.setgid(req.user[1])
            os.setuid(req.user[0])
        os.chdir(req.cwd)
        with open(req.env_file) as f:
            env = json.load(f)
        os.unlink(req.env_file)
        os.environ.clear()
        os.environ.update(env)
        import dask.config
        dask.config.refresh()  # DASK_* of this cluster (TLS files, the gateway's API) over the server's
        if "numpy" in sys.modules:
            sys.modules["numpy"].random.seed()  # numpy's global generator is not reseeded by fork
        main = sys.modules[COMMANDS[req.command]].main
        sys.argv = ["dask", req.command, *req.args]
        try:
            main.main(args=req.args, prog_name=f"dask {req.command}")
            code = 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        atexit._run_exitfuncs()
    except BaseException:
        import traceback
        traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass
        os._exit(code)


def _name(name: str) -> None:
    """The process's name (ps -o comm, psutil's name()); its command line stays this server's."""
    try:
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(15, name.encode()[:15], 0, 0, 0)  # PR_SET_NAME
    except (OSError, AttributeError):
        pass


def _within(root: str, path: str) -> bool:
    real = os.path.realpath(path)
    return real.startswith(os.path.realpath(root).rstrip("/") + "/")


def _fork(req: Request, root: str) -> int:
    if req.command not in COMMANDS:
        raise ValueError(f"not a command this server runs: {req.command!r}")
    if not all(_within(root, p) for p in (req.cwd, req.log, req.env_file)):
        raise ValueError(f"{req.cwd} is not a cluster's directory under {root}")
    log_fd = os.open(req.log, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        pid = os.fork()
        if pid == 0:
            _child(req, log_fd)
        return pid
    finally:
        os.close(log_fd)


def _peer_uid(conn: socket.socket) -> int:
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return struct.unpack("3i", creds)[1]


def _wait_for_quiet(listener: socket.socket, parent: int) -> str:
    """Until the box has a core to spare (the facility has started) or a request comes; why it stopped.

    The imports take about a second of CPU: during `afbox up` that second would be taken from the
    services the person is waiting on."""
    import select
    import psutil
    psutil.cpu_times_percent(None)  # each call measures since the one before
    calm, deadline = 0, time.monotonic() + QUIET_WAIT_S
    while time.monotonic() < deadline and os.getppid() == parent:
        if select.select([listener], [], [], 0.25)[0]:
            return "a request"
        t = psutil.cpu_times_percent(None)
        calm = calm + 1 if t.idle + getattr(t, "iowait", 0) >= QUIET_IDLE else 0
        if calm >= 2:
            return "the box is quiet"
    return "waited long enough"


def serve(root: str, path: str, parent: int) -> None:
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the kernel: none lingers a zombie
    if os.path.exists(path):
        os.unlink(path)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)
    try:
        listener.bind(path)
    finally:
        os.umask(old)
    listener.listen(16)
    why = _wait_for_quiet(listener, parent)
    t0 = time.monotonic()
    for name in PRELOAD:
        __import__(name)
    # the imported objects stay out of the collector's passes: in a child those passes would write to
    # (and so copy) every page of them that it still shares with its siblings
    gc.collect()
    gc.freeze()
    print(f"forkserver ready at {path}: {len(sys.modules)} modules imported in {time.monotonic() - t0:.1f} s, "
          f"when {why}", flush=True)
    listener.settimeout(1.0)
    while os.getppid() == parent:  # the gateway is gone: so is this
        try:
            conn, _ = listener.accept()
        except socket.timeout:
            continue
        with conn:
            conn.settimeout(10.0)
            try:
                if _peer_uid(conn) != os.getuid():
                    raise PermissionError("only the gateway's own user may ask")
                req = Request(**_recv(conn))
                conn.sendall(_frame({"pid": _fork(req, root)}))
            except Exception as e:  # one bad request never stops the server
                try:
                    conn.sendall(_frame({"error": f"{type(e).__name__}: {e}"}))
                except OSError:
                    pass
    listener.close()
    os.unlink(path)


if __name__ == "__main__":
    # the parent's pid from it: it may be gone before this interpreter asks whose child it is
    serve(sys.argv[1], sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else os.getppid())
