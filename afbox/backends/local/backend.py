"""The local backend: every service a program of one supervisord per facility on this host."""
from __future__ import annotations

import functools
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Iterator

import psutil

from ... import events as ev, timeline
from ...errors import AfboxError, ServiceFailed
from ...health import check
from ...logscan import last_lines
from ...run import run
from ...services.context import Context
from ...spec import ServiceSpec
from ...state import FacilityState
from ..base import Hooks, ServiceStatus
from . import groups
from .files import lay_out
from .supervisor import Supervisor, SupervisorError, render_conf, restart_counts

TAIL = 20        # log lines shown with a failure
SCANNED = 400    # log lines searched for the line that says why


def tail(path: Path, n: int = TAIL) -> list[str]:
    return last_lines(path, n)


@functools.cache
def die_with_parent() -> tuple[str, ...]:
    """A command that starts a program so that the kernel stops it (TERM) when supervisord dies:
    util-linux's setpriv sets PR_SET_PDEATHSIG, which survives exec. Linux only; the kernel clears
    it when a program changes its user (xrootd started as root), which is why `down` also stops
    the recorded process groups."""
    setpriv = shutil.which("setpriv")
    if not setpriv:
        return ()
    try:
        run([setpriv, "--pdeathsig", "TERM", "--", "true"], timeout=5)
    except AfboxError:
        return ()  # util-linux before 2.33
    return (setpriv, "--pdeathsig", "TERM", "--")


