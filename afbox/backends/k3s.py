"""The k3s backend: the facility's ServiceSpecs as Kubernetes objects, applied with the k3s binary.

Each `up` renders every object (afbox.k8s), fills the Secrets from the facility's state (keys go
through stdin, never argv or a file), applies them server-side and waits for each rollout. `down`
deletes the workloads and keeps the namespace with its volumes (notebooks, cache, origin data);
only `purge` deletes the namespace and, with it, that data.
"""
from __future__ import annotations

import calendar
import tempfile
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

from .. import events as ev
from .. import k8s
from ..errors import AfboxError, ServiceFailed
from ..k3s import LOG_TAIL, K3s
from ..k8s.manifests import Filled, hosts, namespace_name, urls
from ..k8s.objects import FACILITY_LABEL
from ..k8s.pod import translate
from ..k8s.workloads import REPLICATED
from ..services.context import Context
from ..spec import ServiceSpec
from ..state import FacilityState
from .base import Hooks, ServiceStatus

WORKLOAD_KINDS = "deployments,statefulsets"
# down deletes what a facility's `up` created, except its volumes
DELETE_KINDS = "deployments,statefulsets,services,configmaps,secrets,ingresses,networkpolicies"
NOT_RUNNING = {"CrashLoopBackOff", "ImagePullBackOff", "ErrImagePull", "CreateContainerConfigError",
               "RunContainerError", "InvalidImageName"}
IDENTITY_SKIP = ("ca-key.pem", "ingress.pem", "ingress-key.pem")  # the CA key never leaves the host


