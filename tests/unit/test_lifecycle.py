"""lifecycle against a backend defined here: what it asks of a backend and in which order, what it
records, how status reads the record and the backend together."""
from __future__ import annotations

import socket

import pytest

from afbox import backends, events as ev, lifecycle, record
from afbox.backends.base import Hooks, ServiceStatus, Site
from afbox.errors import AfboxError
from afbox.facility import load
from afbox.host import detect
from afbox.state import FacilityState

RUNS: dict[str, dict] = {}  # what the recording backend "runs", per facility, across its instances


class Recording(Hooks):
    """Runs nothing; keeps what it was asked in RUNS."""
    name = "recording"

    def __init__(self, state: FacilityState):
        self.state = state
        self.run = RUNS.setdefault(state.name, {"calls": [], "specs": {}, "states": {}})

    def site(self, fac):
        self.run["calls"].append("site")
        host = detect()
        host.cpus, host.memory = 4, 8 * 1024 ** 3
        return Site(fac, host, {"rack": "r1"})

    def view(self, ctx):
        self.run["calls"].append("view")
        return ctx

    def place(self, ctx, specs):
        self.run["calls"].append("place")
        return specs

    def preflight(self, ctx, specs):
        self.run["calls"].append("preflight")

    def up(self, ctx, specs):
        self.run["calls"].append("up")
        self.run["ctx"] = ctx
        yield from self.update(ctx, specs)

    def update(self, ctx, specs):
        self.run["calls"].append(f"update {len(specs)}")
        self.run["specs"] = {s.name: s for s in specs if not s.unavailable}
        for s in self.run["specs"]:
            self.run["states"].setdefault(s, "running")
            yield ev.Event(ev.HEALTHY, s)

    def down(self):
        self.run["calls"].append("down")
        self.run["specs"] = {}
        yield ev.Event(ev.STOPPED, "", "all stopped")

    def running(self):
        return bool(self.run["specs"])

    def status(self):
        return [ServiceStatus(n, self.run["states"].get(n, "running"), pid=hash(n) % 1000 + 1)
                for n in self.run["specs"]]

    def log_path(self, name):
        return self.state.logs / f"{name}.log"

    def restart(self, name):
        self.run["calls"].append(f"restart {name}")


@pytest.fixture
def fac(tmp_path, monkeypatch):
    for var in ("XDG_STATE_HOME", "XDG_CACHE_HOME", "XDG_DATA_HOME"):
        monkeypatch.setenv(var, str(tmp_path / var.lower()))
    monkeypatch.setitem(backends.REGISTRY, "recording", f"{__name__}:Recording")
    monkeypatch.setattr("afbox.lifecycle.actions.detect_gpus", lambda f: (None, ()))
    RUNS.clear()
    f = load("ci", None, {"facility": {"workdir": str(tmp_path / "work"), "port_base": 21000},
                          "xcache": {"xrootd": "/nonexistent/xrootd"}})
    f.facility.backend = "recording"
    return f


def test_up_asks_the_backend_in_order_and_records_what_runs(fac):
    events = list(lifecycle.up(fac))
    assert RUNS["ci"]["calls"] == ["site", "view", "place", "preflight", "up", "update 8"]
    assert [(e.kind, e.service) for e in events if e.kind == ev.UNAVAILABLE] == [("unavailable", "xcache"),
                                                                                ("unavailable", "origin")]
    rec = record.read(FacilityState("ci"))
    assert rec.backend == "recording" and rec.site == {"rack": "r1"} and rec.version == record.VERSION
    # sized for the site's host (4 cores), not this one
    assert RUNS["ci"]["ctx"].dask.workers == 2 and rec.dask.workers == 2
    assert set(rec.services) == {"issuer", "dask-scheduler", "dask-worker-1", "dask-worker-2", "gateway",
                                 "jupyter", "xcache", "origin"}
    assert "xcache" not in rec.urls() and rec.urls()["jupyter"] == "http://127.0.0.1:21008/lab"
    # credentials were made for the services that check tokens
    assert (FacilityState("ci").secrets / "identity" / "signing-key.pem").stat().st_mode & 0o077 == 0
    assert [e.message for e in lifecycle.up(fac)] == ["facility 'ci' is already up"]


def test_a_required_service_that_is_unavailable_stops_up_before_anything_starts(fac):
    fac.facility.require = ["xcache"]
    with pytest.raises(AfboxError, match="xcache is required but unavailable"):
        list(lifecycle.up(fac))
    assert "up" not in RUNS["ci"]["calls"] and record.read(FacilityState("ci")) is None


def test_scale_renders_from_the_record_and_keeps_the_rest(fac):
    list(lifecycle.up(fac))
    before = record.read(FacilityState("ci"))
    list(lifecycle.scale("ci", 3))
    after = record.read(FacilityState("ci"))
    assert RUNS["ci"]["calls"][-1] == "update 9"
    assert after.dask.workers == 3 and after.spec.dask.workers == 3 and "dask-worker-3" in after.services
    assert (after.started, after.site, after.auth) == (before.started, before.site, before.auth)
    with pytest.raises(AfboxError, match="at least 1 CPU worker"):
        list(lifecycle.scale("ci", 0))


def test_status_checks_health_of_a_service_still_starting(fac):
    """A worker the scheduler already lists is healthy even while its supervisor still says
    'starting' (its start is confirmed after a few seconds)."""
    list(lifecycle.up(fac))
    listening = socket.socket()
    listening.bind(("127.0.0.1", 0))
    listening.listen()
    try:
        state = FacilityState("ci")
        rec = record.read(state)
        from afbox.spec import HealthCheck
        rec.services["dask-worker-1"].health = HealthCheck("tcp", port=listening.getsockname()[1])
        rec.services["dask-worker-2"].health = HealthCheck("tcp", port=1)  # nothing listens there
        record.write(state, rec)
        RUNS["ci"]["states"].update({"dask-worker-1": "starting", "dask-worker-2": "starting", "gateway": "backoff"})
        st = lifecycle.status("ci")
    finally:
        listening.close()
    rows = {r.name: r for r in st.services}
    assert rows["dask-worker-1"].health == "healthy" and rows["dask-worker-2"].health == "unhealthy"
    assert rows["gateway"].health == "unknown" and rows["xcache"].state == "unavailable"
    assert st.state == "degraded"
    # the JSON contract leaves out what does not apply and never shows the internal primary URL
    d = st.to_dict()
    assert "primary" not in d["services"][0] and "slurm" not in d and d["urls"]["gateway"].endswith(":21003")
    # refresh keeps health, updates what the backend says, and gives up on any change of pid or state
    assert lifecycle.refresh(st) == st
    RUNS["ci"]["states"]["dask-worker-1"] = "running"
    assert lifecycle.refresh(st) is None


def test_restart_names_known_services_and_down_clears_the_record(fac):
    list(lifecycle.up(fac))
    lifecycle.restart("ci", "jupyter")
    assert RUNS["ci"]["calls"][-1] == "restart jupyter"
    with pytest.raises(AfboxError, match="no service 'nope'"):
        lifecycle.restart("ci", "nope")
    assert [e.message for e in lifecycle.down("ci")] == ["all stopped"]
    assert record.read(FacilityState("ci")) is None and lifecycle.status("ci").to_dict() == {
        "facility": "ci", "state": "down", "services": []}
    assert [e.message for e in lifecycle.down("ci")] == ["facility 'ci' is not running; nothing to stop"]
