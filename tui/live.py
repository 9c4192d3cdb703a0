"""The console's Source for the real facility on this host: afbox's lifecycle API, psutil, and the
Dask scheduler's JSON and Prometheus metrics."""
from __future__ import annotations

import os
import threading
import time
from collections import deque
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
from prometheus_client.parser import text_string_to_metric_families

from afbox import cache, facility, gpu, lifecycle, record
from afbox import host as hostmod
from afbox.errors import AfboxError
from afbox.events import Event
from afbox.lifecycle import Status
from afbox.services.sizing import dask_size
from afbox.state import FacilityState, known_facilities

from tui.source import DaskLoad, FormDefaults, GpuLoad, HostFacts, HostLoad, Overview, SetupInfo

SETUP_TOOLS = ("xrootd", "k3s", "docker", "apptainer")


def _parents() -> dict[int, int]:
    """pid -> parent pid of every process: psutil's own cheap pass (it reads only /proc/PID/stat,
    as Process.children() does), or the portable way where psutil has none."""
    ppid_map = getattr(psutil, "_ppid_map", None)
    if ppid_map is not None:
        try:
            return ppid_map()
        except Exception:  # noqa: BLE001  (a private helper: fall back rather than fail)
            pass
    return {p.pid: p.info["ppid"] for p in psutil.process_iter(["ppid"])}


class LogFollower:
    """Lines appended to a log file since the last read; follows supervisord's rotation."""

    def __init__(self, path: str | Path, first: int = 5000):
        self.path, self.first = Path(path), first
        self._f = None
        self._ino: int | None = None
        self._partial = b""

    def read(self) -> list[str]:
        try:
            st = self.path.stat()
        except OSError:
            return []
        first_read = self._f is None
        if first_read or st.st_ino != self._ino or st.st_size < self._f.tell():
            self.close()
            self._f, self._ino, self._partial = self.path.open("rb"), st.st_ino, b""
            if first_read:
                self._f.seek(max(0, st.st_size - 200 * self.first))
        data = self._partial + self._f.read()
        lines = data.split(b"\n")
        self._partial = lines.pop()
        text = [ln.decode(errors="replace") for ln in lines]
        return text[-self.first:] if first_read else text

    def close(self) -> None:
        if self._f:
            self._f.close()
            self._f = None


