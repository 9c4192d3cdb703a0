"""What federation changes in the rendered services: only with a public host, services that federate
bind to it; the gateway on one HTTPS port; a cache for each site that offered data."""
from __future__ import annotations

import json

from test_services import ctx
from test_sites_trust import site

from afbox import services
from afbox.auth.identity import ensure_identity
from afbox.services import gateway, issuer, peer_cache, xcache

PUBLIC = {"facility": {"public_host": "site-b"}}


def test_without_a_public_host_nothing_federates():
    specs = {s.name: s for s in services.render(ctx())}
    assert "--site-descriptor" not in specs["issuer"].argv and "--host" in specs["issuer"].argv
    assert "AFBOX_AUTH_SITES" not in specs["gateway"].env_dict
    assert "xrd.allow host localhost" in xcache.config_text(ctx())
    assert "site_options" not in gateway.config_text(ctx())


def test_a_public_host_binds_the_issuer_gateway_and_xcache_to_it():
    c = ctx(overrides=PUBLIC)
    specs = {s.name: s for s in services.render(c)}
    iss = specs["issuer"]
    assert issuer.url(c) == "https://site-b:18781" and iss.argv[iss.argv.index("--host") + 1] == "site-b"
    desc = json.loads(iss.files[0].text)
    assert desc["issuer"] == "https://site-b:18781" and desc["gateway"] == {
        "api": "https://site-b:18783", "proxy": "gateway://site-b:18783"}
    assert desc["xrootd"]["root"] == "root://site-b:18780"
    cfg = gateway.config_text(c)
    # one port for the API (HTTPS) and the schedulers (SNI); clusters talk to the private API
    assert "c.Proxy.address = 'site-b:18783'" in cfg and "c.Proxy.tcp_address = 'site-b:18783'" in cfg
    assert "c.Proxy.tls_cert" in cfg and "c.Backend.api_url = 'http://127.0.0.1:18785/api'" in cfg
    # other sites' users get their own limits and never the owner's token
    limits = next(line for line in cfg.splitlines() if "site_options(" in line)
    assert "BEARER_TOKEN_FILE" not in limits and "AFBOX_AUTH_SITES" in limits
    assert specs["gateway"].health.kind == "https" and specs["gateway"].health.host == "site-b"
    assert "xrd.allow" not in xcache.config_text(c)  # other sites' caches connect; tokens decide
    assert specs["jupyter"].env_dict.get("AFBOX_AUTH_SITES", "").endswith("sites/trust.json")


def test_a_cache_per_site_that_offered_data_reading_with_its_own_token(tmp_path):
    a = ensure_identity(tmp_path / "a")
    offering = site(a, offered=["storage.read:/demo", "storage.read:/store/shared"], cache_index=1,
                    grants=["compute.create", "storage.read:/store/public"])
    c = ctx(overrides=PUBLIC, sites=(offering, site(a, "site-c", "https://site-c:1", offered=["compute.create"])))
    specs = {s.name: s for s in services.render(c)}
    assert "cache-site-c" not in specs  # offered no data
    spec = specs["cache-site-a"]
    assert spec.port_dict == {"xroot": 18780 + 391}
    cfg = peer_cache.config_text(c, offering)
    assert "pss.origin site-a:27000" in cfg and f"oss.localroot {c.cache_dir.parent}/site-site-a" in cfg
    st = peer_cache.scitokens_text(c, offering)
    assert st.count("restricted_path = /demo,/store/shared") == 2  # ours and the site's own tokens
    assert spec.env_dict["BEARER_TOKEN_FILE"].endswith("site-site-a/cache.token")
    # the facility's own XCache: the site's tokens open what it was granted here, nothing more
    assert "[Issuer site-site-a]" in xcache.scitokens_text(c) and "restricted_path = /store/public" in xcache.scitokens_text(c)
    assert specs["xcache"].env_dict["AFBOX_SITES_DIGEST"]
