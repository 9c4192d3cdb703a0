"""ServiceSpec: everything a backend needs to run a service, independent of where it runs.

A backend reads only these facts; it never asks which service a spec is. Specs cross process
boundaries (the slurm backend keeps the placed ones) as JSON through `to_json`/`from_json`.
"""
from __future__ import annotations

from dataclasses import dataclass

from pydantic import TypeAdapter


@dataclass(frozen=True)
class HealthCheck:
    """How to tell a service is ready. kind: http, https (2xx from url), tcp (connect), xrootd
    (handshake), dask-worker (the scheduler lists the worker named in headers)."""
    kind: str
    host: str = "127.0.0.1"
    port: int = 0
    path: str = "/"
    headers: tuple[tuple[str, str], ...] = ()
    timeout: float = 60.0
    ca_file: str | None = None  # https: the CA to verify the service's certificate with

    @property
    def url(self) -> str:
        scheme = "https" if self.kind == "https" else "http"
        return f"{scheme}://{self.host}:{self.port}{self.path}"


@dataclass(frozen=True)
class ConfigFile:
    """A file the service reads, written by the backend before the service starts: on disk by the
    local backend, as a ConfigMap or Secret item at the same path by k3s."""
    path: str
    text: str = ""
    # instead of text: a copy of this file of the facility's secrets dir (relative path there), for a
    # service whose own user must read it (xrootd's TLS key)
    secret: str = ""
    # instead of text: content made where the service runs (kind, e.g. "scitokens-keycache" for
    # libSciTokens' key cache); the local backend finds it made by the facility's credentials step
    fill: str = ""
    mode: int = 0o644
    writable: bool = False      # the service writes to it too: it lives in a writable dir


@dataclass(frozen=True)
class Volume:
    """Data that outlives the service (a cache, served data, notebooks): the local backend keeps the
    dir, k3s gives it a persistent claim."""
    name: str
    path: str
    size: int = 0               # bytes a claim asks for; 0: the backend's default
    shared: bool = False        # mounted by several services: a claim of its own, not one per pod
    read_only: bool = False     # the service only reads it
    min_filesystem: int = 0     # bytes: the service refuses to start on a smaller filesystem


@dataclass(frozen=True)
class Expose:
    """A port people open in a browser. On k3s it is routed through the ingress at the facility's
    host (subdomain "") or <subdomain>.<host>; the URL labelled `url` becomes that address + path."""
    port: str
    subdomain: str = ""
    url: str = ""
    path: str = "/"


@dataclass(frozen=True)
class Launcher:
    """Dask clusters a service starts on demand for its users (the Dask gateway's). A backend with a
    scheduler of its own (k3s) runs each cluster's scheduler and workers as its own pods, with
    limits, through the service's support for that (`kind`: "dask-gateway", dask-gateway-server's
    Kubernetes backend) instead of as the service's children."""
    kind: str
    config: str                         # the service's config file (a ConfigFile path) to add that to
    env: tuple[tuple[str, str], ...] = ()  # what the clusters' processes get
    api: str = ""                       # label of the port the clusters' schedulers report to
    proxy: tuple[str, ...] = ()         # labels of the ports its proxy serves (HTTP, then TCP)


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    argv: tuple[str, ...]
    env: tuple[tuple[str, str], ...] = ()
    ports: tuple[tuple[str, int], ...] = ()
    health: HealthCheck | None = None
    needs: tuple[str, ...] = ()
    # "healthy": start once every need is healthy; "started": once each is spawned, for services
    # that retry their connection themselves (dask workers), so their start-up overlaps.
    needs_state: str = "healthy"
    cpus: float = 0
    memory: int = 0
    image: str | None = None      # the container image it runs in ([runtime]), if any
    state_dirs: tuple[str, ...] = ()  # scratch and run-time dirs it writes (created before it starts)
    cwd: str | None = None
    urls: tuple[tuple[str, str], ...] = ()
    # A service whose binary is missing is "unavailable" (with the hint) rather than an error.
    unavailable: str | None = None
    # Stop signal for the supervisor; xrootd and dask both stop cleanly on TERM.
    stop_signal: str = "TERM"
    primary: str = ""             # the label of "its" URL (status' URL column); "" the first one
    links: tuple[tuple[str, str], ...] = ()  # facility URL key (status' "urls") -> label of its URL
    files: tuple[ConfigFile, ...] = ()
    volumes: tuple[Volume, ...] = ()
    singleton: bool = False       # a second copy must never run, not even during an update
    replica_of: str = ""          # one of identical replicas of this group (Dask workers)
    # a replica's command before what a launcher adds per task (name, host, ports, scratch) and
    # before its container runtime: where a batch system starts the replicas itself (SLURM)
    task: tuple[str, ...] = ()
    expose: tuple[Expose, ...] = ()
    image_role: str = "analysis"  # which of the facility's images runs it elsewhere: analysis, xrootd
    gpu: str = ""                 # vendor of the one GPU it needs (nvidia, amd)
    run_as: str = ""              # the user it drops to (xrootd as root): its dirs and files are its own
    manages_pods: bool = False    # it starts processes of its own for others (a hub): on k3s, pods in its namespace
    launches: Launcher | None = None  # clusters it starts on demand (see Launcher)
    sockets: tuple[str, ...] = ()  # unix sockets it binds on this host (a path holds at most 107 bytes)
    # compute in the background (Dask, the gateway's clusters): where processes share a few cores with
    # the person's own tools (JupyterLab, kernels), it yields the CPU to them (local: a lower priority)
    background: bool = False

    @property
    def env_dict(self) -> dict[str, str]:
        return dict(self.env)

    @property
    def port_dict(self) -> dict[str, int]:
        return dict(self.ports)

    @property
    def url_dict(self) -> dict[str, str]:
        return dict(self.urls)

    @property
    def primary_url(self) -> str | None:
        urls = self.url_dict
        return urls.get(self.primary) or next(iter(urls.values()), None)

    @property
    def stateful(self) -> bool:
        """It keeps data of its own (a cache, served data): k3s runs it as a StatefulSet."""
        return any(not v.shared for v in self.volumes)


_SPECS = TypeAdapter(list[ServiceSpec])


def to_json(specs: list[ServiceSpec]) -> str:
    return _SPECS.dump_json(specs).decode()


def from_json(text: str) -> list[ServiceSpec]:
    return _SPECS.validate_json(text)
