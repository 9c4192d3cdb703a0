"""xrootd 5.5 (ztn + XrdAccSciTokens) accepts the facility's tokens and refuses everything else.

libSciTokens only trusts the system CA bundle, so the issuer keys are pre-loaded into its key cache
(afbox.auth.xrootd.write_keycache) instead of being fetched from the issuer.
"""
from __future__ import annotations

import ctypes.util
import os
import pwd
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest
from harness import free_port, shared_tmpdir, wait_for
from test_auth_issuer import Issuer

from afbox.auth.identity import ensure_identity, load, rotate_key
from afbox.auth.tokens import mint
from afbox.auth.xrootd import hashed_ca_dir, scitokens_config, server_directives, write_keycache

PLUGIN = ctypes.util.find_library("XrdAccSciTokens-5")
missing = [b for b in ("xrootd", "xrdcp", "openssl") if not shutil.which(b)]
pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(bool(missing), reason=f"not installed: {missing} (apt-get install xrootd-server xrootd-client)"),
    pytest.mark.skipif(not PLUGIN, reason="no SciTokens plugin (apt-get install xrootd-scitokens-plugins)"),
]
AS_ROOT = os.geteuid() == 0
CONTENT = b"events for token readers\n"


def listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


class Server:
    def __init__(self, base: Path, issuer: Issuer):
        self.base, self.issuer, self.port = base, issuer, free_port()
        self.audience = f"root://127.0.0.1:{self.port}"
        self.cache_home = base / "xrootd" / "cache"
        user = pwd.getpwnam("xrootd") if AS_ROOT else None
        self.owner = (user.pw_uid, user.pw_gid) if user else None
        self.proc: subprocess.Popen | None = None

    def start(self) -> Server:
        x = self.base / "xrootd"
        (x / "data" / "store").mkdir(parents=True)
        (x / "data" / "store" / "file.root").write_bytes(CONTENT)
        (x / "admin").mkdir()
        for name in ("server.pem", "server-key.pem", "ca.pem"):
            shutil.copy(self.issuer.identity.dir / name, x / name)  # copies keep their 0600
        (x / "scitokens.cfg").write_text(scitokens_config({"afbox": self.issuer.url}, self.audience))
        (x / "xrootd.cfg").write_text("\n".join([
            f"xrd.port {self.port}", "all.export /", f"oss.localroot {x / 'data'}",
            f"all.adminpath {x / 'admin'}", f"all.pidpath {x / 'admin'}",
            *server_directives(x / "server.pem", x / "server-key.pem", x / "ca.pem", x / "scitokens.cfg"),
        ]) + "\n")
        self.seed()
        if self.owner:
            for p in [x, *x.rglob("*")]:
                os.chown(p, *self.owner)
        argv = ["xrootd", *(["-R", "xrootd"] if AS_ROOT else []), "-c", str(x / "xrootd.cfg"), "-n", "authtest"]
        self.log = self.base / "xrootd.log"
        self.proc = subprocess.Popen(argv, env=dict(os.environ, XDG_CACHE_HOME=str(self.cache_home)),
                                     stdout=self.log.open("w"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        wait_for(self.up, 20, what="xrootd")
        return self

    def up(self) -> bool:
        assert self.proc.poll() is None, f"xrootd exited:\n{self.log.read_text()[-3000:]}"
        return listening(self.port)

    def seed(self) -> None:
        write_keycache(self.cache_home, self.issuer.url, load(self.issuer.identity.dir).jwks(), owner=self.owner)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)

    def read(self, token: str | None, path: str = "/store/file.root") -> tuple[bytes | None, str]:
        out = self.base / f"out-{time.monotonic_ns()}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("BEARER_TOKEN")}
        env.update(X509_CERT_DIR=str(self.base / "client-ca"), XDG_RUNTIME_DIR=str(self.base / "runtime"))
        if token:
            env["BEARER_TOKEN"] = token
        p = subprocess.run(["xrdcp", "-f", "-s", f"root://127.0.0.1:{self.port}/{path}", str(out)], env=env,
                           capture_output=True, timeout=60, cwd=self.base, check=False)
        return (out.read_bytes() if out.exists() else None), p.stderr.decode(errors="replace")[-300:]


@pytest.fixture(scope="module")
def server():
    base = shared_tmpdir("afbox-auth-xrd-")
    (base / "runtime").mkdir(mode=0o700)
    try:
        with Issuer(base / "issuer" / "identity") as issuer:
            hashed_ca_dir(issuer.identity.ca_file, base / "client-ca")
            s = Server(base, issuer)
            try:
                yield s.start()
            finally:
                s.stop()
    finally:
        shutil.rmtree(base, ignore_errors=True)


def token(s: Server, scope="storage.read:/", audience=None, identity=None, **kw) -> str:
    return mint(identity or load(s.issuer.identity.dir), s.issuer.url, "alice", scope,
                audience or s.audience, **kw)


def test_read_with_a_token(server):
    data, err = server.read(token(server))
    assert data == CONTENT, err


def test_path_scope_grants_the_subtree(server):
    data, err = server.read(token(server, scope="storage.read:/store"))
    assert data == CONTENT, err


AT_LOGIN, AT_OPEN = "Auth failed", "permission denied"  # ztn validates at login, the plugin authorizes at open
REFUSALS = {
    "no token": (lambda s, tmp: None, AT_LOGIN),
    "expired": (lambda s, tmp: token(s, lifetime=60, now=time.time() - 3600), AT_LOGIN),
    "other key": (lambda s, tmp: token(s, identity=ensure_identity(tmp / "other")), AT_LOGIN),
    "wrong audience": (lambda s, tmp: token(s, audience="root://elsewhere:1094"), AT_OPEN),
    "other path": (lambda s, tmp: token(s, scope="storage.read:/elsewhere"), AT_OPEN),
    "compute scope only": (lambda s, tmp: token(s, scope="compute.create"), AT_OPEN),
}


@pytest.mark.parametrize("case", REFUSALS)
def test_refused(server, tmp_path, case):
    if case == "no token" and Path(f"/tmp/bt_u{os.getuid()}").exists():
        pytest.skip("a token file in /tmp would be found by the client")
    make, where = REFUSALS[case]
    tok = make(server, tmp_path)
    data, err = server.read(tok)
    assert data is None and where in err, err
    assert not tok or tok not in err


def test_rotated_key_accepted_once_the_cache_is_rewritten(server):
    rotated = rotate_key(server.issuer.identity.dir, keep_for=3600)
    new = token(server, identity=rotated)
    assert server.read(new)[0] is None  # libSciTokens cannot fetch the new key itself
    server.seed()
    data, err = server.read(token(server, identity=rotated))
    assert data == CONTENT, err


@pytest.mark.xfail(reason="xrootd 5.5.3 matches scope paths as string prefixes: storage.read:/sto grants /store "
                          "(path-component matching came with xrootd/xrootd#2152)", strict=False)
def test_sibling_path_refused(server):
    assert server.read(token(server, scope="storage.read:/sto"))[0] is None
