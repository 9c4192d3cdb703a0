"""supervisord: config rendered from ServiceSpecs (pure), and a small client over its unix socket."""
from __future__ import annotations

import functools
import http.client
import re
import shlex
import xmlrpc.client
from pathlib import Path
from xml.parsers.expat import ExpatError

from supervisor.xmlrpc import SupervisorTransport

from ...errors import AfboxError
from ...health import poll_until
from ...spec import ServiceSpec

STARTSECS = 2      # a process must stay up this long to count as started
STARTRETRIES = 3   # failed starts (with supervisord's growing backoff) before it gives up: FATAL


def _esc(text: str) -> str:
    return text.replace("%", "%%")  # supervisord expands %(name)s in values


BACKGROUND = ("nice", "-n", "10")  # spec.background: JupyterLab gets the CPU first (it opens ~1 s sooner on 2 cores)


def render_conf(specs: list[ServiceSpec], *, sock: Path, logs: Path, run: Path, identifier: str,
                wrap: tuple[str, ...] = ()) -> str:
    """wrap: a command each program is started through (e.g. one that makes it die with supervisord)."""
    out = [
        "; written by afbox for one facility; regenerated on every `afbox up`",
        "[unix_http_server]", f"file={_esc(str(sock))}", "chmod=0700", "",
        "[supervisord]", f"logfile={_esc(str(logs / 'supervisord.log'))}", "logfile_maxbytes=5MB",
        "logfile_backups=1", f"pidfile={_esc(str(run / 'supervisord.pid'))}", f"identifier={identifier}",
        f"childlogdir={_esc(str(logs))}", "nodaemon=false", "loglevel=info",
        f"directory={_esc(str(run))}", "",  # not wherever `afbox up` was typed
        "[rpcinterface:supervisor]",
        "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface", "",
        "[supervisorctl]", f"serverurl=unix://{_esc(str(sock))}", "",
    ]
    for s in specs:
        if s.unavailable:
            continue
        nice = BACKGROUND if s.background else ()
        out += [f"[program:{s.name}]", "command=" + _esc(shlex.join((*wrap, *nice, *s.argv)))]
        if s.cwd:
            out.append(f"directory={_esc(s.cwd)}")
        if s.env:
            out.append("environment=" + ",".join(f'{k}="{_esc(v)}"' for k, v in s.env))
        out += [
            "autostart=false", "autorestart=true", f"startsecs={STARTSECS}", f"startretries={STARTRETRIES}",
            # whole process groups, so nannies' workers and other children go with their service
            "stopasgroup=true", "killasgroup=true", f"stopsignal={s.stop_signal}", "stopwaitsecs=15",
            "redirect_stderr=true", f"stdout_logfile={_esc(str(logs / (s.name + '.log')))}",
            "stdout_logfile_maxbytes=20MB", "stdout_logfile_backups=2", "",
        ]
    return "\n".join(out)


class SupervisorError(AfboxError):
    """supervisord did not answer, or refused a request (fault: its fault string, e.g. NOT_RUNNING)."""

    def __init__(self, message: str, fault: str = ""):
        super().__init__(message, hint="afbox status says what still runs; afbox down stops it")
        self.fault = fault


class Supervisor:
    """Talks to one facility's supervisord over its unix socket. Every failure is a SupervisorError,
    never a traceback: a request that fails on the wire drops its connection, because http.client
    refuses to send another on it (CannotSendRequest: Request-sent)."""

    def __init__(self, sock: Path):
        self.sock = sock
        self._transport = SupervisorTransport(None, None, serverurl=f"unix://{sock}")
        self._proxy = xmlrpc.client.ServerProxy("http://127.0.0.1", transport=self._transport, allow_none=True)

    def call(self, method: str, *args):
        try:
            return getattr(self._proxy.supervisor, method)(*args)
        except xmlrpc.client.Fault as e:
            raise SupervisorError(f"the supervisor refused {method}: {e.faultString}", e.faultString) from None
        except (OSError, http.client.HTTPException, xmlrpc.client.ProtocolError, ExpatError) as e:
            self._transport.close()
            raise SupervisorError(f"the supervisor (supervisord, {self.sock}) did not answer {method}: "
                                  f"{type(e).__name__}: {e}") from None

    @property
    def rpc(self):
        """supervisord's methods by name (self.rpc.reloadConfig()), each through call()."""
        return _Methods(self)

    def alive(self) -> bool:
        if not self.sock.exists():
            return False
        try:
            return self.call("getState")["statename"] == "RUNNING"
        except SupervisorError:
            return False

    def wait_alive(self, timeout: float = 15) -> bool:
        return bool(poll_until(self.alive, timeout, 0.05))

    def start(self, name: str) -> None:
        try:
            self.call("startProcess", name, False)
        except SupervisorError as e:
            if "ALREADY_STARTED" in e.fault:
                return
            if e.fault:  # e.g. NO_FILE: the program vanished since the preflight
                raise AfboxError(f"supervisord could not start service {name}: {e.fault}",
                                 hint="afbox doctor shows what this host lacks") from None
            raise

    def stop(self, name: str) -> None:
        try:
            self.call("stopProcess", name, True)
        except SupervisorError as e:
            if "NOT_RUNNING" not in e.fault:
                raise

    def info(self, name: str) -> dict:
        return self.call("getProcessInfo", name)

    def all_info(self) -> list[dict]:
        return self.call("getAllProcessInfo")

    def stop_all(self) -> None:
        self.call("stopAllProcesses", True)

    def shutdown(self) -> None:
        try:
            self.call("shutdown")
        except SupervisorError:
            pass


class _Methods:
    def __init__(self, sup: Supervisor):
        self._sup = sup

    def __getattr__(self, method: str):
        return functools.partial(self._sup.call, method)


def restart_counts(log: Path) -> dict[str, int]:
    """Restarts per program since supervisord started: spawns that follow an exit the program was not
    asked for (a crash, or an exit supervisord restarts). A spawn after `afbox restart`'s stop is not one."""
    counts: dict[str, int] = {}
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return counts
    text = text[text.rfind("supervisord started with pid"):]
    exited: set[str] = set()
    for m in re.finditer(r"(spawned): '([^']+)'|(exited|stopped): (\S+) \(", text):
        if m.group(1):
            name = m.group(2)
            counts.setdefault(name, 0)
            if name in exited:
                counts[name] += 1
                exited.discard(name)
        elif m.group(3) == "exited":
            exited.add(m.group(4))
        else:
            exited.discard(m.group(4))
    return counts
