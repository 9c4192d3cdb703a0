"""Federation between two real facilities, each in its own network namespace, joined only by a
userspace WAN with 10 ms each way (netns.Wan): the handshake, the token table at B's four doors,
compute at B from A (also with A behind NAT), A's data read at B through B's cache, and the demo
split across the two sites."""
from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from federation import GATEWAY, ISSUER, ORIGIN, PEER_CACHES, World
from harness import BIN, wait_for, xrootd_available
from netns import available

from afbox.auth.identity import ensure_identity
from afbox.auth.tokens import mint
from afbox.auth.validate import ANY_AUDIENCE

WHY_NOT = available()
pytestmark = [pytest.mark.integration, pytest.mark.timeout(900),
              pytest.mark.skipif(bool(WHY_NOT), reason=f"{WHY_NOT}"),
              pytest.mark.skipif(not xrootd_available(), reason="xrootd not installed (apt-get install xrootd-server)")]
DOORS = ("jupyter", "gateway", "dashboard", "xcache")
SHARED = os.urandom(3_000_000)
PUBLIC = os.urandom(200_000)
B_SCOPE = "compute.create jupyter.access storage.read:/store/public"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def world():
    with World(delay_ms=10) as w:
        w.a.write("/store/shared/f.root", SHARED)
        w.a.write("/store/secret/g.root", b"not for site-b")
        w.b.write("/store/public/f.root", PUBLIC)
        w.b.write("/store/private/p.root", b"not for site-a")
        yield w


def knock(fac, checks: list[dict]) -> list[dict]:
    rec = Path(fac.env["XDG_STATE_HOME"], "afbox", fac.name, "facility.json")
    p = fac.world.wan.run(fac.name, [sys.executable, str(Path(__file__).parent / "doors.py"), str(rec)],
                          env=fac.env, input=json.dumps(checks), timeout=600)
    return json.loads(p.stdout.strip().splitlines()[-1])


def at_b_doors(w: World, token: str | None, path: str = "store/public/f.root", data: bytes = PUBLIC) -> list[dict]:
    return [{"door": d, "token": token, "path": path, "sha256": sha(data)} for d in DOORS]


def accepted_at_b(w: World, token: str | None) -> list[bool]:
    return [r["ok"] for r in knock(w.b, at_b_doors(w, token))]


def connects(w: World, site: str, host: str, port: int) -> bool:
    code = f"import socket\ntry:\n socket.create_connection(({host!r}, {port}), timeout=3).close(); print(1)\n" \
           "except OSError:\n print(0)\n"
    return w.wan.run(site, [sys.executable, "-c", code]).stdout.strip() == "1"


# -- 1. handshake -----------------------------------------------------------------------------------
def test_nothing_is_trusted_before_site_add(world):
    w = world
    assert accepted_at_b(w, w.a.token(w.b.url, B_SCOPE)) == [False] * 4
    assert "no sites trusted" in w.b.afbox("site", "list").stdout
    assert json.loads(w.b.afbox("status", "--json").stdout).get("sites") is None


