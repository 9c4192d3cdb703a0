"""The k3s backend: the facility's ServiceSpecs as Kubernetes objects, applied with the k3s binary.

Services render for the pods' view (`view`), `place` points their addresses at each other's Service
names, and `up` renders every object from exactly those specs (afbox.backends.k3s.manifests), fills
the Secrets from the facility's state (keys go through stdin, never argv or a file), applies them
server-side and waits for each rollout. `down` deletes the workloads and keeps the namespace with
its volumes (notebooks, cache, origin data); only `purge` deletes the namespace and that data.
"""
from __future__ import annotations

import calendar
import json
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from ... import events as ev
from ... import record
from ...auth import token_file
from ...auth.facility_auth import ENV_ISSUER
from ...auth.identity import SERVER_CERT, SERVER_KEY, ensure_cert
from ...auth.xrootd import KEYCACHE_FILL, make_keycache
from ...errors import AfboxError, ServiceFailed
from ...services import issuer
from ...services.context import Context
from ...spec import ServiceSpec
from ...state import FacilityState
from ...units import parse_duration
from ..base import Hooks, ServiceStatus
from . import manifests
from .kubectl import LOG_TAIL, K3s
from .manifests.objects import FACILITY_LABEL
from .manifests import images, secrets
from .manifests.pod import host_path
from . import install
from .install import agent_images_dir, place_images

WORKLOAD_KINDS = "deployments,statefulsets"
# down deletes what a facility's `up` created, except its volumes; then the pods no workload owns
# (a class's hub starts students' servers as pods of their own, labelled with the facility)
DELETE_KINDS = ("deployments,statefulsets,services,configmaps,secrets,ingresses,networkpolicies,"
                "serviceaccounts,roles,rolebindings,ingressroutes.traefik.io,pods")
CLUSTER_KIND = "daskclusters.gateway.dask.org"  # what dask-gateway's Kubernetes backend creates
NOT_RUNNING = {"CrashLoopBackOff", "ImagePullBackOff", "ErrImagePull", "CreateContainerConfigError",
               "RunContainerError", "InvalidImageName"}
# The CA key never leaves the host; the ingress' and the pods' certificates go in Secrets of their
# own, and the host's server certificate (localhost only) is replaced in each pod by its own.
IDENTITY_SKIP = ("ca-key.pem", "ingress.pem", "ingress-key.pem", SERVER_CERT, SERVER_KEY)
POD_CERT = "pod-"  # prefix of the certificates made for pods' Services


