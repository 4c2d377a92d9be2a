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
