"""The one API the CLI and the console call: bring a facility up, change it, stop it, say how it is.

Data flows one way: profile + overrides -> Facility -> ServiceSpecs -> Backend -> Events/Record.
"""
from __future__ import annotations

from .actions import down, in_allocation, log_path, placed, purge, restart, scale, up
from .contexts import context, context_from, detect_gpus, running
from .status import ServiceRow, Status, jupyter_login_url, refresh, status

__all__ = ["ServiceRow", "Status", "context", "context_from", "detect_gpus", "down", "in_allocation",
           "jupyter_login_url", "log_path", "placed", "purge", "refresh", "restart", "running", "scale", "status",
           "up"]
