"""afbox k3s install/token/uninstall, afbox join, and `up --dry-run` manifests."""
from __future__ import annotations

COMMANDS: list = []


def dry_run(fac, output) -> None:
    from ..errors import AfboxError
    raise AfboxError("the k3s backend is not built yet")
