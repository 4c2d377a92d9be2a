"""cinder_ha_events with Salt's loader mocked: the move log keeps known fields, atomically, bounded."""
import pytest

from _modules import cinder_ha_events


@pytest.fixture
def configure_loader_modules(tmp_path):
    return {cinder_ha_events: {"__opts__": {"cachedir": str(tmp_path), "test": False}, "__salt__": {}}}


def test_record_keeps_known_fields_as_short_strings(tmp_path):
    entry = cinder_ha_events.record({"rsc": "p_cinder-api", "task": "start", "rc": 0, "evil": "$(reboot)",
                                     "desc": "x" * 999})
    assert entry["rsc"] == "p_cinder-api" and entry["rc"] == "0" and len(entry["desc"]) == 256
    assert "evil" not in entry and entry["recorded"]
    moves = tmp_path / "cinder_ha" / "moves.jsonl"
    assert oct(moves.stat().st_mode & 0o777) == "0o600"


def test_record_of_a_bad_resource_name_keeps_nothing_of_it():
    entry = cinder_ha_events.record({"rsc": "a;reboot", "task": "stop"})
    assert "rsc" not in entry and "task" not in entry


def test_recent_is_newest_last_and_the_log_is_bounded():
    for number in range(cinder_ha_events.KEEP + 5):
        cinder_ha_events.record({"rsc": "p_cinder-api", "task": "start", "rc": str(number)})
    last = cinder_ha_events.recent(3)
    assert [entry["rc"] for entry in last] == [str(cinder_ha_events.KEEP + n) for n in (2, 3, 4)]
    assert len(cinder_ha_events.recent(10_000)) == cinder_ha_events.KEEP
