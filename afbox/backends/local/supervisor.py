"""supervisord: config rendered from ServiceSpecs (pure), and a small client over its unix socket."""
from __future__ import annotations

import re
import shlex
import xmlrpc.client
from pathlib import Path

from supervisor.xmlrpc import SupervisorTransport

from ...errors import AfboxError
from ...health import poll_until
from ...spec import ServiceSpec

STARTSECS = 2      # a process must stay up this long to count as started
STARTRETRIES = 3   # failed starts (with supervisord's growing backoff) before it gives up: FATAL


def _esc(text: str) -> str:
    return text.replace("%", "%%")  # supervisord expands %(name)s in values


def render_conf(specs: list[ServiceSpec], *, sock: Path, logs: Path, run: Path, identifier: str) -> str:
    out = [
        "; written by afbox for one facility; regenerated on every `afbox up`",
        "[unix_http_server]", f"file={_esc(str(sock))}", "chmod=0700", "",
        "[supervisord]", f"logfile={_esc(str(logs / 'supervisord.log'))}", "logfile_maxbytes=5MB",
        "logfile_backups=1", f"pidfile={_esc(str(run / 'supervisord.pid'))}", f"identifier={identifier}",
        f"childlogdir={_esc(str(logs))}", "nodaemon=false", "loglevel=info", "",
        "[rpcinterface:supervisor]",
        "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface", "",
        "[supervisorctl]", f"serverurl=unix://{_esc(str(sock))}", "",
    ]
    for s in specs:
        if s.unavailable:
            continue
        out += [f"[program:{s.name}]", "command=" + _esc(shlex.join(s.argv))]
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


class Supervisor:
    """Talks to one facility's supervisord over its unix socket."""

    def __init__(self, sock: Path):
        self.sock = sock
        transport = SupervisorTransport(None, None, serverurl=f"unix://{sock}")
        self._proxy = xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport, allow_none=True)

    @property
    def rpc(self):
        return self._proxy.supervisor

    def alive(self) -> bool:
        if not self.sock.exists():
            return False
        try:
            return self.rpc.getState()["statename"] == "RUNNING"
        except (OSError, xmlrpc.client.Fault, xmlrpc.client.ProtocolError):
            return False

    def wait_alive(self, timeout: float = 15) -> bool:
        return bool(poll_until(self.alive, timeout, 0.1))

    def start(self, name: str) -> None:
        try:
            self.rpc.startProcess(name, False)
        except xmlrpc.client.Fault as e:  # e.g. NO_FILE: the program vanished since the preflight
            raise AfboxError(f"supervisord could not start service {name}: {e.faultString}",
                             hint="afbox doctor shows what this host lacks") from None

    def stop(self, name: str) -> None:
        try:
            self.rpc.stopProcess(name, True)
        except xmlrpc.client.Fault as e:
            if "NOT_RUNNING" not in e.faultString:
                raise

    def info(self, name: str) -> dict:
        return self.rpc.getProcessInfo(name)

    def all_info(self) -> list[dict]:
        return self.rpc.getAllProcessInfo()

    def stop_all(self) -> None:
        self.rpc.stopAllProcesses(True)

    def shutdown(self) -> None:
        try:
            self.rpc.shutdown()
        except (OSError, xmlrpc.client.Fault, xmlrpc.client.ProtocolError):
            pass


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
