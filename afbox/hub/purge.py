"""`afbox class purge`: remove a class for good, once its facility is down: homes, accounts, the
students' unix users and cgroups, the hub's database. Nothing else ever removes these."""
from __future__ import annotations

import os
import pwd
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from .. import backends, record
from ..errors import AfboxError
from ..state import FacilityState
from . import isolation, limits, roster
from .setup import load_settings, paths_of


@dataclass
class Plan:
    facility: str
    dirs: list[Path] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    users: list[str] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)
    cgroups: limits.Cgroups | None = None

    def lines(self) -> list[str]:
        out = [f"dir   {d}" for d in self.dirs] + [f"file  {f}" for f in self.files]
        return out + [f"unix user {u}" for u in self.users]


def plan(name: str) -> Plan:
    state = FacilityState(name)
    rec = record.read(state)
    if rec and backends.get(rec.backend, state).running():
        raise AfboxError(f"facility {name!r} is running: its students may be working",
                         hint=f"stop it first: afbox down --name {name}")
    config = state.dir / "hub" / "jupyterhub_config.py"
    if not config.exists():
        raise AfboxError(f"facility {name!r} has no class to purge")
    settings = load_settings(config)
    paths = paths_of(settings)
    accts = roster.load(paths.accounts)
    out = Plan(name, cgroups=limits.detect(os.geteuid() == 0, f"afbox/{name}"))
    out.dirs = [d for d in (paths.homes_dir, paths.runtime, paths.public, paths.clusters, paths.hub_dir) if d.exists()]
    out.files = [f for f in (paths.accounts, paths.accounts.with_suffix(".lock"), paths.api_token,
                             paths.cookie_secret) if f.exists()]
    for a in accts.accounts.values():
        unix = isolation.unix_name(name, a.name)
        try:
            pwd.getpwnam(unix)
            out.users.append(unix)
        except KeyError:
            pass
        out.groups.append(a.name)
    return out


def purge(p: Plan) -> Iterator[str]:
    for d in p.dirs:
        shutil.rmtree(d)
        yield f"removed {d}"
    for f in p.files:
        f.unlink()
        yield f"removed {f}"
    for u in p.users:
        isolation.remove_user(u)
        yield f"removed unix user {u}"
    for g in p.groups:
        p.cgroups.remove(g)
    yield f"class {p.facility!r} purged"
