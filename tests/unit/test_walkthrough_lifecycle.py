"""What a newcomer hit going through the README, at the lifecycle API (against the recording backend
of test_lifecycle): named clusters after scale, `up` on a running facility, shared workdirs,
AFBOX_FACILITY, the console's ports, a wrong xrootd path, restarts."""
from __future__ import annotations

import json
import stat
import sys
from pathlib import Path

import pytest
from test_lifecycle import RUNS, Recording  # noqa: F401 - the backend these tests run against

from afbox import backends, envs, events as ev, lifecycle, record
from afbox.backends.local.supervisor import restart_counts
from afbox.errors import AfboxError
from afbox.facility import load
from afbox.lifecycle import clusters
from afbox.services import origin, xcache
from afbox.state import FacilityState, remember_start, resolve_name, start_command

PORT_BASE = 30300  # nothing listens: the recording backend runs nothing


@pytest.fixture
def xdg(tmp_path, monkeypatch):
    for var in ("XDG_STATE_HOME", "XDG_CACHE_HOME", "XDG_DATA_HOME"):
        monkeypatch.setenv(var, str(tmp_path / var.lower()))
    monkeypatch.delenv("AFBOX_FACILITY", raising=False)
    monkeypatch.setitem(backends.REGISTRY, "recording", "test_lifecycle:Recording")
    monkeypatch.setattr("afbox.lifecycle.actions.detect_gpus", lambda f: (None, ()))
    RUNS.clear()
    return tmp_path


def facility(tmp_path, name="ci", profile="ci", **over):
    over = {"facility": {"name": name, "workdir": str(tmp_path / f"work-{name}"), "port_base": PORT_BASE,
                         **over.pop("facility", {})}, "xcache": {"xrootd": "/nonexistent/xrootd"}, **over}
    f = load(profile, None, over)
    f.facility.backend = "recording"
    return f


def fake_env(name: str, root: Path) -> envs.Env:
    """An environment whose python is afbox's own (a wrapper: a symlink would lose the venv)."""
    digest = "0123456789abcdef"
    d = envs.paths.envs_root() / digest
    (d / "bin").mkdir(parents=True)
    py = d / "bin" / "python"
    py.write_text(f"#!/bin/sh\nexec {sys.executable} \"$@\"\n")
    py.chmod(py.stat().st_mode | stat.S_IXUSR)
    (d / envs.store.MARKER).write_text(json.dumps({"prefix": ".", "packages": {"dask": "x", **{p: "x" for p in envs.DASHBOARD_CHECK}}}))
    (envs.paths.envs_root() / "names").mkdir(parents=True, exist_ok=True)
    (envs.paths.envs_root() / "names" / f"{name}.json").write_text(
        json.dumps({"name": name, "digest": digest, "created": 0}))
    return envs.get(name)


# -- item 1: a named cluster after scale ---------------------------------------------------------
def test_cluster_up_after_scale_then_list_and_down(xdg, monkeypatch):
    fac = facility(xdg)
    fake_env("e", xdg)
    monkeypatch.setattr(clusters, "verify", lambda ctx, env, address, workers: {})
    list(lifecycle.up(fac))
    list(lifecycle.scale("ci", 3))
    events = list(clusters.up("ci", "e", "e", 2))
    assert "cluster 'e' is up" in events[-1].message
    rec = record.read(FacilityState("ci"))
    assert set(rec.clusters) == {"e"} and {"cluster-e-scheduler", "cluster-e-worker-1"} <= set(RUNS["ci"]["specs"])
    assert "dask-worker-3" in RUNS["ci"]["specs"]
    list(lifecycle.scale("ci", 2))  # the named cluster keeps running through a scale
    assert "cluster-e-worker-2" in RUNS["ci"]["specs"] and "dask-worker-3" not in RUNS["ci"]["specs"]
    rows = {r["name"]: r for r in clusters.listing("ci")}
    assert rows["e"]["wanted"] == 2 and rows["default"]["wanted"] == 2
    list(clusters.down("ci", "e"))
    rec = record.read(FacilityState("ci"))
    assert rec.clusters == {} and not [s for s in RUNS["ci"]["specs"] if s.startswith("cluster-")]
    assert not [s for s in rec.services if s.startswith("cluster-")]


