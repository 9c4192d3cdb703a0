"""The facility against its plain peers, side by side in one run:
1. `afbox up` to all-healthy (cold, warm) vs each component started alone (max and sum)
2. idle memory of the facility (RSS and PSS, total and per service)
3. Dask task throughput and per-task overhead: facility vs a bare LocalCluster of the same size
4. a 2-worker cluster on demand: through the token-checking gateway vs a bare LocalCluster start
Run through bench/run.py.
"""
from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import afbox, drop_page_cache, isolated_env, security_for  # noqa: E402

PORT_BASE = 19800
NAME = "ci"


def components_alone(env: dict) -> dict[str, float]:
    """Start each service's own argv (as rendered for the facility) alone; time to its health check."""
    from afbox import lifecycle, services
    from afbox.backends.local.files import lay_out
    from afbox.facility import load
    from afbox.health import check
    from afbox.lifecycle import credentials

    old = dict(os.environ)
    os.environ.update(env)
    try:
        fac = load("ci", None, {"facility": {"port_base": PORT_BASE + 50, "workdir": env["AFBOX_BENCH_WORK"]}})
        ctx = lifecycle.context(fac)
        specs = services.render(ctx)
        credentials.prepare(ctx)
        lay_out(specs, ctx.state)
        times = {}
        sched = next(s for s in specs if s.name == "dask-scheduler")
        sched_proc = None
        for s in specs:
            if s.unavailable:
                continue
            if s.needs and sched_proc is None:
                sched_proc = _start(sched, env)
                _wait(check, sched.health)
            p = _start(s, env)
            t0 = time.perf_counter()
            _wait(check, s.health)
            times[s.name] = time.perf_counter() - t0
            if s.name != "dask-scheduler":
                _stop(p)
            elif sched_proc is None:
                sched_proc = p
        _stop(sched_proc)
        return times
    finally:
        os.environ.clear()
        os.environ.update(old)


def _start(spec, env):
    return subprocess.Popen(list(spec.argv), env={**env, **spec.env_dict}, cwd=spec.cwd, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)


def _wait(check, health, timeout=120):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if check(health)[0]:
            return
        time.sleep(0.05)
    raise SystemExit(f"health check never passed: {health}")


def _stop(p):
    if p is None:
        return
    os.killpg(p.pid, 15)
    try:
        p.wait(15)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, 9)


def idle_memory(env: dict) -> dict[str, dict[str, int]]:
    from afbox.backends.local.supervisor import Supervisor

    run = Path(env["XDG_STATE_HOME"], "afbox", NAME, "run")
    names = {i["pid"]: i["name"] for i in Supervisor(run / "supervisor.sock").all_info()}
    root = psutil.Process(int((run / "supervisord.pid").read_text()))
    out = {}
    for child in root.children():
        procs = [child, *child.children(recursive=True)]
        out[names.get(child.pid, str(child.pid))] = {"rss": sum(p.memory_info().rss for p in procs),
                                                     "pss": sum(p.memory_full_info().pss for p in procs)}
    out["supervisord"] = {"rss": root.memory_info().rss, "pss": root.memory_full_info().pss}
    return out


def throughput(address_or_cluster, n: int, rounds: int = 3, workers: int = 2, security=None) -> float:
    """Best tasks/s over a few rounds of n tiny independent tasks."""
    from distributed import Client

    best = 0.0
    with Client(address_or_cluster, timeout=30, security=security) as c:
        c.wait_for_workers(workers, timeout=60)
        for r in range(rounds):
            t0 = time.perf_counter()
            futs = c.map(lambda x: x + 1, range(n), key=[f"inc-{r}-{i}" for i in range(n)])
            c.gather(futs)
            best = max(best, n / (time.perf_counter() - t0))
            del futs
    return best


