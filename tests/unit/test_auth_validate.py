"""The shared validator: every refusal, acceptance, scope paths, trust, rotation, JWKS refetching."""
from __future__ import annotations

import json
import time

import jwt
import pytest
from forged import alg_none, b64, hand_made, hs256_with_public_key

from afbox.auth import validate
from afbox.auth.identity import ensure_identity, rotate_key
from afbox.auth.tokens import mint
from afbox.auth.validate import LocalJwks, RemoteJwks, TokenRejected, Validator, bearer, scope_allows

ISS_A, ISS_B, AUD = "https://a.example:8443", "https://b.example:8443", "https://xcache.a.example"


@pytest.fixture(scope="module")
def a(tmp_path_factory):
    return ensure_identity(tmp_path_factory.mktemp("a") / "identity")


@pytest.fixture(scope="module")
def b(tmp_path_factory):
    return ensure_identity(tmp_path_factory.mktemp("b") / "identity")


@pytest.fixture
def validator(a):
    return Validator({ISS_A: LocalJwks(a)}, AUD)


def claims(**over):
    now = int(time.time())
    c = {"wlcg.ver": "1.0", "iss": ISS_A, "sub": "alice", "aud": AUD, "scope": "storage.read:/data",
         "iat": now, "nbf": now, "exp": now + 600, "jti": "j1"}
    return {k: v for k, v in (c | over).items() if v is not None}


def tampered(a):
    head, _, sig = mint(a, ISS_A, "alice", "storage.read:/data", AUD).split(".")
    return f"{head}.{b64(json.dumps(claims(scope='storage.read:/')).encode())}.{sig}"


NOW = time.time()
REFUSALS = {  # name: (token maker, required scope, reason)
    "no token": (lambda a, b: "", None, "no token"),
    "None": (lambda a, b: None, None, "no token"),
    "garbage": (lambda a, b: "not-a.jwt.at-all", None, "malformed token"),
    "expired": (lambda a, b: mint(a, ISS_A, "alice", "storage.read:/", AUD, lifetime=600, now=NOW - 3600),
                None, "token expired"),
    "not yet valid (nbf)": (lambda a, b: jwt.encode(claims(nbf=int(NOW) + 3600), a.signing_key, "ES256",
                                                    headers={"kid": a.kid}), None, "token not yet valid"),
    "issued in the future": (lambda a, b: mint(a, ISS_A, "alice", "storage.read:/", AUD, now=NOW + 3600),
                             None, "token not yet valid"),
    "wrong audience": (lambda a, b: mint(a, ISS_A, "alice", "storage.read:/", "https://elsewhere"),
                       None, "wrong audience"),
    "wrong issuer": (lambda a, b: mint(a, "https://evil.example", "alice", "storage.read:/", AUD),
                     None, "untrusted issuer 'https://evil.example'"),
    "untrusted issuer": (lambda a, b: mint(b, ISS_B, "alice", "storage.read:/", AUD), None, "untrusted issuer"),
    "another key, our kid": (lambda a, b: jwt.encode(claims(), b.signing_key, "ES256", headers={"kid": a.kid}),
                             None, "bad signature"),
    "another key, its kid": (lambda a, b: mint(b, ISS_A, "alice", "storage.read:/", AUD), None, "unknown key id"),
    "claims changed after signing": (lambda a, b: tampered(a), None, "bad signature"),
    "alg none": (lambda a, b: alg_none(a, claims()), None, "algorithm 'none' not allowed"),
    "HS256 keyed with the public key": (lambda a, b: hs256_with_public_key(a, claims()), None,
                                        "algorithm 'HS256' not allowed"),
    "no kid": (lambda a, b: jwt.encode(claims(), a.signing_key, "ES256"), None, "token has no key id"),
    "no exp": (lambda a, b: jwt.encode(claims(exp=None), a.signing_key, "ES256", headers={"kid": a.kid}),
               None, "missing claim exp"),
    "scope missing": (lambda a, b: mint(a, ISS_A, "alice", "compute.create", AUD),
                      "storage.read:/data/x.root", "scope does not grant"),
    "scope for a sibling path": (lambda a, b: mint(a, ISS_A, "alice", "storage.read:/data", AUD),
                                 "storage.read:/database/x.root", "scope does not grant"),
    "scope for another path": (lambda a, b: mint(a, ISS_A, "alice", "storage.read:/data", AUD),
                               "storage.read:/other", "scope does not grant"),
    "dot-dot out of the scope": (lambda a, b: mint(a, ISS_A, "alice", "storage.read:/data", AUD),
                                 "storage.read:/data/../etc/x", "scope does not grant"),
    "other service's scope": (lambda a, b: mint(a, ISS_A, "alice", "jupyter.access", AUD),
                              "compute.create", "scope does not grant"),
    "too large": (lambda a, b: "x" * 20000, None, "token too large"),
    "two parts": (lambda a, b: "e30.e30", None, "malformed token"),
    "header not an object": (lambda a, b: f"{b64(b'[1]')}.e30.", None, "malformed token"),
    "deeply nested header": (lambda a, b: f"{b64(b'[' * 5000 + b']' * 5000)}.e30.", None, "malformed token"),
    "alg as a list": (lambda a, b: hand_made({"alg": ["ES256"], "kid": a.kid}, claims(), lambda d: b"x"),
                      None, "algorithm ['ES256'] not allowed"),
    "exp not a number": (lambda a, b: jwt.encode(claims(exp="soon"), a.signing_key, "ES256",
                                                 headers={"kid": a.kid}), None, "malformed token"),
}


