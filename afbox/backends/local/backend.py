"""The local backend: every service a program of one supervisord per facility on this host."""
from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path
from typing import Iterator

import psutil

from ... import events as ev
from ...errors import AfboxError, ServiceFailed
from ...health import check
from ...run import run
from ...services.context import Context
from ...spec import ServiceSpec
from ...state import FacilityState
from ..base import Hooks, ServiceStatus
from .files import lay_out
from .supervisor import Supervisor, render_conf, restart_counts

TAIL = 20


def tail(path: Path, n: int = TAIL) -> list[str]:
    try:
        return path.read_text(errors="replace").splitlines()[-n:]
    except OSError:
        return []


class LocalBackend(Hooks):
    name = "local"

    def __init__(self, state: FacilityState):
        self.state = state
        self.sock = state.run / "supervisor.sock"
        self.conf = state.run / "supervisord.conf"
        self.sup = Supervisor(self.sock)

    def log_path(self, name: str) -> Path:
        return self.state.logs / f"{name}.log"

    def running(self) -> bool:
        return self.sup.alive()

    # -- up ---------------------------------------------------------------------------------
    def _start_supervisord(self, specs: list[ServiceSpec]) -> None:
        self.state.ensure()
        (self.state.logs / "supervisord.log").unlink(missing_ok=True)  # restart counts start afresh
        self.conf.write_text(render_conf(specs, sock=self.sock, logs=self.state.logs, run=self.state.run,
                                         identifier=f"afbox-{self.state.name}"))
        os.chmod(self.conf, 0o600)
        supervisord = Path(sys.executable).parent / "supervisord"
        run([str(supervisord), "-c", str(self.conf)], timeout=30)
        if not self.sup.wait_alive(15):
            raise AfboxError("the process supervisor (supervisord) did not start",
                             details=tail(self.state.logs / "supervisord.log"))

    def up(self, ctx: Context, specs: list[ServiceSpec]) -> Iterator[ev.Event]:
        runnable = [s for s in specs if not s.unavailable]
        timeout = ctx.facility.facility.start_timeout
        for line in lay_out(specs, self.state):
            yield ev.Event(ev.INFO, "", line)
        self._start_supervisord(specs)
        started: list[str] = []
        try:
            yield from self._start_in_order(runnable, timeout, started)
        except BaseException:
            self._stop_everything()
            raise

    def _start_in_order(self, specs: list[ServiceSpec], timeout: float, started: list[str],
                        running: set[str] = frozenset()) -> Iterator[ev.Event]:
        pending = {s.name: s for s in specs}
        healthy: set[str] = set(running)
        since: dict[str, float] = {n: 0.0 for n in running}
        while pending:
            for name, s in pending.items():
                ready = healthy if s.needs_state == "healthy" else set(since)
                if name not in since and all(n in ready for n in s.needs):
                    self.sup.start(name)
                    started.append(name)
                    since[name] = time.monotonic()
                    yield ev.Event(ev.STARTING, name, " ".join(f"{k}:{p}" for k, p in s.ports))
            states = {i["name"]: i["statename"] for i in self.sup.all_info()} if since else {}
            for name in [n for n in pending if n in since]:
                s = pending[name]
                state = states[name]
                if state in ("FATAL", "EXITED"):
                    raise ServiceFailed(name, "exited and could not be restarted", tail(self.log_path(name)),
                                        str(self.log_path(name)))
                ok, why = check(s.health) if s.health else (state == "RUNNING", state)
                if ok:
                    healthy.add(name)
                    del pending[name]
                    yield ev.Event(ev.HEALTHY, name, f"{time.monotonic() - since[name]:.1f}s")
                elif time.monotonic() - since[name] > timeout:
                    raise ServiceFailed(name, f"did not become healthy within {timeout:g}s ({why})",
                                        tail(self.log_path(name)), str(self.log_path(name)))
            time.sleep(0.1)

    def update(self, ctx: Context, specs: list[ServiceSpec]) -> Iterator[ev.Event]:
        """Apply a new set of specs to the running facility: start added services, stop removed ones.
        Services whose spec did not change keep running untouched."""
        timeout = ctx.facility.facility.start_timeout
        self.conf.write_text(render_conf(specs, sock=self.sock, logs=self.state.logs, run=self.state.run,
                                         identifier=f"afbox-{self.state.name}"))
        added, changed, removed = self.sup.rpc.reloadConfig()[0]
        for name in removed + changed:
            yield ev.Event(ev.STOPPING, name)
            self.sup.stop(name)
            self.sup.rpc.removeProcessGroup(name)
            if name in removed:
                yield ev.Event(ev.STOPPED, name)
        for name in added + changed:
            self.sup.rpc.addProcessGroup(name)
        new = [s for s in specs if s.name in set(added + changed) and not s.unavailable]
        for line in lay_out(new, self.state):
            yield ev.Event(ev.INFO, "", line)
        running = {s.name for s in specs if s.name not in set(added + changed)}
        started: list[str] = []
        try:
            yield from self._start_in_order(new, timeout, started, running)
        except BaseException:
            for name in started:
                self.sup.stop(name)
            raise

    # -- down -------------------------------------------------------------------------------
    def _tree(self) -> list[psutil.Process]:
        """Every process of the facility: supervisord's children and all their descendants.
        Jupyter starts kernels in their own sessions, so process groups alone would miss them."""
        try:
            pid = int((self.state.run / "supervisord.pid").read_text())
            root = psutil.Process(pid)
            return root.children(recursive=True) + [root]
        except (OSError, ValueError, psutil.Error):
            return []

    def _stop_everything(self) -> None:
        procs = self._tree()
        if self.sup.alive():
            try:
                self.sup.stop_all()
            finally:
                self.sup.shutdown()
        _, alive = psutil.wait_procs(procs, timeout=10)
        for p in alive:
            try:
                p.send_signal(signal.SIGKILL)
            except psutil.Error:
                pass
        psutil.wait_procs(alive, timeout=5)
        self.sock.unlink(missing_ok=True)

    def down(self) -> Iterator[ev.Event]:
        if not self.sup.alive() and not self._tree():
            return
        for info in self.sup.all_info() if self.sup.alive() else []:
            if info["statename"] in ("RUNNING", "STARTING", "BACKOFF"):
                yield ev.Event(ev.STOPPING, info["name"])
        self._stop_everything()
        yield ev.Event(ev.STOPPED, "", "all services stopped")

    # -- inspection -------------------------------------------------------------------------
    def status(self) -> list[ServiceStatus]:
        if not self.sup.alive():
            return []
        restarts = restart_counts(self.state.logs / "supervisord.log")
        out = []
        for info in self.sup.all_info():
            up = info["now"] - info["start"] if info["statename"] == "RUNNING" else None
            out.append(ServiceStatus(name=info["name"], state=info["statename"].lower(), pid=info["pid"] or None,
                                     restarts=max(0, restarts.get(info["name"], 0)), uptime=up,
                                     detail=info.get("spawnerr") or ""))
        return out

    def restart(self, name: str) -> None:
        self.sup.stop(name)
        self.sup.start(name)

    def pids(self) -> list[int]:
        return [p.pid for p in self._tree()]
