"""SLURM, through its own commands: the allocation afbox runs in, jobs it submits, waits for and cancels.

Detection reads SLURM's environment variables (what salloc/sbatch set) and asks `scontrol` only for
what they do not hold (host name expansion, the job's end time, a node's address)."""
from __future__ import annotations

import os
import re
import socket
from dataclasses import asdict, dataclass, field
from datetime import datetime

from ...errors import AfboxError, CommandError
from ...health import poll_until
from ...run import require, run, which

# UNKNOWN: the controller did not answer; the job is not taken for gone on that alone
ACTIVE = ("PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED", "REQUEUED", "RESIZING", "UNKNOWN")


@dataclass(frozen=True)
class Allocation:
    job_id: str
    nodes: tuple[str, ...]
    cpus_per_node: int
    gpus_per_node: int = 0
    memory_per_node: int | None = None   # bytes; None when SLURM does not say
    head: str = ""                        # the node (or login host) afbox runs on
    submit_host: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


def available() -> bool:
    return which("sbatch") is not None


def require_slurm() -> None:
    """SLURM's client commands, or an error that says SLURM is not available here."""
    if not available():
        raise AfboxError("SLURM is not available here: `sbatch` is not on PATH",
                         hint="run afbox on a cluster's login node, or: apt-get install slurm-client "
                              "(or load your site's slurm module)")
    for b in ("srun", "scontrol", "squeue", "scancel"):
        require(b)


def first_count(text: str) -> int:
    """'4(x2),2' -> 4: SLURM's compressed per-node lists (SLURM_JOB_CPUS_PER_NODE, _TASKS_PER_NODE)."""
    m = re.match(r"^\s*(\d+)", text or "")
    return int(m.group(1)) if m else 0


def gpu_count(text: str) -> int:
    """SLURM_GPUS_PER_NODE / SLURM_GPUS_ON_NODE: '2', 'a100:2', 'gpu:a100:2' -> 2; '' -> 0."""
    total = 0
    for part in filter(None, (text or "").split(",")):
        m = re.search(r"(\d+)(?:\(.*\))?$", part.strip())
        total += int(m.group(1)) if m else 1
    return total


def hostnames(nodelist: str) -> tuple[str, ...]:
    return tuple(run(["scontrol", "show", "hostnames", nodelist], timeout=20).stdout.split())


def detect(env: dict | None = None) -> Allocation | None:
    """The allocation this process runs in (SLURM_JOB_ID set), or None outside one."""
    env = os.environ if env is None else env
    job = env.get("SLURM_JOB_ID") or env.get("SLURM_JOBID")
    if not job:
        return None
    require_slurm()
    nodelist = env.get("SLURM_JOB_NODELIST") or env.get("SLURM_NODELIST") or job_info(job).get("NodeList", "")
    nodes = hostnames(nodelist) if nodelist else ()
    cpus = first_count(env.get("SLURM_JOB_CPUS_PER_NODE", "")) or int(env.get("SLURM_CPUS_ON_NODE") or 1)
    gpus = gpu_count(env.get("SLURM_GPUS_PER_NODE") or env.get("SLURM_GPUS_ON_NODE") or "")
    mem = None
    if env.get("SLURM_MEM_PER_NODE"):
        mem = int(env["SLURM_MEM_PER_NODE"]) * 2**20
    elif env.get("SLURM_MEM_PER_CPU"):
        mem = int(env["SLURM_MEM_PER_CPU"]) * 2**20 * cpus
    return Allocation(job_id=job, nodes=nodes, cpus_per_node=cpus, gpus_per_node=gpus, memory_per_node=mem,
                      head=env.get("SLURMD_NODENAME") or socket.gethostname(),
                      submit_host=env.get("SLURM_SUBMIT_HOST") or "")


def parse_record(text: str) -> dict[str, str]:
    """`scontrol show ... -o` (one line of Key=Value; values may hold spaces only at the end)."""
    out: dict[str, str] = {}
    for m in re.finditer(r"(\S+?)=(.*?)(?=\s+\S+?=|\s*$)", text.strip()):
        out[m.group(1)] = m.group(2)
    return out


def job_info(job_id: str) -> dict[str, str]:
    """The job's record; {} once SLURM has forgotten it, {"JobState": "UNKNOWN"} when it did not answer."""
    r = run(["scontrol", "show", "job", "-o", str(job_id)], timeout=20, check=False)
    if r.code != 0:
        return {} if "Invalid job id" in r.stderr else {"JobState": "UNKNOWN", "Reason": r.stderr.strip()}
    return parse_record(r.stdout.splitlines()[0]) if r.stdout.strip() else {}


def slurm_time(text: str) -> float | None:
    """'2024-05-01T12:00:00' (controller's local time) -> epoch seconds; Unknown/None -> None."""
    try:
        return datetime.fromisoformat(text).timestamp()
    except (TypeError, ValueError):
        return None


def end_time(job_id: str) -> float | None:
    return slurm_time(job_info(job_id).get("EndTime", ""))