@pytest.mark.parametrize("name", REFUSALS)
def test_refused(validator, a, b, name):
    make, scope, reason = REFUSALS[name]
    token = make(a, b)
    with pytest.raises(TokenRejected) as e:
        validator.validate(token, scope)
    assert e.value.reason.startswith(reason)
    assert len(e.value.reason) < 100
    if token:
        for part in token.split("."):
            assert not part or part not in str(e.value)


ACCEPTED = [  # (token scope, audience, required scope)
    ("storage.read:/data", AUD, "storage.read:/data"),
    ("storage.read:/data", AUD, "storage.read:/data/run1/x.root"),
    ("storage.read:/data/", AUD, "storage.read://data//x.root"),
    ("storage.read:/", AUD, "storage.read:/anything/at/all"),
    ("compute.create storage.read:/data", AUD, "compute.create"),
    ("jupyter.access", AUD, "jupyter.access"),
    ("jupyter.access", ["https://other", AUD], "jupyter.access"),
    ("compute.create", AUD, None),
]


@pytest.mark.parametrize("scope,aud,required", ACCEPTED)
def test_accepted(validator, a, scope, aud, required):
    c = validator.validate(mint(a, ISS_A, "alice", scope, aud), required)
    assert (c.issuer, c.subject, c.scopes) == (ISS_A, "alice", tuple(scope.split()))
    assert AUD in c.audience and c.expires > time.time() and c.token_id


@pytest.mark.parametrize("scopes,required,ok", [
    (["storage.read:/a"], "storage.read:/a", True),
    (["storage.read:/a"], "storage.read:/a/b", True),
    (["storage.read:/a"], "storage.read:/ab", False),
    (["storage.read:/a/b"], "storage.read:/a", False),
    (["storage.read:/a"], "storage.create:/a", False),
    (["storage.read"], "storage.read:/a", False),
    (["storage.read:/a"], "storage.read", False),
    (["compute.create"], "compute.create", True),
    (["compute.create:/x"], "compute.create", False),
    ([], "compute.create", False),
])
def test_scope_paths(scopes, required, ok):
    assert scope_allows(scopes, required) is ok


def test_issuer_accepted_once_trusted(validator, b):
    token = mint(b, ISS_B, "bob", "storage.read:/", AUD)
    with pytest.raises(TokenRejected, match="untrusted issuer"):
        validator.validate(token)
    validator.trust(ISS_B, LocalJwks(b))
    assert validator.validate(token, "storage.read:/x").subject == "bob"


