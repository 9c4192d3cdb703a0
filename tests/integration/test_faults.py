"""Bad input and faults: each gives a clear answer and leaves nothing half-started."""
from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import psutil
import pytest

from harness import afbox, isolated_env, shared_tmpdir, status

pytestmark = pytest.mark.integration


@pytest.fixture
def env():
    base = shared_tmpdir("afbox-fault-")
    yield isolated_env(base, 0) | {"AFBOX_TEST_BASE": str(base)}


def facility_processes(env) -> list[int]:
    """Processes of this test's facilities: started with its state dir in their environment (every
    service the supervisor starts inherits it), or naming its dirs on their command line (xrootd
    names its config, Jupyter its workdir)."""
    base, state = env["AFBOX_TEST_BASE"], env["XDG_STATE_HOME"]
    out = []
    for p in psutil.process_iter(["cmdline", "environ"]):
        try:
            mine = any(base in a for a in p.info["cmdline"] or []) or \
                (p.info["environ"] or {}).get("XDG_STATE_HOME") == state
        except psutil.Error:
            continue
        if mine and p.pid != os.getpid():
            out.append(p.pid)
    return out


def test_facility_processes_sees_every_kind_of_service(env):
    """The check the tests below rely on can fail: it finds xrootd and Jupyter, which name neither
    the state dir nor anything of afbox on their command lines."""
    cfg = Path(env["AFBOX_TEST_BASE"]) / "dask-free.toml"
    cfg.write_text("[dask]\nworkers = 1\n\n[gateway]\nenabled = false\n")
    up(env, "--port-base", "19360", "--config", str(cfg), check=True)
    try:
        st = status(env, "ci")
        pids = {s["name"]: s["pid"] for s in st["services"] if s["pid"]}
        assert {"xcache", "jupyter"} <= set(pids)
        assert set(pids.values()) <= set(facility_processes(env))
    finally:
        afbox("down", "--name", "ci", env=env)
    assert facility_processes(env) == []


def up(env, *args, check=False):
    return afbox("up", "--profile", "ci", "--workdir", str(Path(env["AFBOX_TEST_BASE"]) / "work"),
                 *args, env=env, check=check, timeout=240)


def test_unknown_profile_lists_known_ones(env):
    p = afbox("up", "--profile", "nosuch", env=env, check=False)
    assert p.returncode == 1
    assert "unknown profile 'nosuch'" in p.stderr
    assert "ci" in p.stderr and "laptop" in p.stderr and "workstation" in p.stderr
    assert "Traceback" not in p.stderr


def test_malformed_toml_gives_file_and_line(env, tmp_path):
    cfg = tmp_path / "afbox.toml"
    cfg.write_text('[dask]\nworkers = 2\n\n[xcache\norigin = "x"\n')
    p = afbox("up", "--profile", "ci", "--config", str(cfg), env=env, check=False)
    assert p.returncode == 1
    assert f"{cfg}:4:" in p.stderr, p.stderr


def test_wrong_type_gives_file_and_line(env, tmp_path):
    cfg = tmp_path / "afbox.toml"
    cfg.write_text('# my facility\n[facility]\nname = "mine"\n\n[dask]\nthreads_per_worker = 1\nworkers = "many"\n')
    p = afbox("up", "--profile", "ci", "--config", str(cfg), env=env, check=False)
    assert p.returncode == 1
    assert f"{cfg}:7: dask.workers:" in p.stderr, p.stderr


def test_unknown_key_and_bad_origin(env, tmp_path):
    cfg = tmp_path / "afbox.toml"
    cfg.write_text('[xcache]\norigin = "http://not-xrootd"\ncolour = "blue"\n')
    p = afbox("up", "--profile", "ci", "--config", str(cfg), env=env, check=False)
    assert f"{cfg}:2: xcache.origin: origin must look like root://host:port" in p.stderr, p.stderr
    assert f"{cfg}:3: xcache.colour: unknown key" in p.stderr


def test_port_taken_names_port_service_and_flag(env):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 19306))  # scheduler port of base 19300
        s.listen()
        p = up(env, "--port-base", "19300")
    assert p.returncode == 1
    assert "port 19306 (dask-scheduler scheduler) is in use by" in p.stderr
    assert "--port-base" in p.stderr
    assert facility_processes(env) == []
    assert status(env, "ci")["state"] == "down"


