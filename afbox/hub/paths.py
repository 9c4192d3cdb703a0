"""Where a class lives: homes and class data (user work, never removed but by `afbox class purge`),
the accounts and the hub's own state (in the facility's state dir)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..facility import Facility
from ..state import FacilityState, data_root


# k3s, in a student's pod (afbox.hub.kube): their token Secret, where it is mounted, the 0600 copy
# BEARER_TOKEN_FILE names; KubeSpawner expands {username} (escaped) as it does its pod names
TOKEN_SECRET = "afbox-token-{username}"
TOKEN_SOURCE = "/var/run/afbox/token"
TOKEN_FILE = "/tmp/afbox/data.token"


@dataclass(frozen=True)
class ClassPaths:
    state_dir: Path      # the facility's state dir
    root: Path           # <data>/afbox/<name>: homes, per-student runtime files, public files
    data: Path           # the class data students read
    homes_dir: Path

    @property
    def hub_dir(self) -> Path:
        """The hub's database and pid files."""
        return self.state_dir / "hub"

    @property
    def secrets(self) -> Path:
        return self.state_dir / "secrets" / "hub"

    @property
    def accounts(self) -> Path:
        return self.secrets / "accounts.json"

    @property
    def api_token(self) -> Path:
        """The token `afbox class` and the culler use against the hub's REST API."""
        return self.secrets / "api_token"

    @property
    def cookie_secret(self) -> Path:
        return self.secrets / "cookie_secret"

    @property
    def config(self) -> Path:
        return self.hub_dir / "jupyterhub_config.py"

    @property
    def runtime(self) -> Path:
        """One dir per student with their token, readable by that student only."""
        return self.root / "class-run"

    @property
    def public(self) -> Path:
        """What every student may read: the issuer's public keys, the facility CA."""
        return self.root / "class-public"

    @property
    def clusters(self) -> Path:
        """The gateway's clusters' work dirs (certificates, logs): each owned by its student."""
        return self.root / "class-clusters"

    def home(self, student: str) -> Path:
        return self.homes_dir / student

    def token_file(self, student: str) -> Path:
        return self.runtime / student / "data.token"


def class_paths(fac: Facility, origin_dir: Path | None = None) -> ClassPaths:
    m = fac.masterclass
    root = data_root() / fac.name
    origin = origin_dir or (Path(fac.origin.data_dir).expanduser() if fac.origin.data_dir else root / "origin")
    return ClassPaths(
        state_dir=FacilityState(fac.name).dir, root=root,
        data=Path(m.data_dir).expanduser() if m.data_dir else origin,
        homes_dir=Path(m.homes).expanduser() if m.homes else root / "homes")
