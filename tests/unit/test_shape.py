"""The shape the code keeps: a service is one module + a registry line + a config section, and every
backend places it without knowing its name; no import cycles; no module over ~400 lines."""
from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import kubernetes_validate
import pytest
import yaml

from afbox import services
from afbox.backends.k3s import manifests
from afbox.backends.k3s.manifests import secrets as k8s_secrets
from afbox.backends.local.files import lay_out
from afbox.backends.local.supervisor import render_conf
from afbox.facility import Facility, Section, load
from afbox.ports import port
from afbox.services.context import Context
from afbox.services.sizing import DaskSize
from afbox.spec import ConfigFile, Expose, HealthCheck, ServiceSpec, Volume
from afbox.state import FacilityState

ROOT = Path(__file__).resolve().parent.parent.parent
MAX_LINES = 400
GiB = 1024 ** 3


# -- a service afbox has never heard of, defined entirely here ----------------------------------
class HelloSection(Section):
    enabled: bool = True
    greeting: str = "hello"


class WithHello(Facility):
    hello: HelloSection = HelloSection()


def _hello_render(ctx: Context) -> list[ServiceSpec]:
    p = port(ctx.base, "jupyter") + 100
    conf = ctx.state.dir / "hello.toml"
    data = ctx.cache_dir.parent / "hello-data"
    return [ServiceSpec(
        name="hello", argv=(f"{ctx.bin_dir}/python", "-m", "http.server", str(p), "--bind", ctx.bind),
        env=(("HELLO_CONFIG", str(conf)), ("HELLO_SCHEDULER", f"tls://{ctx.bind}:{port(ctx.base, 'scheduler')}")),
        ports=(("http", p),), health=HealthCheck("http", host=ctx.bind, port=p, path="/"),
        urls=(("page", f"http://{ctx.bind}:{p}/"),), primary="page", links=(("hello", "page"),),
        files=(ConfigFile(str(conf), f'greeting = "{ctx.facility.hello.greeting}"\n'),),
        volumes=(Volume("hello-data", str(data), 2 * GiB),), expose=(Expose("http", "hello", "page"),),
        state_dirs=(str(ctx.state.run / "hello"),))]


hello = SimpleNamespace(NAME="hello", enabled=lambda fac: fac.hello.enabled, render=_hello_render)


@pytest.fixture
def with_hello(monkeypatch, tmp_path):
    monkeypatch.setattr(services, "REGISTRY", [*services.REGISTRY, hello])
    base = load("k3s-edge", None, {"facility": {"name": "edge", "workdir": str(tmp_path / "work")}})
    fac = WithHello.model_validate({**base.model_dump(), "hello": {"greeting": "bonjour"}})
    return Context(facility=fac, state=FacilityState("edge"), dask=DaskSize(2, 1, GiB), bin_dir="/venv/bin",
                   xrootd="/usr/bin/xrootd", xrootd_user=None, cache_dir=tmp_path / "cache" / "xcache",
                   xrootd_dir=tmp_path / "cache" / "xrootd", cache_size=GiB, origin_dir=tmp_path / "origin")


