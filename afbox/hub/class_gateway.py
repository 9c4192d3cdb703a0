"""The gateway's settings in a class: students' clusters run as the student, small, culled when idle
(the gateway service adds these to its config when [masterclass] is on)."""
from __future__ import annotations

from typing import TYPE_CHECKING

from ..ports import GATEWAY_FIRST, SPAN
from ..units import parse_duration, parse_size
from . import isolation
from .paths import class_paths

if TYPE_CHECKING:
    from ..services.context import Context


def gateway_settings(ctx: Context) -> dict:
    """What the gateway's config gets in a class: students' clusters isolated and limited like their
    servers, at most dask_workers single-threaded workers each, stopped when idle."""
    m = ctx.facility.masterclass
    paths = class_paths(ctx.facility, ctx.origin_dir)
    mode, _ = isolation.choose(m.isolation, ctx.as_root, ctx.bwrap)
    return {
        "DaskGateway.backend_class": "afbox.hub.gateway_backend.ClassBackend",
        "ClassBackend.facility": ctx.facility.name, "ClassBackend.isolation": mode or "none",
        "ClassBackend.accounts_file": str(paths.accounts), "ClassBackend.homes_dir": str(paths.homes_dir),
        "ClassBackend.runtime_dir": str(paths.runtime), "ClassBackend.public_dir": str(paths.public),
        "ClassBackend.data_dir": str(paths.data), "ClassBackend.memory": parse_size(m.memory),
        "ClassBackend.cpus": m.cpus, "ClassBackend.slot_size": 3 + 2 * m.dask_workers,
        # a cluster per student: the window takes the named clusters' ports too (refused in a class)
        "FacilityBackend.port_count": SPAN - GATEWAY_FIRST,
        "FacilityBackend.clusters_directory": str(paths.clusters),  # not in the state dir, which students cannot enter
        "ClusterConfig.worker_cmd": [f"{ctx.bin_dir}/dask", "worker", "--no-nanny"],
        "ClusterConfig.worker_cores": 1, "ClusterConfig.worker_threads": 1,
        "ClusterConfig.worker_memory": parse_size(m.worker_memory),
        "ClusterConfig.cluster_max_workers": m.dask_workers,
        "ClusterConfig.idle_timeout": parse_duration(m.cluster_idle),
    }
