"""Dask preload: the scheduler's or worker's dashboard answers only holders of a facility token.

    dask scheduler --preload afbox.plugins.dask_dashboard ...   (AFBOX_AUTH_* set in the environment)
"""
from __future__ import annotations

import logging
import os

from ..auth.facility_auth import validator_from_env
from .http_guard import Guard
from ..auth.tokens import COMPUTE

log = logging.getLogger("afbox.http_guard")


def dask_setup(server) -> None:
    http = getattr(server, "http_server", None)
    if http is None:  # --no-dashboard
        return
    # a student's cluster (afbox.hub): its dashboard answers its owner only
    owner = os.environ.get("AFBOX_DASHBOARD_OWNER") or None
    http.request_callback = Guard(http.request_callback, validator_from_env(), COMPUTE, subject=owner)
    log.info("dashboard requires a facility token (%s)", COMPUTE)
