"""What the user asked for, normalized (requirement lines, a lock file or an image), and the digest
that addresses the environment built from it."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from ..errors import AfboxError, ConfigError

RECIPE = 2  # bump when what afbox adds changes, so older environments are not reused for it
# what the afbox side needs in every environment, and what an environment without it goes without
NEEDED_FOR = {
    "distributed": "no Dask cluster",
    "ipykernel": "no Jupyter kernel",
    "xrootd": "no root:// reads", "fsspec-xrootd": "no root:// reads",
    # the token check afbox puts in front of a named cluster's dashboards (afbox.plugins.dask_dashboard)
    "pyjwt": "no named cluster with [auth]", "cryptography": "no named cluster with [auth]",
    "httpx": "no named cluster with [auth]",
}
NEEDED = tuple(NEEDED_FOR)
DASHBOARD_CHECK = ("pyjwt", "cryptography", "httpx")


@dataclass(frozen=True)
class Source:
    """What the user asked for: requirement lines, a pixi/conda lock file (kind + bytes digest), or
    a container image (its reference, or the absolute path of a .sif / sandbox dir)."""
    kind: str                        # "requirements", "pixi", "conda", "image"
    requirements: tuple[str, ...] = ()
    lock: str = ""                   # path of the lock / environment file
    lock_digest: str = ""
    image: str = ""


def parse_requirements(lines: list[str], where: str = "requirements") -> list[Requirement]:
    """Plain requirement lines (comments and blanks skipped); anything else is a `file:line:` error."""
    out = []
    for n, raw in enumerate(lines, 1):
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("-"):
            raise ConfigError(f"{where}:{n}: options such as {line.split()[0]!r} are not supported",
                              hint="list plain requirements (name, version specifiers, markers), one a line")
        try:
            req = Requirement(line)
        except InvalidRequirement as e:
            raise ConfigError(f"{where}:{n}: {e}") from None
        req.name = canonicalize_name(req.name)
        out.append(req)
    return out


def additions(reqs: list[Requirement]) -> list[str]:
    """What afbox adds to the user's stack when it is missing. distributed follows a pinned dask
    exactly (both are released together under one version), so an older stack gets its own."""
    names = {r.name for r in reqs}
    out = []
    for need in NEEDED:
        if need in names:
            continue
        if need == "distributed":
            dask = next((r for r in reqs if r.name == "dask"), None)
            pins = [s.version for s in dask.specifier if s.operator in ("==", "===")] if dask else []
            if len(pins) == 1 and "*" not in pins[0]:
                out.append(f"distributed=={pins[0]}")
                continue
        out.append(need)
    return out


def digest(source: Source, python: str, added: list[str]) -> str:
    key = {"recipe": RECIPE, "python": python, "kind": source.kind, "requirements": sorted(source.requirements),
           "lock": source.lock_digest, "added": sorted(added)}
    if source.image:  # only then, so environments built before images existed keep their digests
        key["image"] = source.image
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


def request_source(requirements: str | None, packages: tuple[str, ...], lock: str | None) -> tuple[Source, list]:
    if lock:
        if requirements or packages:
            raise AfboxError("give either --lock or requirements, not both",
                             hint="a lock file already fixes every package")
        path = Path(lock).expanduser().resolve()
        if not path.is_file():
            raise AfboxError(f"{lock}: no such file", hint="give the path of a pixi.lock or an environment.yml")
        kind = "pixi" if path.name == "pixi.lock" else "conda" if path.suffix in (".yml", ".yaml") else None
        if not kind:
            raise AfboxError(f"{lock}: not a pixi.lock or a conda environment file (.yml)",
                             hint="for a requirements.txt use -r instead")
        data = path.read_bytes()
        if kind == "pixi":
            manifest = path.with_name("pixi.toml")
            if not manifest.is_file():
                raise AfboxError(f"{lock}: pixi needs its manifest beside it ({manifest.name})",
                             hint="copy the project's pixi.toml next to the lock file")
            data += manifest.read_bytes()
        return Source(kind, lock=str(path), lock_digest=hashlib.sha256(data).hexdigest()), []
    lines: list[str] = []
    reqs = []
    if requirements:
        try:
            lines = Path(requirements).expanduser().read_text().splitlines()
        except OSError as e:
            raise ConfigError(f"{requirements}: cannot read: {e.strerror}",
                              hint="give the path of a requirements.txt") from None
        except UnicodeDecodeError:
            raise ConfigError(f"{requirements}: not a text file", hint="a requirements.txt is plain text (UTF-8)"
                              ) from None
        reqs = parse_requirements(lines, requirements)
    reqs += parse_requirements(list(packages), "command line")
    return Source("requirements", requirements=tuple(sorted(str(r) for r in reqs))), reqs
