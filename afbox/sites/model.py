"""What a facility knows about other facilities (sites): the descriptor each one serves, the sites it
trusts (with what each was granted here and what each grants it there), and its invites."""
from __future__ import annotations

import re
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, field_validator

NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,30}$")  # a facility name: files, sections and users are named by it
SCOPE = re.compile(r"^(compute\.(create|read|modify|cancel)|jupyter\.access|storage\.(read|create|modify|stage):/\S*)$")


def check_scope(scope: str) -> str:
    """A scope a site may be granted, in WLCG form; raises ValueError naming the bad one."""
    if not SCOPE.match(scope) or "/.." in scope:
        raise ValueError(f"not a scope afbox grants: {scope!r} (e.g. compute.create, jupyter.access, "
                         "storage.read:/store/public)")
    return scope


def storage_paths(scopes, kind: str = "storage.read") -> list[str]:
    return [s.split(":", 1)[1] for s in scopes if s.startswith(kind + ":")]


def tokenable(offered, grants) -> list[str]:
    """What a token of ours for a site may carry: what the site offered us there, and reading our own
    data it caches (the storage paths we granted it): its cache for our data checks our issuer."""
    return list(dict.fromkeys([*offered, *(g for g in grants if g.startswith("storage.read:"))]))


def origin(url: str) -> str:
    """An https URL's scheme://host:port, the form an issuer has."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


class Model(BaseModel):
    model_config = ConfigDict(extra="ignore")


class GatewayInfo(Model):
    api: str        # https://host:port: the REST API and, on the same port, the scheduler proxy
    proxy: str      # gateway://host:port


class XrootdInfo(Model):
    root: str               # root://host:port: where this site serves its data to trusted peers
    namespace: str = "/"    # the paths it is origin for


class Resources(Model):
    workers: int = 0
    gpus: int = 0
    cache_fill: float | None = None


class Descriptor(Model):
    """GET <issuer>/.well-known/afbox-site"""
    site_id: str
    issuer: str
    jwks_uri: str
    audiences: list[str]
    ca_sha256: str
    ca_pem: str = ""
    gateway: GatewayInfo | None = None
    xrootd: XrootdInfo | None = None
    caches: dict[str, str] = {}     # peer site -> root:// of the cache kept here for that peer's data
    scopes: list[str] = []          # what this site can grant
    afbox_version: str = ""
    resources: Resources = Resources()
    granted: list[str] | None = None  # only to a trusted peer asking with its token: what it was granted

    @field_validator("site_id")
    @classmethod
    def _name(cls, v: str) -> str:
        if not NAME.match(v):
            raise ValueError(f"site id {v!r} is not a facility name")
        return v


class Site(Model):
    """A site this facility trusts (sites/<name>.json): what was fetched and what was decided."""
    name: str
    url: str
    ca_sha256: str
    ca_pem: str
    descriptor: Descriptor
    jwks: dict
    fetched_at: float
    added_at: float
    grants: list[str] = []      # what its tokens may do here (nothing until said)
    max_workers: int = 0        # per gateway cluster of its users here; 0: this facility's own limit
    offered: list[str] = []     # what it grants this facility there (its own answer, else its invite)
    cache_index: int = -1       # the slot of the cache kept here for its data; -1: none
    invite: str = ""            # the invite of ours it was added with

    @property
    def audience(self) -> str:
        return self.descriptor.audiences[0] if self.descriptor.audiences else self.url

    @property
    def offered_paths(self) -> list[str]:
        return storage_paths(self.offered)

    @property
    def granted_paths(self) -> list[str]:
        return storage_paths(self.grants)


class Invite(Model):
    """One of this facility's invites (sites/invites.json): what the site that uses it will get."""
    id: str
    grants: list[str]
    max_workers: int = 0
    created: float
    expires: float
    used_by: str = ""


class InviteCode(Model):
    """What an invite code carries to the other site: where we are, our CA, what we offer it."""
    v: int = 1
    url: str
    ca_sha256: str
    id: str
    grants: list[str]
    max_workers: int = 0
    expires: float
