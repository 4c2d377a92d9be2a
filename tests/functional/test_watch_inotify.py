"""The cinder_ha_watch engine's Watcher on real inotify, the real alert agent, and the
cinder_ha_events module through Salt's loader (issue 8); delivery only once acknowledged,
with retries, and across restarts (issue 14)."""
import hashlib
import json
import os
import pathlib
import subprocess
import threading
import time

import pytest

from tests.support.agent import spool_entries
from tests.support.reactor import load

PROJECT = pathlib.Path(__file__).resolve().parents[2]
AGENT = PROJECT / "salt" / "cinder_ha" / "files" / "alert" / "cinder_ha_alert"
# what pacemaker-controld gives the alert agent for a stop of p_cinder-api on node1
STOP_ALERT = {"PATH": "/usr/bin:/bin", "CRM_alert_kind": "resource", "CRM_alert_rsc": "p_cinder-api",
              "CRM_alert_task": "stop", "CRM_alert_rc": "0", "CRM_alert_target_rc": "0", "CRM_alert_status": "0",
              "CRM_alert_node": "node1"}


class Sent(list):
    """Stands in for the master's acknowledgement: records acknowledged (tag, data); `ok`
    False simulates an absent master (every attempt, with its time, lands in `attempts`)."""
    ok = True

    def __init__(self):
        super().__init__()
        self.attempts = []

    def __call__(self, tag, data, timeout):
        self.attempts.append((time.monotonic(), tag, timeout))
        if self.ok:
            self.append((tag, data))
        return self.ok


FAST = {"first": 0.2, "cap": 0.8, "min_ack_wait": 0.1}  # the engine's 1..30 s schedule, scaled down


@pytest.fixture
def engine():
    return load("reactor_engine_f", PROJECT / "_engines" / "cinder_ha_watch.py")


@pytest.fixture
def watch(tmp_path, engine):
    conf_dir = tmp_path / "etc"
    conf_dir.mkdir()
    conf = conf_dir / "cinder.conf"
    conf.write_text("[DEFAULT]\n")
    spool = tmp_path / "spool"
    spool.mkdir()
    digests = tmp_path / "cache" / "cinder_ha" / "digests.json"
    digests.parent.mkdir(parents=True)
    reported = digests.parent / "watch_reported.json"
    sent = Sent()
    watcher = engine.Watcher([str(conf)], sent, str(digests), alert_spool=str(spool), debounce=0.05,
                             reported_file=str(reported), backoff=engine.delivery.Backoff(**FAST))
    thread = threading.Thread(target=watcher.run, daemon=True)

    class Handle:
        pass
    handle = Handle()
    handle.__dict__.update(engine=engine, conf=conf, spool=spool, digests=digests, sent=sent, watcher=watcher,
                           reported=reported, thread=thread)

    def managed_write(content):
        """What cinder_conf.managed does: record the digest first, then rename atomically."""
        data = content.encode()
        digests.write_text(json.dumps({str(conf): hashlib.sha256(data).hexdigest()}))
        tmp = conf_dir / ".cinder.conf.new"
        tmp.write_bytes(data)
        os.replace(tmp, conf)
    handle.managed_write = managed_write
    managed_write("[DEFAULT]\ndebug = false\n")
    thread.start()
    time.sleep(0.3)
    try:
        yield handle
    finally:
        watcher.stopping = True
        (conf_dir / "wake").write_text("")
        thread.join(10)
        assert not thread.is_alive()


def settle(seconds=0.5):
    time.sleep(seconds)


def conf_events(sent):
    return [data for tag, data in sent if tag == "cinder_ha/conf/changed"]


def test_in_place_edit_is_reported_once(watch):
    with open(watch.conf, "a") as handle:
        handle.write("debug = true\n")
    settle()
    assert conf_events(watch.sent) == [{"path": str(watch.conf),
                                        "digest": hashlib.sha256(watch.conf.read_bytes()).hexdigest()}]


def test_sed_i_rename_over_edit_is_reported_once(watch):
    subprocess.run(["sed", "-i", "s/false/true/", str(watch.conf)], check=True, timeout=10)
    settle()
    assert len(conf_events(watch.sent)) == 1


