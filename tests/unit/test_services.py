"""Rendering is pure: same inputs, same specs; the specs say what a site admin would expect."""
import json
import re
from pathlib import Path

from afbox import services
from afbox.facility import load
from afbox.services import jupyter, xcache
from afbox.services.context import Context
from afbox.services.sizing import DaskSize, dask_size, xcache_size
from afbox.state import FacilityState
from afbox.backends.local.supervisor import render_conf, restart_counts

GiB = 1024 ** 3


def ctx(**over) -> Context:
    fac = load("ci", None, over.pop("overrides", None))
    base = dict(facility=fac, state=FacilityState("ci"), dask=DaskSize(2, 1, GiB), bin_dir="/venv/bin",
                xrootd="/usr/bin/xrootd", xrootd_user=None, cache_dir=Path("/c/xcache"),
                xrootd_dir=Path("/c/xrootd"), cache_size=10 * GiB)
    return Context(**(base | over))


def test_rendering_is_pure():
    assert services.render(ctx()) == services.render(ctx())


def test_services_and_ports_follow_the_port_base():
    specs = {s.name: s for s in services.render(ctx(overrides={"facility": {"port_base": 20000}}))}
    assert set(specs) == {"dask-scheduler", "dask-worker-1", "dask-worker-2", "jupyter", "xcache", "origin", "issuer",
                          "gateway"}
    assert specs["issuer"].port_dict == {"https": 20001}
    assert specs["gateway"].port_dict == {"http": 20003, "scheduler-proxy": 20004, "api": 20005}
    assert specs["origin"].port_dict == {"xroot": 20002}
    assert specs["dask-scheduler"].port_dict == {"scheduler": 20006, "dashboard": 20007}
    assert specs["jupyter"].port_dict == {"http": 20008}
    assert specs["xcache"].port_dict == {"xroot": 20000}
    all_ports = [p for s in specs.values() for _, p in s.ports]
    assert len(all_ports) == len(set(all_ports))


def test_workers_need_the_scheduler_and_carry_limits():
    w = next(s for s in services.render(ctx()) if s.name == "dask-worker-1")
    assert w.needs == ("dask-scheduler",)
    assert "--memory-limit" in w.argv and str(GiB) in w.argv and "--nanny" in w.argv
    assert w.argv[w.argv.index("--nthreads") + 1] == "1"
    assert w.health.kind == "dask-worker"


def test_everything_binds_loopback_and_jupyter_token_is_by_file():
    specs = services.render(ctx())
    j = next(s for s in specs if s.name == "jupyter")
    assert "--ServerApp.ip=127.0.0.1" in j.argv
    assert not any("token=" in a.lower() for a in j.argv)
    # with [auth] Jupyter has no token of its own (facility tokens only); its health check shows the owner's
    assert "JUPYTER_TOKEN_FILE" not in j.env_dict
    assert j.health.headers == (("bearer-file", str(ctx().token_file)),)
    plain = jupyter.render(ctx(overrides={"auth": {"enabled": False}}))[0]
    assert plain.env_dict["JUPYTER_TOKEN_FILE"].endswith("secrets/jupyter_token")
    assert plain.health.headers == (("token-file", plain.env_dict["JUPYTER_TOKEN_FILE"]),)
    assert j.env_dict["DASK_SCHEDULER_ADDRESS"] == "tls://127.0.0.1:18786"
    assert j.env_dict["DASK_DISTRIBUTED__COMM__REQUIRE_ENCRYPTION"] == "True"
    assert j.env_dict["DASK_DISTRIBUTED__COMM__TLS__CLIENT__KEY"].endswith("identity/dask-key.pem")
    s = next(s for s in specs if s.name == "dask-scheduler")
    assert s.argv[s.argv.index("--host") + 1] == "127.0.0.1"


def test_jupyter_allows_root_only_when_root():
    assert "--allow-root" not in jupyter.render(ctx())[0].argv
    assert "--allow-root" in jupyter.render(ctx(as_root=True))[0].argv


def test_dask_panel_opens_the_dashboard_under_jupyterlabs_own_origin():
    j = jupyter.render(ctx())[0]
    files = {Path(f.path).name: json.loads(f.text) for f in j.files}
    # a path relative to JupyterLab: the same host name and port it was opened with
    assert files["plugin.jupyterlab-settings"]["defaultURL"] == "proxy/dask/default/"
    # where JupyterLab's proxy sends that path (a fact k3s turns into the scheduler's Service name)
    assert j.env_dict["AFBOX_DASHBOARD"] == "http://127.0.0.1:18787"
    assert j.env_dict["DASK_DISTRIBUTED__DASHBOARD__LINK"] == "/proxy/dask/default/status"
    config = files["jupyter_server_config.json"]
    assert config["ServerApp"]["jpserver_extensions"] == {"afbox.plugins.lab_extension": True}
    assert j.env_dict["JUPYTER_CONFIG_PATH"] == str(Path(j.files[2].path).parent)


