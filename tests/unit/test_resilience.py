"""What a facility survives: the cause line of a failing service's log, its processes found and
stopped by the groups recorded when its supervisor is gone, a supervisor that does not answer,
filesystems that cannot hold what services keep, a record that cannot be read."""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from xmlrpc.server import SimpleXMLRPCRequestHandler, SimpleXMLRPCServer

import psutil
import pytest

from afbox import logscan, preconditions, record
from afbox.backends.local import groups
from afbox.backends.local.supervisor import Supervisor, SupervisorError, render_conf
from afbox.errors import ServiceFailed
from afbox.health import poll_until
from afbox.spec import ServiceSpec, Volume
from afbox.state import FacilityState
from afbox.units import human_bytes

LOGS = Path(__file__).resolve().parent.parent / "fixtures" / "logs"


# -- the line that says why ------------------------------------------------------------------------
@pytest.mark.parametrize("log, cause", [
    # XrdPfc refuses a small filesystem; the same start also warned of its home dir, and ends in summaries
    ("xcache-small-filesystem.log", "available data space is less than 10 MB"),
    ("xcache-bad-blocksize.log", "Error reading block-size 3k may not be less than 4096"),
    ("dask-scheduler-bad-port.log", "ValueError: invalid literal for int() with base 10: 'no-such-port'"),
])
def test_first_error_finds_the_cause_not_the_summary(log, cause):
    lines = (LOGS / log).read_text().splitlines()
    assert lines[-1].endswith("initialization failed.") or lines[-1].startswith("ValueError")
    assert logscan.first_error(lines).startswith(cause)


def test_the_last_start_is_read_and_a_program_that_exits_quietly_is_quoted():
    lines = (LOGS / "issuer-no-identity.log").read_text().splitlines()
    assert logscan.first_error(lines) is None
    assert logscan.explain("exited", lines, exited=True) == (
        "exited: afbox issuer: no signing key in /nonexistent; it is created by `afbox up`")
    assert logscan.explain("did not become healthy", lines) == "did not become healthy"
    older = ["20:00:01 starting 7", "error: the old cause", "20:00:09 starting 8", "fine", "error: the new one"]
    assert logscan.last_start(older) == older[2:] and logscan.first_error(older) == "error: the new one"


def test_service_failed_says_the_cause_in_its_reason():
    lines = (LOGS / "xcache-small-filesystem.log").read_text().splitlines()
    e = ServiceFailed("xcache", "exited and could not be restarted", lines[-20:], "/x.log", log=lines, exited=True)
    assert e.reason.startswith("exited and could not be restarted: available data space is less than 10 MB")
    assert "initialization failed" not in e.reason and e.render().startswith("error: service xcache exited")


def test_last_lines_reads_the_end_of_a_big_log(tmp_path):
    log = tmp_path / "big.log"
    log.write_text("".join(f"line {i}\n" for i in range(100_000)))
    assert logscan.last_lines(log, 3) == ["line 99997", "line 99998", "line 99999"]
    assert logscan.last_lines(tmp_path / "none.log") == []


# -- process groups outlive the supervisor -----------------------------------------------------------
SUPERVISOR = r"""
import os, subprocess, sys, time
os.setsid()                                    # as supervisord does when it daemonizes
kids = [subprocess.Popen(["sleep", "300"], preexec_fn=os.setpgrp) for _ in range(2)]
# a grandchild in a session of its own (Jupyter's kernels, the gateway's clusters)
nanny = subprocess.Popen([sys.executable, "-c",
    "import subprocess,time; subprocess.Popen(['sleep','300'], start_new_session=True); time.sleep(300)"],
    preexec_fn=os.setpgrp)
print(" ".join(str(k.pid) for k in [*kids, nanny]), flush=True)
time.sleep(300)
"""


@pytest.fixture
def orphaned(tmp_path):
    """A stand-in supervisor with three programs, recorded as `up` records them, then killed."""
    stranger = subprocess.Popen(["sleep", "300"])  # not the facility's: must survive everything
    sup = subprocess.Popen([sys.executable, "-c", SUPERVISOR], stdout=subprocess.PIPE, text=True)
    pids = [int(p) for p in sup.stdout.readline().split()]
    path = tmp_path / "groups.json"
    (tmp_path / "pid").write_text(str(sup.pid))
    groups.supervisor_started(path, tmp_path / "pid")
    groups.note(path, [{"name": n, "pid": p} for n, p in zip(("a", "b", "nanny"), pids)])
    poll_until(lambda: len(psutil.Process(pids[2]).children()) == 1, 10, 0.05)
    sup.kill()
    sup.wait()
    yield groups.Groups.read(path), pids, stranger
    for p in [*pids, stranger.pid]:
        try:
            os.kill(p, signal.SIGKILL)
        except OSError:
            pass
    stranger.wait()


