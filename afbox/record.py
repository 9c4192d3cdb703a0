"""The record: the typed state of a running facility (what runs, where, its URLs and ports,
credentials by path), written by `up` and read by everything else. User work is never in it.

Records carry a version. Version 1 (no "version" key) was written before services declared their
URLs and volumes: it is read by filling those facts in for the services of that time.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from .facility import Facility
from .spec import HealthCheck, ServiceSpec
from .state import FacilityState

VERSION = 2


class Part(BaseModel):
    model_config = ConfigDict(extra="ignore")


class ServiceRecord(Part):
    ports: dict[str, int] = {}
    urls: dict[str, str] = {}
    unavailable: str | None = None
    health: HealthCheck | None = None
    log: str = ""
    primary: str | None = None            # its URL for people (status' URL column)
    links: dict[str, str] = {}            # what it adds to the facility's URLs (status' "urls")
    stateful: bool = False
    replica_of: str = ""
    replica_index: int = 0


class TlsRecord(Part):
    ca: str
    cert: str
    key: str


class DaskRecord(Part):
    workers: int
    threads: int
    memory_limit: int
    tls: TlsRecord | None = None


class KeycacheRecord(Part):
    cache_home: str
    owner: tuple[int, int] | None = None


class AuthRecord(Part):
    issuer: str
    identity_dir: str
    trusted_issuers: list[str] = []
    token_file: str
    ca_dir: str
    xcache_keycache: KeycacheRecord | None = None


class GpuRecord(Part):
    report: dict[str, Any] | None = None
    workers: dict[str, dict[str, Any]] = {}


class ClusterRecord(Part):
    """A named cluster (afbox cluster up): its environment, place and what it runs."""
    env: str
    digest: str
    index: int
    workers: int
    threads: int
    bin_dir: str
    started: float
    image: str | None = None
    address: str = ""
    dashboard: str = ""
    versions: dict[str, str] = {}
    start_seconds: float | None = None


class SiteRecord(Part):
    """Another facility this one trusts (afbox site add): what it may do here, what it offers."""
    issuer: str
    grants: list[str] = []
    offered: list[str] = []
    max_workers: int = 0
    cache: str = ""            # root:// of the cache kept here for its data


class FacilityRecord(Part):
    version: int  # a record without one is of version 1
    facility: str
    profile: str = ""
    backend: str = "local"
    spec: Facility
    started: float
    workdir: str
    cache_dir: str
    cache_size: int
    port_base: int
    origin_dir: str | None = None
    auth: AuthRecord | None = None
    jupyter_token_file: str | None = None
    dask: DaskRecord
    services: dict[str, ServiceRecord] = {}
    gpus: GpuRecord = GpuRecord()
    clusters: dict[str, ClusterRecord] = {}
    site: dict[str, Any] = {}             # the backend's own facts about where it runs
    sites: dict[str, SiteRecord] = {}     # other facilities it trusts (afbox.sites)

    @field_validator("gpus", "clusters", "services", "site", "sites", mode="before")
    @classmethod
    def _null_is_empty(cls, v):
        return {} if v is None else v    # version 1's `scale` wrote "clusters": null

    @model_validator(mode="before")
    @classmethod
    def _upgrade(cls, data):
        if isinstance(data, dict) and "version" not in data:
            data = upgrade_v1(data)
        return data

    def urls(self) -> dict[str, str]:
        """The facility's URLs for people: each running service's links."""
        out: dict[str, str] = {}
        for svc in self.services.values():
            if not svc.unavailable:
                out.update(svc.links)
        return out

    def to_json(self) -> str:
        return json.dumps(self.model_dump(mode="json"), indent=2, sort_keys=True)


def service_record(spec: ServiceSpec, log: Path, replica_index: int = 0) -> ServiceRecord:
    urls = spec.url_dict
    return ServiceRecord(ports=spec.port_dict, urls=urls, unavailable=spec.unavailable, health=spec.health,
                         log=str(log), primary=spec.primary_url,
                         links={key: urls[label] for key, label in spec.links if label in urls},
                         stateful=spec.stateful, replica_of=spec.replica_of, replica_index=replica_index)


def service_records(specs: list[ServiceSpec], logs: Path) -> dict[str, ServiceRecord]:
    seen: dict[str, int] = {}
    out = {}
    for s in specs:
        index = seen.get(s.replica_of, 0)
        if s.replica_of:
            seen[s.replica_of] = index + 1
        out[s.name] = service_record(s, logs / f"{s.name}.log", index)
    return out


# -- version 1: the services of that time, by name ------------------------------------------------
V1_LINKS = {"dask-scheduler": {"scheduler": "scheduler", "dashboard": "dashboard"}, "jupyter": {"jupyter": "lab"},
            "xcache": {"xcache": "root"}, "gateway": {"gateway": "gateway"}}
V1_PRIMARY = ("lab", "scheduler", "root", "gateway", "issuer")
V1_REPLICA = re.compile(r"^(?P<group>dask-worker|dask-gpu)-(?P<n>\d+)$")


def upgrade_v1(data: dict) -> dict:
    data = dict(data)
    services = {}
    for name, svc in (data.get("services") or {}).items():
        svc = dict(svc)
        urls = svc.get("urls") or {}
        svc["links"] = {key: urls[label] for key, label in V1_LINKS.get(name, {}).items() if label in urls}
        svc["primary"] = next((urls[k] for k in V1_PRIMARY if k in urls), None)
        svc["stateful"] = name in ("xcache", "origin")
        owner_token = (data.get("auth") or {}).get("token_file")
        if owner_token and (h := svc.get("health")) and any(k == "token-file" for k, _ in h.get("headers") or ()):
            # Jupyter checked with its own token; since version 2 it takes facility tokens only (and
            # earlier ones took both): check it with the owner's facility token
            svc["health"] = {**h, "headers": [["bearer-file", owner_token] if k == "token-file" else [k, v]
                                              for k, v in h["headers"]]}
        if m := V1_REPLICA.match(name):
            svc["replica_of"] = m["group"]
            svc["replica_index"] = int(m["n"]) - (1 if m["group"] == "dask-worker" else 0)
        services[name] = svc
    data["services"] = services
    data["version"] = 1
    return data


# -- on disk --------------------------------------------------------------------------------------
def read(state: FacilityState) -> FacilityRecord | None:
    """The facility's record; None when there is none (or it cannot be read as one: see unreadable)."""
    return read_or_why(state)[0]


