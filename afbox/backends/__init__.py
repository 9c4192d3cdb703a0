"""Backends place ServiceSpecs somewhere. `get(name, state)` returns one."""
from __future__ import annotations

from ..errors import AfboxError
from ..state import FacilityState
from .base import Backend, ServiceStatus


def get(name: str, state: FacilityState) -> Backend:
    if name == "local":
        from .local import LocalBackend
        return LocalBackend(state)
    if name == "slurm":
        from .slurm import SlurmBackend
        return SlurmBackend(state)
    if name == "k3s":
        from .k3s import K3sBackend
        return K3sBackend(state)
    raise AfboxError(f"unknown backend {name!r}", hint="known backends: local, slurm, k3s")


__all__ = ["Backend", "ServiceStatus", "get"]