def test_members_are_found_by_session_group_and_descent_and_stopped(orphaned):
    g, pids, stranger = orphaned
    assert g.services == {"a": pids[0], "b": pids[1], "nanny": pids[2]}
    procs = groups.members(g)
    found = {p.pid for p in procs}
    kernel = psutil.Process(pids[2]).children()[0].pid
    assert set(pids) | {kernel} <= found and stranger.pid not in found and os.getpid() not in found
    assert {n: [p.pid for p in ps] for n, ps in groups.by_service(g, procs).items()} == {
        "a": [pids[0]], "b": [pids[1]], "nanny": [pids[2]]}
    assert groups.stop(procs, grace=5) == []
    assert groups.members(g) == [] and stranger.poll() is None


def test_a_record_older_than_a_process_does_not_claim_it(orphaned):
    g, pids, _ = orphaned
    later = groups.Groups(g.supervisord, time.time() + 60, g.services)  # a supervisor that started after them
    assert groups.members(later) == []
    assert groups.members(groups.Groups()) == []


# -- a supervisor that does not answer -------------------------------------------------------------
class UnixXMLRPC(SimpleXMLRPCServer):
    address_family = socket.AF_UNIX

    def server_bind(self):
        self.socket.bind(self.server_address)


class Handler(SimpleXMLRPCRequestHandler):
    rpc_paths = ("/RPC2",)
    disable_nagle_algorithm = False  # a TCP option
    hang_up = [1]  # the first request is dropped unanswered, as by a supervisor that is still starting

    def do_POST(self):
        if self.hang_up[0]:
            self.hang_up[0] -= 1
            self.connection.close()
            return
        super().do_POST()


def test_the_supervisor_client_says_what_failed_and_recovers(tmp_path):
    sock = tmp_path / "s.sock"
    sup = Supervisor(sock)
    assert not sup.alive()
    sock.touch()
    with pytest.raises(SupervisorError, match="did not answer getState"):
        sup.call("getState")
    sock.unlink()
    server = UnixXMLRPC(str(sock), Handler, logRequests=False, allow_none=True)
    server.register_function(lambda: {"statename": "RUNNING"}, "supervisor.getState")
    server.register_function(lambda name, wait: (_ for _ in ()).throw(
        __import__("xmlrpc.client").client.Fault(60, "ALREADY_STARTED: " + name)), "supervisor.startProcess")
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with pytest.raises(SupervisorError, match="did not answer getState"):
            sup.call("getState")      # dropped: the next request goes on a fresh connection
        assert sup.alive() and sup.wait_alive(1)
        sup.start("jupyter")          # already started is what was wanted
        with pytest.raises(SupervisorError) as e:
            sup.rpc.stopProcess("x", True)
        assert "stopProcess" in e.value.message
    finally:
        server.shutdown()
        server.server_close()


def test_programs_die_with_the_supervisor_and_run_in_its_dir():
    spec = ServiceSpec(name="web", argv=("python3", "-m", "http.server"))
    conf = render_conf([spec], sock=Path("/s/sock"), logs=Path("/s/logs"), run=Path("/s/run"), identifier="afbox-x",
                       wrap=("/usr/bin/setpriv", "--pdeathsig", "TERM", "--"))
    assert "command=/usr/bin/setpriv --pdeathsig TERM -- python3 -m http.server" in conf
    assert "directory=/s/run" in conf


