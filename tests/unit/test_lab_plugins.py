"""What runs inside the facility's JupyterLab and in front of its dashboards: where the dashboard proxy
sends each path, which clusters the Dask panel lists, the gateway auth of "+ NEW", the login form's
token check, the dashboards' 401 page; and the doctor's word on xrootd's interfaces, the origin's key."""
from __future__ import annotations

import time
from types import SimpleNamespace

import pytest
from test_services import ctx
from tornado.httputil import HTTPHeaders

from afbox import record, services
from afbox.auth.identity import ensure_identity, load
from afbox.auth.tokens import mint
from afbox.auth.xrootd import ensure_sss_keytab
from afbox.cli.doctor import xrootd_exposure
from afbox.facility import load as load_facility
from afbox.plugins import lab_clusters, lab_dashboards
from afbox.plugins.gateway_token import TokenFileAuth
from afbox.plugins.http_guard import REFUSED_PAGE, Guard
from afbox.lifecycle.actions import new_record
from afbox.record import ClusterRecord
from afbox.state import FacilityState


@pytest.fixture
def facility(tmp_path, monkeypatch):
    """A facility named "lab" with one named cluster on record, as its Jupyter's environment says."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("AFBOX_FACILITY", "lab")
    monkeypatch.setenv("AFBOX_SCHEDULER", "tls://127.0.0.1:9006")
    monkeypatch.setenv("AFBOX_DASHBOARD", "http://127.0.0.1:9007")
    monkeypatch.setenv("DASK_GATEWAY__ADDRESS", "http://127.0.0.1:9003")
    lab_clusters._record_cache.clear()
    entry = ClusterRecord(env="agc", digest="d", index=0, workers=1, threads=1, bin_dir="/b", started=0,
                          address="tls://127.0.0.1:9600", dashboard="http://127.0.0.1:9601/status")
    rec = new_record(ctx(), services.render(ctx()), "local").model_copy(update={"facility": "lab"})
    rec.clusters["fit"] = entry
    record.write(FacilityState("lab"), rec)
    return tmp_path


def test_dashboard_proxy_targets_come_from_the_facility(facility):
    assert lab_dashboards.dashboard_url("default") == "http://127.0.0.1:9007"
    assert lab_dashboards.dashboard_url("fit") == "http://127.0.0.1:9601"
    assert lab_dashboards.dashboard_url("nope") is None
    assert lab_dashboards.gateway_url("") == "http://127.0.0.1:9003"
    paths = [h[0] for h in lab_dashboards.handlers("/")]
    assert paths[0] == r"/proxy/dask/([\w-]+)(/.*)" and paths[2] == "/proxy/dask-gateway()(/.*)"


def test_the_panel_lists_the_facilitys_own_and_named_clusters(facility):
    want = lab_clusters.wanted()
    assert sorted(v[0] for v in want.values()) == ["default", "fit"]
    by_label = {v[0]: v for v in want.values()}
    assert by_label["fit"][1:] == ("tls://127.0.0.1:9600", "afbox cluster down fit", "/proxy/dask/fit/")
    assert by_label["default"][2] == "afbox down"
    # ids of the panel's own form, the same for the same facility and cluster
    assert set(want) == {lab_clusters.cluster_id("default"), lab_clusters.cluster_id("fit")}
    assert all(len(i.split("-")) == 5 for i in want)


def test_the_panel_cannot_scale_or_stop_afboxs_clusters():
    c = lab_clusters.AttachedCluster.__new__(lab_clusters.AttachedCluster)
    c._cluster_info, c._stop = {"name": "fit"}, "afbox cluster down fit"
    with pytest.raises(RuntimeError, match="afbox cluster down fit"):
        c.close()
    with pytest.raises(RuntimeError, match="sized by afbox"):
        c.scale(3)


def test_new_clusters_authenticate_with_the_token_file_read_each_time(tmp_path, monkeypatch):
    f = tmp_path / "data.token"
    f.write_text("first\n")
    monkeypatch.setenv("BEARER_TOKEN_FILE", str(f))
    auth = TokenFileAuth()
    assert auth.pre_request(None) == ({"Authorization": "Bearer first"}, None)
    f.write_text("renewed\n")
    assert auth.pre_request(None)[0] == {"Authorization": "Bearer renewed"}
    monkeypatch.delenv("BEARER_TOKEN_FILE")
    with pytest.raises(RuntimeError, match="BEARER_TOKEN_FILE"):
        TokenFileAuth().pre_request(None)


class _Conn:
    def __init__(self):
        self.sent = []

    def write_headers(self, start, headers, body):
        self.sent.append((start.code, headers, body))

    def finish(self):
        pass


def _refused(accept: str) -> tuple[int, HTTPHeaders, bytes]:
    from afbox.auth.validate import TokenRejected

    class Refuse:
        def validate(self, token, scope):
            raise TokenRejected("no token")

    conn = _Conn()
    inner = SimpleNamespace(start_request=lambda *a: SimpleNamespace())
    checked = Guard(inner, Refuse(), "compute.create").start_request(None, conn)
    checked.headers_received(SimpleNamespace(path="/status", method="GET"), HTTPHeaders({"Accept": accept}))
    return conn.sent[0]


def test_the_dashboards_401_is_a_page_for_browsers_and_a_line_for_others():
    code, headers, body = _refused("text/html,application/xhtml+xml")
    assert code == 401 and headers["Content-Type"].startswith("text/html") and body == REFUSED_PAGE
    assert b"<title>Dask dashboard: log in first</title>" in body and b"$(" not in body
    code, headers, body = _refused("*/*")
    assert code == 401 and headers["Content-Type"] == "text/plain" and b"Authorization: Bearer" in body


def test_the_login_form_takes_facility_tokens_only(tmp_path, monkeypatch):
    from afbox.auth.facility_auth import service_env
    from afbox.plugins.jupyter_identity import FacilityIdentityProvider

    ensure_identity(tmp_path)
    issuer = "https://127.0.0.1:9001"
    monkeypatch.setenv("JUPYTER_TOKEN", "jupyters-own")  # what stock Jupyter would take
    for k, v in service_env(issuer, tmp_path, []):
        monkeypatch.setenv(k, v)
    provider = FacilityIdentityProvider()
    assert provider.token == ""  # no second credential is made

    class Handler:
        def __init__(self, password):
            self.password, self.cookies = password, {}
            self.request = SimpleNamespace(remote_ip="127.0.0.1")

        def get_argument(self, name, default=""):
            return self.password if name == "password" else default

        def set_cookie(self, name, value, **kw):
            self.cookies[name] = value

    good = mint(load(tmp_path), issuer, "alice", "jupyter.access", issuer)
    h = Handler(good)
    assert provider.process_login_form(h).username == "alice" and h.cookies["afbox_token"] == good
    compute_only = mint(load(tmp_path), issuer, "alice", "compute.create", issuer)
    for bad in ("jupyters-own", compute_only, ""):
        assert provider.process_login_form(Handler(bad)) is None


def test_doctor_says_xrootd_listens_everywhere_and_what_each_port_admits():
    lines = xrootd_exposure(load_facility("ci"), services.render(ctx()))
    assert "listen on every interface (xrootd 5.5 has no bind address)" in lines[0]
    assert "xcache (18780)" in lines[1] and "then a token (ztn over TLS)" in lines[1]
    assert "origin (18782)" in lines[2] and "the XCache's own key (sss)" in lines[2]
    off = load_facility("ci", None, {"auth": {"enabled": False}})
    assert "[auth] is off" in xrootd_exposure(off, services.render(ctx(overrides={"auth": {"enabled": False}})))[1]


def test_the_origins_key_is_made_once_private_in_xrootds_keytab_form(tmp_path):
    path = ensure_sss_keytab(tmp_path / "identity" / "xrootd-sss.keytab")
    line = path.read_text()
    assert path.stat().st_mode & 0o777 == 0o600 and (tmp_path / "identity").stat().st_mode & 0o777 == 0o700
    fields = dict(f.split(":", 1) for f in line.split()[1:])
    assert line.startswith("0 ") and fields["n"] == "afbox" and fields["e"] == "0" and len(fields["k"]) == 64
    assert int(fields["c"]) <= time.time()
    assert ensure_sss_keytab(path).read_text() == line  # kept, not remade
    # one line (a real origin reading it is in tests/integration/test_xrootd_exposure.py)
    assert line.endswith("\n") and line.count("\n") == 1
