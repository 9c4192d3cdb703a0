"""What xrootd's token plugins (ztn + XrdAccSciTokens, xrootd 5.5) need from the facility.

libSciTokens fetches an issuer's JWKS with libcurl and trusts only the system CA bundle, so it
cannot reach the facility issuer (signed by the facility CA) without root changing system trust.
Instead the issuer keys are written into its key cache, a sqlite db under the server's
$XDG_CACHE_HOME; it keeps using cached keys while a refresh fails, until `expires`.  Rewrite the
cache on every `up` and key rotation: a new kid is not found otherwise.
"""
from __future__ import annotations

import json
import os
import sqlite3
import time
from pathlib import Path

from ..run import require, run

KEYCACHE_VALID = 30 * 86400
KEYCACHE_FILL = "scitokens-keycache"  # a file made where the XCache runs (see afbox.spec.ConfigFile.fill)
# the shared key of the facility's XCache and its own origin (xrootd's sss protocol), in the secrets dir
SSS_KEYTAB = "identity/xrootd-sss.keytab"


def keycache_path(cache_home: Path) -> Path:
    return Path(cache_home) / "scitokens" / "scitokens_cpp.sqllite"


def write_keycache(cache_home: Path, issuer: str, jwks: dict, valid_for: float = KEYCACHE_VALID,
                   owner: tuple[int, int] | None = None) -> Path:
    """Put `issuer`'s keys in the cache libSciTokens reads (owner: xrootd's uid/gid when root)."""
    return write_keys(keycache_path(cache_home), issuer, jwks, valid_for, owner)


def write_keys(path: Path, issuer: str, jwks: dict, valid_for: float = KEYCACHE_VALID,
               owner: tuple[int, int] | None = None) -> Path:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    now = int(time.time())
    entry = json.dumps({"jwks": jwks, "next_update": now + int(valid_for), "expires": now + int(valid_for)})
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE IF NOT EXISTS keycache (issuer text UNIQUE PRIMARY KEY NOT NULL,"
                   "keys text NOT NULL)")
        db.execute("INSERT OR REPLACE INTO keycache VALUES (?, ?)", (issuer, entry))
    db.close()
    if owner:
        for p in (path.parent, path):
            os.chown(p, *owner)  # the plugin also writes to it (refresh bookkeeping)
    return path


def keycache_recipe(own: str, public_keys: Path, trusted: list[str], ca_files: list[str],
                    stored: dict[str, dict] | None = None) -> str:
    """What goes into the key cache, as text (a ConfigFile's fill): this facility's issuer with its
    published keys (a file), the trusted issuers, whose keys are fetched when it is made, and the
    issuers whose keys were stored when they were trusted (other sites: issuer -> JWKS)."""
    return json.dumps({"issuers": [{"url": own, "keys": str(public_keys)}, *({"url": u} for u in trusted),
                                   *({"url": u, "jwks": j} for u, j in (stored or {}).items())],
                       "ca_files": [str(c) for c in ca_files]}, indent=1)


def make_keycache(recipe: str, path: Path, owner: tuple[int, int] | None = None,
                  local=lambda p: Path(p)) -> list[str]:
    """Write the key cache a recipe describes at path; returns warnings for issuers whose
    keys could not be fetched (their tokens are refused there until the next try). local maps a
    path of the recipe to where it is on this host."""
    import httpx

    from .validate import RemoteJwks
    r = json.loads(recipe)
    cas = [str(local(c)) for c in r.get("ca_files", [])]
    warnings = []
    for issuer in r["issuers"]:
        if issuer.get("jwks"):
            jwks = issuer["jwks"]
        elif issuer.get("keys"):
            entries = json.loads(local(issuer["keys"]).read_text())
            jwks = {"keys": [e["jwk"] for e in entries if e["until"] is None or e["until"] > time.time()]}
        else:
            try:
                jwks = RemoteJwks(issuer["url"], ca_file=cas).fetch_jwks()
            except (httpx.HTTPError, ValueError, KeyError) as e:
                warnings.append(f"keys of trusted issuer {issuer['url']} not loaded ({type(e).__name__}: {e}); "
                                "its tokens are refused by the XCache until the next `afbox up`")
                continue
        write_keys(path, issuer["url"], jwks, owner=owner)
    return warnings


def scitokens_config(issuers: dict[str, str], audience: str | list[str], base_path: str = "/") -> str:
    """The plugin's INI config: one [Issuer name] section per trusted issuer URL."""
    aud = audience if isinstance(audience, str) else ",".join(audience)
    lines = ["[Global]", f"audience = {aud}", ""]
    for name, url in issuers.items():
        lines += [f"[Issuer {name}]", f"issuer = {url}", f"base_path = {base_path}", ""]
    return "\n".join(lines)


def restricted_sections(issuers: dict[str, tuple[str, list[str]]]) -> str:
    """[Issuer name] sections whose tokens open only the given paths (section name -> (issuer URL,
    paths)); an issuer with no paths gets no section at all, so it opens nothing. The token's own
    scope paths must lie inside them (restricted_path); base_path / keeps paths as they are."""
    lines = []
    for name, (url, paths) in issuers.items():
        if paths:
            lines += [f"[Issuer {name}]", f"issuer = {url}", "base_path = /", f"restricted_path = {','.join(paths)}", ""]
    return "\n".join(lines)


def server_directives(cert: Path, key: Path, ca_file: Path, scitokens_cfg: Path) -> list[str]:
    """Token-only access: ztn (which requires TLS) authenticates, the SciTokens plugin authorizes."""
    return [
        f"xrd.tls {cert} {key}",
        f"xrd.tlsca certfile {ca_file}",
        "xrootd.seclib libXrdSec.so",
        "sec.protocol ztn",
        "ofs.authorize 1",
        f"ofs.authlib libXrdAccSciTokens.so config={scitokens_cfg}",
    ]


def hashed_ca_dir(ca_file: Path, dest: Path) -> Path:
    """A CA directory for xrootd clients (X509_CERT_DIR): they read only hashed dirs, not files."""
    dest.mkdir(parents=True, exist_ok=True)
    h = run([require("openssl"), "x509", "-hash", "-noout", "-in", str(ca_file)], timeout=10).stdout.strip()
    (dest / f"{h}.0").write_bytes(Path(ca_file).read_bytes())
    return dest


def ensure_sss_keytab(path: Path) -> Path:
    """The key the facility's XCache presents to its own origin (xrootd's sss protocol), made once,
    0600, in the keytab format `xrdsssadmin add` writes (made here, so a k3s host needs no xrootd)."""
    if path.exists():
        return path
    import secrets
    from ..state import replace_private
    replace_private(path, f"0 u:xcache g:afbox n:afbox N:{secrets.randbits(62)} c:{int(time.time())} e:0 f:0 "
                          f"k:{secrets.token_hex(32)}\n")
    return path


def sss_server_directives(keytab: Path) -> list[str]:
    """Only holders of the keytab's key are let in, for reads and writes alike: sss is the one protocol offered."""
    return ["xrootd.seclib libXrdSec.so", f"sec.protocol sss -s {keytab}", "sec.protbind * only sss"]
