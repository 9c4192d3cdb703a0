"""How auth shows up in the rendered services: the XCache's token config, the gateway's config, the
owner's token file."""
from __future__ import annotations

import time

import jwt
from test_services import ctx

from afbox import services
from afbox.auth import token_file
from afbox.auth.identity import ensure_identity
from afbox.plugins.gateway_backend import _set
from afbox.services import gateway, xcache


def test_xcache_requires_tokens_over_tls_for_the_facility_and_trusted_issuers():
    c = ctx(overrides={"auth": {"trusted_issuers": ["https://other.site:8443"]}})
    cfg = xcache.config_text(c)
    for line in ("sec.protocol ztn", "ofs.authorize 1", "xrootd.seclib libXrdSec.so",
                 f"xrd.tls {c.xrootd_dir}/tls/server.pem {c.xrootd_dir}/tls/server-key.pem",
                 f"ofs.authlib libXrdAccSciTokens.so config={c.xrootd_dir}/scitokens.cfg"):
        assert line in cfg.splitlines()
    st = xcache.scitokens_text(c)
    assert "audience = https://127.0.0.1:18781" in st
    assert "[Issuer afbox]\nissuer = https://127.0.0.1:18781\nbase_path = /" in st
    assert "[Issuer trusted1]\nissuer = https://other.site:8443" in st
    spec = xcache.render(c)[0]
    assert spec.env_dict["XDG_CACHE_HOME"] == f"{c.xrootd_dir}/cache"


def test_without_auth_the_xcache_is_open_and_there_is_no_gateway():
    c = ctx(overrides={"auth": {"enabled": False}})
    assert "ofs.authorize" not in xcache.config_text(c)
    assert "gateway" not in {s.name for s in services.render(c)}
    assert "BEARER_TOKEN_FILE" not in dict(c.data_env) and "X509_CERT_DIR" not in dict(c.data_env)


def test_workers_and_kernels_find_the_token_the_wlcg_way():
    specs = {s.name: s for s in services.render(ctx())}
    for name in ("dask-worker-1", "jupyter"):
        env = specs[name].env_dict
        assert env["BEARER_TOKEN_FILE"].endswith("secrets/tokens/data.token")
        assert env["X509_CERT_DIR"].endswith("secrets/identity/ca-hashed")


def test_gateway_binds_the_facility_host_and_its_port_window():
    c = ctx(overrides={"facility": {"port_base": 20000}})
    cfg = gateway.config_text(c)
    assert "c.Proxy.address = '127.0.0.1:20003'" in cfg
    assert "c.Proxy.tcp_address = '127.0.0.1:20004'" in cfg
    assert "c.DaskGateway.address = '127.0.0.1:20005'" in cfg
    assert "c.FacilityBackend.port_first = 20400" in cfg
    assert "afbox.plugins.gateway_auth.FacilityAuthenticator" in cfg
    spec = gateway.render(c)[0]
    assert spec.env_dict["AFBOX_AUTH_ISSUER"] == "https://127.0.0.1:20001"
    assert not any("token" in a.lower() for a in spec.argv)


def test_gateway_cluster_commands_are_pinned():
    cmd = ["dask", "scheduler", "--protocol", "tls", "--port", "0", "--host", "0.0.0.0",
           "--dashboard-address", "0.0.0.0:0", "--dg-api-address", "0.0.0.0:0"]
    out = _set(cmd, {"--port": "20400", "--host": "127.0.0.1", "--dashboard-address": "127.0.0.1:20401",
                     "--dg-api-address": "127.0.0.1:20402"})
    assert out == ["dask", "scheduler", "--protocol", "tls", "--port", "20400", "--host", "127.0.0.1",
                   "--dashboard-address", "127.0.0.1:20401", "--dg-api-address", "127.0.0.1:20402"]
    assert _set(["w", "--dashboard-address", "x"], {"--dashboard-address": None, "--host": "h"}) == ["w", "--host", "h"]


def test_token_file_is_reminted_past_half_its_life(tmp_path):
    ident = ensure_identity(tmp_path / "identity")
    path = tmp_path / "tokens" / "data.token"
    iss = "https://127.0.0.1:1"
    assert token_file.refresh(path, ident.dir, iss, "alice", 3600)
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    claims = jwt.decode(path.read_text().strip(), options={"verify_signature": False})
    assert claims["aud"] == iss and "storage.read:/" in claims["scope"].split()
    assert not token_file.refresh(path, ident.dir, iss, "alice", 3600)
    assert token_file.stale(path, 3600, iss, now=time.time() + 1900)
    assert token_file.stale(path, 3600, "https://elsewhere")


def test_dashboards_of_the_facility_ask_for_a_token():
    specs = {s.name: s for s in services.render(ctx())}
    for name in ("dask-scheduler", "dask-worker-1"):
        argv = specs[name].argv
        assert argv[argv.index("--preload") + 1] == "afbox.plugins.dask_dashboard"
        assert specs[name].env_dict["AFBOX_AUTH_ISSUER"] == "https://127.0.0.1:18781"
    assert ("bearer-file", str(ctx().token_file)) in specs["dask-worker-1"].health.headers
    assert "--preload" not in {s.name: s for s in services.render(ctx(overrides={"auth": {"enabled": False}}))}[
        "dask-scheduler"].argv
