"""Caches this facility keeps for other sites' data: each site is origin for its own namespace and
cache for its peers (afbox.sites).

For every trusted site that offered this facility paths of its data, an xrootd caching proxy
`cache-<site>` in front of that site's XCache. It reads from there with this facility's own
short-lived cache token (the site checks it against what it granted); readers here need a token
of this facility or of that site, for the offered paths only. Once a file is cached, reading it
again crosses no WAN.
"""
from __future__ import annotations

from urllib.parse import urlsplit

from ..auth.identity import PUBLIC_KEYS
from ..auth.xrootd import KEYCACHE_FILL, keycache_path, keycache_recipe, restricted_sections, server_directives
from ..facility import Facility
from ..sites import trust
from ..spec import ConfigFile, HealthCheck, ServiceSpec, Volume
from . import issuer, xcache
from .context import Context

NAME = "peer-cache"
SHARE = 4  # each peer's cache may take this fraction of the facility's cache size


def enabled(fac: Facility) -> bool:
    return fac.xcache.enabled and fac.auth.enabled


def service_name(site) -> str:
    return f"cache-{site.name}"


def data_dir(ctx: Context, site):
    """Beside the facility's own cache dir, never inside it (each xrootd purges its own tree)."""
    return ctx.cache_dir.parent / trust.section(site)


def admin_dir(ctx: Context, site):
    """Short: xrootd puts its unix sockets under it (at most 108 characters with their names)."""
    return ctx.xrootd_dir / f"{site.name}.adm"


def config_text(ctx: Context, site) -> str:
    d = trust.cache_dir(ctx.xrootd_dir, site)
    origin = urlsplit(site.descriptor.xrootd.root).netloc
    size = ctx.cache_size // SHARE
    mib = lambda n: f"{int(n) // 1024 ** 2}m"  # noqa: E731
    return "\n".join([
        "# written by afbox; edit the facility's sites instead (afbox site)",
        f"xrd.port {trust.cache_port(ctx.base, site)}",
        "all.export /",
        "ofs.osslib libXrdPss.so",
        "pss.cachelib libXrdPfc.so",
        f"pss.origin {origin}",
        "pss.setopt ConnectTimeout 5",
        "pss.setopt ConnectionRetry 1",
        "pss.setopt RequestTimeout 30",
        f"oss.localroot {data_dir(ctx, site)}",
        "pfc.ram 1g",
        "pfc.blocksize 1M",
        f"pfc.diskusage {xcache.DISK_LOW} {xcache.DISK_HIGH} files {mib(size * xcache.BASELINE)} "
        f"{mib(size * xcache.NOMINAL)} {mib(size)}",
        f"all.adminpath {admin_dir(ctx, site)}",
        f"all.pidpath {admin_dir(ctx, site)}",
        *server_directives(d / "tls" / "server.pem", d / "tls" / "server-key.pem", d / "tls" / "ca.pem",
                           d / "scitokens.cfg"),
    ]) + "\n"


def scitokens_text(ctx: Context, site) -> str:
    """Holders of this facility's tokens and of the site's own may read what the site offered."""
    paths = site.offered_paths
    return "\n".join(["[Global]", f"audience = {issuer.url(ctx)}", "",
                      restricted_sections({"afbox": (issuer.url(ctx), paths), trust.section(site): (site.url, paths)})])


def render_one(ctx: Context, site) -> ServiceSpec:
    d = trust.cache_dir(ctx.xrootd_dir, site)
    p = trust.cache_port(ctx.base, site)
    cfg = d / "xcache.cfg"
    keys = keycache_recipe(issuer.url(ctx), ctx.identity_dir / PUBLIC_KEYS, [], [], stored={site.url: site.jwks})
    files = (ConfigFile(str(cfg), config_text(ctx, site)),
             *(ConfigFile(str(d / "tls" / f), secret=f"identity/{f}", mode=0o600) for f in xcache.TLS_FILES),
             ConfigFile(str(d / "scitokens.cfg"), scitokens_text(ctx, site)),
             ConfigFile(str(keycache_path(d / "cache")), keys, fill=KEYCACHE_FILL, mode=0o600, writable=True))
    instance = f"afbox-{site.name}"
    return ServiceSpec(
        name=service_name(site), argv=xcache.xrootd_argv(ctx, cfg, instance),
        ports=(("xroot", p),),
        # its own credential towards the site (renewed by the issuer) and the site's CA for its TLS
        env=(("XDG_CACHE_HOME", str(d / "cache")), ("BEARER_TOKEN_FILE", str(trust.cache_token_file(ctx.xrootd_dir, site))),
             ("X509_CERT_DIR", str(trust.cache_ca_dir(ctx.xrootd_dir, site))), ("XRD_STREAMERRORWINDOW", "5"),
             ("AFBOX_SITES_DIGEST", trust.digest([site]))),
        health=HealthCheck("xrootd", host="127.0.0.1", port=p),
        urls=(("root", f"root://{ctx.public_host}:{p}/"), ("origin", site.descriptor.xrootd.root)), primary="root",
        needs=(issuer.NAME,), state_dirs=(str(d), str(admin_dir(ctx, site))),
        volumes=(Volume(trust.section(site), str(data_dir(ctx, site)), ctx.cache_size // SHARE),),
        files=files, image_role="xrootd", run_as=ctx.xrootd_user or "",
        unavailable=None if ctx.xrootd else f"xrootd is not installed; {xcache.INSTALL_HINT}",
        sockets=(xcache.xrootd_socket(admin_dir(ctx, site), instance),),
    )


def render(ctx: Context) -> list[ServiceSpec]:
    return [render_one(ctx, s) for s in trust.cached_sites(ctx.sites)]
