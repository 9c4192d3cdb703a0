"""Kubernetes manifests for a facility: pure rendering of its ServiceSpecs into API objects.

`render(ctx)` returns plain dicts, in apply order; `dump()` writes them as YAML. Nothing here
talks to a cluster (that is afbox.k3s and afbox.backends.k3s).
"""
from __future__ import annotations

from .manifests import dump, file_name, render

__all__ = ["dump", "file_name", "render"]
