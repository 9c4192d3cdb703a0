"""The real `afbox` command in a real terminal: tmux at 80x24, no colour, as over a plain ssh session."""
from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from harness import shared_tmpdir

TMUX = shutil.which("tmux")
if not TMUX:
    pytest.skip("tmux not installed (apt-get install tmux)", allow_module_level=True)

AFBOX = Path(sys.executable).parent / "afbox"


class Tmux:
    """A private tmux server, so neither a user's tmux nor its environment gets involved."""

    def __init__(self, name: str):
        self.base = [TMUX, "-L", name, "-f", "/dev/null"]

    def __call__(self, *args: str) -> str:
        return subprocess.run([*self.base, *args], capture_output=True, text=True, timeout=10, check=True).stdout

    def screen(self) -> str:
        return self("capture-pane", "-p", "-t", "console")

    def wait_for(self, text: str, timeout: float = 20) -> str:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            shown = self.screen()
            if text in shown:
                return shown
            time.sleep(0.2)
        raise AssertionError(f"{text!r} not on screen after {timeout}s:\n{self.screen()}")


def test_afbox_opens_the_console_and_q_leaves_it_cleanly():
    base = shared_tmpdir("afbox-tui-tmux-")
    env = {"XDG_STATE_HOME": base / "state", "XDG_CACHE_HOME": base / "cache", "XDG_DATA_HOME": base / "data",
           "NO_COLOR": "1", "TERM": "xterm"}
    command = (f"env {' '.join(f'{k}={shlex.quote(str(v))}' for k, v in env.items())} {AFBOX}; "
               f"echo afbox-exit=$?; sleep 60")
    tmux = Tmux(f"afbox-tui-test-{base.name}")
    try:
        tmux("new-session", "-d", "-s", "console", "-x", "80", "-y", "24", command)
        shown = tmux.wait_for(" cores ")                         # host detection has filled the setup screen
        assert "no facility is running: set one up" in shown
        assert "profile" in shown and "laptop" in shown and "Start" in shown
        assert len(shown.splitlines()) <= 24 and max(map(len, shown.splitlines())) <= 80
        tmux("send-keys", "-t", "console", "q")
        shown = tmux.wait_for("afbox-exit=", 15)
        assert "afbox-exit=0" in shown
        assert "Start" not in shown                             # the alternate screen is gone: terminal restored
    finally:
        subprocess.run([*tmux.base, "kill-server"], capture_output=True, timeout=10, check=False)
        shutil.rmtree(base, ignore_errors=True)


def test_console_overview_lists_the_running_services():
    base = shared_tmpdir("afbox-tui-tmux-up-")
    env = {"XDG_STATE_HOME": base / "state", "XDG_CACHE_HOME": base / "cache", "XDG_DATA_HOME": base / "data",
           "NO_COLOR": "1", "TERM": "xterm"}
    full_env = {**__import__("os").environ, **{k: str(v) for k, v in env.items()}}
    cfg = base / "dask-only.toml"
    cfg.write_text("[xcache]\nenabled = false\n\n[jupyter]\nenabled = false\n")
    subprocess.run([str(AFBOX), "up", "--profile", "ci", "--config", str(cfg), "--port-base", "22900",
                    "--workdir", str(base / "work")], env=full_env, check=True, capture_output=True, timeout=180)
    command = (f"env {' '.join(f'{k}={shlex.quote(str(v))}' for k, v in env.items())} {AFBOX} tui --name ci; "
               f"echo afbox-exit=$?; sleep 60")
    tmux = Tmux(f"afbox-tui-test-{base.name}")
    try:
        tmux("new-session", "-d", "-s", "console", "-x", "120", "-y", "40", command)
        shown = tmux.wait_for("dask-worker-2", 30)
        for name in ("dask-scheduler", "dask-worker-1", "issuer"):
            assert name in shown, shown
        assert "healthy" in shown
        tmux("send-keys", "-t", "console", "q")
        shown = tmux.wait_for("afbox-exit=", 15)
        assert "afbox-exit=0" in shown and "keeps running" in shown
    finally:
        subprocess.run([*tmux.base, "kill-server"], capture_output=True, timeout=10, check=False)
        subprocess.run([str(AFBOX), "down", "--name", "ci"], env=full_env, capture_output=True, timeout=120)
        shutil.rmtree(base, ignore_errors=True)
