"""afbox: an analysis facility in a box — Dask, JupyterLab and an XCache, brought up with one command."""
from __future__ import annotations

from . import demo
from .client import client, data_env, gateway, record_data_env, record_security, scheduler_address, security

__version__ = "0.1.0"
__all__ = ["client", "demo", "data_env", "gateway", "record_data_env", "record_security", "scheduler_address", "security"]