class K3sBackend(Hooks):
    name = "k3s"

    def __init__(self, state: FacilityState, k3s: K3s | None = None):
        self.state = state
        self.ctx: Context | None = None
        self._k3s = k3s

    @property
    def k3s(self) -> K3s:
        if self._k3s is None:
            self._k3s = K3s()
        return self._k3s

    @property
    def namespace(self) -> str:
        if self.ctx:
            return namespace_name(self.ctx.facility)
        rec = self.state.read() or {}
        return (rec.get("spec") or {}).get("k3s", {}).get("namespace") or f"afbox-{self.state.name}"

    @property
    def selector(self) -> str:
        return f"{FACILITY_LABEL}={self.state.name}"

    # -- hooks lifecycle calls --------------------------------------------------------------
    def place(self, ctx: Context, specs: list[ServiceSpec]) -> list[ServiceSpec]:
        """Keep the Context to render from; return the specs as this host sees them: no host ports
        to check, URLs through the ingress and the cluster's service names."""
        self.ctx = ctx
        ns, u = namespace_name(ctx.facility), urls(ctx.facility)
        out = []
        for s in specs:
            svc_urls = {label: translate(url.replace(ctx.bind, "0.0.0.0"), set(), owners(specs), ns)
                        for label, url in s.urls}
            if s.name == "jupyter":
                svc_urls["lab"] = u["lab"]
            if s.name == "dask-scheduler":
                svc_urls["dashboard"] = u["dashboard"]
            # state_dirs stay: lifecycle.prepare still sets up the host side (identity, tokens)
            out.append(replace(s, ports=(), health=None, unavailable=None,
                               urls=tuple(svc_urls.items())))
        return out

    # -- up -------------------------------------------------------------------------------
    def up(self, specs: list[ServiceSpec], timeout: float) -> Iterator[ev.Event]:
        ctx = self._need_ctx()
        yield ev.Event(ev.INFO, "", "k3s: waiting for a Ready node")
        nodes = self.k3s.wait_node_ready(timeout)
        yield ev.Event(ev.INFO, "", f"k3s: node(s) Ready: {', '.join(nodes)}")
        for tarball in image_tarballs(ctx):
            yield ev.Event(ev.INFO, "", f"k3s: importing {tarball.name}")
            self.k3s.import_image(tarball)
        try:
            yield from self._apply_and_wait(ctx, set(), ctx.facility.k3s.rollout_timeout)
        except BaseException:
            self._delete_workloads()
            raise

    def _apply_and_wait(self, ctx: Context, unchanged: set[str], timeout: float) -> Iterator[ev.Event]:
        objs = k8s.render(ctx, self.filled(ctx))
        self.k3s.apply(k8s.dump(objs))
        ns = namespace_name(ctx.facility)
        members = {s.name for s in _specs_of(ctx)}
        for obj in workloads_of(objs, ns):
            name = obj["metadata"]["name"]
            names = sorted(m for m in members if m == name or _group_of(m) == name) or [name]
            fresh = [m for m in names if m not in unchanged]
            if not fresh:
                continue
            for m in fresh:
                yield ev.Event(ev.STARTING, m, f"{obj['kind'].lower()}/{name}")
            t0 = time.monotonic()
            r = self.k3s.rollout_status(obj["kind"], name, ns, timeout)
            if r.code != 0:
                raise self._failure(name, r.stdout + r.stderr, timeout)
            for m in fresh:
                yield ev.Event(ev.HEALTHY, m, f"{time.monotonic() - t0:.1f}s")

    def _failure(self, workload: str, output: str, timeout: float) -> ServiceFailed:
        """Name the pod that holds the rollout up and show why: its state and its last log lines."""
        ns = self.namespace
        for pod in self.k3s.pods(ns, f"{self.selector},app.kubernetes.io/name={workload}"):
            for cs in pod.get("status", {}).get("containerStatuses", []):
                waiting = cs.get("state", {}).get("waiting", {})
                reason = waiting.get("reason", "")
                if reason in NOT_RUNNING or not cs.get("ready"):
                    pname = pod["metadata"]["name"]
                    tail = self.k3s.logs(ns, pname, cs["name"], previous=cs.get("restartCount", 0) > 0)
                    what = f"pod {pname} is in {reason}" if reason else f"pod {pname} is not ready"
                    if waiting.get("message"):
                        tail = [*tail, waiting["message"]]
                    return ServiceFailed(workload, f"did not roll out: {what}", tail[-LOG_TAIL:],
                                         f"k3s kubectl logs -n {ns} {pname} -c {cs['name']} --previous")
        lines = [line for line in output.splitlines() if line.strip()]
        return ServiceFailed(workload, f"did not roll out within {timeout:g}s", lines[-LOG_TAIL:])

    # -- what goes into the Secrets -------------------------------------------------------
    def filled(self, ctx: Context) -> Filled:
        from ..services import issuer
        secrets: dict[str, dict[str, bytes]] = {}
        ident = issuer.identity_dir(ctx)
        if ctx.facility.auth.enabled:
            from ..auth import token_file
            from ..auth.identity import ensure_cert
            secrets["identity"] = {str(p.relative_to(ident)): p.read_bytes() for p in sorted(ident.rglob("*"))
                                   if p.is_file() and not p.name.startswith(".") and p.name not in IDENTITY_SKIP
                                   and p.suffix != ".lock"}
            url = in_cluster_issuer(ctx)
            with tempfile.TemporaryDirectory(dir=ctx.state.run) as tmp:
                token = Path(tmp) / "data.token"
                token_file.write(token, ident, url, issuer.owner(),
                                 _seconds(ctx.facility.auth.token_lifetime))
                secrets["data-token"] = {"tokens/data.token": token.read_bytes()}
            cert, key = ensure_cert(ident, "ingress", hosts=tuple(hosts(ctx.facility).values()))
            secrets["ingress-tls"] = {"tls.crt": cert.read_bytes(), "tls.key": key.read_bytes()}
        if ctx.facility.jupyter.enabled:
            secrets["jupyter-token"] = {"jupyter_token": ctx.jupyter_token_file.read_bytes()}
        return Filled(secrets, keycache(ctx) if ctx.facility.auth.enabled and ctx.facility.xcache.enabled else None)

    # -- down -----------------------------------------------------------------------------
    def _delete_workloads(self) -> None:
        self.k3s.kubectl("delete", DELETE_KINDS, "-n", self.namespace, "-l", self.selector,
                         "--ignore-not-found", "--wait=true", "--timeout=120s", timeout=180)

    def down(self) -> Iterator[ev.Event]:
        yield ev.Event(ev.STOPPING, "", f"k3s: deleting the workloads of namespace {self.namespace}")
        self._delete_workloads()
        yield ev.Event(ev.STOPPED, "", "k3s: done; volumes kept (afbox k3s purge deletes them)")

    def purge(self) -> Iterator[ev.Event]:
        """Delete the namespace and its volumes: notebooks, cached and origin data."""
        yield ev.Event(ev.STOPPING, "", f"k3s: deleting namespace {self.namespace} and its volumes")
        self.k3s.kubectl("delete", "namespace", self.namespace, "--ignore-not-found", "--wait=true",
                         "--timeout=300s", timeout=360)
        yield ev.Event(ev.STOPPED, "", f"k3s: namespace {self.namespace} deleted")

    # -- queries --------------------------------------------------------------------------
    def running(self) -> bool:
        r = self.k3s.kubectl("get", WORKLOAD_KINDS, "-n", self.namespace, "-l", self.selector, "-o", "name")
        return bool(r.stdout.strip())

    def status(self) -> list[ServiceStatus]:
        rec = self.state.read() or {}
        pods = self.k3s.pods(self.namespace, self.selector)
        by_group: dict[str, list[dict]] = {}
        for p in sorted(pods, key=lambda p: p["metadata"]["name"]):
            by_group.setdefault(p["metadata"].get("labels", {}).get("app.kubernetes.io/name", ""), []).append(p)
        out = []
        for name in rec.get("services", {}):
            group = _group_of(name) or name
            index = _index(name) if _group_of(name) else 0
            members = by_group.get(group, [])
            out.append(pod_status(name, members[index] if index < len(members) else None))
        return out

    def log_path(self, name: str) -> Path:
        """Fetch the pod's log into the facility's log dir (where `afbox logs` reads) and return it."""
        group = _group_of(name) or name
        pods = sorted(self.k3s.pods(self.namespace, f"{self.selector},app.kubernetes.io/name={group}"),
                      key=lambda p: p["metadata"]["name"])
        path = self.state.logs / f"{name}.log"
        index = _index(name) if _group_of(name) else 0
        if index < len(pods):
            lines = self.k3s.logs(self.namespace, pods[index]["metadata"]["name"], group, tail=1000)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("".join(line + "\n" for line in lines))
        return path

    def restart(self, name: str) -> None:
        group = _group_of(name) or name
        kind = "statefulset" if group in ("xcache", "origin") else "deployment"
        self.k3s.kubectl("rollout", "restart", f"{kind}/{group}", "-n", self.namespace)

    def update(self, specs: list[ServiceSpec], timeout: float) -> Iterator[ev.Event]:
        """Scaling: apply the facility re-rendered with the new worker count; only the workers'
        Deployment changes, so only it rolls out."""
        rec = self.state.read() or {}
        ctx = self.ctx or context_from_record(rec, specs)
        before, after = set(rec.get("services", {})), {s.name for s in specs}
        for name in sorted(before - after):
            yield ev.Event(ev.STOPPED, name)
        yield from self._apply_and_wait(ctx, before & after, ctx.facility.k3s.rollout_timeout)

    def _need_ctx(self) -> Context:
        if self.ctx is None:
            raise AfboxError("the k3s backend renders from the facility's Context; it is given by lifecycle.up")
        return self.ctx