def test_the_handshake_fails_closed(world, tmp_path):
    w = world
    code = w.b.afbox("site", "invite", "--grant", "compute.create", "--expires", "1h").stdout.strip()
    cases = {
        "not the pinned": ["site", "add", w.b.url, "--fingerprint", "SHA256:" + "0" * 64],
        "plain http": ["site", "add", w.b.url.replace("https", "http"), "--invite", code],
        "nothing to check": ["site", "add", w.b.url],  # no invite, no fingerprint, no person to ask
    }
    # a server at one address that calls itself another site
    imp = ensure_identity(tmp_path / "impostor" / "identity")
    (tmp_path / "impostor" / "desc.json").write_text(json.dumps({
        "site_id": "site-c", "issuer": f"https://site-c:{ISSUER}", "jwks_uri": f"https://site-c:{ISSUER}/jwks.json",
        "audiences": [f"https://site-c:{ISSUER}"]}))
    port = ISSUER + 800
    proc = w.wan.popen("site-a", [sys.executable, "-m", "afbox.auth.issuer_app", "--identity-dir", str(imp.dir),
                                  "--issuer", f"https://site-c:{ISSUER}", "--port", str(port), "--host", "127.0.0.1",
                                  "--site-descriptor", str(tmp_path / "impostor" / "desc.json"),
                                  "--sites-trust", str(tmp_path / "impostor" / "trust.json")],
                       stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: connects(w, "site-a", "127.0.0.1", port), 20, what="the impostor issuer")
        from afbox.sites.descriptor import fingerprint
        cases["names itself"] = ["site", "add", f"https://localhost:{port}", "--fingerprint",
                                 fingerprint(imp.ca_file.read_text())]
        short = w.b.afbox("site", "invite", "--grant", "compute.create", "--expires", "1s").stdout.strip()
        wait_for(lambda: time.time() > json.loads(_code_body(short))["expires"] + 0.5, 10, what="the invite expiring")
        cases["expired"] = ["site", "add", w.b.url, "--invite", short]
        for expect, args in cases.items():
            p = w.a.afbox(*args, check=False)
            assert p.returncode == 1 and expect in p.stderr, (expect, p.stdout, p.stderr)
            assert "Traceback" not in p.stderr
    finally:
        proc.terminate()
        proc.wait(10)
    sites_dir = Path(w.a.env["XDG_STATE_HOME"], "afbox", "site-a", "sites")
    assert not [p for p in sites_dir.glob("*.json") if p.stem not in ("trust", "invites")]
    assert accepted_at_b(w, w.a.token(w.b.url, B_SCOPE)) == [False] * 4


def _code_body(code: str) -> bytes:
    import base64
    body = code.removeprefix("afbox-invite-")
    return base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))


def test_the_handshake_with_an_invite(world):
    w = world
    w.handshake()
    for fac, peer in ((w.a, "site-b"), (w.b, "site-a")):
        d = Path(fac.env["XDG_STATE_HOME"], "afbox", fac.name, "sites")
        assert stat.S_IMODE(d.stat().st_mode) == 0o700
        for f in (d / f"{peer}.json", d / "trust.json"):
            assert stat.S_IMODE(f.stat().st_mode) == 0o600, f
    a_at_b = json.loads(w.b.afbox("site", "list", "--json").stdout)["site-a"]
    assert a_at_b["reachable"] and a_at_b["grants"] == B_SCOPE.split() and a_at_b["max_workers"] == 2
    assert a_at_b["offered"] == ["storage.read:/store/shared", "storage.read:/demo"]  # what A granted B, asked of A
    b_at_a = json.loads(w.a.afbox("status", "--json").stdout)["sites"]["site-b"]
    assert b_at_a["offered"] == B_SCOPE.split() and b_at_a["grants"] == a_at_b["offered"]
    st = json.loads(w.b.afbox("status", "--json").stdout)
    cache = next(s for s in st["services"] if s["name"] == "cache-site-a")
    assert cache["health"] == "healthy" and cache["ports"]["xroot"] == PEER_CACHES[0]