class LiveSource:
    """The real facility on this host."""

    RATE_SAMPLES = 120
    CACHE_EVERY = 10.0  # walking a large cache is not a once-a-second job
    # lifecycle.status() runs every health check (an HTTP request per service, ~10 ms of CPU in
    # all now that afbox.health keeps one client per CA); between two such reads the supervisor's
    # own view (~2 ms) updates states, pids and uptimes.
    FULL_EVERY, FULL_DUTY = 10.0, 10.0
    UNSETTLED_EVERY = 2.0  # while a service is not healthy, its recovery shows within seconds
    TREE_EVERY = 5.0  # children a service starts (a kernel, a worker process) count within seconds

    def __init__(self) -> None:
        self._procs: dict[int, psutil.Process] = {}
        self._roots: dict[str, int] = {}
        self._trees: dict[str, list[int]] = {}
        self._next_tree = 0.0
        self._rate: deque[float] = deque(maxlen=self.RATE_SAMPLES)
        self._done: tuple[float, float] | None = None      # (monotonic time, tasks finished)
        self._cache_at, self._cache = 0.0, None
        self._gpu_report: gpu.GpuReport | None = None
        self._gpu_thread: threading.Thread | None = None
        self._http = httpx.Client(timeout=0.5)
        self._status: dict | None = None
        self._next_full = 0.0
        psutil.cpu_percent(None)

    # -- which facility, and setting one up -------------------------------------------------
    def facilities(self) -> list[str]:
        """Facilities with a state record on this host (running, or left behind by a crash)."""
        return known_facilities()

    def running_facility(self) -> str | None:
        names = self.facilities()
        if len(names) > 1:  # the CLI would ask which; the console shows one and `n` moves on
            return "default" if "default" in names else names[0]
        return names[0] if names else None

    def setup_info(self) -> SetupInfo:
        h = hostmod.detect()
        report = gpu.detect(timeout=5)
        devices = report.devices()
        slurm = f"job {h.slurm_job}" + (f" on {h.slurm_nodes}" if h.slurm_nodes else "") if h.slurm_job else None
        facts = HostFacts(hostname=h.hostname, cpus=h.cpus, memory=h.memory,
                          gpus=tuple(f"{d.label} {d.model}" for d in devices),
                          gpu_problems=tuple(report.problems), tools={t: h.has(t) for t in SETUP_TOOLS},
                          slurm=slurm)
        names, defaults = {}, {}
        for name, description in facility.profiles().items():
            try:
                defaults[name] = self._defaults(name, h, len(devices))
            except AfboxError:  # it needs more than this form asks (masterclass: its students): `afbox up` starts it
                continue
            names[name] = description
        return SetupInfo(facts, names, defaults, "laptop" if "laptop" in names else next(iter(names)))

    @staticmethod
    def _defaults(profile: str, h: hostmod.Host, gpus: int) -> FormDefaults:
        fac = facility.load(profile)
        gpus = gpus if fac.dask.gpus < 0 else min(gpus, fac.dask.gpus)
        # as `up` sizes it: a GPU worker's feeding thread takes a core from the CPU workers
        workers = fac.dask.workers or dask_size(fac, max(1, h.cpus - gpus), h.memory).workers
        return FormDefaults(fac.xcache.origin, fac.facility.workdir or facility.default_workdir(fac.name), workers,
                            fac.facility.port_base)

    def load(self, profile: str, overrides: dict) -> facility.Facility:
        return facility.load(profile, None, overrides)

    def up(self, fac: facility.Facility) -> Iterator[Event]:
        return lifecycle.up(fac)

    # -- actions on a running facility ------------------------------------------------------
    def down(self, name: str) -> Iterator[Event]:
        return lifecycle.down(name)

    def restart(self, name: str, service: str) -> None:
        lifecycle.restart(name, service)

    def scale(self, name: str, workers: int) -> Iterator[Event]:
        return lifecycle.scale(name, workers)

    def jupyter_url(self, name: str) -> str | None:
        rec = record.read(FacilityState(name))
        return lifecycle.jupyter_login_url(rec) if rec else None

    def follow(self, path: str) -> LogFollower:
        return LogFollower(path)

    def class_status(self, name: str):
        from afbox.hub.status import class_status
        return class_status(name)

    def sites(self, name: str) -> dict:
        from afbox.lifecycle.sites import probe
        rec = record.read(FacilityState(name))
        return probe(rec) if rec else {}

    # -- the overview, once a second --------------------------------------------------------
    def stale(self) -> None:
        """Something changed (an action ran): the next overview reads everything afresh."""
        self._next_full = 0.0

    def status(self, name: str) -> Status:
        last = self._status
        if last and last.facility == name and time.monotonic() < self._next_full:
            quick = lifecycle.refresh(last)
            if quick is not None:
                return quick
        t0 = time.monotonic()
        st = self._status = lifecycle.status(name)
        took = time.monotonic() - t0
        settled = all(r.health in ("healthy", "n/a") for r in st.services)
        self._next_full = time.monotonic() + max(self.FULL_EVERY if settled else self.UNSETTLED_EVERY,
                                                 self.FULL_DUTY * took)
        return st

    def overview(self, name: str) -> Overview:
        st = self.status(name)
        if st.down:
            self._procs.clear()
            return Overview(st, host=self.host_load(None))
        state = FacilityState(name)
        return Overview(st, self._proc_stats(st), self.host_load(st), self._dask_load(st, state),
                        self._cache_stats(record.read(state)))

    def _process_trees(self, st: Status) -> dict[str, list[int]]:
        """Each service's pid and its descendants'. Walking /proc for parents is the costly part of
        the per-process figures, so the trees are re-read every TREE_EVERY seconds, or at once
        when a service's main pid changed; in between a process that ended just drops out."""
        roots = {svc.name: svc.pid for svc in st.services if svc.pid}
        if roots == self._roots and time.monotonic() < self._next_tree:
            return self._trees
        kids: dict[int, list[int]] = {}
        for pid, ppid in _parents().items():  # one pass over /proc, not one per service
            kids.setdefault(ppid, []).append(pid)
        trees: dict[str, list[int]] = {}
        for name, root in roots.items():
            tree, todo = [], [root]
            while todo:
                pid = todo.pop()
                tree.append(pid)
                todo += kids.get(pid, [])
            trees[name] = tree
        self._roots, self._trees, self._next_tree = roots, trees, time.monotonic() + self.TREE_EVERY
        return trees

    def _proc_stats(self, st: Status) -> dict[str, tuple[float | None, int | None]]:
        out: dict[str, tuple[float | None, int | None]] = {}
        seen: dict[int, psutil.Process] = {}
        for name, tree in self._process_trees(st).items():
            cpu, rss, fresh = 0.0, 0, False
            for pid in tree:
                try:
                    p = seen[pid] = self._procs.get(pid) or psutil.Process(pid)
                    fresh |= pid not in self._procs
                    with p.oneshot():
                        cpu += p.cpu_percent(None)
                        rss += p.memory_info().rss
                except psutil.Error:
                    seen.pop(pid, None)
                    continue
            out[name] = (None if fresh else cpu, rss)  # a first cpu_percent() reads 0.0
        self._procs = seen
        return out

    def host_load(self, st: Status | None) -> HostLoad:
        vm = psutil.virtual_memory()
        report = self._gpus(st)
        loads: tuple[GpuLoad, ...] = ()
        note = "detecting GPUs…" if report is None else ""
        if report is not None:
            live = gpu.live(report)
            loads = tuple(GpuLoad(f"gpu{g.index}", g.model, live.utilization.get(g.index, g.utilization),
                                  live.memory_used.get(g.index, g.memory_used), g.memory_total)
                          for g in report.gpus)
            note = "" if loads else (report.problems[0] if report.problems else "no GPU")
        return HostLoad(len(os.sched_getaffinity(0)), psutil.cpu_percent(None), vm.total - vm.available,
                        vm.total, loads, note)

    def _gpus(self, st: Status | None) -> gpu.GpuReport | None:
        recorded = ((st.gpus if st else None) or {}).get("report")
        if recorded:
            return gpu.GpuReport.from_dict(recorded)
        if self._gpu_thread is None:  # a hung driver must not hold up the first screen
            def detect() -> None:
                self._gpu_report = gpu.detect(timeout=5)
            self._gpu_thread = threading.Thread(target=detect, name="afbox-tui-gpu", daemon=True)
            self._gpu_thread.start()
        return self._gpu_report

    def _dask_load(self, st: Status, state: FacilityState) -> DaskLoad | None:
        dashboard = (st.urls or {}).get("dashboard")
        if not dashboard:
            return None
        base = dashboard.removesuffix("/status")
        try:  # the dashboard asks for the facility token (the owner's, renewed by the issuer)
            headers = {"Authorization": f"Bearer {state.token_file.read_text().strip()}"}
        except OSError:
            headers = {}
        try:
            ident = self._http.get(f"{base}/json/identity.json", headers=headers).json()
            done, processing = self._task_metrics(base, headers)
            if processing is None:  # no Prometheus metrics: the JSON count, one request more
                processing = self._http.get(f"{base}/json/counts.json", headers=headers).json().get("processing", 0)
        except (httpx.HTTPError, ValueError):
            self._done = None
            return None
        now = time.monotonic()
        if done is not None:
            if self._done is not None and now > self._done[0]:
                self._rate.append(max(0.0, (done - self._done[1]) / (now - self._done[0])))
            self._done = (now, done)
        workers = ident.get("workers", {}).values()
        return DaskLoad(ident.get("n_workers", 0), ident.get("total_threads", 0),
                        sum(w.get("metrics", {}).get("memory", 0) for w in workers),
                        ident.get("total_memory", 0), processing, tuple(self._rate))

    def _task_metrics(self, base: str, headers: dict) -> tuple[float | None, int | None]:
        """From the scheduler's Prometheus metrics: tasks that reached memory since it started
        (a counter), and tasks processing now (a gauge, what counts.json counts too); None for
        what is not there."""
        r = self._http.get(f"{base}/metrics", headers=headers)
        if not r.is_success:
            return None, None
        total, processing = 0.0, None
        for family in text_string_to_metric_families(r.text):
            for s in family.samples:
                if s.name == "dask_scheduler_prefix_state_totals_total" and s.labels.get("state") == "memory":
                    total += s.value
                elif s.name == "dask_scheduler_tasks" and s.labels.get("state") == "processing":
                    processing = int(s.value)
        return total, processing

    def _cache_stats(self, rec: record.FacilityRecord | None) -> dict | None:
        xc = rec.services.get("xcache") if rec else None
        if not xc or xc.unavailable:
            return None
        if time.monotonic() - self._cache_at > self.CACHE_EVERY:
            self._cache = cache.stats(Path(rec.cache_dir), rec.cache_size)
            self._cache_at = time.monotonic()
        return self._cache
