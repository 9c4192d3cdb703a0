"""The site descriptor and token exchange as the issuer serves them (a real HTTPS server on loopback,
in this process), and fetching a descriptor with its CA pinned: each way it must fail, fails closed."""
from __future__ import annotations

import asyncio
import json
import socket
import threading
import time

import httpx
import jwt
import pytest

from afbox.auth.identity import ensure_identity
from afbox.auth.issuer_app import make_app, tls_context
from afbox.auth.tokens import mint
from afbox.errors import AfboxError
from afbox.sites import descriptor
from afbox.sites.routes import EXCHANGE, SiteService


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """The issuer app with its site routes; `issuer` is the URL it calls itself."""

    def __init__(self, tmp_path, name: str, host: str = "127.0.0.1", trust: list | None = None):
        self.port = free_port()
        self.identity = ensure_identity(tmp_path / name / "identity", hosts=("localhost", "127.0.0.1"))
        self.url = f"https://{host}:{self.port}"
        base = {"site_id": name, "issuer": self.url, "jwks_uri": self.url + "/jwks.json", "audiences": [self.url],
                "scopes": descriptor.OFFERS, "resources": {"workers": 3, "gpus": 0}}
        (tmp_path / name / "desc.json").write_text(json.dumps(base))
        self.trust_file = tmp_path / name / "trust.json"
        self.trust_file.write_text(json.dumps({"sites": trust or []}))
        self.service = SiteService(self.identity.dir, self.url, tmp_path / name / "desc.json", self.trust_file)
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()

        def serve():
            asyncio.set_event_loop(self.loop)
            make_app(self.identity.dir, self.url, self.service).listen(
                self.port, address="127.0.0.1", ssl_options=tls_context(self.identity.dir))
            ready.set()
            self.loop.run_forever()
        self.thread = threading.Thread(target=serve, daemon=True)
        self.thread.start()
        ready.wait(10)

    @property
    def ca_pem(self) -> str:
        return self.identity.ca_file.read_text()

    def close(self):
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture
def b(tmp_path):
    s = Server(tmp_path, "site-b")
    yield s
    s.close()


def test_the_right_fingerprint_fetches_descriptor_keys_and_ca(b):
    doc, jwks, ca = descriptor.fetch(b.url, pin=descriptor.fingerprint(b.ca_pem))
    assert doc.site_id == "site-b" and doc.issuer == b.url and doc.resources.workers == 3
    assert doc.ca_sha256 == descriptor.fingerprint(ca) and jwks["keys"][0]["kid"] == b.identity.kid
    assert doc.granted is None  # asked without a token


def test_a_wrong_fingerprint_is_refused(b, tmp_path):
    other = ensure_identity(tmp_path / "other")
    with pytest.raises(AfboxError, match="not the pinned"):
        descriptor.fetch(b.url, pin=descriptor.fingerprint(other.ca_file.read_text()))
    with pytest.raises(AfboxError, match="not a CA fingerprint"):
        descriptor.fetch(b.url, pin="SHA256:abc")


def test_plain_http_is_refused(b):
    with pytest.raises(AfboxError, match="plain http"):
        descriptor.fetch(b.url.replace("https", "http"), pin=descriptor.fingerprint(b.ca_pem))


def test_a_server_naming_another_issuer_is_refused(tmp_path):
    impostor = Server(tmp_path, "site-c", host="localhost")  # answers at 127.0.0.1, calls itself localhost
    try:
        with pytest.raises(AfboxError, match="names itself https://localhost"):
            descriptor.fetch(f"https://127.0.0.1:{impostor.port}", pin=descriptor.fingerprint(impostor.ca_pem))
    finally:
        impostor.close()


def test_a_trusted_peer_learns_what_it_was_granted(tmp_path):
    a = ensure_identity(tmp_path / "a" / "identity")
    peer = {"name": "site-a", "issuer": "https://site-a:1", "audience": "https://site-a:1", "jwks": a.jwks(),
            "grants": ["storage.read:/demo"], "offered": ["compute.create", "storage.read:/store/public"]}
    b = Server(tmp_path, "site-b", trust=[peer])
    try:
        token = mint(a, "https://site-a:1", "afbox-site-site-a", "compute.read", b.url, lifetime=60)
        assert descriptor.granted(b.url, b.ca_pem, token) == ["storage.read:/demo"]
        stranger = ensure_identity(tmp_path / "c" / "identity")
        assert descriptor.granted(b.url, b.ca_pem, mint(stranger, "https://site-c:1", "x", "compute.read", b.url,
                                                        lifetime=60)) is None
    finally:
        b.close()


def test_token_exchange_gives_a_narrow_short_token_for_a_trusted_site_only(tmp_path):
    peer = {"name": "site-b", "issuer": "https://site-b:1", "audience": "https://site-b:1", "jwks": {"keys": []},
            "grants": ["storage.read:/demo"], "offered": ["compute.create", "storage.read:/store/public"]}
    a = Server(tmp_path, "site-a", trust=[peer])
    try:
        def exchange(subject, audience="https://site-b:1", scope=""):
            return httpx.post(a.url + "/token", data={"grant_type": EXCHANGE, "subject_token": subject,
                                                      "audience": audience, "scope": scope},
                              verify=_ctx(a), timeout=5)
        own = mint(a.identity, a.url, "alice", "compute.create jupyter.access storage.read:/", a.url, lifetime=1800)
        r = exchange(own)
        assert r.status_code == 200, r.text
        c = jwt.decode(r.json()["access_token"], options={"verify_signature": False})
        assert c["aud"] == "https://site-b:1" and c["sub"] == "alice" and c["iss"] == a.url
        assert c["scope"] == "compute.create storage.read:/store/public storage.read:/demo"
        assert c["exp"] - time.time() <= 1800 + 5  # never past the token given
        assert exchange(own, audience="https://site-x:1").json()["error"] == "invalid_target"
        foreign = mint(ensure_identity(tmp_path / "x"), "https://site-x:1", "eve", "compute.create", a.url, 600)
        assert exchange(foreign).json()["error"] == "invalid_grant"
        assert exchange(own, scope="jupyter.access").json()["error"] == "invalid_scope"
    finally:
        a.close()


def _ctx(server):
    import ssl
    return ssl.create_default_context(cadata=server.ca_pem)
