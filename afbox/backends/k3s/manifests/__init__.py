"""Kubernetes manifests for a facility: pure rendering of its placed ServiceSpecs into API objects.

`pod.in_pods(ctx, specs)` places specs in pods; `render(ctx, specs, filled)` returns plain dicts, in
apply order; `blank()` empties their secret values (a dry run); `dump()` writes them as YAML. Nothing here talks to a cluster (that is kubectl.py).
"""
from __future__ import annotations

from .pod import in_pods, namespace_name, pod_context
from .render import Filled, blank, dump, file_name, render, routes

__all__ = ["Filled", "blank", "dump", "file_name", "in_pods", "namespace_name", "pod_context", "render", "routes"]