def run(quick: bool = False) -> tuple[list, dict]:
    tasks = 500 if quick else 5000
    rounds = 1 if quick else 3
    env, base = isolated_env("afbox-bench-")
    env["AFBOX_BENCH_WORK"] = str(base / "work")
    up = ["up", "--profile", "ci", "--port-base", str(PORT_BASE), "--workdir", str(base / "work")]

    print("starting each component alone ...", flush=True)
    alone = components_alone(env)
    dropped = drop_page_cache()
    print("afbox up (cold) ...", flush=True)
    cold = afbox(*up, env=env)
    mem = idle_memory_after_settle(env)
    from distributed import LocalCluster
    from afbox import scheduler_address
    os.environ.update(XDG_STATE_HOME=env["XDG_STATE_HOME"])
    addr = scheduler_address(NAME)  # tls:// - the facility's Dask requires its certificates
    print("dask throughput: facility vs LocalCluster ...", flush=True)
    sec = security_for(env, NAME)
    fac_tps = throughput(addr, tasks, rounds, security=sec)
    # same shape as the facility: 2 nanny-managed processes x 1 thread, a scheduler with a dashboard
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address="127.0.0.1:0") as lc:
        bare_tps = throughput(lc, tasks, rounds)
    fac_tps = max(fac_tps, throughput(addr, tasks, rounds, security=sec))  # again after the peer, so order favours neither
    print("cluster on demand: gateway vs LocalCluster ...", flush=True)
    # alternated, median of each: single starts on two cores vary by a third
    starts = [(gateway_cluster_start(), localcluster_start()) for _ in range(3 if quick else 5)]
    gw_s, lc_s = (statistics.median(s) for s in zip(*starts))
    afbox("down", "--name", NAME, env=env)
    warm = cold
    if not quick:
        print("afbox up (warm) ...", flush=True)
        warm = afbox(*up, env=env)
        afbox("down", "--name", NAME, env=env)

    total = sum(alone.values())
    longest = max(alone.values())
    rss = sum(v["rss"] for v in mem.values())
    pss = sum(v["pss"] for v in mem.values())
    MB = 1024 ** 2
    rows = [
        ("up to all-healthy, cold" + ("" if dropped else " (page cache not dropped)"), f"{cold:.2f} s",
         f"max {longest:.2f} s / sum {total:.2f} s", f"{cold / longest:.2f}x max, {cold / total:.2f}x sum"),
        ("up to all-healthy, warm", f"{warm:.2f} s", f"max {longest:.2f} s / sum {total:.2f} s",
         f"{warm / longest:.2f}x max, {warm / total:.2f}x sum"),
        ("idle memory, whole facility", f"PSS {pss / MB:.0f} MB (RSS {rss / MB:.0f} MB)", "goal 700 MB",
         f"{pss / (700 * MB):.2f} of goal"),
        ("dask tasks/s (2 workers x 1 thread)", f"{fac_tps:.0f}", f"{bare_tps:.0f} (LocalCluster)",
         f"{fac_tps / bare_tps:.2f}"),
        ("dask per-task overhead", f"{1e6 / fac_tps:.0f} us", f"{1e6 / bare_tps:.0f} us", f"{bare_tps / fac_tps:.2f}"),
    ]
    rows.append((f"2-worker cluster on demand, ready (median of {len(starts)})", f"{gw_s:.2f} s (gateway, token)",
                 f"{lc_s:.2f} s (LocalCluster)",
                 f"{gw_s / lc_s:.2f}x"))
    rows.append(("components alone (s)", ", ".join(f"{k} {v:.2f}" for k, v in alone.items()), "", ""))
    rows.append(("idle PSS per service (MB)", ", ".join(f"{k} {v['pss'] / MB:.0f}" for k, v in sorted(mem.items())), "", ""))
    return rows, {"up_cold_s": cold, "up_warm_s": warm, "alone_s": alone, "alone_max_s": longest,
                             "alone_sum_s": total, "page_cache_dropped": dropped, "memory": mem,
                             "memory_pss_total": pss, "memory_rss_total": rss, "tasks": tasks,
                             "facility_tasks_per_s": fac_tps, "localcluster_tasks_per_s": bare_tps,
                             "throughput_ratio": fac_tps / bare_tps, "gateway_cluster_s": gw_s,
                             "localcluster_start_s": lc_s, "cluster_starts_s": starts, "cpus": os.cpu_count()}


def gateway_cluster_start(workers: int = 2) -> float:
    """From asking the facility's gateway for a cluster to `workers` workers connected."""
    import afbox
    t0 = time.perf_counter()
    with afbox.gateway(NAME) as gw:
        cluster = gw.new_cluster()
        try:
            cluster.scale(workers)
            with cluster.get_client() as c:
                c.wait_for_workers(workers, timeout=120)
                return time.perf_counter() - t0
        finally:
            cluster.shutdown()


def localcluster_start(workers: int = 2) -> float:
    from distributed import Client, LocalCluster
    t0 = time.perf_counter()
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address="127.0.0.1:0") as lc:
        with Client(lc) as c:
            c.wait_for_workers(workers, timeout=120)
            return time.perf_counter() - t0


def idle_memory_after_settle(env: dict, settle: float = 5.0):
    time.sleep(settle)  # let start-up garbage be collected before measuring "idle"
    return idle_memory(env)


if __name__ == "__main__":
    from bench.run import main
    main(["facility"])