# -- filesystems -----------------------------------------------------------------------------------
def test_preconditions_name_the_path_and_what_is_wrong(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    spec = ServiceSpec(name="xcache", argv=("xrootd",), state_dirs=(str(blocker / "admin"),),
                       volumes=(Volume("cache", str(tmp_path / "cache"), min_filesystem=2 ** 50),))
    found = preconditions.check([spec])
    total = human_bytes(shutil.disk_usage(tmp_path).total)
    assert [f.line() for f in found] == [
        f"xcache: {blocker / 'admin'}: {blocker} is not a directory",
        f"xcache: {tmp_path / 'cache'}: its filesystem holds {total} in all; xcache refuses to start on one "
        "smaller than 1024.0 TiB: put its cache on a bigger one"]
    assert all(f.fatal for f in found)
    monkeypatch.setattr(preconditions.shutil, "disk_usage", lambda p: type("U", (), {"total": 100, "free": 1})())
    fine = ServiceSpec(name="xcache", argv=("xrootd",), volumes=(Volume("cache", str(tmp_path / "c")),))
    [low] = preconditions.check([fine])
    assert not low.fatal and "has 1 B free of 100 B" in low.problem
    assert preconditions.check([ServiceSpec(name="x", argv=("x",), unavailable="not installed",
                                            state_dirs=(str(blocker / "x"),))]) == []


# -- the record ------------------------------------------------------------------------------------
def test_an_unreadable_record_says_why_and_can_be_set_aside(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    state = FacilityState("f")
    assert record.read_or_why(state) == (None, None)
    state.dir.mkdir(parents=True)
    state.record_file.write_text('{"version": 2, "facility": "f"')
    rec, why = record.read_or_why(state)
    assert rec is None and why.startswith(f"the facility's record {state.record_file} cannot be read: ")
    assert "EOF" in why
    state.record_file.write_text('{"version": 2, "facility": "f"}')
    assert "spec: Field required" in record.read_or_why(state)[1]
    aside = record.set_aside(state)
    assert aside.name == "facility.json.unreadable" and not state.record_file.exists()


def test_an_xrootd_socket_path_too_long_is_said_before_up(tmp_path):
    """xrootd binds <admin>/<instance>/.xrootd/admin; a path over 107 bytes stops it with a line
    deep in its log. The check names the service, the path, its length and the fix."""
    from test_services import ctx

    from afbox import services
    short = {s.name: s for s in services.render(ctx())}
    assert short["xcache"].sockets == ("/c/xrootd/admin/afbox-ci/.xrootd/admin",)
    assert short["origin"].sockets == ("/c/xrootd/origin-admin/afbox-ci-origin/.xrootd/admin",)
    deep = tmp_path / ("d" * (90 - len(str(tmp_path))))
    specs = services.render(ctx(xrootd_dir=deep, cache_dir=tmp_path / "c"))
    found = {f.service: f for f in preconditions.check(specs) if "socket" in f.problem}
    assert set(found) == {"xcache", "origin"}
    assert found["origin"].fatal and found["origin"].path.endswith("/afbox-ci-origin/.xrootd/admin")
    assert f"is {len(found['origin'].path)} bytes long, more than the 107" in found["origin"].problem
    assert "--name" in found["origin"].problem and "XDG_CACHE_HOME" in found["origin"].problem


@pytest.mark.skipif(not shutil.which("xrootd"), reason="xrootd not installed (Debian: xrootd-server)")
def test_xrootds_socket_limit_is_the_one_checked():
    """The same limit, from xrootd itself: an admin path one byte longer than the check allows fails."""
    import tempfile
    instance = "afbox-x"
    for extra, fails in ((0, False), (1, True)):
        top = Path(tempfile.mkdtemp(prefix="afbox-sock-", dir="/tmp"))  # where xrootd's own user reaches
        try:
            n = preconditions.SOCKET_PATH_MAX - len(f"/{instance}/.xrootd/admin") + extra
            admin = top / ("a" * (n - len(str(top)) - 1))
            admin.mkdir()
            assert len(os.fsencode(f"{admin}/{instance}/.xrootd/admin")) == preconditions.SOCKET_PATH_MAX + extra
            with socket.socket() as free:
                free.bind(("127.0.0.1", 0))
                port = free.getsockname()[1]
            cfg = top / "x.cfg"
            cfg.write_text(f"xrd.port {port}\nxrd.allow host localhost\nall.export /\noss.localroot {top}\n"
                           f"all.adminpath {admin}\nall.pidpath {admin}\n")
            argv = ["xrootd", "-c", str(cfg), "-n", instance]
            if os.geteuid() == 0:
                argv[1:1] = ["-R", "nobody"]
                for d in (top, admin):
                    os.chmod(d, 0o777)
            proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            def serving() -> bool:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    return True
                except OSError:
                    return False
            try:
                poll_until(lambda: proc.poll() is not None or serving(), 15, interval=0.05)
                ended = proc.poll() is not None
            finally:
                proc.kill()
            out = proc.communicate()[0]
            assert ended == fails and ("too long" in out) == fails, out[-1500:]
        finally:
            shutil.rmtree(top, ignore_errors=True)
