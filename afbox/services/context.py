"""Everything a service's rendering may depend on, gathered once so rendering stays pure."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..facility import Facility
from ..gpu_model import Device
from ..sizing import DaskSize
from ..state import FacilityState


@dataclass(frozen=True)
class Context:
    facility: Facility
    state: FacilityState
    dask: DaskSize
    bin_dir: str               # where the venv's console scripts live (dask, jupyter, supervisord)
    xrootd: str | None         # path of the xrootd binary, None when not installed
    xrootd_user: str | None    # when running as root, the user xrootd drops to
    cache_dir: Path            # cached data only
    xrootd_dir: Path           # xrootd's config and admin files, readable by its user
    cache_size: int
    as_root: bool = False
    gpus: tuple[Device, ...] = ()  # devices that get a GPU worker each
    origin_dir: Path = Path("/nonexistent")  # data the facility's own origin serves

    @property
    def base(self) -> int:
        return self.facility.facility.port_base

    @property
    def bind(self) -> str:
        return self.facility.facility.bind

    @property
    def jupyter_token_file(self) -> Path:
        return self.state.secrets / "jupyter_token"
