"""Named environments and clusters: what afbox adds, content addresses, build steps, kernelspecs,
named cluster specs and the client's naming rule; all pure or on temporary files."""
from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

import afbox
from afbox import envs
from afbox.lifecycle import clusters
from afbox.record import ClusterRecord
from afbox.errors import AfboxError, ConfigError
from afbox.services import jupyter
from test_services import ctx


def reqs(*lines):
    return envs.parse_requirements(list(lines))


def test_requirements_are_normalized_and_bad_lines_name_file_and_line():
    got = reqs("# pinned stack", "", "Dask == 2023.11.0", "NumPy<2,>=1.24  # old ABI")
    assert [str(r) for r in got] == ["dask==2023.11.0", "numpy<2,>=1.24"]
    with pytest.raises(ConfigError, match=r"^req.txt:2: options such as '--index-url'"):
        envs.parse_requirements(["dask", "--index-url https://x"], "req.txt")
    with pytest.raises(ConfigError, match=r"^req.txt:1: "):
        envs.parse_requirements(["dask=>1"], "req.txt")


def test_additions_follow_a_dask_pin_and_respect_the_users_own():
    check = ["pyjwt", "cryptography", "httpx"]  # the named cluster dashboards' token check
    assert envs.additions(reqs("dask==2023.11.0", "numpy<2")) == [
        "distributed==2023.11.0", "ipykernel", "xrootd", "fsspec-xrootd", *check]
    assert envs.additions(reqs("dask>=2024.1")) == ["distributed", "ipykernel", "xrootd", "fsspec-xrootd", *check]
    assert envs.additions(reqs("distributed==2023.11.0", "IPyKernel", "xrootd<6", "fsspec_xrootd", "PyJWT[crypto]",
                               "cryptography", "httpx")) == []


def test_same_contents_same_digest_and_anything_else_differs():
    def key(lines, python="3.11"):
        r = reqs(*lines)
        return envs.digest(envs.Source("requirements", tuple(sorted(str(x) for x in r))), python, envs.additions(r))

    same = key(["dask==2023.11.0", "numpy<2"])
    assert key(["NumPy < 2", "Dask==2023.11.0"]) == same
    assert key(["dask==2023.11.0", "numpy<2"], python="3.12") != same
    assert key(["dask==2023.11.0", "numpy<2", "distributed==2023.11.0"]) != same
    assert key(["dask==2023.12.0", "numpy<2"]) != same


def test_uv_builds_a_relocatable_venv_resolves_to_a_lock_and_installs_exactly_it(tmp_path):
    venv, compile_, sync = envs.uv_steps("/u/uv", "3.11", tmp_path / "b", ["dask==2023.11.0", "ipykernel"])
    assert venv.argv == ("/u/uv", "venv", "--no-config", "--quiet", "--relocatable", "--python", "3.11",
                         str(tmp_path / "b"))
    assert compile_.resolves and compile_.input == "dask==2023.11.0\nipykernel\n"
    assert compile_.argv[-2:] == ("-o", str(tmp_path / "b" / "afbox-lock.txt"))
    assert sync.argv[2] == "sync" and sync.argv[-1] == str(tmp_path / "b" / "afbox-lock.txt")
    assert not venv.resolves and not sync.resolves


def test_lock_files_use_their_own_tool(tmp_path):
    conda = envs.lock_steps(envs.Source("conda", lock="/x/env.yml"), "/bin/micromamba", tmp_path)
    assert conda[0].argv == ("/bin/micromamba", "create", "--yes", "--prefix", str(tmp_path / "prefix"),
                             "--file", "/x/env.yml")
    pixi = envs.lock_steps(envs.Source("pixi", lock="/x/pixi.lock"), "/bin/pixi", tmp_path)
    assert pixi[0].argv == ("/bin/pixi", "install", "--frozen", "--manifest-path", str(tmp_path / "pixi.toml"))


