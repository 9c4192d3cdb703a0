"""Faults a real facility meets, and what it does about them: its supervisor killed (status tells
the truth, down stops what is left, up refuses to start over it unless --force), its record
unreadable, its scheduler killed under load, its cache filesystem full or too small, an xrootd that
cannot start (the line that says why), and the cache's own hit and miss counts."""
from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import psutil
import pytest

from harness import afbox, dask_client, isolated_env, service, shared_tmpdir, status, wait_for, xrootd_available
from test_faults import facility_processes

pytestmark = pytest.mark.integration
if not xrootd_available():
    pytest.skip("xrootd not installed (apt-get install xrootd-server xrootd-server-plugins)", allow_module_level=True)

NAME = "ci"
QUIET = "[gateway]\nenabled = false\n"           # what these tests do not need, so they start faster
DASK_ONLY = QUIET + "[jupyter]\nenabled = false\n\n[xcache]\nenabled = false\n"


@pytest.fixture
def env():
    base = shared_tmpdir("afbox-resilience-")
    e = isolated_env(base, 0) | {"AFBOX_TEST_BASE": str(base), "XDG_DATA_HOME": str(base / "data")}
    yield e
    afbox("down", "--name", NAME, env=e, check=False)
    assert facility_processes(e) == []


def up(env, port_base: int, config: str = "", *args: str, check: bool = True) -> subprocess.CompletedProcess:
    cfg = Path(env["AFBOX_TEST_BASE"]) / f"facility-{port_base}.toml"
    cfg.write_text(config)
    p = afbox("up", "--profile", "ci", "--port-base", str(port_base), "--workdir",
              str(Path(env["AFBOX_TEST_BASE"]) / "work"), "--config", str(cfg), *args, env=env, check=check,
              timeout=240)
    assert "Traceback" not in p.stderr, p.stderr
    return p


def supervisord(env) -> psutil.Process:
    return psutil.Process(int(Path(env["XDG_STATE_HOME"], "afbox", NAME, "run", "supervisord.pid").read_text()))


def _owner(pid: int) -> int | None:
    try:
        return psutil.Process(pid).uids().effective
    except psutil.Error:
        return None


def status_is_truthful(env) -> dict:
    """status --json, checked against what really runs (found by environment and command line)."""
    st = status(env, NAME)
    alive = facility_processes(env)
    assert (st["state"] == "down") == (alive == []), (st, alive)
    return st


# -- the supervisor dies ---------------------------------------------------------------------------
def test_supervisor_killed_status_down_and_up(env):
    up(env, 29500, QUIET)
    supervisord(env).kill()
    # the kernel stops (TERM) what was started through setpriv --pdeathsig as soon as its supervisor
    # is gone: every service that runs as this user
    wait_for(lambda: not [p for p in facility_processes(env) if _owner(p) == os.geteuid()], 60,
             what="services dying with their supervisor")
    st = status_is_truthful(env)
    left = [s for s in st["services"] if s["state"] == "unsupervised"]
    if st["state"] != "down":
        assert st["state"] == "degraded" and "supervisor (supervisord) is not running" in st["problem"]
        assert left and "afbox down stops them" in st["problem"]
        text = afbox("status", "--name", NAME, env=env).stdout
        assert "problem: the facility's supervisor" in text and "unsupervised" in text
        # xrootd drops to its own user when started as root, and the kernel then forgets it should die
        p = up(env, 29500, QUIET, check=False)
        assert p.returncode == 1, p.stdout
        assert "left running by a supervisor that died: " in p.stderr and "afbox up --force" in p.stderr
    p = afbox("down", "--name", NAME, env=env)
    assert "Traceback" not in p.stderr
    assert facility_processes(env) == [] and status(env, NAME)["state"] == "down"
    if left:
        assert "stopping the" in p.stdout and "by the process groups it recorded" in p.stdout


