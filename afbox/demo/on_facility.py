"""The demo on a running facility: where its dataset lives and the root:// URLs to read it by."""
from __future__ import annotations

from pathlib import Path

from .. import record
from ..errors import AfboxError
from ..record import FacilityRecord
from ..state import FacilityState, resolve_name, start_hint

DATASET = Path("demo") / "ttbar"


def running_record(name: str | None) -> FacilityRecord:
    state = FacilityState(resolve_name(name))
    rec = record.read(state)
    if not rec:
        raise AfboxError(f"facility {state.name!r} is not running", hint=start_hint(state.name))
    return rec


def datasets_root(rec: FacilityRecord) -> Path:
    if not rec.origin_dir:
        raise AfboxError("this facility reads from a remote origin, so afbox cannot place demo data there",
                         hint="run the demo on a facility with its own origin: `afbox up` without --origin, "
                              "or set [origin] enabled = true")
    return Path(rec.origin_dir) / DATASET


def dataset_name(events: int, files: int, seed: int) -> str:
    """One folder per (events, files, seed): same parameters give the same bytes, and files with
    other contents get other names, so the XCache never serves a stale copy."""
    return f"{events}ev-{files}f-seed{seed}"


def new_dataset_dir(rec: FacilityRecord, events: int, files: int, seed: int) -> Path:
    name = dataset_name(events, files, seed)
    (datasets_root(rec)).mkdir(parents=True, exist_ok=True)
    (datasets_root(rec) / "CURRENT").write_text(name + "\n")
    return datasets_root(rec) / name


def dataset_dir(rec: FacilityRecord) -> Path:
    """The dataset `afbox demo data` wrote last."""
    current = datasets_root(rec) / "CURRENT"
    if not current.exists():
        raise AfboxError("no demo dataset yet", hint="write one with: afbox demo data")
    return datasets_root(rec) / current.read_text().strip()


def dataset_urls(rec: FacilityRecord, direct: bool = False) -> tuple[list[str], str]:
    """URLs of the demo files through the XCache (or straight from the origin); and which way."""
    from .data import dataset_manifest

    folder = dataset_dir(rec)
    files = dataset_manifest(folder)
    if not files:
        raise AfboxError(f"the demo dataset in {folder} is empty", hint="write it again with: afbox demo data")
    services = rec.services
    use_cache = not direct and "xcache" in services and not services["xcache"].unavailable
    base = services["xcache"].urls["root"] if use_cache else services["origin"].urls["root"]
    rel = folder.relative_to(rec.origin_dir)
    return [f"{base.rstrip('/')}//{rel}/{f.path.name}" for f in files], "xcache" if use_cache else "origin"


def dataset_paths(rec: FacilityRecord | None = None) -> list[str]:
    """The demo files as paths of the facility's namespace (what root:// URLs end with); with no
    record given, of the facility this runs at (also on a worker of another site's cluster)."""
    from ..sites.locality import this_record
    from .data import dataset_manifest
    rec = rec or this_record()
    folder = dataset_dir(rec)
    return ["/" + str((folder / f.path.name).relative_to(rec.origin_dir)) for f in dataset_manifest(folder)]