# -- helpers (pure unless they say otherwise) ------------------------------------------------
def owners(specs: list[ServiceSpec]) -> dict[int, str]:
    return {p: (_group_of(s.name) or s.name) for s in specs for _, p in s.ports}


def _group_of(name: str) -> str | None:
    m = REPLICATED.match(name)
    return m["group"] if m else None


def _index(name: str) -> int:
    """dask-worker-1 -> 0, dask-gpu-0 -> 0: the n-th pod of its group."""
    n = int(name.rsplit("-", 1)[1])
    return n - 1 if name.startswith("dask-worker-") else n


def _specs_of(ctx: Context) -> list[ServiceSpec]:
    from .. import services
    return services.render(ctx)


def _seconds(duration: str) -> float:
    from ..facility import parse_duration
    return parse_duration(duration)


def workloads_of(objs: list[dict], ns: str) -> list[dict]:
    return [o for o in objs if o["kind"] in ("Deployment", "StatefulSet") and o["metadata"].get("namespace") == ns]


def in_cluster_issuer(ctx: Context) -> str:
    from ..ports import port
    return f"https://issuer.{namespace_name(ctx.facility)}.svc:{port(ctx.base, 'issuer')}"


def keycache(ctx: Context) -> bytes:
    """libSciTokens' key cache holding the in-cluster issuer's public keys (as the local backend
    writes it for its xrootd)."""
    from ..auth.identity import load
    from ..auth.xrootd import keycache_path, write_keycache
    from ..services import issuer
    with tempfile.TemporaryDirectory(dir=ctx.state.run) as tmp:
        write_keycache(Path(tmp), in_cluster_issuer(ctx), load(issuer.identity_dir(ctx)).jwks())
        return keycache_path(Path(tmp)).read_bytes()