def test_own_writes_are_never_reported(watch):
    for n in range(5):
        watch.managed_write(f"[DEFAULT]\n# run {n}\n")
    (watch.conf.parent / "cinder.conf.stamp").write_text("other file in the directory")
    settle()
    assert watch.sent == []


def test_same_edit_after_correction_is_reported_again(watch):
    for _ in range(2):
        with open(watch.conf, "a") as handle:
            handle.write("debug = true\n")
        settle()
        watch.managed_write("[DEFAULT]\ndebug = false\n")
        settle()
    assert len(conf_events(watch.sent)) == 2


def test_removed_file_is_reported(watch):
    watch.conf.unlink()
    settle()
    assert conf_events(watch.sent) == [{"path": str(watch.conf), "digest": watch.engine.ABSENT}]


def test_real_alert_agent_file_is_forwarded_and_deleted(watch):
    env = dict(STOP_ALERT, CRM_alert_recipient=str(watch.spool))
    subprocess.run([str(AGENT)], env=env, check=True, timeout=30)
    subprocess.run([str(AGENT)], env=dict(env, CRM_alert_task="monitor"), check=True, timeout=30)  # healthy: no file
    settle()
    assert watch.sent == [("cinder_ha/cluster/resource",
                           {"kind": "resource", "rsc": "p_cinder-api", "task": "stop", "rc": "0",
                            "target_rc": "0", "status": "0", "node": "node1"})]
    assert spool_entries(watch.spool) == []


def test_the_engine_keeps_its_heartbeat_fresh_and_the_agent_spools_only_then(watch, tmp_path):
    """The alert agent spools into a folder only while an engine's heartbeat there is fresh:
    a node without a running engine piles up no backlog (issue 23)."""
    beat = watch.spool / watch.engine.events.ENGINE_HEARTBEAT
    assert beat.is_file() and time.time() - beat.stat().st_mtime < 10
    first = beat.stat().st_mtime
    settle(watch.engine.RESCAN_SECONDS + 1)
    assert beat.stat().st_mtime > first, "the engine did not touch its heartbeat again"
    env = STOP_ALERT
    nobody = tmp_path / "no-engine"
    nobody.mkdir()
    subprocess.run([str(AGENT)], env=dict(env, CRM_alert_recipient=str(nobody)), check=True, timeout=30)
    assert os.listdir(nobody) == []  # no heartbeat: nothing spooled
    stale = nobody / watch.engine.events.ENGINE_HEARTBEAT
    stale.touch()
    old = time.time() - watch.engine.events.ENGINE_STALE_SECONDS - 5
    os.utime(stale, (old, old))
    subprocess.run([str(AGENT)], env=dict(env, CRM_alert_recipient=str(nobody)), check=True, timeout=30)
    assert spool_entries(nobody) == []  # an engine stopped 2 minutes ago: nothing either
    stale.touch()
    subprocess.run([str(AGENT)], env=dict(env, CRM_alert_recipient=str(nobody)), check=True, timeout=30)
    assert len(spool_entries(nobody)) == 1


def test_alert_is_kept_while_the_master_is_away_and_delivered_by_the_retry(watch):
    watch.sent.ok = False
    (watch.spool / "1-1-1.json").write_text(json.dumps({"rsc": "p_cinder-api", "task": "start"}))
    (watch.spool / "1-1-2.json").write_text(json.dumps({"rsc": "p_cinder-api", "task": "stop"}))
    settle(1.6)
    assert spool_entries(watch.spool) == ["1-1-1.json", "1-1-2.json"]
    tried = [t for t, tag, _ in watch.sent.attempts]
    # retried on the back-off schedule (0.2, 0.4, 0.8, 0.8 s), the first file first, never a hot loop
    assert 3 <= len(tried) <= 6, tried
    assert all(b - a >= 0.15 for a, b in zip(tried, tried[1:])), tried
    watch.sent.ok = True
    settle(1.2)  # no new inotify event: the scheduled retry alone delivers
    assert [data["task"] for _, data in watch.sent] == ["start", "stop"]
    assert spool_entries(watch.spool) == []
    assert not watch.watcher.backoff.down