def test_missing_tools_and_images_say_what_provides_them(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr("afbox.run.which", lambda b: None)
    with pytest.raises(AfboxError, match="apptainer") as e:
        list(envs.create("img", image="docker://python:3.11"))
    assert "apptainer" in e.value.hint
    (tmp_path / "pixi.lock").write_text("version: 6\n")
    with pytest.raises(AfboxError, match="pixi needs its manifest"):
        list(envs.create("px", lock=str(tmp_path / "pixi.lock")))
    with pytest.raises(AfboxError, match="bad environment name"):
        list(envs.create("Bad Name"))


def env_obj(tmp_path) -> envs.Env:
    return envs.Env("agc", "0123abcd", tmp_path / "0123abcd", {"prefix": "."}, 0.0)


def test_kernelspec_runs_the_envs_python_and_points_at_its_own_cluster_only(tmp_path):
    k = envs.kernelspec(env_obj(tmp_path))
    assert k["argv"] == [str(tmp_path / "0123abcd" / "bin" / "python"), "-m", "ipykernel_launcher", "-f",
                         "{connection_file}"]
    # labelled as the user's environment, which every facility of theirs shows
    assert k["display_name"] == "Python (agc, afbox env)" and k["env"]["DASK_SCHEDULER_ADDRESS"] == ""
    entry = ClusterRecord(env="agc", digest="0123abcd", index=0, workers=1, threads=1, bin_dir="/b", started=0,
                          address="tls://127.0.0.1:9600", dashboard="http://127.0.0.1:9601/status")
    k = envs.kernelspec(env_obj(tmp_path), clusters.kernel_env("fit", entry))
    assert k["env"]["DASK_SCHEDULER_ADDRESS"] == k["env"]["AFBOX_SCHEDULER"] == "tls://127.0.0.1:9600"
    # bound to this facility's named cluster: said so, and its dashboard is the one JupyterLab serves
    assert k["display_name"] == "Python (agc, cluster fit)"
    assert k["env"]["DASK_DISTRIBUTED__DASHBOARD__LINK"] == "/proxy/dask/fit/status"


def test_jupyter_finds_facility_kernels_first_then_every_environment():
    c = ctx()
    path = jupyter.render(c)[0].env_dict["JUPYTER_PATH"].split(":")
    assert path == [str(c.state.dir / "jupyter"), str(envs.jupyter_dir())]


def test_named_cluster_specs_use_the_envs_dask_its_own_ports_and_the_facility_credentials():
    c = ctx(overrides={"facility": {"port_base": 20000}})
    entry = ClusterRecord(env="agc", digest="0123abcd", index=1, workers=2, threads=1, bin_dir="/envs/0123abcd/bin",
                          started=0)
    sched, w1, w2 = clusters.render(c, "agc", entry)
    assert sched.name == "cluster-agc-scheduler" and sched.port_dict == {"scheduler": 20620, "dashboard": 20621}
    assert sched.argv[:2] == ("/envs/0123abcd/bin/dask", "scheduler") and "--tls-cert" in sched.argv
    assert sched.url_dict["scheduler"] == "tls://127.0.0.1:20620"
    assert w1.argv[:3] == ("/envs/0123abcd/bin/dask", "worker", "tls://127.0.0.1:20620")
    assert w1.needs == ("cluster-agc-scheduler",) and w1.health.port == 20621
    assert w2.port_dict == {"nanny": 20625, "worker": 20626, "worker-dashboard": 20627}
    assert {"BEARER_TOKEN_FILE", "X509_CERT_DIR", "DASK_DISTRIBUTED__COMM__TLS__CLIENT__KEY"} <= set(w1.env_dict)
    default = [p for s in afbox.services.render(c) for _, p in s.ports]
    named = [p for s in (sched, w1, w2) for _, p in s.ports]
    assert not set(default) & set(named)
    most = clusters.render(c, "big", entry.model_copy(update={"index": 0, "workers": clusters.MAX_WORKERS}))
    assert max(p for s in most for _, p in s.ports) < 20000 + 600 + 20  # stays inside its own block
    rec = SimpleNamespace(clusters={"agc": entry, "b": entry.model_copy(update={"index": 0, "workers": 1})})
    assert [s.name for s in clusters.recorded_specs(c, rec)] == [
        "cluster-agc-scheduler", "cluster-agc-worker-1", "cluster-agc-worker-2", "cluster-b-scheduler",
        "cluster-b-worker-1"]


def test_version_mismatches_are_named():
    same = {"python": "3.11.7", "dask": "2023.11.0", "distributed": "2023.11.0", "numpy": "1.26.4"}
    report = {"client": same, "scheduler": same, "workers": {"tls://a": same, "tls://b": same}}
    assert clusters.mismatches(report) == []
    report["workers"]["tls://b"] = {**same, "distributed": "2024.1.0", "numpy": None}
    assert clusters.mismatches(report) == [
        "distributed: client 2023.11.0, scheduler 2023.11.0, worker tls://a 2023.11.0, worker tls://b 2024.1.0",
        "numpy: client 1.26.4, scheduler 1.26.4, worker tls://a 1.26.4, worker tls://b missing"]


def test_client_names_a_named_cluster_and_a_facility_of_that_name_wins(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    monkeypatch.delenv("AFBOX_SCHEDULER", raising=False)
    monkeypatch.delenv("AFBOX_FACILITY", raising=False)

    def fac(name, clusters_=None):
        d = tmp_path / "afbox" / name
        d.mkdir(parents=True)
        (d / "facility.json").write_text(json.dumps({
            "services": {"dask-scheduler": {"urls": {"scheduler": f"tls://127.0.0.1:1/{name}"}}},
            "clusters": clusters_ or {}}))

    fac("ci", {"agc": {"address": "tls://127.0.0.1:9600"}})
    assert afbox.scheduler_address() == "tls://127.0.0.1:1/ci"
    assert afbox.scheduler_address("agc") == "tls://127.0.0.1:9600"
    assert afbox.scheduler_address(cluster="agc") == "tls://127.0.0.1:9600"
    assert afbox.scheduler_address("ci", cluster="agc") == "tls://127.0.0.1:9600"
    with pytest.raises(AfboxError, match="no named cluster 'nope'"):
        afbox.scheduler_address("ci", cluster="nope")
    fac("agc")
    monkeypatch.setenv("AFBOX_FACILITY", "ci")
    with pytest.warns(UserWarning, match="'agc' names both a facility and a named cluster of facility 'ci'; "
                                         "connecting to the default cluster of facility 'agc'"):
        assert afbox.scheduler_address("agc") == "tls://127.0.0.1:1/agc"


def test_in_a_named_clusters_kernel_its_name_means_the_cluster_even_when_the_facility_has_it(tmp_path, monkeypatch):
    """`afbox cluster up --env agc` on a facility named agc: the kernel "Python (agc)" reaches the cluster."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    d = tmp_path / "afbox" / "agc"
    d.mkdir(parents=True)
    (d / "facility.json").write_text(json.dumps({
        "facility": "agc", "services": {"dask-scheduler": {"urls": {"scheduler": "tls://127.0.0.1:1"}}},
        "clusters": {"agc": {"address": "tls://127.0.0.1:9600"}}}))
    # as the facility's Jupyter starts that kernel (afbox.lifecycle.clusters.kernel_env)
    monkeypatch.setenv("AFBOX_FACILITY", "agc")
    monkeypatch.setenv("AFBOX_CLUSTER", "agc")
    monkeypatch.setenv("AFBOX_SCHEDULER", "tls://127.0.0.1:9600")
    assert afbox.scheduler_address() == "tls://127.0.0.1:9600"
    assert afbox.scheduler_address(cluster="agc") == "tls://127.0.0.1:9600"
    with pytest.warns(UserWarning, match="connecting to the named cluster .this kernel's.. "
                                         "afbox.client.cluster='agc'. always means the named cluster"):
        assert afbox.scheduler_address("agc") == "tls://127.0.0.1:9600"
    monkeypatch.delenv("AFBOX_CLUSTER")
    monkeypatch.delenv("AFBOX_SCHEDULER")
    with pytest.warns(UserWarning, match="connecting to the default cluster of facility 'agc'"):
        assert afbox.scheduler_address("agc") == "tls://127.0.0.1:1"


def test_tests_keep_kernels_out_of_the_users_real_dirs():
    """Every facility of the user shows the kernels in their data dir: the suite writes its own elsewhere."""
    import tempfile
    assert envs.jupyter_dir().resolve().is_relative_to(Path(tempfile.gettempdir()).resolve())
