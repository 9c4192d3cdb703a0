"""The facility's identity: an ES256 token-signing key, a small CA and a server certificate.

Everything lives in one directory (0700), every file 0600.  Rotating the signing key keeps the
previous public key published until a given time, so the tokens it signed stay valid until then.
"""
from __future__ import annotations

import base64
import datetime as dt
import fcntl
import hashlib
import ipaddress
import json
import os
import secrets
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from jwt.algorithms import ECAlgorithm

SIGNING_KEY = "signing-key.pem"
RETIRED = "retired-keys.json"  # [{"jwk": public JWK, "until": unix time}]
# What token-checking services read: the public keys with how long each is valid (until null: the
# current key). They never need the signing key itself.
PUBLIC_KEYS = "public-keys.json"
CA_KEY, CA_CERT = "ca-key.pem", "ca.pem"
SERVER_KEY, SERVER_CERT = "server-key.pem", "server.pem"
CA_DAYS, SERVER_DAYS = 3650, 397
RENEW_BEFORE = dt.timedelta(days=30)


@dataclass(frozen=True)
class Identity:
    dir: Path
    signing_key: ec.EllipticCurvePrivateKey
    kid: str
    retired: tuple[dict, ...]

    @property
    def ca_file(self) -> Path:
        return self.dir / CA_CERT

    @property
    def cert_file(self) -> Path:
        return self.dir / SERVER_CERT

    @property
    def key_file(self) -> Path:
        return self.dir / SERVER_KEY

    def jwks(self, now: float | None = None) -> dict:
        """The current public key and the rotated ones still published, each with kid/alg/use."""
        now = time.time() if now is None else now
        keys = [public_jwk(self.signing_key.public_key())]
        keys += [r["jwk"] for r in self.retired if r["until"] > now and r["jwk"]["kid"] != self.kid]
        return {"keys": keys}


def public_jwk(public_key: ec.EllipticCurvePublicKey) -> dict:
    jwk = ECAlgorithm.to_jwk(public_key, as_dict=True)
    return {**jwk, "kid": thumbprint(jwk), "alg": "ES256", "use": "sig"}


def thumbprint(jwk: dict) -> str:
    """RFC 7638 JWK thumbprint of an EC key: required members, sorted, no whitespace, SHA-256."""
    members = json.dumps({k: jwk[k] for k in ("crv", "kty", "x", "y")}, separators=(",", ":"), sort_keys=True)
    return base64.urlsafe_b64encode(hashlib.sha256(members.encode()).digest()).rstrip(b"=").decode()


def stamp(dir: Path) -> tuple:
    """Changes whenever the published keys change (files are replaced, never rewritten in place)."""
    out = []
    for name in (SIGNING_KEY, RETIRED):
        try:
            st = (dir / name).stat()
            out.append((st.st_ino, st.st_mtime_ns, st.st_size))
        except FileNotFoundError:
            out.append(None)
    return tuple(out)


def load(dir: Path) -> Identity:
    dir = Path(dir)
    path = dir / SIGNING_KEY
    if not path.exists():
        raise FileNotFoundError(f"no signing key in {dir}; it is created by `afbox up`")
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    retired = json.loads((dir / RETIRED).read_text()) if (dir / RETIRED).exists() else []
    return Identity(dir, key, public_jwk(key.public_key())["kid"], tuple(retired))


def ensure_identity(dir: Path, hosts=("localhost", "127.0.0.1")) -> Identity:
    """Create whatever is missing (or expiring, or not covering `hosts`); idempotent."""
    dir = Path(dir)
    dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    dir.chmod(0o700)
    with _locked(dir):
        if not (dir / SIGNING_KEY).exists():
            _write(dir / SIGNING_KEY, _pem(_new_key()))
        ca_key, ca = _read_pair(dir, CA_KEY, CA_CERT)
        renew_ca = ca is None or _expiring(ca)
        if renew_ca:
            ca_key, ca = _new_ca()
            _write(dir / CA_KEY, _pem(ca_key))
            _write(dir / CA_CERT, ca.public_bytes(serialization.Encoding.PEM))
        _, server = _read_pair(dir, SERVER_KEY, SERVER_CERT)
        if renew_ca or server is None or _expiring(server) or not _covers(server, hosts):
            key, cert = _new_server_cert(ca_key, ca, hosts)
            _write(dir / SERVER_KEY, _pem(key))
            _write(dir / SERVER_CERT, cert.public_bytes(serialization.Encoding.PEM))
        _publish(load(dir))
    return load(dir)


