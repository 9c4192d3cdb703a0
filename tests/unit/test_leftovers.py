"""What lifecycle makes of a facility whose supervisor died or whose record cannot be read: status
tells the truth, down stops what is left, up refuses to start over it unless told to (--force)."""
from __future__ import annotations

import pytest

from afbox import backends, events as ev, lifecycle, record
from afbox.backends.base import Hooks, ServiceStatus, Site
from afbox.errors import AfboxError
from afbox.facility import load
from afbox.host import detect
from afbox.state import FacilityState

WORLD: dict = {}  # what "runs": {"supervisor": bool, "orphans": [names], "calls": [...]}


class Leftover(Hooks):
    name = "leftover"

    def __init__(self, state):
        self.state = state

    def site(self, fac):
        return Site(fac, detect())

    def preflight(self, ctx, specs):
        WORLD["calls"].append("preflight")

    def up(self, ctx, specs):
        WORLD["calls"].append("up")
        WORLD["supervisor"], WORLD["names"] = True, [s.name for s in specs if not s.unavailable]
        yield ev.Event(ev.HEALTHY, "issuer")

    def running(self):
        return WORLD["supervisor"]

    def status(self):
        return [ServiceStatus(n, "running") for n in WORLD["names"]] if WORLD["supervisor"] else []

    def orphans(self):
        return [] if WORLD["supervisor"] else [ServiceStatus(n, "unsupervised", pid=100 + i, uptime=5.0)
                                                for i, n in enumerate(WORLD["orphans"])]

    def reap(self):
        WORLD["calls"].append("reap")
        yield from self.down()

    def down(self):
        WORLD["calls"].append("down")
        WORLD["supervisor"], WORLD["orphans"] = False, []
        yield ev.Event(ev.STOPPED, "", "all services stopped")

    def log_path(self, name):
        return self.state.logs / f"{name}.log"


@pytest.fixture
def fac(tmp_path, monkeypatch):
    for var in ("XDG_STATE_HOME", "XDG_CACHE_HOME", "XDG_DATA_HOME"):
        monkeypatch.setenv(var, str(tmp_path / var.lower()))
    monkeypatch.setitem(backends.REGISTRY, "leftover", f"{__name__}:Leftover")
    monkeypatch.setitem(backends.REGISTRY, "local", f"{__name__}:Leftover")  # a record that cannot say which
    monkeypatch.setattr("afbox.lifecycle.actions.detect_gpus", lambda f: (None, ()))
    WORLD.clear()
    WORLD.update(supervisor=False, orphans=[], names=[], calls=[])
    f = load("ci", None, {"facility": {"workdir": str(tmp_path / "work"), "port_base": 21000},
                          "xcache": {"xrootd": "/nonexistent/xrootd"}, "gateway": {"enabled": False}})
    f.facility.backend = "leftover"
    list(lifecycle.up(f))
    return f


def test_services_left_by_a_dead_supervisor_are_shown_running_not_down(fac):
    WORLD.update(supervisor=False, orphans=["dask-scheduler", "jupyter"])
    st = lifecycle.status("ci")
    assert st.state == "degraded" and "supervisor (supervisord) is not running; 2 of its services" in st.problem
    rows = {r.name: r for r in st.services}
    assert rows["jupyter"].state == "unsupervised" and rows["jupyter"].pid == 101
    assert rows["issuer"].state == "stopped" and rows["xcache"].state == "unavailable"
    assert st.to_dict()["problem"] == st.problem


def test_up_refuses_to_start_over_them_and_force_stops_them_first(fac):
    WORLD.update(supervisor=False, orphans=["jupyter"], calls=[])
    with pytest.raises(AfboxError, match="1 service.s. left running by a supervisor that died: jupyter") as e:
        list(lifecycle.up(fac))
    assert "--force" in e.value.hint and WORLD["calls"] == []
    events = list(lifecycle.up(fac, force=True))
    assert "stopping them first (--force)" in events[0].message
    assert WORLD["calls"] == ["reap", "down", "preflight", "up"]
    assert WORLD["supervisor"] and record.read(FacilityState("ci"))


def test_down_stops_what_a_dead_supervisor_left(fac):
    WORLD.update(supervisor=False, orphans=["jupyter"])
    assert [e.message for e in lifecycle.down("ci")] == ["all services stopped"]
    assert WORLD["orphans"] == [] and record.read(FacilityState("ci")) is None
    assert lifecycle.status("ci").state == "down"


def test_an_unreadable_record_is_said_and_never_mistaken_for_down(fac):
    state = FacilityState("ci")
    state.record_file.write_text("{ half a record")
    st = lifecycle.status("ci")  # its supervisor still runs
    assert st.state == "degraded" and "cannot be read" in st.problem and "afbox down" in st.problem
    assert {r.name for r in st.services} >= {"issuer", "jupyter"}
    with pytest.raises(AfboxError, match="cannot be read"):
        list(lifecycle.scale("ci", 2))
    with pytest.raises(AfboxError, match="is running, but the facility's record .* cannot be read"):
        list(lifecycle.up(fac))
    events = [e.message for e in lifecycle.down("ci")]
    assert "cannot be read" in events[0] and "all services stopped" in events
    assert not state.record_file.exists() and state.record_file.with_name("facility.json.unreadable").exists()
    WORLD["supervisor"] = False
    state.record_file.write_text("[]")
    down = lifecycle.status("ci")
    assert down.state == "down" and "cannot be read" in down.problem
    events = list(lifecycle.up(fac))
    assert any("moved to" in e.message for e in events) and record.read(state)
