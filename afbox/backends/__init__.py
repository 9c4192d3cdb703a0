"""Backends place ServiceSpecs somewhere. `get(name, state)` returns one.

Adding a backend is one package here and one line in REGISTRY, which the facility file's
`backend` key is checked against (plus its section of the facility file, if it has options).
"""
from __future__ import annotations

import importlib

from ..errors import AfboxError
from ..facility import BACKENDS
from ..state import FacilityState
from .base import Backend, ServiceStatus, Site

REGISTRY = BACKENDS


def get(name: str, state: FacilityState) -> Backend:
    if name not in REGISTRY:
        raise AfboxError(f"unknown backend {name!r}", hint="known backends: " + ", ".join(REGISTRY))
    module, _, cls = REGISTRY[name].partition(":")
    return getattr(importlib.import_module(module), cls)(state)


__all__ = ["REGISTRY", "Backend", "ServiceStatus", "Site", "get"]
