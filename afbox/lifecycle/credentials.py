"""The facility's credentials on this host, made before its services start: the signing identity,
the Dask certificate, the CA dir for xrootd clients, the owner's token file, the key the XCache shares
with the facility's own origin; without [auth], Jupyter's own token.
Keys are made once and kept; nothing here removes anything."""
from __future__ import annotations

import secrets
from pathlib import Path

from ..auth import token_file
from ..auth.identity import ensure_cert, ensure_identity, load
from ..auth.xrootd import SSS_KEYTAB, ensure_sss_keytab, hashed_ca_dir, keycache_path, write_keycache
from ..record import FacilityRecord
from ..services import issuer
from ..services.context import Context
from ..sites import trust
from ..state import write_private
from ..units import parse_duration


def prepare(ctx: Context) -> None:
    ctx.state.ensure()
    if ctx.facility.auth.enabled:
        hosts = tuple(dict.fromkeys(("localhost", "127.0.0.1", ctx.bind, ctx.public_host)))
        ensure_identity(ctx.identity_dir, hosts=hosts)
        ensure_cert(ctx.identity_dir, "dask", hosts=hosts)
        if ctx.facility.masterclass.enabled and not ctx.facility.masterclass.tls_cert:
            ensure_cert(ctx.identity_dir, "hub", hosts=tuple(dict.fromkeys((*hosts, ctx.facility.masterclass.listen))))
        hashed_ca_dir(ctx.identity_dir / "ca.pem", ctx.ca_dir)
        lifetime = parse_duration(ctx.facility.auth.token_lifetime)
        token_file.refresh(ctx.token_file, ctx.identity_dir, issuer.url(ctx), issuer.owner(), lifetime)
        if ctx.facility.local_origin:
            ensure_sss_keytab(ctx.state.secrets / SSS_KEYTAB)
        trust.write(ctx)  # other sites: the trust file every checker reads, peer caches' tokens
    if ctx.facility.jupyter.enabled and not ctx.facility.auth.enabled:
        write_private(ctx.jupyter_token_file, secrets.token_urlsafe(32))


def rewrite_keycache(rec: FacilityRecord) -> bool:
    """After a key rotation: the running XCache must know the new key id (False: no XCache here)."""
    kc = rec.auth.xcache_keycache if rec.auth else None
    if not kc:
        return False
    home = Path(kc.cache_home)
    write_keycache(home, rec.auth.issuer, load(Path(rec.auth.identity_dir)).jwks(), owner=kc.owner)
    return keycache_path(home).exists()
