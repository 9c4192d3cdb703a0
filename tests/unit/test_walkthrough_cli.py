"""What a newcomer hit going through the README, at the command line (in-process, no facility started
unless the recording backend of test_lifecycle stands in for one)."""
from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import jwt
import pytest
from click.testing import CliRunner
from test_lifecycle import RUNS  # noqa: F401 - the recording backend's runs

from afbox import backends, lifecycle, record
from afbox.auth.identity import ensure_identity
from afbox.auth.tokens import COMPUTE, mint
from afbox.backends.slurm.commands import submit_error
from afbox.cli import failure, main, render
from afbox.errors import CommandError
from afbox.facility import load
from afbox.state import FacilityState

FAKEBIN = Path(__file__).resolve().parent.parent / "fakebin"
PORT_BASE = 30100
SLURM_PORT = 30490  # a controller port where nothing listens


@pytest.fixture
def xdg(tmp_path, monkeypatch):
    for var in ("XDG_STATE_HOME", "XDG_CACHE_HOME", "XDG_DATA_HOME"):
        monkeypatch.setenv(var, str(tmp_path / var.lower()))
    for var in ("AFBOX_FACILITY", "SLURM_JOB_ID", "SLURM_CONF"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def recorded(xdg, monkeypatch):
    """A facility 'ci' 'up' on the recording backend: a real record, identity and cache dir."""
    monkeypatch.setitem(backends.REGISTRY, "recording", "test_lifecycle:Recording")
    monkeypatch.setattr("afbox.lifecycle.actions.detect_gpus", lambda f: (None, ()))
    RUNS.clear()
    fac = load("ci", None, {"facility": {"workdir": str(xdg / "work"), "port_base": PORT_BASE},
                            "xcache": {"xrootd": "/bin/true"}})
    fac.facility.backend = "recording"
    list(lifecycle.up(fac))
    return record.read(FacilityState("ci"))


def afbox(*args: str, input: str | None = None, env: dict | None = None):
    r = CliRunner().invoke(main, list(args), input=input, env=env)
    assert r.exit_code != failure.BUG and "Traceback" not in r.stdout + r.stderr, r.stdout + r.stderr
    return r


def error(r) -> tuple[str, str]:
    lines = r.stderr.splitlines()
    return (next(ln for ln in lines if ln.startswith("error: ")), next(ln for ln in lines if ln.startswith("hint: ")))


# -- items 2 to 4: crashes -----------------------------------------------------------------------
def test_up_with_apptainer_missing_says_so_before_starting_anything(xdg, monkeypatch):
    path = xdg / "bin"
    path.mkdir()
    monkeypatch.setenv("PATH", f"{path}:/usr/bin:/bin")  # no apptainer, not even the fake
    r = afbox("up", "--profile", "ci", "--port-base", str(PORT_BASE), "--runtime", "apptainer",
              "--image", "docker://x/y:1", "--workdir", str(xdg / "work"))
    assert r.exit_code == 1
    msg, hint = error(r)
    assert msg.startswith("error: `apptainer` is not installed (not on PATH); service ") and "apptainer.org" in hint
    assert record.read(FacilityState("ci")) is None and not (FacilityState("ci").run / "supervisor.sock").exists()


def test_token_lifetime_that_is_not_a_duration(xdg):
    r = afbox("token", "--lifetime", "banana")
    assert r.exit_code == 2
    assert error(r) == ("error: invalid value for '--lifetime': 'banana' is not a duration (e.g. 30m, 8h, 2d)",
                        "hint: see `afbox token --help`")


def test_k3s_token_with_a_data_dir_longer_than_a_file_name(xdg):
    r = afbox("k3s", "token", "--data-dir", "d" * 300)
    assert r.exit_code == 1 and error(r)[0].endswith("File name too long") and error(r)[1] == "hint: use a shorter path"


def test_slurm_job_with_a_spec_that_is_not_json(xdg):
    spec = xdg / "spec.json"
    spec.write_text("this is not json\n")
    r = afbox("slurm-job", "--spec", str(spec))
    assert r.exit_code == 1 and error(r)[0] == f"error: {spec}: not a facility spec written by afbox up --slurm"


def test_an_unexpected_exception_is_one_error_line_and_a_crash_file(xdg, monkeypatch):
    def boom(name):
        raise TypeError("'NoneType' object does not support item assignment")
    monkeypatch.setattr("afbox.cli.facility_cmds.resolve_name", boom)
    r = CliRunner().invoke(main, ["status", "--name", "given-value"])
    assert r.exit_code == failure.BUG and "Traceback" not in r.stderr
    assert error(r)[0] == "error: afbox failed unexpectedly: TypeError: 'NoneType' object does not support item " \
                          "assignment"
    log = failure.crash_log()
    assert "Traceback" in log.read_text() and "this is a bug in afbox" in error(r)[1]
    assert "afbox status\n" in log.read_text() and "given-value" not in log.read_text()  # arguments may be tokens
    assert log.stat().st_mode & 0o777 == 0o600


# -- item 6: token --inspect ---------------------------------------------------------------------
def test_inspect_verifies_against_the_facilitys_keys(recorded, xdg):
    token = afbox("token", "--name", "ci").stdout.strip()
    info = json.loads(afbox("token", "--inspect", token).stdout)
    assert info["verified"] is True and info["accepted"] is True and info["warnings"] == []
    assert info["signature"].startswith("valid: key ") and recorded.auth.issuer in info["signature"]
    assert "facility 'ci'" in info["checked"] and "audience" in info["checked"]
    # another key claiming the same issuer: a forgery
    other = ensure_identity(xdg / "other-identity")
    forged = mint(other, recorded.auth.issuer, "mallory", COMPUTE, recorded.auth.issuer)
    info = json.loads(afbox("token", "--inspect", forged).stdout)
    assert info["verified"] is False and info["accepted"] is False and info["signature"].startswith("not checked")
    # a genuine token that has run out: signature fine, not accepted, and why
    ident = ensure_identity(Path(recorded.auth.identity_dir))
    old = mint(ident, recorded.auth.issuer, "alice", COMPUTE, recorded.auth.issuer, lifetime=60, now=time.time() - 600)
    info = json.loads(afbox("token", "--inspect", old).stdout)
    assert info["verified"] is True and info["accepted"] is False and info["reason"] == "token expired"


def test_inspect_warns_about_an_unsigned_token(recorded):
    unsigned = jwt.encode({"iss": recorded.auth.issuer, "sub": "x", "scope": COMPUTE}, None, algorithm="none")
    r = afbox("token", "--inspect", unsigned)
    info = json.loads(r.stdout)
    assert info["verified"] is False and info["accepted"] is False
    assert info["warnings"][0].startswith("alg 'none': this token is not signed at all")
    assert "warning: alg 'none'" in r.stderr


def test_inspect_without_a_facility_says_nothing_was_checked(xdg):
    unsigned = jwt.encode({"iss": "https://x", "sub": "x"}, None, algorithm="none")
    info = json.loads(afbox("token", "--inspect", unsigned).stdout)
    assert info["verified"] is None and info["checked"].startswith("nothing: no running facility")


# -- item 7: afbox gpu on a hung driver ----------------------------------------------------------
def test_gpu_never_waits_more_than_5s_on_a_hung_driver(xdg, tmp_path):
    bindir = tmp_path / "gpubin"
    bindir.mkdir()
    for tool in ("nvidia-smi", "rocm-smi"):
        (bindir / tool).symlink_to(FAKEBIN / tool)
    env = {"PATH": f"{bindir}:/usr/bin:/bin", "AFBOX_FAKE_GPU": "hang"}
    t0 = time.monotonic()
    r = afbox("gpu", env=env)
    took = time.monotonic() - t0
    assert r.exit_code == 0 and "timed out after 5s" in r.stdout and took < 7, (took, r.stdout)
    r = afbox("gpu", "--timeout", "10")
    assert r.exit_code == 2 and "10.0 is not in the range 0.5<=x<=5.0" in error(r)[0]


# -- item 8: cache purge asks about what it then reports -----------------------------------------
def test_cache_purge_reports_the_number_it_asked_about(recorded):
    d = Path(recorded.cache_dir) / "store"
    d.mkdir(parents=True)
    for n in ("a", "b"):
        (d / f"{n}.root").write_bytes(os.urandom(4096))
        (d / f"{n}.root.cinfo").write_bytes(b"x" * 64)
    r = afbox("cache", "purge", "--name", "ci", input="y\n")
    assert "delete 2 cached files" in r.stdout and "purged 2 files" in r.stdout


# -- item 13: SLURM with no controller ----------------------------------------------------------
NO_CONFIG = ("sbatch: error: resolve_ctls_from_dns_srv: res_nsearch error: Unknown host\n"
             "sbatch: error: fetch_config: DNS SRV lookup failed\n"
             "sbatch: error: _establish_config_source: failed to fetch config\n"
             "sbatch: fatal: Could not establish a configuration source\n")  # sbatch 22.05, no slurm.conf
NO_CONTROLLER = "sbatch: error: Batch job submission failed: Unable to contact slurm controller (connect failure)\n"
REFUSED = "sbatch: error: Batch job submission failed: Invalid partition name specified\n"


def test_sbatch_failures_name_the_real_cause():
    def said(stderr):
        e = submit_error(CommandError(["sbatch"], 1, "", stderr))
        return e.message, e.hint
    assert said(NO_CONFIG)[0].startswith("SLURM is not configured on this host: no slurm.conf")
    assert said(NO_CONTROLLER) == ("SLURM's controller (slurmctld) does not answer",
                                   "check that it runs and is reachable (scontrol ping); the job itself was not "
                                   "looked at")
    assert said(REFUSED)[0] == "SLURM refused the job: Invalid partition name specified"
    assert "partition" in said(REFUSED)[1]


@pytest.mark.skipif(not shutil.which("sbatch"), reason="sbatch not installed (apt-get install slurm-client)")
def test_up_slurm_with_no_controller_answering(xdg, monkeypatch):
    conf = xdg / "slurm.conf"
    conf.write_text(f"ClusterName=x\nSlurmctldHost={os.uname().nodename}(127.0.0.1)\nSlurmctldPort={SLURM_PORT}\n"
                    f"AuthType=auth/munge\nAuthInfo=socket={xdg}/munge.sock\n"
                    "NodeName=n1 NodeAddr=127.0.0.1 CPUs=1 State=UNKNOWN\nPartitionName=p Nodes=n1 Default=YES\n")
    monkeypatch.setenv("SLURM_CONF", str(conf))
    r = afbox("up", "--slurm", "--profile", "hpc-slurm", "--name", "w21", "--port-base", str(PORT_BASE))
    assert r.exit_code == 1 and error(r)[0] == "error: SLURM's controller (slurmctld) does not answer"
    assert "Unable to contact slurm controller" in r.stderr
    monkeypatch.setenv("SLURM_CONF", str(xdg / "missing.conf"))
    r = afbox("up", "--slurm", "--profile", "hpc-slurm", "--name", "w21", "--port-base", str(PORT_BASE))
    assert error(r)[0] == f"error: SLURM_CONF={xdg / 'missing.conf'} does not exist"


# -- item 14 ------------------------------------------------------------------------------------
def test_a_bad_facility_name_is_explained_not_shown_as_a_regex(xdg, tmp_path):
    r = afbox("up", "--name", "My_Facility")
    assert error(r)[0] == ("error: invalid value for '--name' / '-n': 'My_Facility' is not a facility name: a name "
                           "is 1 to 31 lowercase letters, digits and dashes, starting with a letter or digit.")
    f = tmp_path / "afbox.toml"
    f.write_text('[facility]\nname = "My_Facility"\n')
    r = afbox("up", "--config", str(f))
    assert error(r)[0].startswith(f"error: {f}:2: facility.name: 'My_Facility' is not a facility name") \
        and "^[" not in r.stderr


def test_k3s_purge_says_k3s_is_missing_before_asking(xdg, monkeypatch):
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    r = afbox("k3s", "purge", "--name", "edge", input="y\n")
    assert r.exit_code == 1 and "`k3s` not found on PATH" in error(r)[0] and "afbox k3s install" in error(r)[1]
    assert "delete facility" not in r.stdout


def test_the_url_block_says_which_services_are_unavailable():
    lines = render.urls_text({"scheduler": "tls://127.0.0.1:1", "dashboard": "http://127.0.0.1:2/status"}, None,
                             unavailable={"xcache": "xrootd is not installed; install it with: apt-get ..."})
    assert "  xcache:         unavailable: xrootd is not installed; install it with: apt-get ..." in lines


def test_status_honours_afbox_facility(recorded, monkeypatch):
    r = afbox("status", env={"AFBOX_FACILITY": "ci"})
    assert r.stdout.startswith("facility 'ci' (ci profile, recording backend)")
    r = afbox("status", env={"AFBOX_FACILITY": "other"})
    assert r.stdout.strip() == "facility 'other' is down (start it with: afbox up --name other)"


def test_the_console_opens_on_afbox_facility(xdg, monkeypatch):
    import sys
    import types
    opened = []
    monkeypatch.setitem(sys.modules, "tui.app", types.SimpleNamespace(run=lambda facility: opened.append(facility)))
    afbox("tui", env={"AFBOX_FACILITY": "two"})
    afbox(env={"AFBOX_FACILITY": "two"})  # bare `afbox` is the console too
    afbox("tui", "--name", "one", env={"AFBOX_FACILITY": "two"})
    assert opened == ["two", "two", "one"]
    r = afbox("tui", env={"AFBOX_FACILITY": "Two!"})
    assert r.exit_code == 1 and "(from $AFBOX_FACILITY)" in error(r)[0] and opened == ["two", "two", "one"]