# -- 2. the token table at B ---------------------------------------------------------------------------
def test_token_table_at_b(world, tmp_path):
    w = world
    third = ensure_identity(tmp_path / "third")
    rows = {  # name: (token, path, data, accepted at jupyter, gateway, dashboard, xcache)
        "A's token for B": (w.a.token(w.b.url, B_SCOPE), None, None, [True] * 4),
        "A's token for A": (w.a.token(w.a.url, B_SCOPE), None, None, [False] * 4),
        # xrootd's SciTokens plugin takes a token that names this site among its audiences and is not
        # told a site's longest lifetime (neither can be set in its config); the grants still bound what it reads
        "the any-audience": (w.a.token([w.b.url, ANY_AUDIENCE], B_SCOPE), None, None, [False, False, False, True]),
        "expired": (w.a.token(w.b.url, B_SCOPE, lifetime=60, now=time.time() - 3600), None, None, [False] * 4),
        "lives 8 h": (w.a.token(w.b.url, B_SCOPE, lifetime=8 * 3600), None, None, [False, False, False, True]),
        "untrusted third site": (mint(third, "https://site-c:27001", "eve", B_SCOPE, w.b.url), None, None, [False] * 4),
        "a scope B did not grant": (w.a.token(w.b.url, "compute.create jupyter.access storage.read:/store/private"),
                                    "store/private/p.root", b"not for site-a", [True, True, True, False]),
    }
    checks = []
    for token, path, data, _ in rows.values():
        checks += at_b_doors(w, token, path or "store/public/f.root", data or PUBLIC)
    answers = knock(w.b, checks)
    got = [r["ok"] for r in answers]
    for i, (name, (*_, want)) in enumerate(rows.items()):
        assert got[4 * i: 4 * i + 4] == want, f"{name}: {dict(zip(DOORS, got[4 * i: 4 * i + 4]))} {answers[4 * i + 3]}"
    logs = {s: w.b.log(s).read_text(errors="replace") for s in ("jupyter", "gateway", "dask-scheduler", "xcache")}
    for reason in ("wrong audience", "any-audience", "token expired", "longer than 3600s", "untrusted issuer"):
        assert reason in logs["gateway"] and reason in logs["dask-scheduler"], reason
    assert "refused a facility token" in logs["jupyter"]
    assert "permission denied" in logs["xcache"] or "Failed to deserialize" in logs["xcache"]


def test_a_site_gets_nothing_it_was_not_granted(world):
    w = world  # A granted B only storage: B's tokens open no gateway at A
    token = w.b.token(w.a.url, "compute.create storage.read:/store/shared", sub="bob")
    assert knock(w.a, [{"door": "gateway", "token": token}]) == [{"ok": False}]
    assert "site site-b was not granted compute.create" in w.a.log("gateway").read_text()


def test_removed_then_rotated_and_refreshed(world):
    w = world
    good = w.a.token(w.b.url, B_SCOPE)
    w.b.afbox("site", "remove", "site-a")
    assert accepted_at_b(w, good) == [False] * 4
    w.b.afbox("site", "add", w.a.url, "--fingerprint", _fingerprint(w.a), "--invite", w.invite)
    assert accepted_at_b(w, good) == [True] * 4
    w.a.afbox("token", "rotate-key")
    rotated = w.a.token(w.b.url, B_SCOPE)  # signed with A's new key
    assert accepted_at_b(w, rotated) == [False] * 4
    assert "site refresh site-a" in w.b.log("gateway").read_text()
    w.b.afbox("site", "refresh", "site-a")
    assert accepted_at_b(w, rotated) == [True] * 4


def _fingerprint(fac) -> str:
    from afbox.sites.descriptor import fingerprint
    return fingerprint((Path(fac.record()["auth"]["identity_dir"]) / "ca.pem").read_text())


# -- 3. compute at B from A -----------------------------------------------------------------------------
REMOTE = """
import json, os
import jwt, afbox
client = afbox.client(site="site-b", workers=1)
seen = client.run(lambda: (os.readlink("/proc/self/ns/net"), open(os.environ["BEARER_TOKEN_FILE"]).read().strip()))
claims = [jwt.decode(t, options={"verify_signature": False}) for _, t in seen.values()]
print(json.dumps({"netns": sorted({n for n, _ in seen.values()}), "sum": client.submit(sum, [1, 2, 3]).result(),
                  "tokens": [(c["iss"], c["aud"], c["scope"], c["exp"] - c["iat"]) for c in claims]}))
client.cluster.close()
"""


def test_compute_at_b_from_a(world):
    w = world
    out = w.a.python(REMOTE)
    b_netns = w.wan.run("site-b", ["readlink", "/proc/self/ns/net"]).stdout.strip()
    assert out["sum"] == 6 and out["netns"] == [b_netns]
    # the workers at B read data with the user's token for B, never B's owner token
    for iss, aud, scope, lifetime in out["tokens"]:
        assert (iss, aud) == (w.a.url, w.b.url) and lifetime <= 3600
        # what B offered A, and A's own data that B caches
        assert set(scope.split()) == {*B_SCOPE.split(), "storage.read:/store/shared", "storage.read:/demo"}
    assert "for user site-a-root" in w.b.log("gateway").read_text()


