"""The site descriptor: what a facility tells other facilities about itself, served by its issuer at
`<issuer>/.well-known/afbox-site`, and how another facility fetches it with its CA pinned.

The public addresses of a facility (its issuer, its gateway's one port, its XCache) are made here
only; services that federate bind to `[facility] public_host`.

Pinning follows the k3s join token: the descriptor carries the site's CA; a first fetch without
verification reads it, its SHA-256 must equal the pinned fingerprint (from the invite, the
`--fingerprint` flag, or what the person confirmed), and everything else (the descriptor again, the
keys) is then fetched over TLS verified against that CA alone.
"""
from __future__ import annotations

import hashlib
import ssl
from importlib.metadata import PackageNotFoundError, version
from urllib.parse import urlsplit

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from pydantic import ValidationError

from ..auth.facility_auth import issuer_url as _issuer_url
from ..errors import AfboxError
from ..ports import port
from .model import Descriptor, origin

WELL_KNOWN = "/.well-known/afbox-site"
OFFERS = ["compute.create", "jupyter.access", "storage.read:/"]  # what a site can be granted here


# -- this facility's public addresses -------------------------------------------------------------
def issuer_url(ctx) -> str:
    return _issuer_url(ctx.public_host, port(ctx.base, "issuer"))


def gateway_api(ctx) -> str:
    """With a public host the gateway serves HTTPS and, on the same port, its schedulers (SNI)."""
    return f"https://{ctx.public_host}:{port(ctx.base, 'gateway')}"


def gateway_proxy(ctx) -> str:
    return f"gateway://{ctx.public_host}:{port(ctx.base, 'gateway')}"


def xrootd_root(ctx) -> str:
    return f"root://{ctx.public_host}:{port(ctx.base, 'xcache')}"


def afbox_version() -> str:
    try:
        return version("afbox")
    except PackageNotFoundError:
        return "unknown"


def base(ctx) -> dict:
    """The descriptor's fixed part (the issuer adds its CA, live resources and, for a trusted peer
    that asks with its token, what that peer was granted)."""
    fac, iss = ctx.facility, issuer_url(ctx)
    doc = {"site_id": fac.name, "issuer": iss, "jwks_uri": iss + "/jwks.json", "audiences": [iss],
           "scopes": OFFERS, "afbox_version": afbox_version(),
           "resources": {"workers": ctx.dask.workers, "gpus": len(ctx.gpus)},
           "_local": {"cache_dir": str(ctx.cache_dir), "cache_size": ctx.cache_size}}  # the issuer's, not served
    if fac.gateway.enabled and fac.facility.public_host:
        doc["gateway"] = {"api": gateway_api(ctx), "proxy": gateway_proxy(ctx)}
    if fac.xcache.enabled and fac.facility.public_host:
        doc["xrootd"] = {"root": xrootd_root(ctx), "namespace": "/"}
    return doc


# -- pinning --------------------------------------------------------------------------------------
def fingerprint(ca_pem: str) -> str:
    """SHA256:<hex> of the CA certificate (DER), the form `--fingerprint` takes."""
    cert = x509.load_pem_x509_certificate(ca_pem.encode())
    return "SHA256:" + hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def normal_fingerprint(text: str) -> str:
    hexpart = text.strip().removeprefix("SHA256:").removeprefix("sha256:").replace(":", "").lower()
    if len(hexpart) != 64 or any(c not in "0123456789abcdef" for c in hexpart):
        raise AfboxError(f"{text!r} is not a CA fingerprint", hint="it looks like SHA256:<64 hex digits>")
    return "SHA256:" + hexpart


def check_url(url: str) -> str:
    parts = urlsplit(url.strip())
    if parts.scheme == "http":
        raise AfboxError(f"{url} is plain http: a site's descriptor and keys are only taken over https",
                         hint="use the https:// address the other site's `afbox site invite` printed")
    if parts.scheme != "https" or not parts.hostname or parts.path.strip("/") or parts.query:
        raise AfboxError(f"{url!r} is not a site address", hint="it looks like https://HOST:PORT")
    return origin(url)


def fetch(url: str, pin: str | None = None, ca_pem: str | None = None, token: str | None = None,
          timeout: float = 10) -> tuple[Descriptor, dict, str]:
    """The site's descriptor, keys and CA, the CA pinned by fingerprint (or given, on a refresh); with
    `token` (ours, for its audience) a site that trusts us also says what it granted us."""
    url = check_url(url)
    try:
        if ca_pem is None:
            with httpx.Client(verify=False, timeout=timeout) as c:  # noqa: S501 - only to read the CA to pin
                ca_pem = str(c.get(url + WELL_KNOWN).raise_for_status().json().get("ca_pem") or "")
            if not ca_pem:
                raise AfboxError(f"{url} serves no CA in its descriptor", hint="is it an afbox facility?")
        presented = fingerprint(ca_pem)
        if pin and presented != normal_fingerprint(pin):
            raise AfboxError(f"{url} presents CA {presented}, not the pinned {normal_fingerprint(pin)}",
                             hint="refused: check the address and the fingerprint with the other site's admin")
        ctx = ssl.create_default_context(cadata=ca_pem)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        with httpx.Client(verify=ctx, timeout=timeout) as c:
            doc = Descriptor.model_validate(c.get(url + WELL_KNOWN, headers=headers).raise_for_status().json())
            if doc.issuer != url:
                raise AfboxError(f"{url} names itself {doc.issuer}: refused (a site is known by its issuer URL)",
                                 hint=f"add it as {doc.issuer} if that is the address to trust")
            if doc.ca_sha256 != presented or not doc.jwks_uri.startswith(url + "/"):
                raise AfboxError(f"{url} serves a descriptor that does not match its CA or issuer: refused")
            jwks = c.get(doc.jwks_uri).raise_for_status().json()
    except httpx.ConnectError as e:
        if "CERTIFICATE_VERIFY_FAILED" in str(e):
            raise AfboxError(f"{url}: its certificate does not verify with the pinned CA ({_why(e)}): refused") from None
        raise AfboxError(f"cannot reach {url}: {_why(e)}", hint="is the site up, and its public_host reachable from here?") from None
    except httpx.HTTPStatusError as e:
        raise AfboxError(f"{url} answered {e.response.status_code} for {e.request.url.path}",
                         hint="is it an afbox facility with a public_host set?") from None
    except (httpx.HTTPError, ValueError, ValidationError) as e:
        raise AfboxError(f"{url}: no usable site descriptor ({type(e).__name__}: {_why(e)})") from None
    return doc, jwks, ca_pem


def granted(url: str, ca_pem: str, token: str, timeout: float = 10) -> list[str] | None:
    """What the site at url granted the bearer of token (one of ours, for its audience); None when it
    does not trust us (yet) or cannot be asked."""
    try:
        with httpx.Client(verify=ssl.create_default_context(cadata=ca_pem), timeout=timeout) as c:
            doc = c.get(url + WELL_KNOWN, headers={"Authorization": f"Bearer {token}"}).raise_for_status().json()
    except (httpx.HTTPError, ValueError):
        return None
    answer = doc.get("granted")
    return [str(g) for g in answer] if isinstance(answer, list) else None


def _why(e: Exception) -> str:
    text = str(e) or type(e).__name__
    return text.splitlines()[0][:200]
