"""The scan journal's durability: every record flushed at once, fsync at most every FSYNC_EVERY_S seconds."""

from __future__ import annotations

import json

import minewatch.infer.journal as journal_module
from minewatch.infer.journal import FSYNC_EVERY_S, Journal


def test_records_are_flushed_at_once_and_synced_every_few_seconds_not_at_the_header(tmp_path, monkeypatch):
    clock = [1000.0]
    synced: list[int] = []
    monkeypatch.setattr(journal_module.time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(journal_module.os, "fsync", lambda fd: synced.append(fd))
    path = tmp_path / "scan.journal"
    journal = Journal(path, {"run_id": "r1"}, resume=False)
    journal.append([{"tile_id": "a"}])
    assert synced == []  # a scan shorter than FSYNC_EVERY_S is redone whole after a power cut: no fsync
    lines = path.read_text(encoding="utf-8").splitlines()
    assert [json.loads(x) for x in lines] == [{"run_id": "r1"}, [{"tile_id": "a"}]]  # flushed: a kill loses nothing
    clock[0] += FSYNC_EVERY_S
    journal.append([{"tile_id": "b"}])
    assert len(synced) == 1
    clock[0] += FSYNC_EVERY_S / 2
    journal.append([{"tile_id": "c"}])
    assert len(synced) == 1
    journal.close(remove=True)
    assert not path.exists()