def test_up_force_replaces_what_a_dead_supervisor_left(env):
    up(env, 29500, QUIET)
    supervisord(env).kill()
    p = up(env, 29500, QUIET, "--force")
    st = status_is_truthful(env)
    assert st["state"] == "up" and all(s["state"] == "running" for s in st["services"] if s["state"] != "unavailable")
    assert supervisord(env).is_running()
    if "stopping them first (--force)" not in p.stdout:  # nothing was left: every service died with it
        assert os.geteuid() != 0


def test_an_unreadable_record_is_said_and_down_still_stops_everything(env):
    up(env, 29550, DASK_ONLY)
    record = Path(env["XDG_STATE_HOME"], "afbox", NAME, "facility.json")
    record.write_text(record.read_text()[:100])  # as a full disk leaves it
    st = status_is_truthful(env)
    assert st["state"] == "degraded" and "cannot be read" in st["problem"]
    assert {"dask-scheduler", "dask-worker-1"} <= {s["name"] for s in st["services"]}
    p = up(env, 29550, DASK_ONLY, check=False)
    assert p.returncode == 1 and "is running, but the facility's record" in p.stderr and "--force" in p.stderr
    p = afbox("scale", "--workers", "2", "--name", NAME, env=env, check=False)
    assert p.returncode == 1 and "cannot be read" in p.stderr and "Traceback" not in p.stderr
    afbox("down", "--name", NAME, env=env)
    assert facility_processes(env) == []
    assert record.with_name("facility.json.unreadable").exists() and not record.exists()


# -- the scheduler dies under load -----------------------------------------------------------------
def test_scheduler_killed_under_load_recovers_and_computes(env):
    up(env, 29600, DASK_ONLY)
    c = dask_client(env)
    futures = c.map(lambda x: (time.sleep(0.05), x)[1], range(400), pure=False)
    wait_for(lambda: sum(f.status == "finished" for f in futures) >= 10, 60, what="the work to be under way")
    killed = service(status(env, NAME), "dask-scheduler")["pid"]
    t0 = time.monotonic()
    os.kill(killed, signal.SIGKILL)

    def recovered():
        st = status(env, NAME)
        sched = service(st, "dask-scheduler")
        return st["state"] == "up" and sched["pid"] not in (None, killed) and sched["restarts"] == 1
    wait_for(recovered, 90, 0.5, what="the scheduler back, with both workers")
    seconds = time.monotonic() - t0
    c.close(timeout=10)  # its work went with the scheduler
    with dask_client(env) as c:
        c.wait_for_workers(2, timeout=60)
        assert c.submit(sum, range(1000)).result(timeout=60) == 499500
        assert sum(c.gather(c.map(lambda x: x * x, range(100)))) == 328350
    print(f"\nscheduler killed under load: healthy again after {seconds:.1f}s")


# -- xrootd and its filesystem ---------------------------------------------------------------------
def test_xrootd_that_cannot_start_says_why(env):
    p = up(env, 29650, QUIET + '\n[xcache]\nextra_config = ["pfc.blocksize 3k"]\n', check=False)
    assert p.returncode == 1
    first = p.stderr.splitlines()[0]
    assert first == ("error: service xcache exited and could not be restarted: "
                     "Error reading block-size 3k may not be less than 4096"), p.stderr
    assert "[!!] xcache          failed exited and could not be restarted: Error reading block-size" in p.stdout
    assert facility_processes(env) == []


