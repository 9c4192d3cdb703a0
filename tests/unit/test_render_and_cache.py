import os

from afbox import cache, events as ev
from afbox.cli import render
from afbox.lifecycle import Status


def test_event_lines():
    assert render.event_line(ev.Event(ev.HEALTHY, "jupyter", "2.0s")) == "[ok] jupyter         healthy 2.0s"
    assert render.event_line(ev.Event(ev.INFO, "", "already up")) == "[  ] already up"


def test_status_table_and_down_text():
    st = Status.model_validate({"facility": "ci", "state": "up", "profile": "ci", "backend": "local", "services": [
        {"name": "jupyter", "state": "running", "health": "healthy", "urls": {"lab": "http://127.0.0.1:1/lab"},
         "primary": "http://127.0.0.1:1/lab", "ports": {"http": 1}, "pid": 42, "restarts": 1, "uptime": 3725}]})
    lines = render.status_text(st)
    assert lines[2].split() == list(render.STATUS_COLUMNS[:3]) + ["URL/PORT", "PID", "RESTARTS", "UPTIME"]
    assert lines[3].split() == ["jupyter", "running", "healthy", "http://127.0.0.1:1/lab", "42", "1", "1h02m"]
    assert "down" in render.status_text(Status(facility="ci", state="down"))[0]


def test_human_units():
    assert render.human_bytes(1536) == "1.5 KiB"
    assert render.human_duration(59) == "59s" and render.human_duration(61) == "1m01s"


def test_cache_stats_counts_data_not_cinfo_and_purge_keeps_dir(tmp_path):
    d = tmp_path / "xcache"
    (d / "store").mkdir(parents=True)
    (d / "store" / "a.root").write_bytes(os.urandom(8192))
    (d / "store" / "a.root.cinfo").write_bytes(b"x" * 100)
    s = cache.stats(d, 1024 ** 2)
    assert s["files"] == 1 and s["bytes"] >= 8192 and s["logical_bytes"] == 8192
    assert s["low_watermark"] < s["nominal_watermark"] < s["high_watermark"]
    assert cache.purge(d) == s["files"] == 1  # what `cache purge` asks about is what it reports
    assert d.exists() and list(d.iterdir()) == []