def test_drift_while_the_master_is_away_is_reported_once_when_it_is_back(watch):
    watch.sent.ok = False
    with open(watch.conf, "a") as handle:
        handle.write("debug = true\n")
    settle(1.0)
    assert len(watch.sent.attempts) >= 2 and watch.sent == []
    assert not watch.reported.exists()  # nothing is marked reported before the master answered
    watch.sent.ok = True
    settle(1.2)
    digest = hashlib.sha256(watch.conf.read_bytes()).hexdigest()
    assert conf_events(watch.sent) == [{"path": str(watch.conf), "digest": digest}]
    assert json.loads(watch.reported.read_text()) == {str(watch.conf): digest}
    settle(0.5)
    assert len(conf_events(watch.sent)) == 1


def test_an_edit_made_during_the_outage_replaces_the_unsent_one(watch):
    watch.sent.ok = False
    with open(watch.conf, "a") as handle:
        handle.write("debug = true\n")
    settle(0.5)
    with open(watch.conf, "a") as handle:
        handle.write("verbose = true\n")
    settle(0.5)
    watch.sent.ok = True
    settle(1.2)
    assert conf_events(watch.sent) == [{"path": str(watch.conf),
                                        "digest": hashlib.sha256(watch.conf.read_bytes()).hexdigest()}]


def start_watcher(engine, watch, sent):
    """A second engine life on the same files (the minion restarted)."""
    watcher = engine.Watcher([str(watch.conf)], sent, str(watch.digests), alert_spool=str(watch.spool),
                             debounce=0.05, reported_file=str(watch.reported),
                             backoff=engine.delivery.Backoff(**FAST))
    thread = threading.Thread(target=watcher.run, daemon=True)
    thread.start()
    return watcher, thread


def stop_watcher(watch, watcher, thread):
    watcher.stopping = True
    (watch.conf.parent / "wake").write_text("")
    thread.join(10)
    assert not thread.is_alive()


def test_edit_while_the_engine_was_down_is_reported_once_at_start(watch, engine):
    stop_watcher(watch, watch.watcher, watch.thread)
    with open(watch.conf, "a") as handle:  # the minion is down
        handle.write("debug = true\n")
    sent = Sent()
    watcher, thread = start_watcher(engine, watch, sent)
    settle()
    stop_watcher(watch, watcher, thread)
    assert len(conf_events(sent)) == 1
    again = Sent()  # a further restart: the drift is still there, but it was reported
    watcher, thread = start_watcher(engine, watch, again)
    settle()
    stop_watcher(watch, watcher, thread)
    assert again == []


def test_unacknowledged_drift_survives_a_restart(watch, engine):
    watch.sent.ok = False
    with open(watch.conf, "a") as handle:
        handle.write("debug = true\n")
    settle()
    assert watch.sent == [] and watch.sent.attempts
    sent = Sent()  # the minion restarts with the master back
    watcher, thread = start_watcher(engine, watch, sent)
    settle()
    stop_watcher(watch, watcher, thread)
    assert len(conf_events(sent)) == 1


# ---------------------------------------------------------------- cinder_ha_events via the loader


def test_record_and_recent_keep_known_fields_in_order(loaders):
    events = loaders.modules.cinder_ha_events
    for task in ("stop", "start", "stop"):
        events.record({"rsc": "p_cinder-api", "task": task, "rc": "0", "node": "node1", "evil": "x"})
    last = events.recent(limit=2)
    assert [e["task"] for e in last] == ["start", "stop"]
    assert "evil" not in last[0] and last[0]["recorded"]
    path = pathlib.Path(loaders.opts["cachedir"]) / "cinder_ha" / "moves.jsonl"
    assert oct(path.stat().st_mode & 0o777) == "0o600"


def test_handle_move_checks_after_a_start_on_the_live_cluster(loaders):
    events = loaders.modules.cinder_ha_events
    entry = events.handle_move({"rsc": "reactor_not_there", "task": "start", "rc": "0"})
    # no pillar here and no crm module: the check degrades to crm_resource and says why it cannot probe
    assert entry["check"]["location"]["via"] in ("crm_resource", "crm.locate")
    assert entry["check"]["location"].get("running") in (False, None)
    assert "error" in entry["check"]["probe"]
    assert events.recent(limit=1)[0]["check"]["resource"] == "reactor_not_there"
    stop = events.handle_move({"rsc": "reactor_not_there", "task": "stop", "rc": "0"})
    assert "check" not in stop
