"""Pure decisions of the cinder_ha_watch engine and the cinder_ha_alert agent (issue 8)."""
import hashlib
import json
import os

import pytest

from tests.support.reactor import PROJECT, load


@pytest.fixture(scope="module")
def engine():
    return load("reactor_engine", PROJECT / "_engines" / "cinder_ha_watch.py")


@pytest.fixture(scope="module")
def agent():
    return load("reactor_agent", PROJECT / "salt" / "cinder_ha" / "files" / "alert" / "cinder_ha_alert")


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
    good.write_text(json.dumps({"rsc": "reactor_dummy", "task": "start"}))
    assert engine.read_alert_file(str(good)) == {"rsc": "reactor_dummy", "task": "start"}
    big = tmp_path / "b.json"
    big.write_text(json.dumps({"rsc": "reactor_dummy", "desc": "x" * (engine.MAX_ALERT_BYTES + 1)}))
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
    ({"CRM_alert_rsc": "reactor_dummy", "cinder_ha_resources": "reactor_dummy"}, True),
    ({"cinder_ha_resources": "reactor_dummy"}, False),
])
def test_agent_filters_resources_and_tasks(agent, values, wanted):
    assert agent.wanted(env(**values)) is wanted


def test_agent_spools_one_complete_file(agent, tmp_path):
    (tmp_path / agent.ENGINE_HEARTBEAT).touch()  # an engine drains this folder
    data = agent.event(env(CRM_alert_node="node1", CRM_alert_desc='ok "quoted"\n', CRM_alert_recipient=str(tmp_path)))
    assert agent.spool(env(CRM_alert_recipient=str(tmp_path)), data) is True
    (name,) = [p.name for p in tmp_path.iterdir() if p.name != agent.ENGINE_HEARTBEAT]
    assert not name.startswith(".") and name.endswith(".json")
    assert json.loads((tmp_path / name).read_text())["desc"] == 'ok "quoted"\n'


def test_agent_spools_nothing_where_no_engine_beats(agent, tmp_path):
    data = agent.event(env(CRM_alert_recipient=str(tmp_path)))
    assert agent.spool(env(CRM_alert_recipient=str(tmp_path)), data) is False
    beat = tmp_path / agent.ENGINE_HEARTBEAT
    beat.touch()
    stale = beat.stat().st_mtime - agent.ENGINE_STALE_SECONDS - 1
    os.utime(beat, (stale, stale))
    assert agent.spool(env(CRM_alert_recipient=str(tmp_path)), data) is False
    assert [p.name for p in tmp_path.iterdir()] == [agent.ENGINE_HEARTBEAT]


def test_the_agents_and_the_engine_share_the_heartbeat(agent):
    """Neither agent can import cinder_ha_lib (system python3 as hacluster; shell): their copies
    of the heartbeat's name and age limit are held equal here."""
    from cinder_ha_lib import events

    assert (agent.ENGINE_HEARTBEAT, agent.ENGINE_STALE_SECONDS) == (events.ENGINE_HEARTBEAT,
                                                                    events.ENGINE_STALE_SECONDS)
    shell = (PROJECT / "salt" / "cinder_ha" / "files" / "ocf" / "cinder-api").read_text()
    assert f"\nENGINE_HEARTBEAT={events.ENGINE_HEARTBEAT}\n" in shell
    assert f"\nENGINE_STALE_SECONDS={events.ENGINE_STALE_SECONDS}\n" in shell


@pytest.mark.parametrize("age,alive", [(None, False), (0, True), (120, True), (121, False), (-200, False)])
def test_engine_alive_is_a_fresh_heartbeat_either_side_of_now(agent, tmp_path, age, alive):
    now = 1_800_000_000.0
    if age is not None:  # negative: touched "after" now (a clock stepped back)
        beat = tmp_path / agent.ENGINE_HEARTBEAT
        beat.touch()
        os.utime(beat, (now - age, now - age))
    assert agent.engine_alive(str(tmp_path), now=now) is alive


# ---------------------------------------------------------------- delivery (issue 14), no Salt

from cinder_ha_lib import delivery  # noqa: E402


def test_backoff_doubles_from_one_second_to_thirty_and_resets():
    backoff = delivery.Backoff()
    assert backoff.ready(0) and not backoff.down
    dues = []
    started = 100.0
    for _ in range(8):
        dues.append(backoff.failed(started) - started)
    assert dues == [1, 2, 4, 8, 16, 30, 30, 30]
    backoff.succeeded()
    assert backoff.ready(0) and not backoff.down and backoff.delay() == 1