class K3sBackend(Hooks):
    name = "k3s"
    named_clusters = False

    def __init__(self, state: FacilityState, k3s: K3s | None = None):
        self.state = state
        self._k3s = k3s

    @property
    def k3s(self) -> K3s:
        if self._k3s is None:
            self._k3s = K3s()
        return self._k3s

    @property
    def namespace(self) -> str:
        rec = record.read(self.state)
        return manifests.namespace_name(rec.spec) if rec else f"afbox-{self.state.name}"

    @property
    def selector(self) -> str:
        return f"{FACILITY_LABEL}={self.state.name}"

    def run_module(self, service: str, module: str, *args: str, timeout: float = 120) -> str:
        """`python -m module args` in the service's pod (its container of the same name); its stdout.
        What it prints passes through this pipe only (the class sheet's codes: afbox class sheet)."""
        from .manifests.pod import VENV_BIN
        return self.k3s.kubectl("exec", "-n", self.namespace, f"deployment/{service}", "-c", service, "--",
                                f"{VENV_BIN}/python", "-m", module, *args, timeout=timeout).stdout

    # -- before anything runs -------------------------------------------------------------------
    def view(self, ctx: Context) -> Context:
        return manifests.pod_context(ctx)

    def place(self, ctx: Context, specs: list[ServiceSpec]) -> list[ServiceSpec]:
        return manifests.in_pods(self.view(ctx), specs)

    def preflight(self, ctx: Context, specs: list[ServiceSpec]) -> None:
        return None  # the pods' ports are the cluster's, not this host's

    # -- up -------------------------------------------------------------------------------------
    def up(self, ctx: Context, specs: list[ServiceSpec]) -> Iterator[ev.Event]:
        yield ev.Event(ev.INFO, "", "k3s: waiting for a Ready node")
        nodes = self.k3s.wait_node_ready(ctx.facility.k3s.rollout_timeout)
        yield ev.Event(ev.INFO, "", f"k3s: node(s) Ready: {', '.join(nodes)}")
        tarballs = image_tarballs(ctx)
        if tarballs:
            # k3s imports what its agent images dir holds whenever a node starts; this node takes
            # them now too (`afbox join --images` puts them on the others)
            yield ev.Event(ev.INFO, "", f"k3s: placing {len(tarballs)} image tarball(s) in {agent_images_dir(data_dir())}")
            try:
                place_images(tarballs, data_dir())
            except OSError as e:
                raise AfboxError(f"cannot place the air-gap set in {agent_images_dir(data_dir())}: {e.strerror}",
                                 hint="k3s' data dir is root's: run afbox up as root") from None
        for tarball in tarballs:
            yield ev.Event(ev.INFO, "", f"k3s: importing {tarball.name}")
            self.k3s.import_image(tarball)
        try:
            yield from self._apply_and_wait(ctx, specs, set())
        except BaseException:
            self._delete_workloads(manifests.namespace_name(ctx.facility))
            raise

    def objects(self, ctx: Context, specs: list[ServiceSpec]) -> list[dict]:
        """Exactly what `up` applies (a dry run shows it with manifests.blank)."""
        objs = manifests.render(ctx, specs, self.filled(ctx, specs))
        missing = images.unpinned(objs) if ctx.facility.k3s.images_dir else []
        if missing:
            raise AfboxError(f"the air-gap set {ctx.facility.k3s.images_dir} lacks {', '.join(missing)}",
                             hint="save each image there as an OCI archive: podman save --format oci-archive "
                                  "-o DIR/NAME.tar IMAGE (see images/README.md)")
        return objs

    def _apply_and_wait(self, ctx: Context, specs: list[ServiceSpec], unchanged: set[str]) -> Iterator[ev.Event]:
        objs = self.objects(ctx, specs)
        self.k3s.apply(manifests.dump(objs))
        ns = manifests.namespace_name(ctx.facility)
        timeout = ctx.facility.k3s.rollout_timeout
        for obj in workloads_of(objs, ns):
            name = obj["metadata"]["name"]
            fresh = [s.name for s in specs if (s.replica_of or s.name) == name and s.name not in unchanged]
            helper = not any((s.replica_of or s.name) == name for s in specs)  # a launcher's controller
            if not fresh and not (helper and not unchanged):
                continue
            for m in fresh:
                yield ev.Event(ev.STARTING, m, f"{obj['kind'].lower()}/{name}")
            t0 = time.monotonic()
            r = self.k3s.rollout_status(obj["kind"], name, ns, timeout)
            if r.code != 0:
                raise self._failure(ns, name, r.stdout + r.stderr, timeout)
            for m in fresh:
                yield ev.Event(ev.HEALTHY, m, f"{time.monotonic() - t0:.1f}s")

    def _failure(self, ns: str, workload: str, output: str, timeout: float) -> ServiceFailed:
        """Name the pod that holds the rollout up and show why: its state and its last log lines."""
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

    # -- what goes into the Secrets and fills ----------------------------------------------------
    def filled(self, ctx: Context, specs: list[ServiceSpec]) -> manifests.Filled:
        found: dict[str, dict[str, bytes]] = {}
        ident = ctx.identity_dir
        if ctx.facility.auth.enabled:
            found["identity"] = {str(p.relative_to(ident)): p.read_bytes() for p in sorted(ident.rglob("*"))
                                 if p.is_file() and not p.name.startswith((".", POD_CERT))
                                 and p.name not in IDENTITY_SKIP and p.suffix != ".lock"}
            ns = manifests.namespace_name(ctx.facility)
            for w in secrets.server_workloads(specs):
                cert, key = ensure_cert(ident, POD_CERT + w, hosts=secrets.server_hosts(w, ns))
                found[secrets.server_secret(w)] = {"tls.crt": cert.read_bytes(), "tls.key": key.read_bytes()}
            # the issuer as the pods know it: what their token checks are told
            url = next((s.env_dict[ENV_ISSUER] for s in specs if ENV_ISSUER in s.env_dict), issuer.url(ctx))
            with tempfile.TemporaryDirectory(dir=ctx.state.run) as tmp:
                token = Path(tmp) / "data.token"
                token_file.write(token, ident, url, issuer.owner(), parse_duration(ctx.facility.auth.token_lifetime))
                found["data-token"] = {"tokens/data.token": token.read_bytes()}
        hosts = tuple(h for h, _, _ in manifests.routes(ctx, specs))
        if hosts and ctx.facility.auth.enabled:
            cert, key = ensure_cert(ident, "ingress", hosts=hosts)
            found["ingress-tls"] = {"tls.crt": cert.read_bytes(), "tls.key": key.read_bytes()}
        if ctx.jupyter_token_file.exists():
            found["jupyter-token"] = {"jupyter_token": ctx.jupyter_token_file.read_bytes()}
        fills = {}
        for s in specs:
            for f in s.files:
                if f.fill == KEYCACHE_FILL:
                    with tempfile.TemporaryDirectory(dir=ctx.state.run) as tmp:
                        make_keycache(f.text, Path(tmp) / "keys", local=lambda p: host_path(ctx, p))
                        fills[f.path] = (Path(tmp) / "keys").read_bytes()
        d = ctx.facility.k3s.images_dir
        return manifests.Filled(found, fills, images.air_gap(Path(d).expanduser()) if d else {})

    # -- down -----------------------------------------------------------------------------------
    def _delete_workloads(self, ns: str | None = None) -> None:
        # the Dask gateway's clusters first: their pods go with them (absent where no gateway ran)
        self.k3s.kubectl("delete", CLUSTER_KIND, "-n", ns or self.namespace, "-l", self.selector,
                         "--ignore-not-found", "--wait=true", "--timeout=120s", timeout=180, check=False)
        self.k3s.kubectl("delete", DELETE_KINDS, "-n", ns or self.namespace, "-l", self.selector,
                         "--ignore-not-found", "--wait=true", "--timeout=120s", timeout=180)

    def down(self) -> Iterator[ev.Event]:
        ns = self.namespace
        yield ev.Event(ev.STOPPING, "", f"k3s: deleting the workloads of namespace {ns}")
        self._delete_workloads(ns)
        yield ev.Event(ev.STOPPED, "", "k3s: done; volumes kept (afbox k3s purge deletes them)")

    def purge_target(self) -> str:
        """What purge would delete, in words; first makes sure k3s is there to delete it."""
        self.k3s  # noqa: B018 - raises, with the install hint, when k3s is not installed
        return f"namespace {self.namespace}"

    def purge(self) -> Iterator[ev.Event]:
        """Delete the namespace and its volumes: notebooks, cached and origin data."""
        ns = self.namespace
        yield ev.Event(ev.STOPPING, "", f"k3s: deleting namespace {ns} and its volumes")
        self.k3s.kubectl("delete", "namespace", ns, "--ignore-not-found", "--wait=true", "--timeout=300s",
                         timeout=360)
        yield ev.Event(ev.STOPPED, "", f"k3s: namespace {ns} deleted")

    # -- queries --------------------------------------------------------------------------------
    def running(self) -> bool:
        r = self.k3s.kubectl("get", WORKLOAD_KINDS, "-n", self.namespace, "-l", self.selector, "-o", "name")
        return bool(r.stdout.strip())

    def _pods_of(self, ns: str, group: str | None = None) -> dict[str, list[dict]]:
        sel = self.selector + (f",app.kubernetes.io/name={group}" if group else "")
        by_group: dict[str, list[dict]] = {}
        for p in sorted(self.k3s.pods(ns, sel), key=lambda p: p["metadata"]["name"]):
            by_group.setdefault(p["metadata"].get("labels", {}).get("app.kubernetes.io/name", ""), []).append(p)
        return by_group

    def status(self) -> list[ServiceStatus]:
        rec = record.read(self.state)
        if not rec:
            return []
        pods = self._pods_of(manifests.namespace_name(rec.spec))
        out = []
        for name, svc in rec.services.items():
            members = pods.get(svc.replica_of or name, [])
            i = svc.replica_index
            out.append(pod_status(name, members[i] if i < len(members) else None))
        return out

    def log_path(self, name: str) -> Path:
        """Fetch the pod's log into the facility's log dir (where `afbox logs` reads) and return it."""
        path = self.state.logs / f"{name}.log"
        rec = record.read(self.state)
        svc = rec.services.get(name) if rec else None
        if not svc:
            return path
        group = svc.replica_of or name
        ns = manifests.namespace_name(rec.spec)
        pods = self._pods_of(ns, group).get(group, [])
        if svc.replica_index < len(pods):
            lines = self.k3s.logs(ns, pods[svc.replica_index]["metadata"]["name"], group, tail=1000)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("".join(line + "\n" for line in lines))
        return path

    def restart(self, name: str) -> None:
        rec = record.read(self.state)
        svc = rec.services[name]
        kind = "statefulset" if svc.stateful else "deployment"
        self.k3s.kubectl("rollout", "restart", f"{kind}/{svc.replica_of or name}", "-n",
                         manifests.namespace_name(rec.spec))

    def update(self, ctx: Context, specs: list[ServiceSpec]) -> Iterator[ev.Event]:
        """Scaling: apply the facility re-rendered with the new worker count; only the workers'
        Deployment changes, so only it rolls out."""
        rec = record.read(self.state)
        before, after = set(rec.services if rec else ()), {s.name for s in specs}
        for name in sorted(before - after):
            yield ev.Event(ev.STOPPED, name)
        yield from self._apply_and_wait(ctx, specs, before & after)


# -- helpers (pure unless they say otherwise) ------------------------------------------------
def workloads_of(objs: list[dict], ns: str) -> list[dict]:
    return [o for o in objs if o["kind"] in ("Deployment", "StatefulSet") and o["metadata"].get("namespace") == ns]


def image_tarballs(ctx: Context) -> list[Path]:
    d = ctx.facility.k3s.images_dir
    if not d:
        return []
    if not Path(d).expanduser().is_dir():
        raise AfboxError(f"[k3s] images_dir {d} is not a directory")
    return install.image_tarballs(Path(d))


def data_dir() -> Path:
    """This node's k3s data dir: where afbox installed it, else k3s' default."""
    from ...state import state_root
    try:
        return Path(json.loads((state_root() / "k3s" / "installed.json").read_text())["data_dir"])
    except (OSError, ValueError, KeyError):
        return install.DATA_DIR


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