def image_tarballs(ctx: Context) -> list[Path]:
    d = ctx.facility.k3s.images_dir
    if not d:
        return []
    d = Path(d).expanduser()
    if not d.is_dir():
        raise AfboxError(f"[k3s] images_dir {d} is not a directory")
    return sorted(p for p in d.iterdir() if p.name.endswith((".tar", ".tar.gz", ".tar.zst")))


def context_from_record(rec: dict, specs: list[ServiceSpec]) -> Context:
    """The Context of a running facility with the worker count the new specs have (afbox scale)."""
    from .. import lifecycle
    from ..facility import Facility
    from ..gpu_model import Device
    fac = Facility.model_validate(rec["spec"])
    fac.dask.workers = sum(1 for s in specs if s.name.startswith("dask-worker-"))
    fac.dask.threads_per_worker = rec["dask"]["threads"]
    fac.dask.memory_limit = str(rec["dask"]["memory_limit"])
    devices = tuple(Device(**d) for d in (rec.get("gpus") or {}).get("workers", {}).values())
    return lifecycle.context(fac, gpus=devices)


def _since(stamp: str | None) -> float | None:
    if not stamp:
        return None
    return max(0.0, time.time() - calendar.timegm(time.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ")))


def pod_status(name: str, pod: dict | None) -> ServiceStatus:
    """One service's state from its pod, in the words of the local backend's states."""
    if pod is None:
        return ServiceStatus(name, "stopped", health="n/a", detail="no pod")
    st = pod.get("status", {})
    pname = pod["metadata"]["name"]
    cs = (st.get("containerStatuses") or [{}])[0]
    restarts = cs.get("restartCount", 0)
    state = cs.get("state", {})
    if "running" in state:
        ready = bool(cs.get("ready"))
        return ServiceStatus(name, "running", restarts=restarts, uptime=_since(state["running"].get("startedAt")),
                             health="healthy" if ready else "unhealthy", detail=f"pod {pname}")
    reason = state.get("waiting", {}).get("reason") or state.get("terminated", {}).get("reason") or st.get("phase", "")
    kind = "backoff" if reason in NOT_RUNNING else "exited" if "terminated" in state else "starting"
    return ServiceStatus(name, kind, restarts=restarts, health="unhealthy", detail=f"pod {pname}: {reason}")