def test_compute_at_b_from_a_behind_nat(world):
    w = world
    w.wan.cut("site-b", "site-a")  # B can no longer open any connection to A
    try:
        assert not connects(w, "site-b", "site-a", ISSUER) and not connects(w, "site-b", "site-a", GATEWAY)
        out = w.a.python(REMOTE)
        assert out["sum"] == 6 and out["netns"] == [w.wan.run("site-b", ["readlink", "/proc/self/ns/net"]).stdout.strip()]
    finally:
        w.wan.link("site-b", "site-a")


def test_the_facilitys_own_gateway_client_trusts_its_https(world):
    """A federating facility's gateway speaks HTTPS with its own CA: afbox.gateway() there pins it."""
    out = world.b.python("import json, afbox\nprint(json.dumps(afbox.gateway().list_clusters()))")
    assert isinstance(out, list)


# -- 4. data ----------------------------------------------------------------------------------------
def test_data_of_a_read_at_b_through_its_cache(world):
    w = world
    token = w.a.token(w.b.url, "storage.read:/store/shared")
    read = {"door": "cache-site-a", "token": token, "path": "store/shared/f.root", "sha256": sha(SHARED)}
    before = w.wan.bytes("site-b", "site-a")
    assert knock(w.b, [read])[0]["ok"]
    first = w.wan.bytes("site-b", "site-a") - before
    assert first >= len(SHARED)
    assert knock(w.b, [read])[0]["ok"]
    assert w.wan.bytes("site-b", "site-a") - before == first  # the second read crossed no WAN
    outside = w.a.token(w.b.url, "storage.read:/store/secret")
    assert not knock(w.b, [{"door": "cache-site-a", "token": outside, "path": "store/secret/g.root"}])[0]["ok"]
    # A's XCache (its door for peers) without a cache token, and A's origin, which other sites never reach
    a_ca = Path(w.b.env["XDG_CACHE_HOME"], "afbox", w.b.name, "xrootd", "site-site-a", "site-ca")  # B's pin of A's CA
    direct = knock(w.b, [{"door": "xcache", "root": f"root://site-a:{ORIGIN - 2}", "path": "store/shared/f.root",
                          "token": None, "ca_dir": str(a_ca)}])[0]
    assert not direct["ok"] and "Auth failed" in direct["stderr"]
    assert not connects(w, "site-b", "site-a", ORIGIN)


# -- 5. the demo split across the two sites ------------------------------------------------------------
SPLIT = """
import json
import numpy as np, afbox
from afbox.demo import analysis
from afbox.demo.on_facility import dataset_urls, running_record
split = afbox.demo.run(site="site-b", workers=1)
urls, _ = dataset_urls(running_record(None))
with afbox.client() as c:
    single = analysis.run(urls, client=c)
same = {k: bool(np.array_equal(split.histograms[k].values(), h.values())
               and np.array_equal(split.histograms[k].variances(), h.variances())) for k, h in single.histograms.items()}
print(json.dumps({"same": same, "sites": sorted(split.sites.values()), "events": [split.events_processed,
                  single.events_processed], "selected": [split.events_selected, single.events_selected]}))
"""


def test_demo_split_across_sites_equals_one_site(world):
    w = world
    w.a.afbox("demo", "data", "--events", "8000", "--files", "4", "--seed", "3")
    paths = w.a.python("import json\nfrom afbox.demo.on_facility import dataset_paths\n"
                       "print(json.dumps(dataset_paths()))")
    token = w.a.token(w.b.url, "storage.read:/demo")
    warmed = knock(w.b, [{"door": "cache-site-a", "token": token, "path": p.lstrip("/")} for p in paths[:2]])
    assert all(r["ok"] for r in warmed)
    out = w.a.python(SPLIT, timeout=600)
    assert out["sites"] == ["site-a", "site-a", "site-b", "site-b"]  # two files cached at B ran there
    assert out["events"][0] == out["events"][1] == 8000 and out["selected"][0] == out["selected"][1] > 0
    assert all(out["same"].values()), out["same"]