def test_backoff_counts_from_the_start_of_the_failed_attempt():
    backoff = delivery.Backoff()
    due = backoff.failed(started=10.0)  # the attempt itself may have waited 5 s for an answer
    assert due == 11.0
    assert not backoff.ready(10.5) and backoff.wait(10.5) == 0.5
    assert backoff.ready(11.0) and backoff.wait(16.0) == 0.0


def test_an_attempt_waits_for_the_answer_at_least_min_ack_wait_and_up_to_the_delay():
    backoff = delivery.Backoff()
    waits = []
    for _ in range(7):
        waits.append(backoff.ack_wait())
        backoff.failed(0.0)
    # a busy master's late answer is never taken for a loss (no duplicate); while the master
    # is away the engine waits inside the request, at most 30 s at a time
    assert waits == [5, 5, 5, 8, 16, 30, 30]


def test_a_master_that_never_answers_is_tried_a_bounded_number_of_times():
    # the engine's loop under a simulated clock: every attempt waits its ack_wait, then fails
    backoff, now, attempts = delivery.Backoff(), 0.0, 0
    while now < 3600:
        if backoff.ready(now):
            attempts += 1
            started, now = now, now + backoff.ack_wait()
            backoff.failed(started)
        else:
            now = backoff.due
    assert 115 <= attempts <= 125  # ~ one per 30 s once at the cap, never a hot loop


def test_backoff_rejects_nonsense():
    with pytest.raises(ValueError):
        delivery.Backoff(first=0)
    with pytest.raises(ValueError):
        delivery.Backoff(first=5, cap=1)


def test_reported_transition_changes_only_when_needed():
    reported, changed = delivery.reported_transition({}, "/c", None)
    assert (reported, changed) == ({}, False)
    reported, changed = delivery.reported_transition(reported, "/c", "d1")
    assert (reported, changed) == ({"/c": "d1"}, True)
    same, changed = delivery.reported_transition(reported, "/c", "d1")
    assert changed is False and same == {"/c": "d1"}
    gone, changed = delivery.reported_transition(reported, "/c", None)
    assert (gone, changed) == ({}, True) and reported == {"/c": "d1"}  # no mutation in place


def test_reported_file_round_trip_and_junk(tmp_path):
    path = tmp_path / "cache" / "cinder_ha" / "watch_reported.json"
    assert delivery.load_reported(str(path)) == {}
    delivery.save_reported(str(path), {"/etc/cinder/cinder.conf": "ab"})
    assert delivery.load_reported(str(path)) == {"/etc/cinder/cinder.conf": "ab"}
    assert oct(path.parent.stat().st_mode & 0o777) == "0o700"
    assert [p.name for p in path.parent.iterdir()] == ["watch_reported.json"]  # no temp file left
    for junk in ("{not json", "[1, 2]", '{"/c": 3}'):
        path.write_text(junk)
        assert delivery.load_reported(str(path)) == {}
    assert delivery.load_reported(None) == {}
    delivery.save_reported(None, {"/c": "x"})  # no file configured: nothing written


def test_engine_uses_the_shared_delivery_logic(engine):
    assert engine.delivery.Backoff is not None and engine.delivery.__name__ == "cinder_ha_lib.delivery"


# ---------------------------------------------------------------- files that are not files (issue 23)


def test_spool_entries_that_are_no_regular_file_are_refused_without_blocking(engine, tmp_path):
    import os

    target = tmp_path / "elsewhere.json"
    target.write_text(json.dumps({"rsc": "p_cinder-api", "task": "symlinked"}))
    (tmp_path / "link.json").symlink_to(target)
    (tmp_path / "dir.json").mkdir()
    os.mkfifo(tmp_path / "fifo.json")  # a blocking open() would hang this test
    for name, why in (("link.json", "without following it"), ("dir.json", "not a regular file"),
                      ("fifo.json", "not a regular file")):
        with pytest.raises(engine.NotAnAlertFile, match=why):
            engine.read_alert_file(str(tmp_path / name))
    assert engine.read_alert_file(str(tmp_path / "gone.json")) is None


def test_digest_of_a_fifo_or_folder_in_place_of_the_file_does_not_block(engine, tmp_path):
    import os

    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "dir").mkdir()
    assert engine.file_digest(str(tmp_path / "fifo")) == engine.NOT_REGULAR
    assert engine.file_digest(str(tmp_path / "dir")) == engine.NOT_REGULAR
