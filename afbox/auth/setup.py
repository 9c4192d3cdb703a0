"""Everything auth needs on disk before the services start: identity, the owner's token file, the
CA dir for xrootd clients, and the XCache's TLS copies, SciTokens config and key cache."""
from __future__ import annotations

import logging
import os
import pwd
import shutil
from pathlib import Path

import httpx

from ..facility import parse_duration
from ..services import issuer, xcache
from ..services.context import Context
from . import token_file
from .identity import ensure_cert, ensure_identity, load
from .validate import RemoteJwks
from .xrootd import hashed_ca_dir, keycache_path, write_keycache

log = logging.getLogger(__name__)


def prepare(ctx: Context) -> list[str]:
    """Create what is missing (keys are made once and kept); returns warnings for the user."""
    ident_dir = issuer.identity_dir(ctx)
    hosts = tuple(dict.fromkeys(("localhost", "127.0.0.1", ctx.bind)))
    ensure_identity(ident_dir, hosts=hosts)
    ensure_cert(ident_dir, "dask", hosts=hosts)
    hashed_ca_dir(ident_dir / "ca.pem", ctx.ca_dir)
    lifetime = parse_duration(ctx.facility.auth.token_lifetime)
    token_file.refresh(ctx.token_file, ident_dir, issuer.url(ctx), issuer.owner(), lifetime)
    if ctx.facility.xcache.enabled and ctx.xrootd:
        return prepare_xcache(ctx)
    return []


def xrootd_owner(ctx: Context) -> tuple[int, int] | None:
    if not ctx.xrootd_user:
        return None
    pw = pwd.getpwnam(ctx.xrootd_user)
    return pw.pw_uid, pw.pw_gid


def prepare_xcache(ctx: Context) -> list[str]:
    owner = xrootd_owner(ctx)
    tls = xcache.tls_dir(ctx)
    tls.mkdir(mode=0o700, parents=True, exist_ok=True)
    ident_dir = issuer.identity_dir(ctx)
    for name in ("server.pem", "server-key.pem", "ca.pem"):
        shutil.copyfile(ident_dir / name, tls / name)
        os.chmod(tls / name, 0o600)
    xcache.scitokens_path(ctx).write_text(xcache.scitokens_text(ctx))
    if owner:
        for p in (tls, *tls.iterdir()):
            os.chown(p, *owner)
    return write_keys(ctx)


def write_keys(ctx: Context) -> list[str]:
    """libSciTokens trusts only the system CAs, so it cannot fetch the facility issuer's keys: they
    go into its key cache directly, with those of the trusted issuers that answer now."""
    owner = xrootd_owner(ctx)
    home = xcache.cache_home(ctx)
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    if owner:
        os.chown(home, *owner)
    write_keycache(home, issuer.url(ctx), load(issuer.identity_dir(ctx)).jwks(), owner=owner)
    warnings = []
    cas = [issuer.identity_dir(ctx) / "ca.pem", *ctx.facility.auth.trusted_ca_files]
    for url in ctx.facility.auth.trusted_issuers:
        try:
            write_keycache(home, url, RemoteJwks(url, ca_file=cas).fetch_jwks(), owner=owner)
        except (httpx.HTTPError, ValueError, KeyError) as e:
            warnings.append(f"xcache: keys of trusted issuer {url} not loaded ({type(e).__name__}: {e}); "
                            "its tokens are refused there until the next `afbox up`")
    return warnings


def rewrite_keycache(record: dict) -> bool:
    """After a key rotation: the running XCache must know the new key id (False: no XCache here)."""
    auth = record.get("auth") or {}
    kc = auth.get("xcache_keycache")
    if not kc:
        return False
    home = Path(kc["cache_home"])
    owner = tuple(kc["owner"]) if kc.get("owner") else None
    write_keycache(home, auth["issuer"], load(Path(auth["identity_dir"])).jwks(), owner=owner)
    return keycache_path(home).exists()