def test_jupyterlab_never_asks_about_or_fetches_news():
    j = jupyter.render(ctx())[0]
    files = {Path(f.path).name: (f.path, json.loads(f.text)) for f in j.files}
    path, settings = files["notification.jupyterlab-settings"]
    assert path.endswith("jupyterlab-settings/@jupyterlab/apputils-extension/notification.jupyterlab-settings")
    assert settings == {"fetchNews": "false", "checkForUpdates": False}
    lab = files["jupyter_server_config.json"][1]["LabApp"]
    assert lab["news_url"] is None and lab["check_for_updates_class"].endswith("NeverCheckForUpdate")


def test_new_cluster_in_the_dask_panel_goes_through_the_gateway():
    env = jupyter.render(ctx())[0].env_dict
    assert env["DASK_LABEXTENSION__FACTORY__MODULE"] == "dask_gateway"
    assert env["DASK_LABEXTENSION__FACTORY__CLASS"] == "GatewayCluster"
    assert env["DASK_GATEWAY__ADDRESS"] == "http://127.0.0.1:18783"
    assert env["DASK_GATEWAY__PROXY_ADDRESS"] == "gateway://127.0.0.1:18784"
    assert env["DASK_GATEWAY__AUTH__TYPE"] == "afbox.plugins.gateway_token.TokenFileAuth"
    # its clusters' dashboard links point under JupyterLab too
    assert env["DASK_GATEWAY__PUBLIC_ADDRESS"] == "/proxy/dask-gateway"
    plain = jupyter.render(ctx(overrides={"auth": {"enabled": False}}))[0].env_dict
    assert not any(k.startswith(("DASK_GATEWAY__", "DASK_LABEXTENSION__")) for k in plain)


def test_xcache_config():
    c = ctx(overrides={"xcache": {"origin": "root://origin.example:1095"}})
    text = xcache.config_text(c)
    for line in ("xrd.port 18780", "xrd.allow host localhost", "ofs.osslib libXrdPss.so",
                 "pss.cachelib libXrdPfc.so", "pss.origin origin.example:1095", "oss.localroot /c/xcache",
                 "pfc.ram 1024m", "pss.setopt ConnectTimeout 3",
                 "pfc.diskusage 0.9 0.95 files 7168m 8704m 10240m"):
        assert line in text.splitlines(), line
    spec = xcache.render(c)[0]
    assert spec.env_dict["XRD_STREAMERRORWINDOW"] == "5"
    assert spec.argv[:1] == ("/usr/bin/xrootd",) and "-R" not in spec.argv
    assert xcache.render(ctx(xrootd_user="xrootd"))[0].argv[1:3] == ("-R", "xrootd")


def test_xcache_unavailable_without_xrootd():
    spec = xcache.render(ctx(xrootd=None))[0]
    assert "apt-get install xrootd-server" in spec.unavailable


def test_sizing_from_the_host():
    fac = load("laptop")
    assert dask_size(fac, 16, 64 * GiB) == DaskSize(4, 4, int(64 * GiB * 0.5 / 4))
    assert dask_size(fac, 2, 8 * GiB).workers == 2
    assert dask_size(load("ci"), 64, 256 * GiB) == DaskSize(2, 1, GiB)
    assert xcache_size(fac, 100 * GiB) == 20 * GiB
    assert xcache_size(fac, 10 * GiB) == 5 * GiB
    assert xcache_size(load("ci"), 100 * GiB) == GiB
    # never beyond its filesystem, which XrdPfc would refuse
    assert xcache_size(load("ci"), 30 * 2**20, 40 * 2**20) == 36 * 2**20


def test_supervisor_conf_groups_and_quotes(tmp_path):
    specs = services.render(ctx())
    conf = render_conf(specs, sock=tmp_path / "s.sock", logs=tmp_path / "logs", run=tmp_path, identifier="afbox-ci")
    assert conf.count("[program:") == 8
    assert conf.count("stopasgroup=true") == 8 and conf.count("killasgroup=true") == 8
    assert "chmod=0700" in conf
    assert "autorestart=true" in conf
    unavailable = render_conf(services.render(ctx(xrootd=None)), sock=tmp_path / "s", logs=tmp_path, run=tmp_path,
                              identifier="x")
    assert "[program:xcache]" not in unavailable
    # Dask and the gateway yield the CPU to what the person uses; nothing else is lowered
    commands = dict(re.findall(r"^\[program:(.+)\]\ncommand=(.*)$", conf, re.M))
    niced = sorted(n for n, c in commands.items() if c.startswith("nice -n 10 "))
    assert niced == ["dask-scheduler", "dask-worker-1", "dask-worker-2", "gateway"]


def test_restart_counts_from_supervisord_log(tmp_path):
    log = tmp_path / "supervisord.log"
    log.write_text(
        "2026 INFO supervisord started with pid 1\n"
        "2026 INFO spawned: 'a' with pid 2\n2026 INFO spawned: 'b' with pid 3\n"
        "2026 INFO exited: a (terminated by SIGKILL; not expected)\n2026 INFO spawned: 'a' with pid 4\n")
    assert restart_counts(log) == {"a": 1, "b": 0}
    assert restart_counts(tmp_path / "missing.log") == {}


