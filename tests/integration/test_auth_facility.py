"""One token for Jupyter, the Dask gateway, the XCache and the Dask dashboard of a running facility:
the same table of tokens against all four, each refusal logged by the service, which keeps serving; a second issuer
refused until the facility trusts it; no token in logs, process titles or status."""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import httpx
import jwt
import psutil
import pytest
from forged import alg_none, hs256_with_public_key
from harness import afbox, isolated_env, shared_tmpdir, status, wait_for, xrootd_available
from test_auth_issuer import Issuer

from afbox.auth.identity import ensure_identity, load
from afbox.auth.tokens import mint

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(not xrootd_available(), reason="xrootd not installed (apt-get install xrootd-server)")]

NAME, BASE = "authz", 25000
SCOPE = "compute.create jupyter.access storage.read:/store"
CONTENT = b"events only token holders may read\n"


class Fac:
    def __init__(self, base: Path):
        self.base = base
        self.env = isolated_env(base, BASE)
        self.env["XDG_DATA_HOME"] = str(base / "data")
        self.config = base / "afbox.toml"
        self.config.write_text("")

    def up(self) -> None:
        afbox("up", "--profile", "ci", "--name", NAME, "--port-base", str(BASE), "--workers", "1",
              "--config", str(self.config), "--workdir", str(self.base / "work"), env=self.env, timeout=240)
        self.rec = json.loads(Path(self.env["XDG_STATE_HOME"], "afbox", NAME, "facility.json").read_text())
        self.issuer = self.rec["auth"]["issuer"]
        self.identity = load(Path(self.rec["auth"]["identity_dir"]))
        self.logs = {s: Path(self.rec["services"][s]["log"])
                     for s in ("jupyter", "gateway", "xcache", "dask-scheduler")}
        store = Path(self.rec["origin_dir"]) / "store"
        store.mkdir(parents=True, exist_ok=True)
        (store / "file.root").write_bytes(CONTENT)
        os.chmod(store / "file.root", 0o644)

    def down(self) -> None:
        afbox("down", "--name", NAME, env=self.env, check=False)

    def url(self, service: str, key: str) -> str:
        return self.rec["services"][service]["urls"][key]

    def token(self, identity=None, iss=None, aud=None, scope=SCOPE, **kw) -> str:
        return mint(identity or self.identity, iss or self.issuer, "alice", scope, aud or self.issuer, **kw)

    def claims(self, **over) -> dict:
        now = int(time.time())
        c = {"wlcg.ver": "1.0", "iss": self.issuer, "sub": "alice", "aud": self.issuer, "scope": SCOPE,
             "iat": now, "nbf": now, "exp": now + 600, "jti": "forged"}
        return c | over


# --- the three services, each asked the same way: did it accept this token? ---------------------
def jupyter(fac: Fac, token: str | None) -> bool:
    r = httpx.get(fac.url("jupyter", "lab").removesuffix("/lab") + "/api/status", timeout=15,
                  headers={"Authorization": f"Bearer {token}"} if token else {})
    assert r.status_code in (200, 403), r.text
    return r.status_code == 200


def gateway(fac: Fac, token: str | None) -> bool:
    r = httpx.get(fac.url("gateway", "gateway") + "/api/v1/clusters/", timeout=15,
                  headers={"Authorization": f"Bearer {token}"} if token else {})
    assert r.status_code in (200, 401), r.text
    return r.status_code == 200


def xcache(fac: Fac, token: str | None) -> bool:
    out = fac.base / f"read-{time.monotonic_ns()}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BEARER_TOKEN", "X509_"))}
    # no token may be found anywhere else (the WLCG discovery also looks in XDG_RUNTIME_DIR and /tmp)
    env.update(X509_CERT_DIR=fac.rec["auth"]["ca_dir"], XDG_RUNTIME_DIR=str(fac.base / "runtime"))
    if token:
        env["BEARER_TOKEN"] = token
    p = subprocess.run(["xrdcp", "-f", "-s", fac.url("xcache", "root") + "/store/file.root", str(out)],
                       env=env, capture_output=True, timeout=60, check=False)
    ok = out.exists() and out.read_bytes() == CONTENT
    assert ok == (p.returncode == 0), p.stderr
    # the reader is told plainly too: refused at login (ztn) or at open (the SciTokens plugin)
    assert ok or b"Auth failed" in p.stderr or b"permission denied" in p.stderr, p.stderr
    return ok


