"""The real issuer process over HTTPS: discovery, JWKS, remote validation, trust, rotation."""
from __future__ import annotations

import signal
import ssl
import subprocess
import sys
from pathlib import Path

import httpx
import jwt
import pytest
from harness import free_port, wait_for

from afbox.auth.identity import Identity, ensure_identity, rotate_key
from afbox.auth.tokens import mint
from afbox.auth.validate import RemoteJwks, TokenRejected, Validator

pytestmark = pytest.mark.integration
AUD = "https://127.0.0.1/afbox-test"


class Issuer:
    """`python -m afbox.auth.issuer_app` on a free loopback port, with its own identity."""

    def __init__(self, identity_dir: Path):
        self.identity: Identity = ensure_identity(identity_dir)
        self.port = free_port()
        self.url = f"https://127.0.0.1:{self.port}"
        self.log = identity_dir.parent / f"issuer-{self.port}.log"
        self.proc: subprocess.Popen | None = None

    def __enter__(self):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "afbox.auth.issuer_app", "--identity-dir", str(self.identity.dir),
             "--issuer", self.url, "--port", str(self.port)],
            stdout=self.log.open("w"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        wait_for(self.healthy, 20, what=f"issuer on {self.port}")
        return self

    def healthy(self) -> bool:
        assert self.proc.poll() is None, self.log.read_text()
        try:
            return self.get("/health").status_code == 200
        except httpx.TransportError:
            return False

    def get(self, path: str, **kw) -> httpx.Response:
        kw.setdefault("verify", ssl.create_default_context(cafile=str(self.identity.ca_file)))
        return httpx.get(self.url + path, timeout=5, **kw)

    def __exit__(self, *exc) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.code = self.proc.wait(10)


@pytest.fixture
def issuer(tmp_path):
    with Issuer(tmp_path / "a" / "identity") as i:
        yield i


def test_discovery_and_jwks_over_https(issuer):
    doc = issuer.get("/.well-known/openid-configuration").json()
    assert doc["issuer"] == issuer.url and doc["jwks_uri"] == issuer.url + "/jwks.json"
    assert "ES256" in doc["id_token_signing_alg_values_supported"]
    r = issuer.get("/jwks.json")
    assert r.headers["content-type"] == "application/json"
    assert [k["kid"] for k in r.json()["keys"]] == [issuer.identity.kid]
    assert all("d" not in k for k in r.json()["keys"])


def test_tls_is_verified_against_the_facility_ca(issuer):
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        issuer.get("/health", verify=True)
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://127.0.0.1:{issuer.port}/health", timeout=5)


def test_token_validated_through_the_remote_jwks(issuer):
    v = Validator({issuer.url: None}, AUD, ca_file=issuer.identity.ca_file)
    token = mint(issuer.identity, issuer.url, "alice", "storage.read:/data", AUD)
    assert v.validate(token, "storage.read:/data/f.root").subject == "alice"
    with pytest.raises(TokenRejected, match="scope does not grant"):
        v.validate(token, "storage.read:/database")


def test_second_issuer_refused_until_trusted(issuer, tmp_path):
    v = Validator({issuer.url: None}, AUD, ca_file=issuer.identity.ca_file)
    with Issuer(tmp_path / "b" / "identity") as other:
        token = mint(other.identity, other.url, "bob", "compute.create", AUD)
        with pytest.raises(TokenRejected, match="untrusted issuer"):
            v.validate(token, "compute.create")
        v.trust(other.url, RemoteJwks(other.url, ca_file=other.identity.ca_file))
        assert v.validate(token, "compute.create").issuer == other.url
        # its key must not validate a token claiming to be the first issuer
        forged = mint(other.identity, issuer.url, "bob", "compute.create", AUD)
        with pytest.raises(TokenRejected, match="unknown key id"):
            v.validate(forged, "compute.create")


def test_other_facility_ca_is_not_trusted_for_this_issuer(issuer, tmp_path):
    wrong_ca = ensure_identity(tmp_path / "c" / "identity").ca_file
    v = Validator({issuer.url: RemoteJwks(issuer.url, ca_file=wrong_ca)}, AUD)
    with pytest.raises(TokenRejected, match=r"keys of issuer unavailable \(ConnectError\)"):
        v.validate(mint(issuer.identity, issuer.url, "alice", "compute.create", AUD))


def test_rotation_is_served_without_restart(issuer):
    src = RemoteJwks(issuer.url, ca_file=issuer.identity.ca_file, min_refetch=0)
    v = Validator({issuer.url: src}, AUD)
    old = mint(issuer.identity, issuer.url, "alice", "compute.create", AUD)
    v.validate(old)
    rotated = rotate_key(issuer.identity.dir, keep_for=3600)
    assert [k["kid"] for k in issuer.get("/jwks.json").json()["keys"]] == [rotated.kid, issuer.identity.kid]
    new = mint(rotated, issuer.url, "alice", "compute.create", AUD)
    assert jwt.get_unverified_header(new)["kid"] == rotated.kid
    assert v.validate(new).subject == v.validate(old).subject == "alice"


def test_stops_cleanly_and_logs_no_key_material(tmp_path):
    with Issuer(tmp_path / "identity") as i:
        cmdline = Path(f"/proc/{i.proc.pid}/cmdline").read_bytes()
        i.get("/jwks.json")
    assert i.code == 0
    text = i.log.read_text()
    assert "GET /jwks.json" in text
    for secret in ("PRIVATE KEY", i.identity.signing_key.private_numbers().private_value.to_bytes(32, "big").hex()):
        assert secret not in text and secret.encode() not in cmdline
