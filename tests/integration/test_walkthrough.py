"""The README's path as a newcomer walks it, on a real facility: what `up` prints, `up` again with other
flags or another profile, a token checked by --inspect, restarts as status counts them, the demo
notebook kept after new data, cache purge's count, and the hint after `down`."""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
from pathlib import Path

import psutil
import pytest

from harness import BIN, afbox, isolated_env, service, shared_tmpdir, status, wait_for, xrootd_available

pytestmark = pytest.mark.integration
if not xrootd_available():
    pytest.skip("xrootd not installed (apt-get install xrootd-server xrootd-server-plugins)", allow_module_level=True)

NAME, PORT_BASE = "w21", 30000
UP = ("up", "--profile", "ci", "--name", NAME, "--port-base", str(PORT_BASE))


@pytest.fixture(scope="module")
def fac():
    base = shared_tmpdir("afbox-walk-")
    env = isolated_env(base, PORT_BASE) | {"XDG_DATA_HOME": str(base / "data")}
    workdir = base / "work"
    out = afbox(*UP, "--workdir", str(workdir), env=env).stdout
    yield dict(env=env, base=base, workdir=workdir, up=out)
    afbox("down", "--name", NAME, env=env, check=False)
    shutil.rmtree(base, ignore_errors=True)


def answered(args, env, input: str) -> subprocess.CompletedProcess:
    """afbox with an answer on stdin (the harness gives none)."""
    return subprocess.run([str(BIN / "afbox"), *args], env=env, input=input, capture_output=True, text=True,
                          timeout=120)


def test_up_prints_every_url_and_nothing_unavailable(fac):
    out = fac["up"]
    assert f"facility '{NAME}' is up" in out and f"workdir         {fac['workdir']}" in out
    for label in ("JupyterLab", "Dask scheduler", "Dask dashboard", "XCache", "Dask gateway"):
        assert label in out
    assert "unavailable" not in out
    st = status(fac["env"], NAME)
    assert service(st, "origin")["urls"]["root"] == f"root://127.0.0.1:{PORT_BASE + 2}/"
    assert service(st, "xcache")["urls"]["origin"] == f"root://127.0.0.1:{PORT_BASE + 2}"


def test_up_again_with_other_flags_says_what_differs(fac):
    pids = {s["name"]: s["pid"] for s in status(fac["env"], NAME)["services"]}
    again = afbox(*UP, "--workers", "3", "--workdir", str(fac["workdir"]), env=fac["env"]).stdout
    assert f"facility '{NAME}' is already up" in again
    assert "dask.workers: running 2, asked 3" in again
    assert f"to change the number of workers: afbox scale --workers 3 --name {NAME}" in again
    moved = afbox("up", "--profile", "ci", "--name", NAME, "--port-base", str(PORT_BASE + 50), env=fac["env"]).stdout
    assert f"facility.port_base: running {PORT_BASE}, asked {PORT_BASE + 50}" in moved
    assert f"for the rest: afbox down --name {NAME}, then this afbox up again" in moved
    assert {s["name"]: s["pid"] for s in status(fac["env"], NAME)["services"]} == pids  # nothing restarted


def test_up_with_another_profile_under_the_name_is_refused(fac):
    p = afbox("up", "--profile", "workstation", "--name", NAME, env=fac["env"], check=False)
    assert p.returncode == 1 and "Traceback" not in p.stderr
    assert f"error: facility '{NAME}' is already up with profile 'ci', not 'workstation'" in p.stderr
    assert f"hint: stop it first (afbox down --name {NAME})" in p.stderr


def test_token_inspect_verifies_a_token_of_this_facility(fac):
    token = afbox("token", "--name", NAME, env=fac["env"]).stdout.strip()
    info = json.loads(afbox("token", "--inspect", token, env=fac["env"]).stdout)
    assert info["verified"] is True and info["accepted"] is True
    assert info["signature"] == f"valid: key {info['header']['kid']} of https://127.0.0.1:{PORT_BASE + 1}"


def test_a_manual_restart_is_not_a_crash_restart_but_a_killed_worker_is(fac):
    env = fac["env"]
    before = service(status(env, NAME), "jupyter")
    afbox("restart", "jupyter", "--name", NAME, env=env)
    wait_for(lambda: service(status(env, NAME), "jupyter")["health"] == "healthy", 60, what="jupyter back")
    after = service(status(env, NAME), "jupyter")
    assert after["pid"] != before["pid"] and after["restarts"] == 0
    worker = service(status(env, NAME), "dask-worker-1")
    psutil.Process(worker["pid"]).send_signal(signal.SIGKILL)
    wait_for(lambda: (w := service(status(env, NAME), "dask-worker-1"))["restarts"] == 1 and w["health"] == "healthy",
             60, what="dask-worker-1 restarted by supervisord")


def test_demo_notebook_is_kept_and_says_when_it_reads_older_data(fac):
    env = fac["env"]
    afbox("demo", "data", "--name", NAME, "--events", "2000", "--files", "1", env=env)
    first = afbox("demo", "run", "--name", NAME, "--step-size", "1000", env=env, timeout=300).stdout
    nb = fac["workdir"] / "agc_demo.ipynb"
    assert f"notebook: {nb}\n" in first
    nb.write_text(nb.read_text().replace("# ttbar selection", "# my ttbar selection"))  # the user's edit
    afbox("demo", "run", "--name", NAME, "--step-size", "1000", env=env, timeout=300)
    afbox("demo", "data", "--name", NAME, "--events", "3000", "--files", "1", env=env)
    stale = afbox("demo", "run", "--name", NAME, "--step-size", "1000", env=env, timeout=300).stdout
    assert f"notebook: {nb} kept as it is (it may hold your edits), but it reads other files" in stale
    assert "move it away" in stale and "my ttbar selection" in nb.read_text()


def test_cache_purge_reports_the_files_it_asked_about(fac):
    env = fac["env"]
    files = json.loads(afbox("cache", "stats", "--name", NAME, "--json", env=env).stdout)["files"]
    assert files >= 2  # the demo's files, read through the XCache
    p = answered(["cache", "purge", "--name", NAME], env, "y\n")
    assert p.returncode == 0, p.stderr
    asked = re.search(r"delete (\d+) cached files", p.stdout)
    assert asked and int(asked.group(1)) == files and f"purged {files} files" in p.stdout
    assert json.loads(afbox("cache", "stats", "--name", NAME, "--json", env=env).stdout)["files"] == 0


def test_after_down_the_hint_is_the_command_that_started_it(fac):
    env = fac["env"]
    afbox("down", "--name", NAME, env=env)
    out = afbox("status", "--name", NAME, env=env).stdout
    assert f"start it with: afbox up --profile ci --name {NAME} --port-base {PORT_BASE} --workdir {fac['workdir']}" \
        in out
    p = afbox("scale", "--workers", "2", "--name", NAME, env=env, check=False)
    assert p.returncode == 1 and f"hint: start it with: afbox up --profile ci --name {NAME}" in p.stderr
    assert not any(proc.info["cmdline"] and str(fac["base"]) in " ".join(proc.info["cmdline"])
                   for proc in psutil.process_iter(["cmdline"]) if proc.pid != os.getpid())