def read_or_why(state: FacilityState) -> tuple[FacilityRecord | None, str | None]:
    """The facility's record, or None and why a record that is there cannot be read (None when
    there simply is none)."""
    path = state.record_file
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None, None
    except OSError as e:
        return None, f"the facility's record {path} cannot be read: {e.strerror or e}"
    try:
        return FacilityRecord.model_validate_json(text), None
    except ValidationError as e:
        first = e.errors()[0] if e.errors() else {}
        where = ".".join(str(x) for x in first.get("loc", ())) or "record"
        return None, f"the facility's record {path} cannot be read: {where}: {first.get('msg', e)}"
    except ValueError as e:
        return None, f"the facility's record {path} cannot be read: {e}"


def set_aside(state: FacilityState) -> Path | None:
    """Move an unreadable record out of the way (kept beside it for a look), so that the facility
    can be started afresh; returns where it went."""
    path = state.record_file
    if not path.exists():
        return None
    aside = path.with_name(f"{path.name}.unreadable")
    path.replace(aside)
    return aside


def write(state: FacilityState, rec: FacilityRecord) -> None:
    state.dir.mkdir(parents=True, exist_ok=True)
    tmp = state.record_file.with_suffix(".tmp")
    tmp.write_text(rec.model_copy(update={"version": VERSION}).to_json())
    tmp.replace(state.record_file)
