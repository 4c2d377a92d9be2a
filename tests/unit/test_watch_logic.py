"""Pure decisions of the cinder_ha_watch engine and the cinder_ha_alert agent (issue 8)."""
import hashlib
import json

import pytest

from tests.reactor_support import PROJECT, load


@pytest.fixture(scope="module")
def engine():
    return load("t8_engine", PROJECT / "_engines" / "cinder_ha_watch.py")


@pytest.fixture(scope="module")
def agent():
    return load("t8_agent", PROJECT / "salt" / "cinder_ha" / "files" / "alert" / "cinder_ha_alert")


def test_own_write_is_not_reported_and_forgets_the_last_report(engine):
    assert engine.should_report("aa", "aa", "bb") == (False, None)


def test_outside_change_is_reported_once(engine):
    assert engine.should_report("bb", "aa", None) == (True, "bb")
    assert engine.should_report("bb", "aa", "bb") == (False, "bb")


def test_same_edit_again_after_a_correction_is_reported(engine):
    _, last = engine.should_report("bb", "aa", None)
    _, last = engine.should_report("aa", "aa", last)  # the state restored the file
    assert engine.should_report("bb", "aa", last) == (True, "bb")


def test_file_never_managed_is_reported(engine):
    assert engine.should_report("bb", None, None) == (True, "bb")


def test_digest_of_missing_file_is_absent(engine, tmp_path):
    assert engine.file_digest(str(tmp_path / "nope")) == engine.ABSENT
    (tmp_path / "f").write_bytes(b"x")
    assert engine.file_digest(str(tmp_path / "f")) == hashlib.sha256(b"x").hexdigest()


def test_recorded_digest_matches_resolved_path(engine, tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)
    digests = {str(real / "cinder.conf"): "d1"}
    assert engine.recorded_digest(digests, str(tmp_path / "link" / "cinder.conf")) == "d1"
    assert engine.recorded_digest({}, str(real / "cinder.conf")) is None


def test_alert_sanitizing_keeps_known_short_strings(engine):
    clean = engine.sanitize_alert({"rsc": "p_cinder-api", "task": "stop", "rc": 0, "desc": "x" * 1000,
                                   "cmd": "rm -rf /", "fun": "cmd.run"})
    assert clean == {"rsc": "p_cinder-api", "task": "stop", "rc": "0", "desc": "x" * 256}


@pytest.mark.parametrize("raw", [None, [], "text", {"rsc": "a b; rm"}, {"rsc": "$(id)"}, {"other": 1}])
def test_alert_sanitizing_rejects_junk(engine, raw):
    assert engine.sanitize_alert(raw) is None


def test_spool_names(engine):
    assert engine.is_spool_name("123-1-9.json")
    assert not engine.is_spool_name(".123-1-9.json")  # the agent's temp file
    assert not engine.is_spool_name("123.tmp")


def test_read_alert_file_limits_size_and_parses(engine, tmp_path):
    good = tmp_path / "a.json"
    good.write_text(json.dumps({"rsc": "t8", "task": "start"}))
    assert engine.read_alert_file(str(good)) == {"rsc": "t8", "task": "start"}
    big = tmp_path / "b.json"
    big.write_text(json.dumps({"rsc": "t8", "desc": "x" * (engine.MAX_ALERT_BYTES + 1)}))
    assert engine.read_alert_file(str(big)) is None
    bad = tmp_path / "c.json"
    bad.write_text("{not json")
    assert engine.read_alert_file(str(bad)) is None


def env(**values):
    base = {"CRM_alert_kind": "resource", "CRM_alert_rsc": "p_cinder-api", "CRM_alert_task": "start",
            "CRM_alert_rc": "0", "CRM_alert_target_rc": "0", "CRM_alert_status": "0"}
    base.update(values)
    return base


@pytest.mark.parametrize("values, wanted", [
    ({}, True),
    ({"CRM_alert_rsc": "p_ip_cinder-api", "CRM_alert_task": "stop"}, True),
    ({"CRM_alert_task": "monitor"}, False),                                # a healthy monitor
    ({"CRM_alert_task": "monitor", "CRM_alert_rc": "7"}, True),            # a failure
    ({"CRM_alert_task": "monitor", "CRM_alert_status": "1"}, False),       # cancelled before a stop
    ({"CRM_alert_task": "monitor", "CRM_alert_status": "2"}, True),        # timed out
    ({"CRM_alert_rsc": "p_other"}, False),
    ({"CRM_alert_kind": "node"}, False),
    ({"CRM_alert_rsc": "t8_dummy", "cinder_ha_resources": "t8_dummy"}, True),
    ({"cinder_ha_resources": "t8_dummy"}, False),
])
def test_agent_filters_resources_and_tasks(agent, values, wanted):
    assert agent.wanted(env(**values)) is wanted


def test_agent_spools_one_complete_file(agent, tmp_path):
    data = agent.event(env(CRM_alert_node="node1", CRM_alert_desc='ok "quoted"\n', CRM_alert_recipient=str(tmp_path)))
    agent.spool(env(CRM_alert_recipient=str(tmp_path)), data)
    (name,) = [p.name for p in tmp_path.iterdir()]
    assert not name.startswith(".") and name.endswith(".json")
    assert json.loads((tmp_path / name).read_text())["desc"] == 'ok "quoted"\n'
