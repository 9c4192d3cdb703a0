"""XCache: xrootd as a caching proxy (pss + pfc) in front of the facility's data origin."""
from __future__ import annotations

from ..auth.facility_auth import ca_paths
from ..auth.identity import PUBLIC_KEYS
from ..auth.xrootd import (KEYCACHE_FILL, SSS_KEYTAB, keycache_path, keycache_recipe, scitokens_config,
                           server_directives)
from ..facility import Facility
from ..ports import port
from ..sites import trust
from ..spec import ConfigFile, HealthCheck, ServiceSpec, Volume
from ..units import parse_size
from . import issuer
from .context import Context

NAME = "xcache"
DISK_LOW, DISK_HIGH = 0.90, 0.95   # fractions of the filesystem the cache leaves to everything else
BASELINE, NOMINAL = 0.70, 0.85     # of the cache size
INSTALL_HINT = "install it with: apt-get install xrootd-server xrootd-server-plugins xrootd-client"


def xrootd_missing(ctx: Context) -> str | None:
    """Why the xrootd server cannot run, in words (a wrong [xcache] xrootd path is not a missing package);
    None when it can."""
    if ctx.xrootd:
        return None
    configured = ctx.facility.xcache.xrootd
    if "/" in configured:
        return f"[xcache] xrootd = {configured!r} is not an executable file; point it at xrootd, or leave it out"
    return f"xrootd is not installed; {INSTALL_HINT}"
TLS_FILES = ("server.pem", "server-key.pem", "ca.pem")  # xrootd's own copies of the facility's
MIN_FILESYSTEM = 10 * 1024 ** 2  # XrdPfc refuses a cache filesystem smaller than 10 MB in all


def enabled(fac: Facility) -> bool:
    return fac.xcache.enabled


def config_path(ctx: Context):
    return ctx.xrootd_dir / "xcache.cfg"


def admin_dir(ctx: Context):
    return ctx.xrootd_dir / "admin"


def tls_dir(ctx: Context):
    """Copies of the facility's server certificate and key that xrootd's own user may read."""
    return ctx.xrootd_dir / "tls"


def scitokens_path(ctx: Context):
    return ctx.xrootd_dir / "scitokens.cfg"


def cache_home(ctx: Context):
    """xrootd's XDG_CACHE_HOME: libSciTokens keeps the issuers' keys there."""
    return ctx.xrootd_dir / "cache"


def token_issuers(ctx: Context) -> dict[str, str]:
    """Section name -> issuer URL for the SciTokens plugin: this facility's, then the trusted ones."""
    return {"afbox": issuer.url(ctx),
            **{f"trusted{i + 1}": u for i, u in enumerate(ctx.facility.auth.trusted_issuers)}}


def scitokens_text(ctx: Context) -> str:
    return scitokens_config(token_issuers(ctx), audience=issuer.url(ctx)) + trust.xcache_sections(ctx.sites)


def allow_lines(ctx: Context) -> list[str]:
    """Without a public host, only the facility's bind host may connect; a federating XCache takes
    any host (other sites' caches) and lets the tokens decide."""
    if ctx.facility.facility.public_host:
        return []
    return [f"xrd.allow host {'localhost' if ctx.bind in ('127.0.0.1', 'localhost') else ctx.bind}"]


def site_env(ctx: Context) -> tuple[tuple[str, str], ...]:
    """Changes with the trust in other sites, so that a change restarts it with its new sections."""
    return (("AFBOX_SITES_DIGEST", trust.digest(ctx.sites)),) if ctx.sites else ()


def auth_lines(ctx: Context) -> list[str]:
    """Reads need a token (ztn over TLS, then the SciTokens plugin checks storage.read:/path)."""
    if not ctx.facility.auth.enabled:
        return []
    t = tls_dir(ctx)
    return server_directives(t / "server.pem", t / "server-key.pem", t / "ca.pem", scitokens_path(ctx))


def config_text(ctx: Context) -> str:
    """The xrootd config; the timeouts keep an uncached read with the origin down from hanging for minutes."""
    x = ctx.facility.xcache
    mib = lambda n: f"{int(n) // 1024 ** 2}m"  # noqa: E731
    size = ctx.cache_size
    origin = x.origin.split("://", 1)[1].rstrip("/") if x.origin else f"localhost:{port(ctx.base, 'origin')}"
    ram = max(parse_size(x.ram), 1024 ** 3)  # xrootd 5.5 refuses pfc.ram below 1g; it is a ceiling, not used up front
    lines = [
        "# written by afbox; edit the facility spec instead",
        f"xrd.port {port(ctx.base, 'xcache')}",
        # xrootd listens on every interface; this admits only the facility's bind host.
        *allow_lines(ctx),
        "all.export /",
        "ofs.osslib libXrdPss.so",
        "pss.cachelib libXrdPfc.so",
        f"pss.origin {origin}",
        "pss.setopt ConnectTimeout 3",
        "pss.setopt ConnectionRetry 1",
        "pss.setopt RequestTimeout 20",
        f"oss.localroot {ctx.cache_dir}",
        f"pfc.ram {ram // 1024 ** 2}m",
        "pfc.blocksize 1M",
        # Absolute diskusage values are thresholds on the whole filesystem's usage (a small value
        # purges the whole cache at every start), so the cache's own size goes into `files`:
        # purge begins past nominal when the disk is busy, always past max, down to baseline.
        f"pfc.diskusage {DISK_LOW} {DISK_HIGH} files {mib(size * BASELINE)} {mib(size * NOMINAL)} {mib(size)}",
        f"all.adminpath {admin_dir(ctx)}",
        f"all.pidpath {admin_dir(ctx)}",
        *statistics_lines(),
        *auth_lines(ctx),
        *x.extra_config,
    ]
    return "\n".join(lines) + "\n"


