"""The gateway's forkserver: real Dask schedulers and workers forked from one warm interpreter."""
from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from distributed import Client

from afbox.plugins import forkserver

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def server(tmp_path):
    sock = str(tmp_path / "sock")
    proc = subprocess.Popen([sys.executable, "-m", "afbox.plugins.forkserver", str(tmp_path), sock], cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    deadline = time.monotonic() + 60
    while not os.path.exists(sock):
        assert proc.poll() is None, "the forkserver exited while importing"
        assert time.monotonic() < deadline, "the forkserver did not listen in 60 s"
        time.sleep(0.05)
    yield proc, sock
    proc.terminate()
    proc.wait(10)


def _ask(sock, tmp_path, command, args, name, **env):
    work = tmp_path / "cluster"  # a cluster's work dir, under the server's root
    work.mkdir(exist_ok=True)
    env_file = work / f".{name}.env"
    env_file.write_text(json.dumps({**os.environ, **env}))
    req = forkserver.Request(command=command, args=args, cwd=str(work), log=str(work / f"{name}.log"),
                             env_file=str(env_file))
    return asyncio.run(forkserver.request(sock, req))


def _stop(*pids):
    for pid in pids:
        try:
            p = psutil.Process(pid)
            p.terminate()
            p.wait(15)
        except psutil.NoSuchProcess:
            pass


def test_forked_scheduler_and_workers_compute_with_their_own_environment(server, tmp_path):
    proc, sock = server
    file = str(tmp_path / "scheduler.json")
    sched = _ask(sock, tmp_path, "scheduler", ["--host", "127.0.0.1", "--port", "0", "--scheduler-file", file,
                                              "--dashboard-address", "127.0.0.1:0"], "scheduler")
    workers = [_ask(sock, tmp_path, "worker", ["--scheduler-file", file, "--nthreads", "1", "--no-dashboard", "--no-nanny",
                                              "--name", f"w{i}"], f"worker-{i}", AFBOX_PROBE=f"w{i}")
               for i in range(2)]
    try:
        with Client(scheduler_file=file, timeout=60) as client:
            client.wait_for_workers(2, timeout=60)
            assert client.submit(sum, range(10)).result(timeout=30) == 45
            probes = client.run(lambda: os.environ.get("AFBOX_PROBE"))
            assert sorted(probes.values()) == ["w0", "w1"]
            pids = client.run(os.getpid)
            assert sorted(pids.values()) == sorted(workers)
            # forked: each its own session, the server their parent; numpy reseeded in each
            for pid, name in zip((sched, *workers), ("scheduler", "worker-0", "worker-1")):
                assert os.getsid(pid) == pid
                assert psutil.Process(pid).ppid() == proc.pid
                assert psutil.Process(pid).name() == f"dask-{name.split('-')[0]}"
            # stdio to /dev/null and the log, none of the server's sockets; the environment came through
            # a file, which is gone
            def fds(pid):
                return {int(fd): os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")}
            server_sockets = {t for t in fds(proc.pid).values() if t.startswith("socket:")}
            for pid, name in zip(workers, ("worker-0", "worker-1")):
                mine = fds(pid)
                assert (mine[0], mine[1], mine[2]) == ("/dev/null", *[str(tmp_path / "cluster" / f"{name}.log")] * 2)
                assert server_sockets and not server_sockets & set(mine.values())
            assert not list((tmp_path / "cluster").glob(".*.env"))
            import numpy
            draws = client.run(lambda: float(numpy.random.random()))
            assert len(set(draws.values())) == 2
        assert "Scheduler at" in (tmp_path / "cluster" / "scheduler.log").read_text()
    finally:
        _stop(*workers, sched)
    # exited children are reaped, not left as zombies of the server
    deadline = time.monotonic() + 10
    while any(psutil.pid_exists(p) for p in (sched, *workers)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(psutil.pid_exists(p) for p in (sched, *workers))
    assert proc.poll() is None


def test_only_the_dask_commands_and_no_log_overwritten(server, tmp_path):
    _, sock = server
    with pytest.raises(RuntimeError, match="not a command"):
        _ask(sock, tmp_path, "sh", ["-c", "true"], "sh")
    (tmp_path / "cluster").mkdir(exist_ok=True)
    (tmp_path / "cluster" / "taken.log").write_text("kept\n")
    with pytest.raises(RuntimeError, match="FileExists"):
        _ask(sock, tmp_path, "worker", ["tcp://127.0.0.1:1"], "taken")
    assert (tmp_path / "cluster" / "taken.log").read_text() == "kept\n"
    with pytest.raises(RuntimeError, match="not a cluster's directory"):
        asyncio.run(forkserver.request(sock, forkserver.Request(
            command="worker", args=[], cwd="/", log=str(tmp_path / "w.log"), env_file="/etc/passwd")))
    assert not (tmp_path / "w.log").exists()
    here = os.path.dirname(sys.executable)
    assert forkserver.command_of([f"{here}/dask", "worker", "tcp://a:1"]) == ("worker", ["tcp://a:1"])
    assert forkserver.command_of(["/usr/bin/bwrap", "--", f"{here}/dask", "worker"]) is None
    assert forkserver.command_of(["/envs/agc/bin/dask", "worker", "tcp://a:1"]) is None  # its own interpreter
    assert oct(os.stat(sock).st_mode & 0o777) == "0o600"


def test_it_ends_with_its_parent(tmp_path):
    sock = str(tmp_path / "sock")
    # a parent that starts the server and exits at once
    parent = subprocess.Popen([sys.executable, "-c", "import os, subprocess, sys; p = subprocess.Popen([sys.executable, "
                               f"'-m', 'afbox.plugins.forkserver', {str(tmp_path)!r}, {sock!r}, str(os.getpid())]); print(p.pid, flush=True)"],
                              cwd=ROOT, stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
    child = int(parent.stdout.readline())
    parent.wait(10)
    deadline = time.monotonic() + 60
    while psutil.pid_exists(child) and psutil.Process(child).status() != psutil.STATUS_ZOMBIE:
        assert time.monotonic() < deadline, "the forkserver outlived its parent"
        time.sleep(0.1)
