"""The [masterclass] section of the facility spec: who is in the class and what each student gets."""
from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from .units import parse_duration, parse_size

USERNAME = re.compile(r"^[a-z][a-z0-9_-]{0,19}$")


class MasterclassSection(BaseModel):
    """Classroom mode: JupyterHub with student accounts and a Dask cluster each (see afbox/hub/)."""
    model_config = ConfigDict(extra="forbid")
    enabled: bool = False
    students: int = Field(0, ge=0, le=500, description="accounts student01..studentNN")
    roster: str = ""                  # CSV file: username[,display_name], one student a line
    tutors: list[str] = ["tutor"]     # admins of the hub
    listen: str = "127.0.0.1"         # the address students' browsers reach the hub at (a LAN address)
    tls_cert: str = ""                # a certificate for the hub (PEM); default: one from the facility CA
    tls_key: str = ""
    notebooks: str = ""               # copied into each new home; default: the demo analysis notebook
    data_dir: str = ""                # the class data, read-only for students; default: the facility origin's
    homes: str = ""                   # default: <data>/afbox/<name>/homes
    isolation: Literal["auto", "users", "bwrap"] = "auto"
    memory: str = "2GiB"              # per student: server, kernels and Dask together
    cpus: float = Field(1.0, gt=0)
    dask_workers: int = Field(2, ge=1, le=8)   # at most, per student cluster
    worker_memory: str = "768MiB"
    admit_free: str = "400MiB"        # a server starts only while this much memory is free
    concurrent_spawns: int = Field(0, ge=0)   # 0: half the cores, at least 2
    server_idle: str = "30m"          # the culler stops servers idle this long
    cluster_idle: str = "15m"         # the gateway stops student clusters idle this long
    prestart: int = Field(0, ge=0)    # servers started for the first N students when the hub comes up
    token_lifetime: str = "2h"

    @field_validator("listen")
    @classmethod
    def _address(cls, v: str) -> str:
        import ipaddress
        try:
            ipaddress.ip_address(v)
        except ValueError:
            raise ValueError(f"listen must be an IP address of this machine, got {v!r}") from None
        return v

    @field_validator("tutors")
    @classmethod
    def _names(cls, v: list[str]) -> list[str]:
        for name in v:
            if not USERNAME.match(name):
                raise ValueError(f"tutor name {name!r}: lowercase letters, digits, - and _, at most 20")
        return v

    @field_validator("memory", "worker_memory", "admit_free")
    @classmethod
    def _size(cls, v: str) -> str:
        parse_size(v)
        return v

    @field_validator("server_idle", "cluster_idle", "token_lifetime")
    @classmethod
    def _dur(cls, v: str) -> str:
        parse_duration(v)
        return v