def test_local_origin_only_without_a_remote_one():
    names = {s.name for s in services.render(ctx())}
    assert "origin" in names
    assert "pss.origin localhost:18782" in xcache.config_text(ctx()).splitlines()
    remote = ctx(overrides={"xcache": {"origin": "root://far.example:1094"}})
    assert "origin" not in {s.name for s in services.render(remote)}
    forced = ctx(overrides={"xcache": {"origin": "root://far.example:1094"}, "origin": {"enabled": True}})
    assert "origin" in {s.name for s in services.render(forced)}


def test_origin_config_serves_its_data_dir():
    from afbox.services import origin
    c = ctx(origin_dir=Path("/data/origin"))
    lines = origin.config_text(c).splitlines()
    assert "oss.localroot /data/origin" in lines and "xrd.port 18782" in lines and "xrd.allow host localhost" in lines


def test_only_the_xcache_holds_the_key_the_origin_asks_for():
    from afbox.services import origin
    specs = {s.name: s for s in services.render(ctx())}
    lines = origin.config_text(ctx()).splitlines()
    keytab = "/c/xrootd/origin-key/sss.keytab"
    # sss is the one protocol offered: no credential-less reads or writes
    assert f"sec.protocol sss -s {keytab}" in lines and "sec.protbind * only sss" in lines
    key = next(f for f in specs["origin"].files if f.path == keytab)
    assert key.secret == "identity/xrootd-sss.keytab" and key.mode == 0o600
    client = next(f for f in specs["xcache"].files if f.secret == "identity/xrootd-sss.keytab")
    assert client.mode == 0o600 and specs["xcache"].env_dict["XrdSecSSSKT"] == client.path
    # nobody else gets it
    holders = {s.name for s in specs.values() for f in s.files if f.secret == "identity/xrootd-sss.keytab"}
    assert holders == {"origin", "xcache"}
    assert not any("sss" in a for s in specs.values() for _, a in s.env if s.name != "xcache")
    # a remote origin is not ours to key; without [auth] nothing is
    remote = {s.name: s for s in services.render(ctx(overrides={"xcache": {"origin": "root://far.example:1094"}}))}
    assert "XrdSecSSSKT" not in remote["xcache"].env_dict
    off = ctx(overrides={"auth": {"enabled": False}})
    assert not any(line.startswith("sec.") for line in origin.config_text(off).splitlines())


def test_issuer_is_https_on_loopback_and_jupyter_trusts_it():
    specs = {s.name: s for s in services.render(ctx())}
    iss = specs["issuer"]
    assert iss.health.kind == "https" and iss.health.url == "https://127.0.0.1:18781/health"
    assert iss.health.ca_file.endswith("secrets/identity/ca.pem")
    assert iss.argv[iss.argv.index("--host") + 1] == "127.0.0.1"
    j = specs["jupyter"]
    assert any("FacilityIdentityProvider" in a for a in j.argv)
    assert j.env_dict["AFBOX_AUTH_ISSUER"] == "https://127.0.0.1:18781"
    trusted = ctx(overrides={"auth": {"trusted_issuers": ["https://other.example"]}})
    assert jupyter.render(trusted)[0].env_dict["AFBOX_AUTH_TRUSTED"] == "https://other.example"
    off = {s.name: s for s in services.render(ctx(overrides={"auth": {"enabled": False}}))}
    assert "issuer" not in off and not any("FacilityIdentityProvider" in a for a in off["jupyter"].argv)


def test_dask_speaks_mutual_tls_with_the_facility_ca_unless_auth_is_off():
    specs = {s.name: s for s in services.render(ctx())}
    for name in ("dask-scheduler", "dask-worker-1"):
        argv = specs[name].argv
        assert argv[argv.index("--protocol") + 1] == "tls"
        assert argv[argv.index("--tls-ca-file") + 1].endswith("identity/ca.pem")
        assert argv[argv.index("--tls-key") + 1].endswith("identity/dask-key.pem")
    assert specs["dask-worker-1"].argv[2] == "tls://127.0.0.1:18786"
    plain = {s.name: s for s in services.render(ctx(overrides={"auth": {"enabled": False}}))}
    assert "--tls-cert" not in plain["dask-scheduler"].argv and plain["dask-worker-1"].argv[2].startswith("tcp://")


def test_a_container_runtime_wraps_every_rendered_service():
    specs = services.render(ctx(overrides={"runtime": {"kind": "apptainer", "image": "/img/analysis.sif"}}))
    for s in specs:
        assert s.argv[:2] == ("apptainer", "exec") and "/img/analysis.sif" in s.argv, s.name
    assert all(s.argv[0] != "apptainer" for s in services.render(ctx()))


def test_gateway_forks_its_clusters_from_a_warm_interpreter_unless_told_not_to():
    def config(over=None):
        (spec,) = [s for s in services.render(ctx(overrides=over or {})) if s.name == "gateway"]
        return spec.files[0].text
    assert "c.FacilityBackend.use_forkserver = True" in config()
    assert "c.FacilityBackend.use_forkserver = False" in config({"gateway": {"warm": False}})
