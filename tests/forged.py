"""Tokens no service may accept, made by hand (PyJWT refuses to make some of them)."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json

from cryptography.hazmat.primitives import serialization


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hand_made(header: dict, payload: dict, sign) -> str:
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}"
    return f"{signing_input}.{b64(sign(signing_input.encode()))}"


def alg_none(identity, payload: dict) -> str:
    return hand_made({"alg": "none", "kid": identity.kid}, payload, lambda d: b"")


def hs256_with_public_key(identity, payload: dict) -> str:
    """HS256 keyed with the issuer's public key: accepted by a validator that trusts the token's alg."""
    pem = identity.signing_key.public_key().public_bytes(serialization.Encoding.PEM,
                                                         serialization.PublicFormat.SubjectPublicKeyInfo)
    return hand_made({"alg": "HS256", "kid": identity.kid, "typ": "JWT"}, payload,
                     lambda data: hmac.new(pem, data, hashlib.sha256).digest())
