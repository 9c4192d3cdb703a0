"""The typed record: what `up` writes is read back as it was written, and records written before
records carried a version (captured from a real facility) are still read."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from afbox import record, services
from afbox.lifecycle.actions import new_record
from afbox.record import VERSION, FacilityRecord
from afbox.state import FacilityState
from test_services import ctx

RECORDS = Path(__file__).resolve().parent.parent / "fixtures" / "records"


def v1(name: str, base: str = "/srv/t") -> dict:
    return json.loads((RECORDS / name).read_text().replace("@BASE@", base))


def test_a_new_record_survives_the_file_exactly(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    c = ctx()
    specs = services.render(c)
    rec = new_record(c, specs, "local")
    state = FacilityState("ci")
    record.write(state, rec)
    back = record.read(state)
    assert back == rec and back.version == VERSION
    assert json.loads(state.record_file.read_text())["version"] == VERSION
    # what services declare reaches the record: their URLs for people, volumes, groups
    assert back.urls() == {"scheduler": "tls://127.0.0.1:18786", "dashboard": "http://127.0.0.1:18787/status",
                           "jupyter": "http://127.0.0.1:18788/lab", "xcache": "root://127.0.0.1:18780/",
                           "gateway": "http://127.0.0.1:18783"}
    assert back.services["xcache"].stateful and back.services["origin"].stateful
    assert not back.services["jupyter"].stateful
    assert [(n, s.replica_of, s.replica_index) for n, s in back.services.items() if s.replica_of] == [
        ("dask-worker-1", "dask-worker", 0), ("dask-worker-2", "dask-worker", 1)]
    assert back.services["dask-worker-1"].health == next(s.health for s in specs if s.name == "dask-worker-1")


def test_a_version_1_record_is_read_with_the_facts_of_its_time():
    rec = FacilityRecord.model_validate(v1("v1-scaled.json"))
    assert rec.version == 1 and rec.clusters == {}  # it said "clusters": null
    assert rec.urls() == {"scheduler": "tls://127.0.0.1:25306", "dashboard": "http://127.0.0.1:25307/status",
                          "jupyter": "http://127.0.0.1:25308/lab", "xcache": "root://127.0.0.1:25300/",
                          "gateway": "http://127.0.0.1:25303"}
    assert rec.services["dask-worker-3"].replica_of == "dask-worker" and rec.services["dask-worker-3"].replica_index == 2
    assert rec.services["xcache"].stateful and rec.services["jupyter"].primary == "http://127.0.0.1:25308/lab"
    assert rec.dask.workers == 3 and rec.spec.dask.workers == 3 and rec.auth.xcache_keycache
    assert rec.spec.facility.port_base == 25300
    named = FacilityRecord.model_validate(v1("v1-cluster.json")).clusters["old"]
    assert (named.env, named.address, named.workers, named.versions["distributed"]) == (
        "old", "tls://127.0.0.1:25900", 1, "2023.11.0")


def test_a_version_1_record_is_written_back_as_the_current_version(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    state = FacilityState("ci")
    state.dir.mkdir(parents=True)
    state.record_file.write_text(json.dumps(v1("v1-cluster.json", str(tmp_path))))
    rec = record.read(state)
    assert rec.version == 1
    record.write(state, rec)
    again = record.read(state)
    assert again.version == VERSION and again.clusters == rec.clusters and again.services == rec.services


@pytest.mark.parametrize("text", ["", "{", '{"facility": "ci"}', "[]"])
def test_what_is_not_a_record_reads_as_none(tmp_path, monkeypatch, text):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    state = FacilityState("ci")
    state.dir.mkdir(parents=True)
    state.record_file.write_text(text)
    assert record.read(state) is None