def test_rotation_keeps_old_tokens_until_keep_for(tmp_path):
    ident = ensure_identity(tmp_path / "identity")
    v = Validator({ISS_A: LocalJwks(ident)}, AUD)
    old = mint(ident, ISS_A, "alice", "compute.create", AUD)
    rotated = rotate_key(ident.dir, keep_for=3600)
    new = mint(rotated, ISS_A, "alice", "compute.create", AUD)
    assert jwt.get_unverified_header(new)["kid"] == rotated.kid != ident.kid
    assert v.validate(old).subject == v.validate(new).subject == "alice"
    rotate_key(ident.dir, keep_for=0)  # `rotated` is now unpublished at once
    with pytest.raises(TokenRejected, match="unknown key id"):
        v.validate(new)
    assert v.validate(old).subject == "alice"  # still within its hour


class FakeIssuer:
    def __init__(self, *idents):
        self.jwks, self.fetches, self.down = {"keys": [i.jwks()["keys"][0] for i in idents]}, 0, False

    def fetch(self):
        self.fetches += 1
        if self.down:
            raise validate.httpx.ConnectError("down")
        return validate.parse_jwks(self.jwks)


def remote(monkeypatch, fake, clock, **kw):
    monkeypatch.setattr(validate.time, "monotonic", lambda: clock[0])
    src = RemoteJwks("https://c.example", ttl=600, min_refetch=30, **kw)
    monkeypatch.setattr(src, "fetch", fake.fetch)
    return src


def test_remote_unknown_kid_refetches_at_most_once_per_interval(monkeypatch, a, b):
    fake, clock = FakeIssuer(a), [1000.0]
    src = remote(monkeypatch, fake, clock)
    assert src.key(a.kid) and fake.fetches == 1
    clock[0] += 31
    for _ in range(5):
        with pytest.raises(TokenRejected, match="unknown key id"):
            src.key("forged")
    assert fake.fetches == 2
    fake.jwks["keys"].append(b.jwks()["keys"][0])  # the issuer rotates
    with pytest.raises(TokenRejected):
        src.key(b.kid)  # within the interval: no fetch
    clock[0] += 31
    assert src.key(b.kid) and fake.fetches == 3


def test_remote_cache_expires_and_survives_a_failed_refresh(monkeypatch, a):
    fake, clock = FakeIssuer(a), [1000.0]
    src = remote(monkeypatch, fake, clock)
    src.key(a.kid)
    clock[0] += 599
    src.key(a.kid)
    assert fake.fetches == 1
    clock[0] += 2
    fake.down = True
    assert src.key(a.kid) and fake.fetches == 2  # stale keys serve while the issuer is down
    clock[0] += 10
    src.key(a.kid)
    assert fake.fetches == 2  # and a down issuer is retried only every min_refetch


def test_remote_issuer_down_from_the_start(monkeypatch, a):
    fake, clock = FakeIssuer(a), [1000.0]
    fake.down = True
    with pytest.raises(TokenRejected, match=r"keys of issuer unavailable \(ConnectError\)"):
        remote(monkeypatch, fake, clock).key(a.kid)


def test_remote_needs_https():
    with pytest.raises(ValueError, match="https"):
        RemoteJwks("http://plain.example")


@pytest.mark.parametrize("header,token", [("Bearer abc.def.ghi", "abc.def.ghi"), ("bearer  t ", "t"),
                                          ("token abc", None), ("Bearer", None), (None, None)])
def test_bearer_header(header, token):
    assert bearer(header) == token


def test_validation_cost(validator, a):
    token = mint(a, ISS_A, "alice", "storage.read:/data", AUD)
    validator.validate(token, "storage.read:/data/x")
    n = 500
    start = time.perf_counter()
    for _ in range(n):
        validator.validate(token, "storage.read:/data/x")
    per_token = (time.perf_counter() - start) / n
    print(f"validation: {per_token * 1e6:.0f} us per token")
    assert per_token < 0.005
