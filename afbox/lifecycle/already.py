"""`afbox up` on a facility that is already up: what the request asks that the running facility does
not have, and what to do about it (scale changes workers; anything else needs down, then up)."""
from __future__ import annotations

from typing import Any, Iterator

from .. import events as ev
from ..errors import AfboxError
from ..facility import Facility
from ..ports import SPAN
from ..record import FacilityRecord
from ..units import parse_size

# decided where the facility runs, not asked for: a backend may set them (SLURM: the head's address)
DECIDED_BY_BACKEND = {"facility.bind", "dask.gpus", "profile"}
SHOWN = 6


def flat(model: Facility) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for section, values in model.model_dump(mode="json").items():
        if isinstance(values, dict):
            out.update({f"{section}.{k}": v for k, v in values.items()})
        else:
            out[section] = values
    return out


def differences(asked: Facility, rec: FacilityRecord) -> list[tuple[str, Any, Any]]:
    """(key, running, asked) for each setting the request gives another value than the running facility."""
    running, wanted = flat(rec.spec), flat(asked)
    # what the running workers have (`scale` writes them into its spec as numbers); 0 and auto ask for
    # "sized to the machine", which the running ones were
    running.update({"dask.workers": rec.dask.workers, "dask.threads_per_worker": rec.dask.threads,
                    "dask.memory_limit": rec.dask.memory_limit})
    if wanted["dask.memory_limit"] != "auto":
        wanted["dask.memory_limit"] = parse_size(wanted["dask.memory_limit"])
    for key in ("dask.workers", "dask.threads_per_worker", "dask.memory_limit"):
        if wanted[key] in (0, "auto"):
            wanted[key] = running[key]
    if rec.spec.workdir == asked.workdir:
        wanted["facility.workdir"] = running["facility.workdir"]
    return [(k, running.get(k), v) for k, v in wanted.items() if k not in DECIDED_BY_BACKEND and running.get(k) != v]


def already_up(asked: Facility, rec: FacilityRecord) -> Iterator[ev.Event]:
    """Events for `up` on a running facility; an error when another profile runs under the name."""
    name = asked.name
    flag = "" if name == "default" else f" --name {name}"
    if rec.profile and asked.profile and rec.profile != asked.profile:
        raise AfboxError(f"facility {name!r} is already up with profile {rec.profile!r}, not {asked.profile!r}",
                         hint=f"stop it first (afbox down{flag}), then afbox up --profile {asked.profile}{flag}; "
                              f"or run both side by side: afbox up --profile {asked.profile} --name OTHER "
                              f"--port-base {rec.port_base + SPAN}")
    yield ev.Event(ev.INFO, "", f"facility {name!r} is already up")
    diff = differences(asked, rec)
    if not diff:
        return
    yield ev.Event(ev.INFO, "", "it runs with other settings than this command asks for; nothing was changed:")
    for key, running, wanted in diff[:SHOWN]:
        yield ev.Event(ev.INFO, "", f"  {key}: running {_show(running)}, asked {_show(wanted)}")
    if len(diff) > SHOWN:
        yield ev.Event(ev.INFO, "", f"  ... and {len(diff) - SHOWN} more")
    keys = {k for k, _, _ in diff}
    if "dask.workers" in keys:
        yield ev.Event(ev.INFO, "", f"to change the number of workers: afbox scale --workers {asked.dask.workers}{flag}")
    if keys - {"dask.workers"}:
        yield ev.Event(ev.INFO, "", f"for the rest: afbox down{flag}, then this afbox up again")


def _show(value: Any) -> str:
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 60 else text[:57] + "..."
