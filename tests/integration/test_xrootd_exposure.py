"""No side door through xrootd. Both xrootd services, the XCache and the facility's own origin, listen
on every interface (xrootd 5.5 has no bind address): from an address that is not loopback, in a
network namespace this test creates (joined to the host by a veth pair), both refuse, token or not. On
loopback the XCache serves token holders and the origin nobody but the XCache (its sss key), for reads
and writes alike."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from harness import afbox, isolated_env, shared_tmpdir, xrootd_available

pytestmark = pytest.mark.integration
if not xrootd_available():
    pytest.skip("xrootd not installed (apt-get install xrootd-server xrootd-server-plugins)", allow_module_level=True)

NAME, PORT_BASE = "expo", 26700
XCACHE, ORIGIN = PORT_BASE, PORT_BASE + 2
HOST_IP, NS_IP = "10.214.14.1", "10.214.14.2"
CONTENT = b"only the XCache reads this from the origin\n"
HANDSHAKE = ("import sys; from afbox.health import check; from afbox.spec import HealthCheck;"
             "print(check(HealthCheck('xrootd', host=sys.argv[1], port=int(sys.argv[2])), 3.0))")


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=20)


@pytest.fixture(scope="module")
def netns():
    """A network namespace at NS_IP, reaching the host at HOST_IP over a veth pair."""
    if os.geteuid() != 0 or not shutil.which("ip"):
        pytest.skip("network namespaces need root and iproute2 (ip)")
    tag = os.getpid() % 100000
    ns, host_end, ns_end = f"afbox-t14-{tag}", f"vh14-{tag}", f"vn14-{tag}"
    _ip("netns", "add", ns)
    try:
        _ip("link", "add", host_end, "type", "veth", "peer", "name", ns_end)
        _ip("link", "set", ns_end, "netns", ns)
        _ip("addr", "add", f"{HOST_IP}/30", "dev", host_end)
        _ip("link", "set", host_end, "up")
        _ip("netns", "exec", ns, "ip", "addr", "add", f"{NS_IP}/30", "dev", ns_end)
        _ip("netns", "exec", ns, "ip", "link", "set", ns_end, "up")
        _ip("netns", "exec", ns, "ip", "link", "set", "lo", "up")
        yield ns
    finally:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=20)  # takes the veth pair along
        subprocess.run(["ip", "link", "del", host_end], capture_output=True, timeout=20)


@pytest.fixture(scope="module")
def fac():
    base = shared_tmpdir("afbox-expo-")
    env = isolated_env(base, PORT_BASE) | {"XDG_DATA_HOME": str(base / "data")}
    config = base / "afbox.toml"
    config.write_text("[jupyter]\nenabled = false\n\n[gateway]\nenabled = false\n")
    afbox("up", "--profile", "ci", "--name", NAME, "--port-base", str(PORT_BASE), "--workers", "1",
          "--config", str(config), "--workdir", str(base / "work"), env=env, timeout=240)
    rec = json.loads(Path(env["XDG_STATE_HOME"], "afbox", NAME, "facility.json").read_text())
    store = Path(rec["origin_dir"]) / "store"
    store.mkdir(parents=True, exist_ok=True)
    store.chmod(0o755)
    (store / "f.root").write_bytes(CONTENT)
    (store / "f.root").chmod(0o644)
    data = {"BEARER_TOKEN_FILE": rec["auth"]["token_file"], "X509_CERT_DIR": rec["auth"]["ca_dir"]}
    yield dict(env=env, base=base, store=store, data=data)
    afbox("down", "--name", NAME, env=env, check=False)
    shutil.rmtree(base, ignore_errors=True)


def xrdcp(src: str, dst: str, env: dict, netns: str | None = None) -> subprocess.CompletedProcess:
    argv = ["xrdcp", "-f", src, dst]
    if netns:
        argv = ["ip", "netns", "exec", netns, *argv]
    clean = {k: v for k, v in env.items() if not k.startswith(("BEARER_TOKEN", "X509_", "XrdSec"))}
    # a refused connection is final here: no minutes of XrdCl's retries
    quick = {"XRD_CONNECTIONRETRY": "1", "XRD_CONNECTIONWINDOW": "5", "XRD_REQUESTTIMEOUT": "15"}
    return subprocess.run(argv, env=clean | env_extra(env) | quick, capture_output=True, timeout=60)


def env_extra(env: dict) -> dict:
    return {k: v for k, v in env.items() if k.startswith(("BEARER_TOKEN", "X509_"))}


def handshake(host: str, port: int, netns: str | None = None) -> str:
    argv = [sys.executable, "-c", HANDSHAKE, host, str(port)]
    if netns:
        argv = ["ip", "netns", "exec", netns, *argv]
    return subprocess.run(argv, capture_output=True, text=True, timeout=30, check=True).stdout.strip()


def test_on_loopback_the_xcache_serves_token_holders_and_the_origin_only_the_xcache(fac):
    with_token = fac["env"] | fac["data"]
    through_cache = xrdcp(f"root://127.0.0.1:{XCACHE}//store/f.root", "-", with_token)
    assert through_cache.returncode == 0 and through_cache.stdout == CONTENT, through_cache.stderr
    assert xrdcp(f"root://127.0.0.1:{XCACHE}//store/f.root", "/dev/null", fac["env"]).returncode != 0
    # the side door: the origin read directly, with no credential or with a token
    for env in (fac["env"], with_token):
        direct = xrdcp(f"root://127.0.0.1:{ORIGIN}//store/f.root", "/dev/null", env)
        assert direct.returncode != 0 and b"Auth failed" in direct.stderr, direct.stderr
    local = fac["base"] / "upload"
    local.write_bytes(b"not from the XCache\n")
    write = xrdcp(str(local), f"root://127.0.0.1:{ORIGIN}//store/new.root", with_token)
    assert write.returncode != 0 and not (fac["store"] / "new.root").exists(), write.stderr


def test_both_listen_on_every_interface_and_refuse_a_non_loopback_address(fac, netns):
    for port in (XCACHE, ORIGIN):
        assert handshake("127.0.0.1", port) == "(True, '')"
        # it does listen beyond loopback: the namespace reaches the port ...
        with_tcp = subprocess.run(["ip", "netns", "exec", netns, sys.executable, "-c",
                                   f"import socket; socket.create_connection(('{HOST_IP}', {port}), 3).close()"],
                                  capture_output=True, timeout=30)
        assert with_tcp.returncode == 0, with_tcp.stderr
        # ... and is turned away there, as is the host's own non-loopback address
        assert handshake(HOST_IP, port, netns).startswith("(False, ")
        assert handshake(HOST_IP, port).startswith("(False, ")
        # a token does not help from there
        read = xrdcp(f"root://{HOST_IP}:{port}//store/f.root", "/dev/null", fac["env"] | fac["data"], netns)
        assert read.returncode != 0, read.stdout


def test_the_origins_key_is_private_to_the_xrootd_services(fac):
    state = Path(fac["env"]["XDG_STATE_HOME"], "afbox", NAME)
    key = state / "secrets" / "identity" / "xrootd-sss.keytab"
    assert key.stat().st_mode & 0o777 == 0o600
    copies = [p for p in Path(fac["env"]["XDG_CACHE_HOME"]).rglob("*.keytab")]
    assert {p.name for p in copies} == {"sss.keytab", "origin-sss.keytab"}
    owner = "xrootd" if os.geteuid() == 0 else None
    for p in copies:
        assert p.stat().st_mode & 0o777 == 0o600 and p.read_bytes() == key.read_bytes()
        if owner:
            import pwd
            assert pwd.getpwuid(p.stat().st_uid).pw_name == owner
    # the key itself is in no log and no process title
    secret = key.read_text().split("k:")[1].strip()
    for log in (state / "logs").glob("*.log"):
        assert secret not in log.read_text(errors="replace"), log
    for proc in psutil.process_iter(["cmdline"]):
        assert secret not in " ".join(proc.info["cmdline"] or [])
