"""Minting WLCG-profile tokens and inspecting them."""
from __future__ import annotations

import time

import jwt
import pytest

from afbox.auth.identity import ensure_identity
from afbox.auth.tokens import COMPUTE, JUPYTER, inspect, mint, storage_read

ISS = "https://127.0.0.1:19999"


@pytest.fixture(scope="module")
def ident(tmp_path_factory):
    return ensure_identity(tmp_path_factory.mktemp("id") / "identity")


def test_claims_follow_the_wlcg_profile(ident):
    now = time.time()
    tok = mint(ident, ISS, "alice", f"{COMPUTE}  {storage_read('/data')}", "https://xcache", lifetime=600, now=now)
    header = jwt.get_unverified_header(tok)
    claims = jwt.decode(tok, ident.signing_key.public_key(), algorithms=["ES256"], audience="https://xcache")
    assert header == {"alg": "ES256", "kid": ident.kid, "typ": "JWT"}
    assert claims["wlcg.ver"] == "1.0"
    assert (claims["iss"], claims["sub"], claims["aud"]) == (ISS, "alice", "https://xcache")
    assert claims["scope"] == "compute.create storage.read:/data"
    assert claims["iat"] == claims["nbf"] == int(now) and claims["exp"] == int(now) + 600
    assert claims["jti"] != jwt.decode(mint(ident, ISS, "alice", JUPYTER, "a"), options={"verify_signature": False})["jti"]


def test_audience_list_is_kept(ident):
    tok = mint(ident, ISS, "alice", JUPYTER, ["a", "b"])
    assert jwt.decode(tok, options={"verify_signature": False})["aud"] == ["a", "b"]


@pytest.mark.parametrize("kwargs", [{"scope": " "}, {"sub": ""}, {"audience": []}, {"lifetime": 0}])
def test_refuses_to_mint_nonsense(ident, kwargs):
    args = {"sub": "alice", "scope": COMPUTE, "audience": "a"} | kwargs
    with pytest.raises(ValueError):
        mint(ident, ISS, **args)


def test_inspect_reports_issuer_and_expiry(ident):
    live = inspect(mint(ident, ISS, "alice", COMPUTE, "a", lifetime=60))
    dead = inspect(mint(ident, ISS, "alice", COMPUTE, "a", lifetime=60, now=time.time() - 120))
    assert live["issuer"] == ISS and live["header"]["kid"] == ident.kid and not live["verified"]
    assert not live["expired"] and 0 < live["expires_in"] <= 60
    assert dead["expired"] and dead["expires_in"] < 0


def test_inspect_refuses_non_tokens():
    with pytest.raises(ValueError, match="not a JWT"):
        inspect("hello")