@pytest.fixture
def small_fs(env):
    """A filesystem of its own for the cache (tmpfs), unmounted afterwards."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small filesystem for the cache needs root")
    mounted = []

    def make(size: str) -> Path:
        d = Path(env["AFBOX_TEST_BASE"]) / f"fs-{size}"
        d.mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(d)], check=True)
        mounted.append(d)
        return d
    yield make
    afbox("down", "--name", NAME, env=env, check=False)
    for d in mounted:
        subprocess.run(["umount", "-l", str(d)], check=False)


def test_a_cache_filesystem_too_small_is_refused_before_anything_starts(env, small_fs):
    d = small_fs("5m")
    cfg = QUIET + f'\n[xcache]\ncache_dir = "{d}/xcache"\n'
    p = up(env, 29700, cfg, check=False)
    assert p.returncode == 1 and facility_processes(env) == []
    assert f"error: xcache: {d}/xcache: its filesystem holds 5.0 MiB in all; xcache refuses to start on one " \
           "smaller than 10.0 MiB" in p.stderr
    cfg_file = Path(env["AFBOX_TEST_BASE"]) / "facility-29700.toml"
    doctor = afbox("doctor", "--profile", "ci", "--config", str(cfg_file), env=env).stdout
    assert f"!! xcache: {d}/xcache: its filesystem holds 5.0 MiB" in doctor


def _origin_files(env, n: int, mib: int) -> dict[str, str]:
    root = Path(env["XDG_DATA_HOME"], "afbox", NAME, "origin", "fill")
    root.mkdir(parents=True, exist_ok=True)
    out = {}
    for i in range(n):
        data = os.urandom(mib * 1024 ** 2)
        (root / f"f{i}.bin").write_bytes(data)
        (root / f"f{i}.bin").chmod(0o644)
        out[f"f{i}.bin"] = hashlib.sha256(data).hexdigest()
    return out


def _read(env, port_base: int, name: str, dest: Path) -> str:
    url = f"root://127.0.0.1:{port_base}//fill/{name}"
    subprocess.run(["xrdcp", "-f", "-s", url, str(dest)], env=env | _data_env(env), check=True, timeout=120)
    return hashlib.sha256(dest.read_bytes()).hexdigest()


def _data_env(env) -> dict:
    from afbox import record_data_env
    return record_data_env(json.loads(Path(env["XDG_STATE_HOME"], "afbox", NAME, "facility.json").read_text()))


def test_a_full_cache_filesystem_keeps_serving(env, small_fs):
    d = small_fs("40m")
    files = _origin_files(env, 6, 8)  # 48 MiB to read through a cache on 40 MiB
    up(env, 29750, QUIET + f'\n[xcache]\ncache_dir = "{d}/xcache"\n')
    out = Path(env["AFBOX_TEST_BASE"]) / "copy.bin"
    for _ in range(2):
        for name, digest in files.items():
            assert _read(env, 29750, name, out) == digest
    usage = os.statvfs(d)
    assert usage.f_bfree / usage.f_blocks < 0.2  # it did fill up
    st = status(env, NAME)
    assert service(st, "xcache")["health"] == "healthy" and service(st, "xcache")["restarts"] == 0
    assert "fill" in json.loads(afbox("cache", "stats", "--json", "--name", NAME, env=env).stdout)


def test_cache_stats_count_hits_and_misses_from_the_cache_itself(env):
    files = _origin_files(env, 2, 4)
    up(env, 29800, QUIET + "\n[jupyter]\nenabled = false\n")
    out = Path(env["AFBOX_TEST_BASE"]) / "copy.bin"

    def counts():
        s = json.loads(afbox("cache", "stats", "--json", "--name", NAME, env=env).stdout)
        return s["hits"], s["misses"], s["hit_bytes"], s["miss_bytes"]
    assert counts() == (0, 0, 0, 0)
    _read(env, 29800, "f0.bin", out)
    # written when the cache lets go of the file, seconds after the reader closed it
    wait_for(lambda: counts()[1] == 1, 60, 1, what="the cold read in the counts")
    for _ in range(3):
        _read(env, 29800, "f0.bin", out)
    _read(env, 29800, "f1.bin", out)
    wait_for(lambda: counts()[:2] == (3, 2), 60, 1, what="three hits and two misses")
    MiB = 1024 ** 2
    assert counts()[2:] == (12 * MiB, 8 * MiB)
    text = afbox("cache", "stats", "--name", NAME, env=env).stdout
    assert "hits/misses      3 / 2 file accesses (hit rate 60%)" in text
    assert "12.0 MiB served from the cache, 8.0 MiB fetched from the origin (hit rate 60%)" in text