def node_address(node: str) -> str | None:
    """The address SLURM itself reaches a node at (its NodeAddr): by definition one the others reach."""
    r = run(["scontrol", "show", "node", "-o", node], timeout=20, check=False)
    return parse_record(r.stdout).get("NodeAddr") if r.code == 0 and r.stdout.strip() else None


@dataclass
class JobState:
    job_id: str
    state: str                  # RUNNING, PENDING, CANCELLED, TIMEOUT, COMPLETED, ..., GONE
    reason: str = ""
    end: float | None = None
    nodes: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def active(self) -> bool:
        return self.state in ACTIVE


def job_state(job_id: str) -> JobState:
    info = job_info(job_id)
    if not info:
        return JobState(job_id, "GONE")
    return JobState(job_id, info.get("JobState", "UNKNOWN"), info.get("Reason", ""),
                    slurm_time(info.get("EndTime", "")), info.get("NodeList", ""))


def submit(script: str, timeout: float = 60) -> str:
    """sbatch a job script (on stdin); its job id. SLURM's own error when it refuses."""
    require_slurm()
    conf = os.environ.get("SLURM_CONF")
    if conf and not os.path.isfile(conf):  # sbatch would retry reading it for a minute
        raise AfboxError(f"SLURM_CONF={conf} does not exist", hint="point SLURM_CONF at your cluster's slurm.conf, "
                                                                   "or unset it")
    try:
        r = run(["sbatch", "--parsable"], input=script, timeout=timeout)
    except CommandError as e:
        raise submit_error(e) from None
    return r.stdout.strip().split(";")[0]


# what sbatch says when the problem is SLURM itself, not the job: (pattern, what is wrong, what to do)
NOT_REACHED = (
    (re.compile(r"Could not establish a configuration source|fetch_config|cannot stat file .*slurm\.conf|"
                r"s_p_parse_file: cannot stat"),
     "SLURM is not configured on this host: no slurm.conf (and no DNS SRV record names a controller)",
     "run afbox on a login node of your cluster, or point SLURM_CONF at its slurm.conf"),
    (re.compile(r"Unable to contact slurm controller|Socket timed out|Connection refused|"
                r"Zero Bytes were transmitted"),
     "SLURM's controller (slurmctld) does not answer",
     "check that it runs and is reachable (scontrol ping); the job itself was not looked at"),
    (re.compile(r"[Mm]unge|authentication failure|Invalid authentication credential"),
     "SLURM refused afbox's credentials (munge)",
     "check that munged runs on this host with the cluster's key (munge -n | unmunge)"),
)


def submit_error(e: CommandError) -> AfboxError:
    """sbatch's refusal, saying whether SLURM could not be reached at all or refused this job."""
    text = (e.stderr or e.stdout or "").strip()
    msg = [ln.removeprefix("sbatch: error: ").removeprefix("sbatch: fatal: ")
           .removeprefix("Batch job submission failed: ") for ln in text.splitlines()]
    for pattern, what, hint in NOT_REACHED:
        if pattern.search(text):
            return AfboxError(what, details=msg[-5:], hint=hint)
    if e.timeout:
        return AfboxError(f"sbatch did not answer within {e.timeout:g}s: SLURM's controller is unreachable or "
                          "overloaded", details=msg[-5:], hint="check it with: scontrol ping")
    return AfboxError("SLURM refused the job: " + (msg[-1] if msg else f"sbatch exited with {e.code}"),
                      details=msg[:-1], hint="check the partition, account, nodes and time with sinfo / "
                                             "sacctmgr show assoc")


def wait_running(job_id: str, timeout: float, poll: float = 1.0) -> JobState:
    """Until the job runs; on timeout an error with the job id and SLURM's reason, the job left queued."""
    seen: list[JobState] = []

    def settled() -> bool:
        seen.append(job_state(job_id))
        return seen[-1].state == "RUNNING" or not seen[-1].active
    poll_until(settled, timeout, poll)
    st = seen[-1]
    if st.state == "RUNNING":
        return st
    if not st.active:
        raise AfboxError(f"SLURM job {job_id} ended before it ran: {st.state}"
                         + (f" ({st.reason})" if st.reason and st.reason != "None" else ""))
    raise AfboxError(f"SLURM job {job_id} did not start within {timeout:g}s: "
                     f"{st.state}, reason {st.reason or 'unknown'}",
                     hint=f"see `squeue -j {job_id}`; cancel it with `scancel {job_id}`")


def cancel(job_ids: list[str]) -> None:
    if job_ids:
        run(["scancel", *map(str, job_ids)], timeout=30, check=False)


def steps(job_id: str) -> list[str]:
    """Names of the job's running steps."""
    r = run(["squeue", "-h", "-s", "-j", str(job_id), "-o", "%i %j"], timeout=20, check=False)
    return [ln.split(None, 1)[-1] for ln in r.stdout.splitlines() if ln.strip()] if r.code == 0 else []