def test_a_new_service_runs_on_the_local_backend(with_hello, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    specs = services.render(with_hello)
    spec = next(s for s in specs if s.name == "hello")
    conf = render_conf(specs, sock=tmp_path / "s.sock", logs=tmp_path / "logs", run=tmp_path, identifier="x")
    assert "[program:hello]" in conf and "HELLO_CONFIG=" in conf
    lay_out([spec], FacilityState("edge"))
    assert Path(spec.env_dict["HELLO_CONFIG"]).read_text() == 'greeting = "bonjour"\n'
    assert Path(spec.volumes[0].path).is_dir() and Path(spec.state_dirs[0]).is_dir()


def test_a_new_service_becomes_valid_kubernetes_objects(with_hello):
    view = manifests.pod_context(with_hello)
    specs = manifests.in_pods(view, services.render(view))
    names = ["identity", "data-token", "jupyter-token", "ingress-tls"]
    names += [k8s_secrets.server_secret(w) for w in k8s_secrets.server_workloads(specs)]
    objs = manifests.render(with_hello, specs, manifests.Filled({n: {} for n in names}))
    sts = next(o for o in objs if o["metadata"]["name"] == "hello" and o["kind"] == "StatefulSet")
    c = sts["spec"]["template"]["spec"]["containers"][0]
    assert c["command"][-1] == "0.0.0.0"
    env = {e["name"]: e["value"] for e in c["env"]}
    assert env["HELLO_SCHEDULER"] == "tls://dask-scheduler.afbox-edge.svc:8786"  # another service, by its name
    mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
    assert mounts[env["HELLO_CONFIG"]]["subPath"] == "hello.toml"
    config = next(o for o in objs if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "config")
    assert config["data"]["hello.toml"] == 'greeting = "bonjour"\n'
    assert sts["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"] == "2Gi"
    assert next(o for o in objs if o["kind"] == "Service" and o["metadata"]["name"] == "hello")
    ingress = next(o for o in objs if o["kind"] == "Ingress")
    assert "hello.afbox.localhost" in [r["host"] for r in ingress["spec"]["rules"]]
    for obj in yaml.safe_load_all(manifests.dump(objs)):
        if not obj["apiVersion"].startswith("traefik.io/"):  # Traefik's own kinds have no schema there
            kubernetes_validate.validate(obj, "1.31", strict=True)


def test_no_backend_names_a_service():
    names = {m.NAME for m in services.REGISTRY}
    named = []
    for path in sorted((ROOT / "afbox" / "backends").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and node.value in names:
                named.append(f"{path.relative_to(ROOT)}:{node.lineno}: {node.value!r}")
    assert not named, "\n".join(named)


# -- the import graph and module sizes --------------------------------------------------------
def modules() -> dict[str, Path]:
    out = {}
    for top in ("afbox", "tui"):
        for p in (ROOT / top).rglob("*.py"):
            rel = p.relative_to(ROOT).with_suffix("")
            out[".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)] = p
    return out


def imports(mods: dict[str, Path], name: str) -> set[str]:
    """Every module of ours `name` imports, at the top or inside functions."""
    path = mods[name]
    base = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            parts = base.split(".")
            target = ".".join(parts[: len(parts) - node.level + 1] + [node.module or ""]).strip(".") \
                if node.level else node.module or ""
            candidates = [target, *(f"{target}.{a.name}" for a in node.names)]
        elif isinstance(node, ast.Import):
            candidates = [a.name for a in node.names]
        else:
            continue
        out |= {c for c in candidates if c in mods and c != name and not name.startswith(c + ".")}
    return out


def test_no_import_cycles():
    mods = modules()
    graph = {m: imports(mods, m) for m in mods}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))
    for m in sorted(graph):
        if m not in index:
            visit(m)
    assert not cycles


def test_the_graph_check_finds_a_cycle(tmp_path):
    """The check above can fail: two modules importing each other are found."""
    (tmp_path / "a.py").write_text("from . import b\n")
    (tmp_path / "b.py").write_text("def f():\n    from .a import x\n")
    mods = {"p.a": tmp_path / "a.py", "p.b": tmp_path / "b.py"}
    assert imports(mods, "p.a") == {"p.b"} and imports(mods, "p.b") == {"p.a"}


def test_no_module_is_over_400_lines():
    big = {str(p.relative_to(ROOT)): n for p in modules().values()
           if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not big


def test_python_floor_is_the_same_everywhere():
    floor = re.search(r'requires-python = ">=(3\.\d+)"', (ROOT / "pyproject.toml").read_text()).group(1)
    assert f"sys.version_info < ({floor.replace('.', ', ')})" in (ROOT / "install.sh").read_text()
    assert f"Python >= {floor}" in (ROOT / "README.md").read_text()


def test_the_cli_starts_without_the_programs_it_runs():
    """`afbox` answers at once: what its services run (Dask, JupyterHub, KubeSpawner, the console...) is
    imported only by the code that needs it, never by the command line's own start."""
    heavy = ["distributed", "dask", "dask_gateway", "dask_gateway_server", "jupyterhub", "jupyter_server",
             "kubespawner", "kubernetes_asyncio", "kubernetes", "textual", "uproot", "awkward", "numpy", "tornado"]
    out = subprocess.run([sys.executable, "-c", "import json, sys, afbox.cli; print(json.dumps(sorted(sys.modules)))"],
                         capture_output=True, text=True, check=True).stdout
    loaded = set(json.loads(out))
    assert not [m for m in heavy if m in loaded]
