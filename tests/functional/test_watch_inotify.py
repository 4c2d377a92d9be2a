"""The cinder_ha_watch engine's Watcher on real inotify, the real alert agent, and the
cinder_ha_events module through Salt's loader (issue 8)."""
import hashlib
import json
import os
import pathlib
import subprocess
import threading
import time

import pytest

from tests.reactor_support import load

PROJECT = pathlib.Path(__file__).resolve().parents[2]
AGENT = PROJECT / "salt" / "cinder_ha" / "files" / "alert" / "cinder_ha_alert"


class Sent(list):
    """Stands in for event.send: records (tag, data); `ok` False simulates an absent master."""
    ok = True

    def __call__(self, tag, data):
        if self.ok:
            self.append((tag, data))
        return self.ok


@pytest.fixture
def watch(tmp_path):
    engine = load("t8_engine_f", PROJECT / "_engines" / "cinder_ha_watch.py")
    conf_dir = tmp_path / "etc"
    conf_dir.mkdir()
    conf = conf_dir / "cinder.conf"
    conf.write_text("[DEFAULT]\n")
    spool = tmp_path / "spool"
    spool.mkdir()
    digests = tmp_path / "cache" / "cinder_ha" / "digests.json"
    digests.parent.mkdir(parents=True)
    sent = Sent()
    watcher = engine.Watcher([str(conf)], sent, str(digests), alert_spool=str(spool), debounce=0.05)
    thread = threading.Thread(target=watcher.run, daemon=True)

    class Handle:
        pass
    handle = Handle()
    handle.__dict__.update(engine=engine, conf=conf, spool=spool, digests=digests, sent=sent, watcher=watcher)

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
    env = {"PATH": "/usr/bin:/bin", "CRM_alert_kind": "resource", "CRM_alert_rsc": "p_cinder-api",
           "CRM_alert_task": "stop", "CRM_alert_rc": "0", "CRM_alert_target_rc": "0", "CRM_alert_status": "0",
           "CRM_alert_node": "node1", "CRM_alert_recipient": str(watch.spool)}
    subprocess.run([str(AGENT)], env=env, check=True, timeout=30)
    subprocess.run([str(AGENT)], env=dict(env, CRM_alert_task="monitor"), check=True, timeout=30)  # healthy: no file
    settle()
    assert watch.sent == [("cinder_ha/cluster/resource",
                           {"kind": "resource", "rsc": "p_cinder-api", "task": "stop", "rc": "0",
                            "target_rc": "0", "status": "0", "node": "node1"})]
    assert os.listdir(watch.spool) == []


def test_alert_is_kept_while_the_master_is_away(watch):
    watch.sent.ok = False
    (watch.spool / "1-1-1.json").write_text(json.dumps({"rsc": "p_cinder-api", "task": "start"}))
    settle()
    assert os.listdir(watch.spool) == ["1-1-1.json"]
    watch.sent.ok = True
    assert watch.watcher.drain_spool() == 1  # the engine's periodic rescan does the same
    assert os.listdir(watch.spool) == []


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
    entry = events.handle_move({"rsc": "t8_not_there", "task": "start", "rc": "0"})
    # no pillar here and no crm module: the check degrades to crm_resource and says why it cannot probe
    assert entry["check"]["location"]["via"] in ("crm_resource", "crm.locate")
    assert entry["check"]["location"].get("running") in (False, None)
    assert "error" in entry["check"]["probe"]
    assert events.recent(limit=1)[0]["check"]["resource"] == "t8_not_there"
    stop = events.handle_move({"rsc": "t8_not_there", "task": "stop", "rc": "0"})
    assert "check" not in stop