def dashboard(fac: Fac, token: str | None) -> bool:
    r = httpx.get(fac.url("dask-scheduler", "dashboard"), timeout=15,
                  headers={"Authorization": f"Bearer {token}"} if token else {})
    assert r.status_code in (200, 401), r.text
    return r.status_code == 200


SERVICES = {"jupyter": jupyter, "gateway": gateway, "xcache": xcache, "dask-scheduler": dashboard}
# the line each service logs when it refuses a token
REFUSAL_LOG = {"jupyter": "refused a facility token", "gateway": "refused a request",
               "xcache": ("authentication failed", "permission denied"), "dask-scheduler": "refused GET /status"}

TOKENS = {  # name: token maker; every one but "valid" must be refused by every service
    "valid": lambda f, o: f.token(),
    "no token": lambda f, o: None,
    "expired": lambda f, o: f.token(lifetime=60, now=time.time() - 3600),
    "not yet valid (nbf)": lambda f, o: jwt.encode(f.claims(nbf=int(time.time()) + 3600), f.identity.signing_key,
                                                   "ES256", headers={"kid": f.identity.kid}),
    "wrong audience": lambda f, o: f.token(aud="https://elsewhere.example"),
    "wrong issuer": lambda f, o: f.token(iss="https://127.0.0.1:1"),
    "signed by another key": lambda f, o: f.token(identity=o.identity),
    "alg none": lambda f, o: alg_none(f.identity, f.claims()),
    "HS256 keyed with the public key": lambda f, o: hs256_with_public_key(f.identity, f.claims()),
    "scope missing": lambda f, o: f.token(scope="offline_access"),
    "scope for another path": lambda f, o: f.token(scope="storage.read:/elsewhere"),
    "untrusted issuer": lambda f, o: f.token(identity=o.identity, iss=o.url),
}


@pytest.fixture(scope="module")
def world():
    base = shared_tmpdir("afbox-authz-")
    (base / "runtime").mkdir(mode=0o700)
    fac = Fac(base)
    try:
        with Issuer(base / "other" / "identity") as other:
            fac.up()
            yield fac, other
    finally:
        fac.down()
        shutil.rmtree(base, ignore_errors=True)


def log_sizes(fac: Fac) -> dict[str, int]:
    return {s: p.stat().st_size for s, p in fac.logs.items()}


@pytest.mark.parametrize("case", TOKENS)
@pytest.mark.parametrize("service", SERVICES)
def test_token_table(world, service, case):
    fac, other = world
    if service == "xcache" and case == "no token" and Path(f"/tmp/bt_u{os.getuid()}").exists():
        pytest.skip("a token file in /tmp would be found by the xrootd client")
    token = TOKENS[case](fac, other)
    before = log_sizes(fac)[service]
    accepted = SERVICES[service](fac, token)
    assert accepted == (case == "valid"), f"{service} {'accepted' if accepted else 'refused'} {case}"
    # With no token the xrootd client gives up before asking (and says so): the server sees nothing.
    if not accepted and (service, case) != ("xcache", "no token"):
        # Jupyter logs its own 403 for a request with no token at all
        expected = "403 GET" if (service, case) == ("jupyter", "no token") else REFUSAL_LOG[service]
        expected = (expected,) if isinstance(expected, str) else expected
        wait_for(lambda: any(e in fac.logs[service].read_bytes()[before:].decode(errors="replace") for e in expected),
                 5, what=f"{service} logging the refusal ({expected!r})")
    # the service is still there for the next caller
    assert SERVICES[service](fac, fac.token())


def test_no_token_in_logs_process_titles_or_status(world):
    fac, _ = world
    owner_token = Path(fac.rec["auth"]["token_file"]).read_text().strip()
    assert fac.rec["jupyter_token_file"] is None  # with [auth] Jupyter has no token of its own
    secrets = [owner_token, fac.token()]
    texts = [p.read_text(errors="replace") for p in Path(fac.env["XDG_STATE_HOME"], "afbox", NAME, "logs").glob("*")]
    texts.append(json.dumps(status(fac.env, NAME)))
    for proc in psutil.process_iter(["cmdline"]):
        texts.append(" ".join(proc.info["cmdline"] or []))
    leaks = [t[:80] for t in texts for s in secrets if s in t]
    assert not leaks
    assert oct(os.stat(fac.rec["auth"]["token_file"]).st_mode & 0o777) == "0o600"