def test_a_cluster_that_fails_to_start_leaves_nothing_behind(xdg, monkeypatch):
    fac = facility(xdg)
    fake_env("e", xdg)

    def mismatch(ctx, env, address, workers):
        raise AfboxError("versions differ between client, scheduler and workers")
    monkeypatch.setattr(clusters, "verify", mismatch)
    list(lifecycle.up(fac))
    list(lifecycle.scale("ci", 3))
    before = set(RUNS["ci"]["specs"])
    with pytest.raises(AfboxError, match="versions differ"):
        list(clusters.up("ci", "e", "e", 2))
    assert set(RUNS["ci"]["specs"]) == before  # its scheduler and workers were stopped again
    rec = record.read(FacilityState("ci"))
    assert rec.clusters == {} and not [s for s in rec.services if s.startswith("cluster-")]
    assert not list(envs.paths.facility_kernels(FacilityState("ci").dir).glob("afbox-*"))


# -- item 10 and issue 14: up on a running facility ----------------------------------------------
def test_up_again_with_other_flags_says_what_differs_and_what_to_do(xdg):
    list(lifecycle.up(facility(xdg)))
    same = [e.message for e in lifecycle.up(facility(xdg))]
    assert same == ["facility 'ci' is already up"]
    other = facility(xdg, facility={"port_base": PORT_BASE + 100}, dask={"workers": 4})
    lines = [e.message for e in lifecycle.up(other)]
    assert lines[0] == "facility 'ci' is already up" and "nothing was changed" in lines[1]
    assert f"  facility.port_base: running {PORT_BASE}, asked {PORT_BASE + 100}" in lines
    assert "  dask.workers: running 2, asked 4" in lines
    assert "to change the number of workers: afbox scale --workers 4 --name ci" in lines
    assert "for the rest: afbox down --name ci, then this afbox up again" in lines
    assert RUNS["ci"]["calls"].count("up") == 1  # nothing was started or changed


def test_up_after_scale_is_no_difference_when_the_workers_are_sized_to_the_machine(xdg):
    """workers = 0 (the laptop profile) asks for no number: a scaled facility is what it asks."""
    list(lifecycle.up(facility(xdg, dask={"workers": 0})))
    list(lifecycle.scale("ci", 3))
    assert [e.message for e in lifecycle.up(facility(xdg, dask={"workers": 0}))] == ["facility 'ci' is already up"]
    assert "  dask.workers: running 3, asked 2" in [e.message for e in lifecycle.up(facility(xdg))]


def test_up_with_another_profile_under_a_running_name_is_refused(xdg):
    list(lifecycle.up(facility(xdg)))
    with pytest.raises(AfboxError) as e:
        list(lifecycle.up(facility(xdg, profile="workstation")))
    assert e.value.message == "facility 'ci' is already up with profile 'ci', not 'workstation'"
    assert "afbox down --name ci" in e.value.hint and "--name OTHER --port-base 31300" in e.value.hint


