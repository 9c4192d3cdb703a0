"""The console (TUI) against its plain peer, side by side in one run:
- time from starting `afbox tui` (in tmux, 80x24) to its first paint, vs one `afbox status`
- CPU of the idle console watching a running facility, vs `afbox status` run once a second
"""
from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import BIN, afbox, isolated_env  # noqa: E402

PORT_BASE = 21700
SESSION = "afbox-bench-tui"


def _tmux(*args, env=None) -> str:
    return subprocess.run(["tmux", *args], capture_output=True, text=True, env=env).stdout


def first_paint(env: dict, timeout: float = 60) -> tuple[float, int]:
    """Seconds until the screen shows the console's title; and the console's pid."""
    _tmux("kill-session", "-t", SESSION)
    t0 = time.perf_counter()
    _tmux("new-session", "-d", "-s", SESSION, "-x", "80", "-y", "24", f"{BIN / 'afbox'} tui", env=env)
    while time.perf_counter() - t0 < timeout:
        screen = _tmux("capture-pane", "-p", "-t", SESSION)
        if "afbox" in screen and ("Dask" in screen or "profile" in screen.lower()):
            pid = int(_tmux("list-panes", "-t", SESSION, "-F", "#{pane_pid}").split()[0])
            return time.perf_counter() - t0, pid
        time.sleep(0.02)
    raise SystemExit("the console never painted:\n" + _tmux("capture-pane", "-p", "-t", SESSION))


def cpu_seconds(pid: int) -> float:
    procs = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    return sum(p.cpu_times().user + p.cpu_times().system for p in procs if p.is_running())


def run(quick: bool = False) -> tuple[list, dict]:
    if not shutil.which("tmux"):
        raise SystemExit("tmux is needed for the console benchmark: apt-get install tmux")
    window = 5 if quick else 30
    env, base = isolated_env("afbox-bench-tui-")
    cfg = base / "quiet.toml"
    cfg.write_text("[xcache]\nenabled = false\n")
    afbox("up", "--profile", "ci", "--config", str(cfg), "--port-base", str(PORT_BASE),
          "--workdir", str(base / "work"), env=env)
    try:
        status_once = afbox("status", env=env)
        paint, pid = first_paint(env)
        time.sleep(3)  # past start-up work
        c0, t0 = cpu_seconds(pid), time.perf_counter()
        time.sleep(window)
        tui_cpu = (cpu_seconds(pid) - c0) / (time.perf_counter() - t0)
        _tmux("send-keys", "-t", SESSION, "q")
        time.sleep(1)
        _tmux("kill-session", "-t", SESSION)
        # the peer: the CLI asked once a second, as `watch -n1 afbox status` would
        self_cpu0 = sum(psutil.Process().cpu_times()[2:4])
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < window:
            t = time.perf_counter()
            afbox("status", env=env)
            time.sleep(max(0.0, 1 - (time.perf_counter() - t)))
        peer_cpu = (sum(psutil.Process().cpu_times()[2:4]) - self_cpu0) / (time.perf_counter() - t0)
    finally:
        afbox("down", "--name", "ci", env=env)
    rows = [
        ("console: start to first paint (80x24, tmux)", f"{paint:.2f} s", f"{status_once:.2f} s (one afbox status)",
         f"{paint / status_once:.2f}"),
        ("console idle CPU, facility running", f"{tui_cpu:.1%} of a core",
         f"{peer_cpu:.1%} (afbox status every 1 s)", f"{tui_cpu / peer_cpu:.2f}" if peer_cpu else "-"),
    ]
    return rows, {"first_paint_s": paint, "status_once_s": status_once, "tui_idle_cpu": tui_cpu,
                  "status_every_second_cpu": peer_cpu, "window_s": window}
