"""The one event schema (cinder_ha_lib.events): engine, module and reactor read it."""
import pytest

from cinder_ha_lib import events


@pytest.mark.parametrize("value, ok", [
    ("node1", True), ("n-1.example.org", True), ("a,b", False), ("", False), ("x" * 254, False),
    ("a b", False), ("*", False), (["node1"], False), (None, False), ("node1\n", False),
])
def test_safe_minion_id(value, ok):
    assert events.safe_minion_id(value) == (value if ok else None)


@pytest.mark.parametrize("path, ok", [
    ("/etc/cinder/cinder.conf", True), ("/cinder.conf", True), ("relative/cinder.conf", False),
    ("/etc/cinder/../shadow/cinder.conf", False), ("/etc//cinder.conf", False), ("/etc/passwd", False),
    ("/etc/cinder/cinder.conf/", False), (None, False), (["/etc/cinder/cinder.conf"], False),
])
def test_conf_path_ok(path, ok):
    assert events.conf_path_ok(path, ["cinder.conf"]) is ok


def test_clean_fields_keeps_known_fields_as_short_strings():
    clean = events.clean_fields({"rsc": "p_cinder-api", "task": "stop", "rc": 0, "desc": "x" * 999,
                                 "evil": "$(reboot)"})
    assert clean == {"rsc": "p_cinder-api", "task": "stop", "rc": "0", "desc": "x" * 256}
    assert events.clean_fields({"rsc": "a;reboot"}) is None
    assert events.clean_fields({"evil": 1}) is None
    assert events.clean_fields("rsc") is None


def test_alert_fields_reach_the_engine_and_moves_keep_the_first_ten():
    raw = {key: key.upper() for key in events.ALERT_FIELDS}
    assert events.clean_fields(raw, events.ALERT_FIELDS) == {key: key.upper() for key in events.ALERT_FIELDS}
    assert set(events.clean_fields(raw)) == set(events.MOVE_FIELDS)
    assert events.RECONFIGURE_TAG not in events.JOB_TAGS


def test_drop_log_one_line_per_sender_per_interval_with_the_count():
    drops = events.DropLog()
    assert drops.note("n1", 0.0, 60) == 1
    assert [drops.note("n1", t, 60) for t in (1.0, 2.0, 59.0)] == [None] * 3
    assert drops.note("n2", 3.0, 60) == 1  # another sender has its own line
    assert drops.note("n1", 60.0, 60) == 4  # this drop and the three kept quiet


def test_drop_log_memory_is_bounded_whatever_ids_are_claimed():
    drops = events.DropLog(max_keys=10)
    lines = [drops.note(f"claimed{i}", 1.0, 60) for i in range(1000)]
    assert len(drops.entries) <= 11 and lines.count(None) == 1000 - 11
    assert events.DropLog.OVERFLOW in drops.entries
    drops.note("late", 100.0, 60)  # older entries expire: room again
    assert "late" in drops.entries and len(drops.entries) == 1


def test_screen_checks_the_signature_last():
    calls = []

    def verify(view, sig):
        calls.append(view)
        return True
    data = {"id": "node1", "cmd": "_minion_event", "tag": events.CONF_TAG, "ts": 1000, "sig": b"s", "_stamp": "x"}
    assert events.screen(events.CONF_TAG, data, 1000, 300, verify) == ("node1", None)
    assert calls == [{"id": "node1", "cmd": "_minion_event", "tag": events.CONF_TAG, "ts": 1000}]
    for tag, changed in ((events.CONF_TAG, {"sig": None}), (events.CONF_TAG, {"ts": 1}),
                         (events.RESOURCE_TAG, {}), (events.CONF_TAG, {"id": "a,b"})):
        assert events.screen(tag, dict(data, **changed), 1000, 300, verify)[1] is not None
    assert len(calls) == 1
    assert events.screen(events.RECONFIGURE_TAG, data, 1000, 300, verify) == ("node1", events.RECONFIGURE_REASON)