def test_jupyter_login_link_opens_the_dashboards_too(world):
    fac, _ = world
    from afbox import lifecycle
    from afbox.record import FacilityRecord
    with httpx.Client(follow_redirects=True, timeout=15) as browser:
        assert browser.get(lifecycle.jupyter_login_url(FacilityRecord.model_validate(fac.rec))).status_code == 200
        assert browser.get(fac.url("dask-scheduler", "dashboard")).status_code == 200
        # what dask-labextension's server side asks, without a token, to list the plots
        q = fac.url("dask-scheduler", "dashboard").removesuffix("/status").replace(":", "%3A").replace("/", "%2F")
        check = browser.get(fac.url("jupyter", "lab").removesuffix("/lab") + f"/dask/dashboard-check/{q}").json()
        assert check["isActive"] and check["plots"]
    worker_dash = fac.rec["services"]["dask-worker-1"]["ports"]["worker-dashboard"]
    assert httpx.get(f"http://127.0.0.1:{worker_dash}/status", timeout=15).status_code == 401
    assert httpx.get(f"http://127.0.0.1:{worker_dash}/status", timeout=15,
                     headers={"Authorization": f"Bearer {fac.token()}"}).status_code == 200


def test_gateway_cluster_computes_with_a_token_and_401_without(world):
    fac, _ = world
    import afbox
    assert httpx.post(fac.url("gateway", "gateway") + "/api/v1/clusters/", json={}, timeout=15).status_code == 401
    old = os.environ.copy()
    os.environ.update(XDG_STATE_HOME=fac.env["XDG_STATE_HOME"])
    try:
        t0 = time.monotonic()
        gw = afbox.gateway(NAME, token=fac.token())
        cluster = gw.new_cluster()
        try:
            cluster.scale(1)
            with cluster.get_client() as client:
                client.wait_for_workers(1, timeout=90)
                started = time.monotonic() - t0
                assert client.submit(sum, [1, 2, 3]).result(timeout=30) == 6
                # the gateway's cluster binds loopback, on the facility's port window
                addr = client.scheduler_info()["workers"]
                assert all(a.startswith("tls://127.0.0.1:") and BASE + 400 <= int(a.rsplit(":", 1)[1]) < BASE + 600
                           for a in addr), addr
                # and its dashboard, direct or through the gateway's proxy, wants a token too
                assert httpx.get(cluster.dashboard_link, timeout=15).status_code == 401
                assert httpx.get(cluster.dashboard_link, timeout=15,
                                 headers={"Authorization": f"Bearer {fac.token()}"}).status_code == 200
                # a worker runs without a nanny: when it dies the gateway starts another in its place
                (pid,) = client.run(os.getpid).values()
                # forked from the gateway's warm interpreter (afbox.plugins.forkserver), not a fresh one
                worker = psutil.Process(pid)
                assert worker.name() == "dask-worker"
                assert "afbox.plugins.forkserver" in " ".join(worker.parent().cmdline())
                assert "dask-gateway-server" in " ".join(worker.parent().parent().cmdline())
                os.kill(pid, signal.SIGKILL)
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline:
                    with contextlib.suppress(Exception):
                        pids = set(client.run(os.getpid, wait=True).values())
                        if pids and pid not in pids:
                            break
                    time.sleep(0.5)
                else:
                    raise AssertionError("the gateway did not replace its cluster's killed worker in 60 s")
                assert client.submit(sum, [4, 5]).result(timeout=30) == 9
                client.restart(timeout=60)  # so a notebook's client.restart() works too: the gateway brings them back
                assert client.submit(sum, [6, 7]).result(timeout=30) == 13
        finally:
            cluster.shutdown()
            gw.close()
    finally:
        os.environ.clear()
        os.environ.update(old)
    print(f"gateway cluster with 1 worker ready in {started:.1f}s")


def test_zz_second_issuer_accepted_once_trusted(world):
    fac, other = world
    token = TOKENS["untrusted issuer"](fac, other)
    fac.down()
    fac.config.write_text(f'[auth]\ntrusted_issuers = ["{other.url}"]\n'
                          f'trusted_ca_files = ["{other.identity.ca_file}"]\n')
    fac.up()
    for name, ask in SERVICES.items():
        assert ask(fac, token), f"{name} refused a token of a trusted issuer"
    assert not jupyter(fac, mint(ensure_identity(fac.base / "third"), "https://127.0.0.1:2", "eve", SCOPE,
                                 fac.issuer))