def test_service_that_exits_fails_up_with_its_log_and_stops_the_rest(env, tmp_path):
    cfg = tmp_path / "afbox.toml"
    # an option dask's own parser refuses by name (with a preload, an unknown option is handed to
    # it, and distributed's message for that leaves the option out)
    cfg.write_text('[dask]\nextra_args = ["--port", "no-such-port"]\n')
    t0 = time.monotonic()
    p = up(env, "--port-base", "19400", "--config", str(cfg))
    assert p.returncode == 1
    assert "service dask-scheduler exited and could not be restarted" in p.stderr
    assert "no-such-port" in p.stderr  # from the tail of its own log
    assert "full log:" in p.stderr
    assert time.monotonic() - t0 < 120
    assert facility_processes(env) == []
    assert status(env, "ci")["state"] == "down"


def test_service_never_healthy_times_out_with_log_tail(env, tmp_path):
    cfg = tmp_path / "afbox.toml"
    # the dashboard moves to a random port, so the health check on the expected port never passes
    cfg.write_text('[facility]\nstart_timeout = 8\n\n[dask]\nextra_args = ["--dashboard-address", "127.0.0.1:0"]\n')
    p = up(env, "--port-base", "19500", "--config", str(cfg))
    assert p.returncode == 1
    assert "service dask-scheduler did not become healthy within 8s" in p.stderr, p.stderr
    assert "last" in p.stderr and "lines of its log" in p.stderr
    assert facility_processes(env) == []


def test_down_status_logs_when_nothing_runs(env):
    p = afbox("down", env=env)
    assert "no facility is running" in p.stdout
    p = afbox("down", "--name", "ci", env=env)
    assert "not running" in p.stdout
    p = afbox("status", env=env)
    assert "no facility is running" in p.stdout
    assert status(env, "ci")["state"] == "down"
    p = afbox("logs", "nosuch", "--name", "ci", env=env, check=False)
    assert p.returncode == 1 and "no log for service 'nosuch'" in p.stderr and "Traceback" not in p.stderr


def test_missing_xrootd_marks_xcache_unavailable_or_fails_when_required(env, tmp_path):
    cfg = tmp_path / "afbox.toml"
    cfg.write_text('[xcache]\nxrootd = "/nonexistent/xrootd"\n')
    p = up(env, "--port-base", "19600", "--config", str(cfg), "--require", "xcache")
    assert p.returncode == 1
    # a wrong path is said as such, not as a missing package
    assert "xcache is required but unavailable" in p.stderr
    assert "[xcache] xrootd = '/nonexistent/xrootd' is not an executable file" in p.stderr
    assert facility_processes(env) == []
    p = up(env, "--port-base", "19600", "--config", str(cfg), check=True)
    try:
        assert "xcache" in p.stdout and "unavailable" in p.stdout
        st = status(env, "ci")
        assert st["state"] == "up"
        x = next(s for s in st["services"] if s["name"] == "xcache")
        assert x["state"] == "unavailable" and "is not an executable file" in x["detail"]
        assert "xcache:         unavailable: [xcache] xrootd = '/nonexistent/xrootd'" in p.stdout
        assert "xcache" not in st["urls"]
    finally:
        afbox("down", "--name", "ci", env=env)
    assert facility_processes(env) == []


def test_two_named_facilities_run_side_by_side(env, tmp_path):
    cfg = tmp_path / "dask-only.toml"
    cfg.write_text("[jupyter]\nenabled = false\n\n[xcache]\nenabled = false\n\n[dask]\nworkers = 1\n")
    work = Path(env["AFBOX_TEST_BASE"]) / "work"
    try:
        afbox("up", "--profile", "ci", "--config", str(cfg), "--name", "one", "--port-base", "20500",
              "--workdir", str(work), env=env)
        afbox("up", "--profile", "ci", "--config", str(cfg), "--name", "two", "--port-base", "20600",
              "--workdir", str(work), env=env)
        one, two = status(env, "one"), status(env, "two")
        assert one["state"] == two["state"] == "up"
        assert one["urls"]["scheduler"].endswith(":20506") and two["urls"]["scheduler"].endswith(":20606")
        # with two running, a command without --name does not guess
        p = afbox("down", env=env, check=False)
        assert p.returncode == 1 and "2 facilities are running: one, two" in p.stderr and "--name" in p.stderr
        assert status(env, "one")["state"] == "up" and status(env, "two")["state"] == "up"
        afbox("down", "--name", "one", env=env)
        assert status(env, "one")["state"] == "down" and status(env, "two")["state"] == "up"
    finally:
        afbox("down", "--name", "one", env=env, check=False)
        afbox("down", "--name", "two", env=env, check=False)
    assert facility_processes(env) == []
