"""cinder_ha_lib.delivery: when a drift is sent again, and durable JSON files (issue 23)."""
import json
import os

import pytest

from cinder_ha_lib import delivery


def test_a_drift_still_there_is_sent_again_after_doubling_pauses_up_to_the_cap():
    resend = delivery.Resend(first=60)
    assert resend.cap == 960 and resend.next_due() is None
    resend.sent("/c", 0.0)
    assert resend.ready(59.9) == [] and resend.ready(60.0) == ["/c"]
    times, now = [], 60.0
    for _ in range(8):
        times.append(now)
        resend.sent("/c", now)
        now = resend.next_due()
    pauses = [b - a for a, b in zip(times, times[1:])]
    assert pauses == [120, 240, 480, 960, 960, 960, 960]  # bounded: one event per cap at most
    resend.forget("/c")
    assert resend.next_due() is None and resend.ready(1e9) == []


def test_a_drift_reported_before_a_restart_is_rechecked_after_first_and_kept_on_failure():
    resend = delivery.Resend(first=10)
    resend.watch("/c", 100.0)
    resend.watch("/c", 105.0)  # a second look does not push it back
    assert resend.next_due() == 110.0
    resend.retry_at("/c", 140.0)  # the master did not answer: when the link is back
    assert resend.ready(139) == [] and resend.ready(140) == ["/c"]
    resend.sent("/c", 140.0)
    assert resend.next_due() == 150.0
    resend.retry_at("/other", 1.0)  # nothing scheduled: nothing to move
    assert list(resend.due) == ["/c"]


def test_resend_rejects_nonsense():
    with pytest.raises(ValueError):
        delivery.Resend(first=0)


def test_write_json_atomic_fsyncs_the_file_and_its_folder_and_leaves_no_temp(tmp_path, monkeypatch):
    synced = []
    real_fsync = os.fsync

    def fsync(fd):
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)
    monkeypatch.setattr(os, "fsync", fsync)
    path = tmp_path / "state" / "cache.json"
    delivery.write_json_atomic(str(path), {"seen": {"a": 1}})
    assert json.loads(path.read_text()) == {"seen": {"a": 1}}
    assert len(synced) == 2 and synced[0].startswith(str(path) + ".tmp") and synced[1] == str(path.parent)
    assert os.listdir(path.parent) == ["cache.json"]


def test_write_json_atomic_keeps_the_old_file_when_the_write_fails(tmp_path):
    path = tmp_path / "cache.json"
    delivery.write_json_atomic(str(path), {"old": 1})
    with pytest.raises(TypeError):
        delivery.write_json_atomic(str(path), {"new": object()})
    assert json.loads(path.read_text()) == {"old": 1} and os.listdir(tmp_path) == ["cache.json"]
