"""A class started by a normal user (created by the test): no unix users, each student's server in
bubblewrap. Two students log in through the form; the first computes on their own Dask cluster and
sees only their home and the read-only class data; neither sees the other's files or processes."""
from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from harness import BIN, isolated_env, shared_tmpdir, xrootd_available
from hubclient import Student
from test_masterclass import CELL_DASK, PASSWORD, last_json

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(os.geteuid() != 0, reason="the test creates the normal user the class runs as"),
              pytest.mark.skipif(not shutil.which("bwrap"), reason="no bubblewrap (apt-get install bubblewrap)"),
              pytest.mark.skipif(not xrootd_available(), reason="xrootd not installed (apt-get install xrootd-server)")]

NAME, BASE, TUTOR = "bwclass", 28000, "afbox-bwrap-tutor"
STUDENTS = ["student01", "student02"]
CELL_SEES = """import os, json, pwd
data = os.environ["AFBOX_CLASS_DATA"]
try:
    open(os.path.join(data, "mine.txt"), "w"); wrote = True
except OSError:
    wrote = False
print(json.dumps({{"user": pwd.getpwuid(os.getuid()).pw_name, "home": os.path.expanduser("~"),
                  "other_home": os.path.exists({other!r}), "own_home": os.path.exists({own!r}), "pids": len([p for p in os.listdir("/proc") if p.isdigit()]),
                  "data": sorted(os.listdir(data)), "wrote_data": wrote}}))"""


class Tutor:
    """afbox run as the test's normal user."""
    def __init__(self, base: Path):
        self.base = base
        self.env = isolated_env(base, BASE) | {"HOME": str(base / "home"), "XDG_DATA_HOME": str(base / "data")}

    def afbox(self, *args: str, timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess:
        p = subprocess.run(["runuser", "-m", "-u", TUTOR, "--", str(BIN / "afbox"), *args], env=self.env, cwd=self.base,
                           capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        if check and p.returncode:
            raise AssertionError(f"afbox {' '.join(args)} as {TUTOR} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
        return p


@pytest.fixture(scope="module")
def tutor():
    base = shared_tmpdir("afbox-bwclass-")
    subprocess.run(["useradd", "--no-create-home", "--home-dir", str(base / "home"), TUTOR], check=True)
    (base / "home").mkdir()
    origin = base / "data" / "afbox" / NAME / "origin" / "class"
    origin.mkdir(parents=True)
    (origin / "notes.txt").write_text("class data\n")
    subprocess.run(["chown", "-R", f"{TUTOR}:{TUTOR}", str(base)], check=True)
    t = Tutor(base)
    try:
        t.afbox("up", "--profile", "masterclass", "--name", NAME, "--students", "2", "--port-base", str(BASE),
                "--workdir", str(base / "work"))
        t.rec = json.loads(Path(t.env["XDG_STATE_HOME"], "afbox", NAME, "facility.json").read_text())
        yield t
    finally:
        t.afbox("down", "--name", NAME, check=False)
        t.afbox("class", "purge", "--yes", "--name", NAME, check=False)
        subprocess.run(["userdel", TUTOR], check=False)
        shutil.rmtree(base, ignore_errors=True)


def test_students_run_in_bubblewrap_as_the_tutor_user(tutor):
    state = Path(tutor.env["XDG_STATE_HOME"], "afbox", NAME)
    accounts = json.loads((state / "secrets" / "hub" / "accounts.json").read_text())["accounts"]
    hub = tutor.rec["services"]["hub"]["urls"]["hub"].removesuffix("/hub/")
    ca = str(Path(tutor.rec["auth"]["identity_dir"]) / "ca.pem")
    homes = tutor.base / "data" / "afbox" / NAME / "homes"

    async def session(name: str, other: str, dask: bool) -> dict:
        s = Student(hub, name, ca)
        try:
            await s.login(accounts[name]["code"], PASSWORD)
            await s.wait_server()
            kernel = await s.start_kernel()
            out = last_json(await s.run(kernel, CELL_SEES.format(other=str(homes / other), own=str(homes / name))))
            if dask:
                out["dask"] = last_json(await s.run(kernel, CELL_DASK))
            return out
        finally:
            await s.close()

    async def both():
        return await asyncio.gather(session(STUDENTS[0], STUDENTS[1], True), session(STUDENTS[1], STUDENTS[0], False))
    a, b = asyncio.run(both())
    for seen in (a, b):
        assert seen["user"] == TUTOR                     # no unix users without root: bwrap is the wall
        assert seen["own_home"] and not seen["other_home"] and not seen["wrote_data"]
        assert seen["data"] and seen["pids"] < 20        # their own PID namespace, not the host's processes
    assert a["dask"]["sum"] == 4999950000
    status = json.loads(tutor.afbox("class", "status", "--json", "--name", NAME).stdout)
    assert status["isolation"] == "bwrap"
    assert {s["name"] for s in status["students"] if s["server"] == "ready"} >= set(STUDENTS)
