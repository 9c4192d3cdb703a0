"""Data path benchmarks, side by side in one run:
4. XCache over an emulated WAN (userspace delay/bandwidth proxy between cache and origin):
   direct-to-origin vs cache miss vs cache hit, MB/s for whole files and the uproot read time of
   the demo analysis's branches; and one big file read from the cache over loopback (TLS, the
   reader's token checked) vs a plain TCP stream of the same size on loopback
5. demo analysis event rate through the XCache (cold, warm) vs the same files on local disk, and
   cold vs the workers reading the origin directly over the same WAN
6. scaling: `afbox up` time and task throughput with 1, 2, 4, 8 workers
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests" / "integration"), str(ROOT)]
from bench.common import afbox, isolated_env, security_for  # noqa: E402
from bench.wanproxy import WanProxy  # noqa: E402
from harness import Origin  # noqa: E402

from afbox import record_data_env  # noqa: E402

PORT_BASE = 21800
PROXY_PORT = 21790
# The WAN proxy's far end: a plain xrootd over the facility's data, as many sites' storage is. The
# facility's own origin admits only its XCache's sss key, which binds the client's address and port
# and so cannot pass a userspace proxy.
REMOTE_ORIGIN_PORT = 21791
MB = 1e6


def _purge_cache(env):
    afbox("cache", "purge", "--yes", "--name", "ci", env=env)
    afbox("restart", "xcache", "--name", "ci", env=env)  # forget what the running cache holds in memory
    from afbox.health import check
    from afbox.spec import HealthCheck
    end = time.monotonic() + 30
    while not check(HealthCheck("xrootd", port=PORT_BASE))[0] and time.monotonic() < end:
        time.sleep(0.1)


def _copy_all(urls) -> float:
    t0 = time.perf_counter()
    for u in urls:
        subprocess.run(["xrdcp", "-f", "-s", u, "/dev/null"], check=True, timeout=600)
    return time.perf_counter() - t0


def _tcp_stream(size: int) -> float:
    """Seconds to send `size` bytes over one plain TCP connection on loopback (8 MiB writes)."""
    import socket
    import threading
    srv = socket.create_server(("127.0.0.1", 0))
    port = srv.getsockname()[1]

    def send():
        conn, _ = srv.accept()
        chunk, left = b"\0" * (8 << 20), size
        with conn:
            while left:
                left -= conn.send(chunk[:min(len(chunk), left)])
    threading.Thread(target=send, daemon=True).start()
    buf, got = bytearray(8 << 20), 0
    with socket.create_connection(("127.0.0.1", port)) as s:
        t0 = time.perf_counter()
        while got < size:
            n = s.recv_into(buf)
            if not n:
                break
            got += n
        seconds = time.perf_counter() - t0
    srv.close()
    return seconds


def _read_branches(urls) -> float:
    import uproot
    from afbox.demo.analysis import BRANCHES
    t0 = time.perf_counter()
    for u in urls:
        with uproot.open(u, timeout=120) as f:
            f["Events"].arrays(BRANCHES)
    return time.perf_counter() - t0


def wan_and_analysis(quick: bool, delay_ms: float, mbit: float) -> tuple[list, dict]:
    from distributed import Client

    from afbox.demo import analysis
    from afbox.demo.data import dataset_manifest

    events, files = (20_000, 2) if quick else (400_000, 4)
    env, base = isolated_env("afbox-bench-data-")
    env["XDG_DATA_HOME"] = str(base / "data")
    cfg = base / "wan.toml"
    cfg.write_text(f'[xcache]\norigin = "root://localhost:{PROXY_PORT}"\n\n[origin]\nenabled = true\n')
    afbox("up", "--profile", "ci", "--config", str(cfg), "--port-base", str(PORT_BASE),
          "--workdir", str(base / "work"), env=env)
    remote = Origin(base / "data" / "afbox" / "ci" / "origin", REMOTE_ORIGIN_PORT)
    try:
        # xrdcp and uproot here read through the token-checking XCache like any reader on the host
        rec = json.loads(Path(env["XDG_STATE_HOME"], "afbox", "ci", "facility.json").read_text())
        os.environ.update(record_data_env(rec))
        afbox("demo", "data", "--events", str(events), "--files", str(files), env=env)
        root = base / "data" / "afbox" / "ci" / "origin"
        datasets = root / "demo" / "ttbar"
        origin_dir = datasets / (datasets / "CURRENT").read_text().strip()
        rel = origin_dir.relative_to(root)
        manifest = dataset_manifest(origin_dir)
        size = sum(f.bytes for f in manifest)
        names = [f.path.name for f in manifest]
        direct = [f"root://localhost:{PROXY_PORT}//{rel}/{n}" for n in names]
        cached = [f"root://127.0.0.1:{PORT_BASE}//{rel}/{n}" for n in names]
        local = [str(f.path) for f in manifest]
        r: dict = {"events": events, "files": files, "bytes": size, "delay_ms": delay_ms, "mbit": mbit}
        remote.start()
        with WanProxy(PROXY_PORT, REMOTE_ORIGIN_PORT, delay_ms, mbit):
            r["copy_direct_s"] = _copy_all(direct)
            _purge_cache(env)
            r["copy_miss_s"] = _copy_all(cached)
            r["copy_hit_s"] = _copy_all(cached)
            _purge_cache(env)
            r["branches_direct_s"] = _read_branches(direct)
            _purge_cache(env)
            r["branches_miss_s"] = _read_branches(cached)
            r["branches_hit_s"] = _read_branches(cached)
            r["branches_local_s"] = _read_branches(local)
            _purge_cache(env)
            sched = f"tcp://127.0.0.1:{PORT_BASE + 6}"
            with Client(sched.replace("tcp://", "tls://"), timeout=30, security=security_for(env)) as c:
                direct_run = analysis.run(direct, client=c)  # the workers straight at the origin, over the WAN
                cold = analysis.run(cached, client=c)
                warm = analysis.run(cached, client=c)
                disk = analysis.run(local, client=c)
            for key, res in (("direct", direct_run), ("cold", cold), ("warm", warm), ("local", disk)):
                r[f"analysis_{key}_events_per_s"] = res.event_rate
                r[f"analysis_{key}_per_worker"] = {w: s.rate for w, s in res.workers.items()}
        # one big file: filled once (no WAN: only the hits count here), then read from the cache
        big = root / "bench" / "big.bin"
        big.parent.mkdir(exist_ok=True)
        r["big_bytes"] = (100 if quick else 400) << 20
        with open(big, "wb") as f:
            for _ in range(r["big_bytes"] >> 20):
                f.write(os.urandom(1 << 20))
        with WanProxy(PROXY_PORT, REMOTE_ORIGIN_PORT, 0, 100_000):
            _copy_all([f"root://127.0.0.1:{PORT_BASE}//bench/big.bin"])
        hits, tcp = [], []
        for _ in range(3):  # alternated, median of each
            hits.append(_copy_all([f"root://127.0.0.1:{PORT_BASE}//bench/big.bin"]))
            tcp.append(_tcp_stream(r["big_bytes"]))
        r["big_hit_s"], r["big_tcp_s"] = sorted(hits)[1], sorted(tcp)[1]
    finally:
        remote.stop()
        afbox("down", "--name", "ci", env=env)
    mbps = lambda seconds: size / MB / seconds  # noqa: E731
    rows = [
        (f"whole files over WAN ({delay_ms:g} ms, {mbit:g} Mbit/s), cache miss", f"{mbps(r['copy_miss_s']):.1f} MB/s",
         f"{mbps(r['copy_direct_s']):.1f} MB/s direct", f"{r['copy_direct_s'] / r['copy_miss_s']:.2f}"),
        ("whole files, cache hit", f"{mbps(r['copy_hit_s']):.1f} MB/s", f"{mbps(r['copy_direct_s']):.1f} MB/s direct",
         f"{r['copy_direct_s'] / r['copy_hit_s']:.2f}"),
        ("uproot branch read, cache miss", f"{r['branches_miss_s']:.2f} s", f"{r['branches_direct_s']:.2f} s direct",
         f"{r['branches_direct_s'] / r['branches_miss_s']:.2f}"),
        ("uproot branch read, cache hit", f"{r['branches_hit_s']:.2f} s", f"{r['branches_direct_s']:.2f} s direct",
         f"{r['branches_direct_s'] / r['branches_hit_s']:.2f}"),
        ("uproot branch read, cache hit vs local disk", f"{r['branches_hit_s']:.2f} s",
         f"{r['branches_local_s']:.2f} s local", f"{r['branches_local_s'] / r['branches_hit_s']:.2f}"),
        ("demo analysis, XCache cold", f"{r['analysis_cold_events_per_s']:,.0f} ev/s",
         f"{r['analysis_local_events_per_s']:,.0f} ev/s local", f"{r['analysis_cold_events_per_s'] / r['analysis_local_events_per_s']:.2f}"),
        ("demo analysis, XCache cold vs the origin direct", f"{r['analysis_cold_events_per_s']:,.0f} ev/s",
         f"{r['analysis_direct_events_per_s']:,.0f} ev/s direct over the WAN",
         f"{r['analysis_cold_events_per_s'] / r['analysis_direct_events_per_s']:.2f}"),
        ("demo analysis, XCache warm", f"{r['analysis_warm_events_per_s']:,.0f} ev/s",
         f"{r['analysis_local_events_per_s']:,.0f} ev/s local", f"{r['analysis_warm_events_per_s'] / r['analysis_local_events_per_s']:.2f}"),
        (f"one {r['big_bytes'] >> 20} MiB file, cache hit (loopback, TLS), median of 3",
         f"{r['big_bytes'] / MB / r['big_hit_s']:.0f} MB/s", f"{r['big_bytes'] / MB / r['big_tcp_s']:.0f} MB/s plain TCP",
         f"{r['big_tcp_s'] / r['big_hit_s']:.2f}"),
    ]
    return rows, r


def scaling(quick: bool) -> tuple[list, dict]:
    from bench.bench_facility import throughput

    out = {}
    rows = []
    for n in (1, 2) if quick else (1, 2, 4, 8):
        env, base = isolated_env("afbox-bench-scale-")
        cfg = base / "dask.toml"
        cfg.write_text("[xcache]\nenabled = false\n")
        seconds = afbox("up", "--profile", "ci", "--config", str(cfg), "--workers", str(n), "--threads", "1",
                        "--port-base", str(PORT_BASE + 100), "--workdir", str(base / "work"), env=env)
        try:
            tps = throughput(f"tls://127.0.0.1:{PORT_BASE + 106}", 500 if quick else 5000, rounds=1 if quick else 2,
                             workers=n, security=security_for(env))
        finally:
            afbox("down", "--name", "ci", env=env)
        out[n] = {"up_s": seconds, "tasks_per_s": tps}
    one = out[1]
    for n, v in out.items():
        rows.append((f"{n} worker(s): up / tasks per s", f"{v['up_s']:.1f} s / {v['tasks_per_s']:.0f}",
                     f"{one['up_s']:.1f} s / {one['tasks_per_s']:.0f} (1 worker)",
                     f"{v['up_s'] / one['up_s']:.2f} / {v['tasks_per_s'] / one['tasks_per_s']:.2f}"))
    return rows, out
