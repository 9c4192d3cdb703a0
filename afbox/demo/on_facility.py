"""The demo on a running facility: where its dataset lives and the root:// URLs to read it by."""
from __future__ import annotations

from pathlib import Path

from ..errors import AfboxError
from ..naming import resolve_name
from ..state import FacilityState

DATASET = Path("demo") / "ttbar"


def running_record(name: str | None) -> dict:
    state = FacilityState(resolve_name(name))
    rec = state.read()
    if not rec:
        raise AfboxError(f"facility {state.name!r} is not running", hint="start it with: afbox up")
    return rec


def dataset_dir(rec: dict) -> Path:
    if not rec.get("origin_dir"):
        raise AfboxError("this facility reads from a remote origin, so afbox cannot place demo data there",
                         hint="run the demo on a facility with its own origin: `afbox up` without --origin, "
                              "or set [origin] enabled = true")
    return Path(rec["origin_dir"]) / DATASET


def dataset_urls(rec: dict, direct: bool = False) -> tuple[list[str], str]:
    """URLs of the demo files through the XCache (or straight from the origin); and which way."""
    from .data import dataset_manifest

    files = dataset_manifest(dataset_dir(rec))
    if not files:
        raise AfboxError("no demo dataset yet", hint="write one with: afbox demo data")
    services = rec["services"]
    use_cache = not direct and "xcache" in services and not services["xcache"].get("unavailable")
    base = services["xcache"]["urls"]["root"] if use_cache else services["origin"]["urls"]["root"]
    return [f"{base.rstrip('/')}//{DATASET}/{f.path.name}" for f in files], "xcache" if use_cache else "origin"