class LocalBackend(Hooks):
    name = "local"

    def __init__(self, state: FacilityState):
        self.state = state
        self.sock = state.run / "supervisor.sock"
        self.conf = state.run / "supervisord.conf"
        self.groups_file = state.run / "groups.json"
        self.sup = Supervisor(self.sock)

    def _render_conf(self, specs: list[ServiceSpec]) -> str:
        return render_conf(specs, sock=self.sock, logs=self.state.logs, run=self.state.run,
                           identifier=f"afbox-{self.state.name}", wrap=die_with_parent())

    def log_path(self, name: str) -> Path:
        return self.state.logs / f"{name}.log"

    def running(self) -> bool:
        return self.sup.alive()

    # -- up ---------------------------------------------------------------------------------
    def _start_supervisord(self, specs: list[ServiceSpec]) -> None:
        self.state.ensure()
        (self.state.logs / "supervisord.log").unlink(missing_ok=True)  # restart counts start afresh
        self.conf.write_text(self._render_conf(specs))
        os.chmod(self.conf, 0o600)
        supervisord = Path(sys.executable).parent / "supervisord"
        run([str(supervisord), "-c", str(self.conf)], timeout=30)
        if not self.sup.wait_alive(15):
            raise AfboxError("the process supervisor (supervisord) did not start",
                             details=tail(self.state.logs / "supervisord.log"))
        groups.supervisor_started(self.groups_file, self.state.run / "supervisord.pid")

    def up(self, ctx: Context, specs: list[ServiceSpec]) -> Iterator[ev.Event]:
        runnable = [s for s in specs if not s.unavailable]
        timeout = ctx.facility.facility.start_timeout
        with timeline.span("files laid out"):
            warnings = lay_out(specs, self.state)
        for line in warnings:
            yield ev.Event(ev.INFO, "", line)
        with timeline.span("supervisord started"):
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
            states = {i["name"]: i["statename"] for i in self._infos()} if since else {}
            for name in [n for n in pending if n in since]:
                s = pending[name]
                state = states[name]
                if state in ("FATAL", "EXITED"):
                    raise self._failed(name, "exited and could not be restarted", exited=True)
                ok, why = check(s.health) if s.health else (state == "RUNNING", state)
                if ok:
                    healthy.add(name)
                    del pending[name]
                    yield ev.Event(ev.HEALTHY, name, f"{time.monotonic() - since[name]:.1f}s")
                elif time.monotonic() - since[name] > timeout:
                    raise self._failed(name, f"did not become healthy within {timeout:g}s ({why})")
            time.sleep(0.1)

    def _failed(self, name: str, reason: str, exited: bool = False) -> ServiceFailed:
        path = self.log_path(name)
        return ServiceFailed(name, reason, tail(path), str(path), log=tail(path, SCANNED), exited=exited)

    def update(self, ctx: Context, specs: list[ServiceSpec]) -> Iterator[ev.Event]:
        """Apply a new set of specs to the running facility: start added services, stop removed ones.
        Services whose spec did not change keep running untouched."""
        timeout = ctx.facility.facility.start_timeout
        self.conf.write_text(self._render_conf(specs))
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
    def _groups(self) -> groups.Groups:
        """The recorded groups; for a facility started before they were recorded, its supervisord."""
        g = groups.Groups.read(self.groups_file)
        if not g.supervisord:
            try:
                pid = int((self.state.run / "supervisord.pid").read_text())
                g = groups.Groups(pid, psutil.Process(pid).create_time())
            except (OSError, ValueError, psutil.Error):
                pass
        return g

    def _tree(self) -> list[psutil.Process]:
        """Every live process of the facility: supervisord, what it started and their descendants."""
        return groups.members(self._groups())

    def _stop_everything(self) -> list[psutil.Process]:
        """Stop through the supervisor while it answers, then every process of the recorded groups
        that is left (all of them when the supervisor is gone); returns any that would not stop."""
        procs = self._tree()
        if self.sup.alive():
            try:
                self.sup.stop_all()
            except SupervisorError:
                pass  # what it did not stop is stopped below, by process group
            finally:
                self.sup.shutdown()
            procs = groups.wait_gone(procs, 10)
        left = groups.stop(procs + [p for p in self._tree() if p not in procs])
        self.sock.unlink(missing_ok=True)
        if not left:
            self.groups_file.unlink(missing_ok=True)
        return left

    def down(self) -> Iterator[ev.Event]:
        alive = self.sup.alive()
        procs = self._tree()
        if not alive and not procs:
            return
        if alive:
            for info in self._infos():
                if info["statename"] in ("RUNNING", "STARTING", "BACKOFF"):
                    yield ev.Event(ev.STOPPING, info["name"])
        else:
            yield ev.Event(ev.STOPPING, "", f"the supervisor is gone: stopping the {len(procs)} process(es) it "
                                            "left, by the process groups it recorded")
        left = self._stop_everything()
        if left:
            yield ev.Event(ev.FAILED, "", "these would not stop: " + ", ".join(str(p.pid) for p in left))
        else:
            yield ev.Event(ev.STOPPED, "", "all services stopped")

    def orphans(self) -> list[ServiceStatus]:
        """Services still running while their supervisor is gone, one row per recorded service
        (a process of none of them, e.g. a kernel whose Jupyter died, is counted in the first row)."""
        if self.sup.alive():
            return []
        g = self._groups()
        procs = groups.members(g)
        if not procs:
            return []
        per = groups.by_service(g, procs)
        rows = []
        for name, ps in sorted(per.items()):
            lead = min(ps, key=lambda p: p.pid)
            up = time.time() - lead.create_time() if lead.is_running() else None
            rows.append(ServiceStatus(name=name, state="unsupervised", pid=g.services[name], uptime=up,
                                      detail=f"{len(ps)} process(es) running without the supervisor"))
        strays = len(procs) - sum(len(ps) for ps in per.values())
        if strays:
            rows.append(ServiceStatus(name="(other)", state="unsupervised", pid=procs[0].pid,
                                      detail=f"{strays} other process(es) of the facility"))
        return rows

    def reap(self) -> Iterator[ev.Event]:
        """Stop what a dead supervisor left running (afbox up --force)."""
        yield from self.down()

    # -- inspection -------------------------------------------------------------------------
    def _infos(self) -> list[dict]:
        infos = self.sup.all_info()
        groups.note(self.groups_file, [i for i in infos if i["statename"] in ("RUNNING", "STARTING")])
        return infos

    def status(self) -> list[ServiceStatus]:
        if not self.sup.alive():
            return []
        restarts = restart_counts(self.state.logs / "supervisord.log")
        out = []
        for info in self._infos():
            up = info["now"] - info["start"] if info["statename"] == "RUNNING" else None
            out.append(ServiceStatus(name=info["name"], state=info["statename"].lower(), pid=info["pid"] or None,
                                     restarts=max(0, restarts.get(info["name"], 0)), uptime=up,
                                     detail=info.get("spawnerr") or ""))
        return out

    def restart(self, name: str) -> None:
        self.sup.stop(name)
        self.sup.start(name)
        self._infos()

    def pids(self) -> list[int]:
        return [p.pid for p in self._tree()]