# -- item 11: workdirs ---------------------------------------------------------------------------
def test_each_facility_has_its_own_default_workdir(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    assert load("laptop").workdir == tmp_path / "afbox-work"
    assert load("laptop", None, {"facility": {"name": "b"}}).workdir == tmp_path / "afbox-work-b"
    assert load("hpc-slurm", None, {"facility": {"name": "hpc"}}).workdir == tmp_path / "afbox-work-hpc"
    assert load("ci").workdir == tmp_path / "afbox-work-ci"
    assert load("laptop", None, {"facility": {"workdir": "~/mine"}}).workdir == tmp_path / "mine"


def test_a_second_facility_in_the_same_workdir_is_warned_about(xdg):
    shared = str(xdg / "shared")
    list(lifecycle.up(facility(xdg, facility={"workdir": shared})))
    second = facility(xdg, name="two", facility={"workdir": shared, "port_base": PORT_BASE + 100})
    lines = [e.message for e in lifecycle.up(second) if e.kind == ev.INFO]
    assert any(ln.startswith("warning: facility 'ci' works in") and "--workdir" in ln for ln in lines)


# -- issue 14: AFBOX_FACILITY --------------------------------------------------------------------
def test_afbox_facility_chooses_among_running_facilities(xdg, monkeypatch):
    list(lifecycle.up(facility(xdg)))
    list(lifecycle.up(facility(xdg, name="two", facility={"port_base": PORT_BASE + 100})))
    with pytest.raises(AfboxError) as e:
        resolve_name(None)
    assert "2 facilities are running: ci, two" == e.value.message and "AFBOX_FACILITY=NAME" in e.value.hint
    monkeypatch.setenv("AFBOX_FACILITY", "two")
    assert resolve_name(None) == "two" and resolve_name("ci") == "ci"  # --name still wins
    assert lifecycle.status(resolve_name(None)).facility == "two"
    monkeypatch.setenv("AFBOX_FACILITY", "../etc")
    with pytest.raises(AfboxError, match=r"not a facility name.*\(from \$AFBOX_FACILITY\)"):
        resolve_name(None)


# -- item 14: hints, URLs, ports, restarts -------------------------------------------------------
def test_hints_say_how_this_facility_was_started(xdg):
    assert start_command("default") == "afbox up" and start_command("ci") == "afbox up --name ci"
    remember_start("ci", ["--profile", "ci", "--name", "ci", "--port-base", str(PORT_BASE)])
    assert start_command("ci") == f"afbox up --profile ci --name ci --port-base {PORT_BASE}"
    with pytest.raises(AfboxError) as e:
        lifecycle.scale("ci", 2).__next__()
    assert e.value.hint == f"start it with: afbox up --profile ci --name ci --port-base {PORT_BASE}"


def test_the_origin_url_says_the_bind_address_like_every_other(xdg):
    fac = facility(xdg, xcache={"xrootd": "/bin/true"})
    ctx = lifecycle.context(fac)
    urls = {**origin.render(ctx)[0].url_dict, **xcache.render(ctx)[0].url_dict}
    assert urls["root"].startswith("root://127.0.0.1:") and urls["origin"] == f"root://127.0.0.1:{PORT_BASE + 2}"
    assert "localhost" not in json.dumps(urls)


def test_a_wrong_xrootd_path_is_not_reported_as_a_missing_package(xdg):
    ctx = lifecycle.context(facility(xdg, xcache={"xrootd": "/opt/nowhere/xrootd"}))
    why = xcache.render(ctx)[0].unavailable
    assert why.startswith("[xcache] xrootd = '/opt/nowhere/xrootd' is not an executable file")
    assert "not installed" not in why and origin.render(ctx)[0].unavailable == why
    named = lifecycle.context(facility(xdg, xcache={"xrootd": "no-such-xrootd"}))
    assert xcache.render(named)[0].unavailable.startswith("xrootd is not installed; install it with: apt-get")


def test_the_console_shows_the_gateway_on_the_port_status_gives(xdg):
    from tui.widgets.services_table import main_port
    list(lifecycle.up(facility(xdg)))
    st = lifecycle.status("ci")
    row = st.row("gateway")
    assert main_port(row) == str(PORT_BASE + 3) == st.urls["gateway"].rsplit(":", 1)[1]


def test_a_manual_restart_is_not_counted_as_a_crash_restart(tmp_path):
    log = tmp_path / "supervisord.log"
    log.write_text(  # as supervisord 4.2 writes them
        "2026-01-01 INFO supervisord started with pid 10\n"
        "2026-01-01 INFO spawned: 'jupyter' with pid 11\n"
        "2026-01-01 INFO success: jupyter entered RUNNING state, process has stayed up for > than 2 seconds\n"
        "2026-01-01 INFO stopped: jupyter (terminated by SIGTERM)\n"          # afbox restart jupyter
        "2026-01-01 INFO spawned: 'jupyter' with pid 12\n"
        "2026-01-01 INFO spawned: 'dask-worker-1' with pid 13\n"
        "2026-01-01 WARN exited: dask-worker-1 (terminated by SIGKILL; not expected)\n"  # a crash
        "2026-01-01 INFO spawned: 'dask-worker-1' with pid 14\n"
        "2026-01-01 INFO exited: dask-worker-1 (exit status 0; expected)\n"   # autorestart brings it back
        "2026-01-01 INFO spawned: 'dask-worker-1' with pid 15\n")
    assert restart_counts(log) == {"jupyter": 0, "dask-worker-1": 2}
