"""A data source with fixed figures, so screens render the same every time (snapshot tests)."""
from __future__ import annotations

from afbox import events as ev
from afbox.facility import load
from afbox.lifecycle import Status
from tui.source import DaskLoad, FormDefaults, GpuLoad, HostFacts, HostLoad, Overview, SetupInfo

T0 = 1_767_225_600.0  # 2026-01-01 00:00:00 UTC
GiB, MiB = 1024 ** 3, 1024 ** 2
LOG = "/nonexistent/afbox/ci/logs/{}.log"

PROFILES = {"ci": "tests and CI: 2 single-thread workers, tiny cache, fast start",
            "laptop": "a laptop: 2 workers at most, small cache; Jupyter, Dask and XCache",
            "workstation": "a workstation: workers on every core, large cache; Jupyter, Dask and XCache"}

SETUP = SetupInfo(
    host=HostFacts("node01", 16, 64 * GiB, gpus=("gpu-0 NVIDIA A100-SXM4-40GB", "gpu-1 NVIDIA A100-SXM4-40GB"),
                   tools={"xrootd": True, "k3s": False, "docker": True, "apptainer": False},
                   slurm="job 4242 on node[01-04]"),
    profiles=PROFILES,
    defaults={"ci": FormDefaults("", "~/afbox-work-ci", 2, 18780),
              "laptop": FormDefaults("", "~/afbox-work", 2, 8780),
              "workstation": FormDefaults("", "~/afbox-work", 4, 8780)},
    profile="laptop",
)


def service(name, ports, urls=None, pid=100, state="running", health="healthy", restarts=0, uptime=754.0):
    return {"name": name, "state": state, "health": health, "pid": pid, "restarts": restarts, "uptime": uptime,
            "ports": ports, "urls": urls or {}, "log": LOG.format(name), "detail": "",
            "primary": next(iter((urls or {}).values()), None)}


def status(workers: int = 2) -> Status:
    rows = [service("dask-scheduler", {"scheduler": 18786, "dashboard": 18787},
                    {"scheduler": "tcp://127.0.0.1:18786", "dashboard": "http://127.0.0.1:18787/status"}, 101)]
    for i in range(1, workers + 1):
        ports = {"nanny": 18797 + 3 * i, "worker": 18798 + 3 * i, "worker-dashboard": 18799 + 3 * i}
        rows.append(service(f"dask-worker-{i}", ports, pid=101 + i))
    rows += [service("jupyter", {"http": 18788}, {"lab": "http://127.0.0.1:18788/lab"}, 110, restarts=1, uptime=95),
             service("xcache", {"xroot": 18780}, {"root": "root://127.0.0.1:18780/"}, 111),
             service("origin", {"xroot": 18782}, {"root": "root://localhost:18782/"}, 112, state="backoff",
                     health="unhealthy", restarts=3, uptime=None)]
    return Status.model_validate({
        "facility": "ci", "state": "degraded", "profile": "ci", "backend": "local", "started": T0,
        "workdir": "/home/phys/afbox-work-ci", "services": rows,
        "urls": {"scheduler": "tcp://127.0.0.1:18786", "dashboard": "http://127.0.0.1:18787/status",
                 "jupyter": "http://127.0.0.1:18788/lab", "xcache": "root://127.0.0.1:18780/"}})


def overview(workers: int = 2) -> Overview:
    st = status(workers)
    procs = {r.name: (12.5 * i, (150 + 40 * i) * MiB) for i, r in enumerate(st.services) if r.pid}
    host = HostLoad(16, 37.0, 21 * GiB, 64 * GiB,
                    (GpuLoad("gpu0", "NVIDIA A100-SXM4-40GB", 81.0, 30 * GiB, 40 * GiB),
                     GpuLoad("gpu1", "NVIDIA A100-SXM4-40GB", 4.0, 2 * GiB, 40 * GiB)))
    rate = tuple(float(x) for x in (0, 0, 3, 12, 40, 85, 120, 96, 60, 30, 8, 0, 0, 2, 25, 70, 110, 64, 20, 5))
    dask = DaskLoad(workers, workers, 410 * MiB, workers * GiB, 7, rate)
    cache = {"cache_dir": "/var/cache/afbox/ci/xcache", "files": 12, "bytes": 612 * MiB, "logical_bytes": 700 * MiB,
             "high_watermark": GiB, "nominal_watermark": int(GiB * 0.85), "low_watermark": int(GiB * 0.7),
             "fill": 612 / 1024, "hits": None, "misses": None}
    return Overview(st, procs, host, dask, cache)


EVENTS = [ev.Event(ev.STARTING, "dask-scheduler", "scheduler:18786 dashboard:18787", time=T0),
          ev.Event(ev.HEALTHY, "dask-scheduler", "4.9s", time=T0 + 5),
          ev.Event(ev.HEALTHY, "dask-worker-1", "9.1s", time=T0 + 9),
          ev.Event(ev.HEALTHY, "jupyter", "10.8s", time=T0 + 11),
          ev.Event(ev.INFO, "origin", "running/healthy → backoff/unhealthy", time=T0 + 700)]

LOG_LINES = [f"2026-01-01 00:00:{i % 60:02d},000 - distributed.worker - INFO - line {i}: "
             + ("Starting Worker" if i % 7 else "Event loop was unresponsive in Worker for 3.1s") for i in range(60)]


class FakeLog:
    def __init__(self, lines):
        self.pending = list(lines)

    def read(self):
        out, self.pending = self.pending, []
        return out

    def close(self):
        pass


SITES = {"hpc": {"issuer": "https://hpc.example.org:8781", "reachable": True, "latency_ms": 21.4, "workers": 64,
                 "gpus": 8, "cache_fill": 0.42, "grants": ["compute.create", "storage.read:/store/public"]},
         "lab": {"issuer": "https://lab.example.org:8781", "reachable": False, "grants": [],
                 "detail": "cannot reach https://lab.example.org:8781: connection refused"}}


class FakeSource:
    """A tui.source.Source, as tui.live.LiveSource is; records the actions it is asked for."""

    def __init__(self, running: str | None = "ci", view: Overview | None = None):
        self.running, self.view = running, view or overview()
        self.calls: list[tuple] = []

    def running_facility(self):
        return self.running

    def setup_info(self):
        return SETUP

    def load(self, profile, overrides):
        self.calls.append(("load", profile, overrides))
        return load(profile, None, overrides)

    def up(self, fac):
        self.calls.append(("up", fac.name))
        yield from EVENTS[:4]

    def down(self, name):
        self.calls.append(("down", name))
        yield ev.Event(ev.STOPPED, "", "all services stopped", time=T0)

    def restart(self, name, service):
        self.calls.append(("restart", name, service))

    def scale(self, name, workers):
        self.calls.append(("scale", name, workers))
        return iter(())

    def jupyter_url(self, name):
        return "http://127.0.0.1:18788/lab?token=0123456789abcdef"

    def overview(self, name):
        return self.view

    def sites(self, name):
        return SITES

    def follow(self, path):
        return FakeLog(LOG_LINES)

    def stale(self):
        pass

    def facilities(self):
        return [self.running] if self.running else []
