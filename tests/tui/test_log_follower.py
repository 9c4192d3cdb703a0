"""Following a log file the way supervisord writes it: appends, partial lines, rotation."""
from __future__ import annotations

import os

from tui.live import LogFollower


def test_first_read_gives_the_tail_then_only_new_complete_lines(tmp_path):
    log = tmp_path / "svc.log"
    log.write_text("".join(f"line {i}\n" for i in range(100)))
    f = LogFollower(log, first=10)
    assert f.read() == [f"line {i}" for i in range(90, 100)]
    with log.open("a") as out:
        out.write("new 1\nhalf")
    assert f.read() == ["new 1"]
    with log.open("a") as out:
        out.write(" done\n")
    assert f.read() == ["half done"]
    assert f.read() == []


def test_rotation_starts_over_on_the_new_file(tmp_path):
    log = tmp_path / "svc.log"
    log.write_text("old\n")
    f = LogFollower(log)
    assert f.read() == ["old"]
    os.rename(log, tmp_path / "svc.log.1")
    log.write_text("fresh\n")
    assert f.read() == ["fresh"]
    log.write_text("")          # truncated in place, then written again
    with log.open("a") as out:
        out.write("x\n")
    assert f.read() == ["x"]
    f.close()


def test_a_missing_log_reads_as_nothing(tmp_path):
    assert LogFollower(tmp_path / "none.log").read() == []
