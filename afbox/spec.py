"""ServiceSpec: what a service needs to run, independent of where it runs."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class HealthCheck:
    """How to tell a service is ready. kind: http (2xx from url), tcp (connect), xrootd (handshake)."""
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
    image: str | None = None
    state_dirs: tuple[str, ...] = ()
    cwd: str | None = None
    urls: tuple[tuple[str, str], ...] = ()
    # A service whose binary is missing is "unavailable" (with the hint) rather than an error.
    unavailable: str | None = None
    # Stop signal for the supervisor; xrootd and dask both stop cleanly on TERM.
    stop_signal: str = "TERM"

    @property
    def env_dict(self) -> dict[str, str]:
        return dict(self.env)

    @property
    def port_dict(self) -> dict[str, int]:
        return dict(self.ports)

    @property
    def url_dict(self) -> dict[str, str]:
        return dict(self.urls)