def public_keys(identity: Identity) -> list[dict]:
    current = public_jwk(identity.signing_key.public_key())
    return [{"jwk": current, "until": None},
            *(r for r in identity.retired if r["jwk"]["kid"] != identity.kid)]


def _publish(identity: Identity) -> None:
    data = json.dumps(public_keys(identity), indent=1).encode()
    path = identity.dir / PUBLIC_KEYS
    if not path.exists() or path.read_bytes() != data:
        _write(path, data)


def ensure_cert(dir: Path, name: str, hosts=("localhost", "127.0.0.1")) -> tuple[Path, Path]:
    """A certificate for one purpose (e.g. "dask": its scheduler, workers and clients), signed by
    the facility CA, usable as server and client; reissued when missing, expiring or not covering
    `hosts`. Returns (cert, key) paths; the key is 0600."""
    dir = Path(dir)
    cert_name, key_name = f"{name}.pem", f"{name}-key.pem"
    with _locked(dir):
        ca_key, ca = _read_pair(dir, CA_KEY, CA_CERT)
        _, cert = _read_pair(dir, key_name, cert_name)
        if cert is None or _expiring(cert) or not _covers(cert, hosts) or cert.issuer != ca.subject:
            key, cert = _new_server_cert(ca_key, ca, hosts)
            _write(dir / key_name, _pem(key))
            _write(dir / cert_name, cert.public_bytes(serialization.Encoding.PEM))
    return dir / cert_name, dir / key_name


def rotate_key(dir: Path, keep_for: float) -> Identity:
    """New signing key; the old public key stays published for `keep_for` seconds."""
    dir = Path(dir)
    with _locked(dir):
        old = load(dir)
        now = time.time()
        retired = [*old.retired, {"jwk": public_jwk(old.signing_key.public_key()), "until": now + keep_for}]
        _write(dir / RETIRED, json.dumps([r for r in retired if r["until"] > now], indent=1).encode())
        _write(dir / SIGNING_KEY, _pem(_new_key()))
        _publish(load(dir))
    return load(dir)


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _pem(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # the umask may have narrowed it
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)  # readers never see a half-written key


@contextmanager
def _locked(dir: Path):
    fd = os.open(dir / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _read_pair(dir: Path, key_name: str, cert_name: str):
    if not ((dir / key_name).exists() and (dir / cert_name).exists()):
        return None, None
    key = serialization.load_pem_private_key((dir / key_name).read_bytes(), password=None)
    return key, x509.load_pem_x509_certificate((dir / cert_name).read_bytes())


def _expiring(cert: x509.Certificate) -> bool:
    return cert.not_valid_after_utc - dt.datetime.now(dt.timezone.utc) < RENEW_BEFORE


def _san(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def _covers(cert: x509.Certificate, hosts) -> bool:
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return {_san(h) for h in hosts} <= set(names)


def _builder(subject: x509.Name, issuer: x509.Name, public_key, days: int) -> x509.CertificateBuilder:
    now = dt.datetime.now(dt.timezone.utc)
    return (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False))


def _usage(cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(digital_signature=not cert_sign, content_commitment=False, key_encipherment=False,
                         data_encipherment=False, key_agreement=False, key_cert_sign=cert_sign,
                         crl_sign=cert_sign, encipher_only=False, decipher_only=False)


def _new_ca():
    key = _new_key()
    # a random suffix tells two facilities' CAs apart in error messages
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "afbox"),
                      x509.NameAttribute(NameOID.COMMON_NAME, f"afbox facility CA {secrets.token_hex(4)}")])
    cert = (_builder(name, name, key.public_key(), CA_DAYS)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_usage(cert_sign=True), critical=True)
            .sign(key, hashes.SHA256()))
    return key, cert


def _new_server_cert(ca_key, ca: x509.Certificate, hosts):
    key = _new_key()
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "afbox"),
                      x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])])
    cert = (_builder(name, ca.subject, key.public_key(), SERVER_DAYS)
            .add_extension(x509.SubjectAlternativeName([_san(h) for h in hosts]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_usage(cert_sign=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                                  ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    return key, cert