def statistics_lines() -> list[str]:
    """The cache's access records (afbox cache stats) are written when a file is closed; a close
    that waits for the file's blocks to reach the disk is retried every 10 s (xrootd's default: 30 s,
    which leaves a cold read out of the counts for half a minute), for up to 3 minutes as before."""
    return ["pss.ciosync 10 18"]


def xrootd_socket(admin, instance: str) -> str:
    """The unix socket xrootd binds under its admin path (it refuses to start when that is too long)."""
    return f"{admin}/{instance}/.xrootd/admin"


def xrootd_argv(ctx: Context, config, instance: str) -> tuple[str, ...]:
    """xrootd refuses to run as root: as root it drops to the package's own user (-R)."""
    run_as = ("-R", ctx.xrootd_user) if ctx.xrootd_user else ()
    return (ctx.xrootd or "xrootd", *run_as, "-c", str(config), "-n", instance)


def keycache_text(ctx: Context) -> str:
    auth = ctx.facility.auth
    return keycache_recipe(issuer.url(ctx), ctx.identity_dir / PUBLIC_KEYS, auth.trusted_issuers,
                           ca_paths(ctx.identity_dir, auth.trusted_ca_files), stored=trust.stored_keys(ctx.sites))


def files(ctx: Context) -> tuple[ConfigFile, ...]:
    """Its config; with auth its copies of the facility's TLS files, the SciTokens config and the
    plugin's key cache (the issuers' keys, which libSciTokens cannot fetch itself: see auth.xrootd)."""
    out = [ConfigFile(str(config_path(ctx)), config_text(ctx))]
    if ctx.facility.auth.enabled:
        out += [ConfigFile(str(tls_dir(ctx) / f), secret=f"identity/{f}", mode=0o600) for f in TLS_FILES]
        out += [ConfigFile(str(scitokens_path(ctx)), scitokens_text(ctx)),
                ConfigFile(str(keycache_path(cache_home(ctx))), keycache_text(ctx), fill=KEYCACHE_FILL, mode=0o600,
                           writable=True)]
    return tuple(out)


def origin_key(ctx: Context) -> tuple[tuple[ConfigFile, ...], tuple[tuple[str, str], ...]]:
    """The key the XCache presents to the facility's own origin (xrootd's sss, as its client): its file
    and the variable that points XrdCl at it. Nothing for a remote origin or without [auth]."""
    if not (ctx.facility.auth.enabled and ctx.facility.local_origin):
        return (), ()
    path = tls_dir(ctx) / "origin-sss.keytab"
    return (ConfigFile(str(path), secret=SSS_KEYTAB, mode=0o600),), (("XrdSecSSSKT", str(path)),)


def render(ctx: Context) -> list[ServiceSpec]:
    p = port(ctx.base, NAME)
    instance = f"afbox-{ctx.facility.name}"
    argv = xrootd_argv(ctx, config_path(ctx), instance)
    key_files, key_env = origin_key(ctx)
    return [ServiceSpec(
        name=NAME, argv=argv, ports=(("xroot", p),),
        # XrdCl refuses a failed origin for 30 min by default (not settable by pss.setopt in 5.5);
        # retry it soon after it comes back.
        env=(("XRD_STREAMERRORWINDOW", "5"),
             *((("XDG_CACHE_HOME", str(cache_home(ctx))),) if ctx.facility.auth.enabled else ()), *key_env,
             *site_env(ctx)),
        health=HealthCheck("xrootd", host="127.0.0.1", port=p),
        urls=(("root", f"root://{ctx.bind}:{p}/"),
              ("origin", ctx.facility.xcache.origin or f"root://{ctx.bind}:{port(ctx.base, 'origin')}")),
        primary="root", links=(("xcache", "root"),),
        state_dirs=(str(ctx.xrootd_dir), str(admin_dir(ctx))),
        volumes=(Volume("cache", str(ctx.cache_dir), ctx.cache_size, min_filesystem=MIN_FILESYSTEM),),
        files=(*files(ctx), *key_files), image_role="xrootd", run_as=ctx.xrootd_user or "",
        unavailable=xrootd_missing(ctx), sockets=(xrootd_socket(admin_dir(ctx), instance),),
    )]
