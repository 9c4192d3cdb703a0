"""The walltime watcher, a supervised service of a SLURM facility.

    python -m afbox.backends.slurm.walltime --facility NAME --job ID --retire-before SECONDS

`retire_before` ahead of the job's end it warns (its log, and the facility's slurm.json that
status and the console show), asks the scheduler to retire every worker gracefully (their results
move to workers that stay, none are left here), stops the workers' srun step and cancels the
worker-only jobs afbox submitted. When the job has ended (scancel, walltime, node failure) it
records how, and stops the facility's supervisor: nothing of the facility outlives its allocation.
Files in the workdir are never touched."""
from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from ... import record
from ...health import poll_until
from ...state import FacilityState
from ..local.supervisor import Supervisor
from . import commands as slurm
from .jobs import read_job, update_job
from .placement import WORKERS

log = logging.getLogger("afbox.backends.slurm.walltime")
POLL = 5.0


def due(end: float | None, now: float, retire_before: float) -> bool:
    return end is not None and end - now <= retire_before


def retire(state: FacilityState) -> int:
    """Retire every worker through the scheduler; how many it retired."""
    from distributed import Client

    from ...client import record_security

    rec = record.read(state)
    addr = rec.urls().get("scheduler") if rec else None
    if not addr:
        return 0
    with Client(addr, security=record_security(rec.model_dump(mode="json")), timeout=20) as c:
        workers = list(c.scheduler_info(n_workers=-1)["workers"])
        if workers:
            c.retire_workers(workers, close_workers=True)
        return len(workers)


def warn_and_retire(state: FacilityState, job: str, left: float) -> None:
    msg = (f"SLURM job {job} ends in {left / 60:.1f} min: Dask workers retired; "
           f"save your work (the workdir is kept)")
    log.warning(msg)
    update_job(state, warning=msg, warned_at=time.time())
    try:
        n = retire(state)
        log.warning("retired %d worker(s)", n)
    except Exception as e:  # noqa: BLE001 - the walltime comes anyway; stopping the step still frees nodes
        log.warning("graceful retirement failed (%s); stopping the workers' step", e)
    sup = Supervisor(state.run / "supervisor.sock")
    sup.stop(WORKERS)
    slurm.cancel([j for j in read_job(state).get("scale_jobs", []) if slurm.job_state(j).active])


def serve_health(port: int, state: FacilityState, job: str) -> None:
    """GET /health on loopback: 200 with the job's end and the warning while the watcher runs."""
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            info = read_job(state)
            body = json.dumps({"job": job, "end": info.get("end"), "warning": info.get("warning")}).encode()
            self.send_response(200 if self.path == "/health" else 404)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):  # polled every second by status and the console
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()


def lead(retire_before: float, end: float | None, now: float) -> float:
    """How long before the end workers retire: retire_before, but at most half the time the job has
    left when the watcher starts, so a short job still gets to compute before its workers go."""
    if end is None:
        return retire_before
    return min(retire_before, max(0.0, (end - now) / 2))


def watch(name: str, job: str, retire_before: float, poll: float = POLL) -> int:
    state = FacilityState(name)
    warned = bool(read_job(state).get("warning"))
    first = slurm.job_state(job)
    before = lead(retire_before, first.end, time.time())
    if before < retire_before:
        log.warning("the job has less than twice %gs left: workers retire %.0fs before its end", retire_before, before)
    update_job(state, retire_at=first.end - before if first.end else None)
    warned = [warned]

    def ended() -> bool:
        """One look at the job: True once it has ended (and the facility was stopped with it)."""
        st = slurm.job_state(job)
        if not st.active:
            log.warning("SLURM job %s ended (%s%s); stopping the facility", job, st.state,
                        f", {st.reason}" if st.reason and st.reason != "None" else "")
            update_job(state, ended=st.state if st.state != "GONE" else "ENDED", ended_at=time.time())
            Supervisor(state.run / "supervisor.sock").shutdown()
            return True
        seen = read_job(state)
        if (st.end and st.end != seen.get("end")) or st.state != seen.get("job_state"):
            update_job(state, end=st.end or seen.get("end"), job_state=st.state)  # status reads these
        now = time.time()
        if not warned[0] and due(st.end, now, before):
            warn_and_retire(state, job, st.end - now)
            warned[0] = True
        return False
    poll_until(ended, math.inf, poll)
    return 0


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="afbox.backends.slurm.walltime")
    p.add_argument("--facility", required=True)
    p.add_argument("--job", required=True)
    p.add_argument("--retire-before", type=float, required=True)
    p.add_argument("--poll", type=float, default=POLL)
    p.add_argument("--port", type=int, required=True)
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stdout)
    serve_health(a.port, FacilityState(a.facility), a.job)
    log.info("watching SLURM job %s; workers retire %gs before its end", a.job, a.retire_before)
    return watch(a.facility, a.job, a.retire_before, a.poll)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
