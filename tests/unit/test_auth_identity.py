"""The facility identity: files and modes, certificates, JWKS, key rotation."""
from __future__ import annotations

import base64
import hashlib
import ipaddress
import stat
import time

import pytest
from cryptography import x509

from afbox.auth.identity import ensure_identity, load, rotate_key


@pytest.fixture
def ident_dir(tmp_path):
    return tmp_path / "state" / "identity"


def modes(d):
    return {p.name: stat.S_IMODE(p.stat().st_mode) for p in d.iterdir()}


def test_creates_every_file_0600_in_a_0700_dir(ident_dir):
    ensure_identity(ident_dir)
    assert stat.S_IMODE(ident_dir.stat().st_mode) == 0o700
    m = modes(ident_dir)
    assert {"signing-key.pem", "ca.pem", "ca-key.pem", "server.pem", "server-key.pem"} <= set(m)
    assert set(m.values()) == {0o600}


def test_idempotent(ident_dir):
    a = ensure_identity(ident_dir)
    files = {p.name: p.read_bytes() for p in ident_dir.iterdir()}
    b = ensure_identity(ident_dir)
    assert a.kid == b.kid
    assert files == {p.name: p.read_bytes() for p in ident_dir.iterdir()}


def test_server_cert_names_the_hosts_and_is_issued_by_the_ca(ident_dir):
    ident = ensure_identity(ident_dir, hosts=("localhost", "127.0.0.1", "head.example"))
    ca = x509.load_pem_x509_certificate(ident.ca_file.read_bytes())
    cert = x509.load_pem_x509_certificate(ident.cert_file.read_bytes())
    cert.verify_directly_issued_by(ca)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost", "head.example"]
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


def test_new_hosts_reissue_the_server_cert_only(ident_dir):
    a = ensure_identity(ident_dir)
    ca, server = a.ca_file.read_bytes(), a.cert_file.read_bytes()
    b = ensure_identity(ident_dir, hosts=("localhost", "127.0.0.1", "10.0.0.5"))
    assert b.ca_file.read_bytes() == ca and b.cert_file.read_bytes() != server
    assert a.kid == b.kid


def test_jwks_kid_is_the_rfc7638_thumbprint(ident_dir):
    (jwk,) = ensure_identity(ident_dir).jwks()["keys"]
    assert (jwk["kty"], jwk["crv"], jwk["alg"], jwk["use"]) == ("EC", "P-256", "ES256", "sig")
    canonical = f'{{"crv":"P-256","kty":"EC","x":"{jwk["x"]}","y":"{jwk["y"]}"}}'
    expected = base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()).rstrip(b"=").decode()
    assert jwk["kid"] == expected
    assert "d" not in jwk  # never the private part


def test_rotation_publishes_old_key_until_keep_for(ident_dir):
    old = ensure_identity(ident_dir)
    new = rotate_key(ident_dir, keep_for=3600)
    assert new.kid != old.kid and load(ident_dir).kid == new.kid
    assert [k["kid"] for k in new.jwks()["keys"]] == [new.kid, old.kid]
    assert [k["kid"] for k in new.jwks(now=time.time() + 3601)["keys"]] == [new.kid]
    assert set(modes(ident_dir).values()) == {0o600}


def test_rotation_drops_keys_whose_time_is_up(ident_dir):
    first = ensure_identity(ident_dir)
    rotate_key(ident_dir, keep_for=0)
    third = rotate_key(ident_dir, keep_for=3600)
    assert first.kid not in {r["jwk"]["kid"] for r in third.retired}
    assert len(third.jwks()["keys"]) == 2
