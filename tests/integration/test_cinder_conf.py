"""The real cinder reads what cinder_conf.managed writes: from a cinder.conf with only the HA
guide's legacy keys, cinder-manage and cinder-api use the configured database after the state ran
(and silently did not before). Works in /srv/cinder-ha/t5 only (127.0.0.115:18765).

Issue 23, through the real reactor with the formula's cinder_ha.config and a cinder-api under the
cluster (the t8r instance of test_reactor.py, 127.0.0.118:18768): a cinder.conf moved away is never
recreated and restarts nothing; an edit of a key the formula does not manage restarts nothing until
the next explicit apply; the reactor's correction of a managed key restarts once."""
import json
import os
import pathlib
import shutil
import signal
import sqlite3
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from tests.conftest import SANDBOX
from tests.integration import test_reactor as t8r
from tests.integration.test_reactor import T8R, T8R_PID, T8R_RSC, api_unchanged, one_reactor_job, restart_state, write_pillar
from tests.support.agent import log_offset, resource_ops_since, running_pid

T5 = SANDBOX / "t5"
CONF = T5 / "cinder.conf"
CONFIGURED_DB = T5 / "configured.db"
STATE_PATH = T5 / "state"
FALLBACK_DB = STATE_PATH / "cinder.sqlite"  # oslo.db's default: sqlite:///$state_path/$sqlite_db
CINDER_BIN = SANDBOX / "venv" / "cinder" / "bin"
LISTEN, PORT = "127.0.0.115", 18765
RABBIT_PASSWORD = "t5-Rabbit-s3cret"
ENV = {"PATH": f"{CINDER_BIN}:/usr/bin:/bin", "LANG": "C.UTF-8"}

LEGACY_CONF = f"""\
[DEFAULT]
# From the HA guide (2014), step 3:
sql_connection = sqlite:///{CONFIGURED_DB}
osapi_volume_listen = {LISTEN}
notifier_strategy = rabbit
rabbit_host = 127.0.0.1
rabbit_password = {RABBIT_PASSWORD}
# what cinder needs to start in this sandbox:
state_path = {STATE_PATH}
auth_strategy = noauth
api_paste_config = {T5}/api-paste.ini
osapi_volume_listen_port = {PORT}
osapi_volume_workers = 1

[oslo_concurrency]
lock_path = {T5}/lock
"""


def tables(path):
    if not path.exists():
        return set()
    with sqlite3.connect(path) as db:
        return {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def db_sync():
    result = subprocess.run([str(CINDER_BIN / "cinder-manage"), "--config-file", str(CONF), "db", "sync"],
                            capture_output=True, text=True, timeout=300, env=ENV, cwd=T5)
    assert result.returncode == 0, result.stderr[-3000:]


def managed(salt_call_cli, **options):
    ret = salt_call_cli.run("state.single", "cinder_conf.managed", f"name={CONF}",
                            f"options={json.dumps(options)}")
    data = ret.data.get("local", ret.data) if isinstance(ret.data, dict) else ret.data
    assert isinstance(data, dict) and len(data) == 1, ret
    return ret, next(iter(data.values()))


@pytest.fixture
def t5():
    shutil.rmtree(T5, ignore_errors=True)
    (T5 / "lock").mkdir(parents=True)
    STATE_PATH.mkdir()
    shutil.copy("/etc/cinder/api-paste.ini", T5 / "api-paste.ini")
    CONF.write_text(LEGACY_CONF)
    processes = []
    yield processes
    for process in processes:  # only the cinder-api this test started: its own process group
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)
    shutil.rmtree(T5, ignore_errors=True)


def test_legacy_keys_are_ignored_by_cinder_until_the_state_migrates_them(t5, salt_call_cli):
    # Before: cinder silently ignores sql_connection and uses $state_path/cinder.sqlite.
    db_sync()
    assert "services" in tables(FALLBACK_DB)
    assert not CONFIGURED_DB.exists()
    FALLBACK_DB.unlink()

    ret, state = managed(salt_call_cli, DEFAULT={"osapi_volume_listen": LISTEN, "osapi_volume_listen_port": PORT})
    assert state["result"] is True, state["comment"]
    assert "[database] connection" in state["changes"] and "[DEFAULT] sql_connection" in state["changes"]
    assert "local SQLite file" in state["comment"]
    whole = json.dumps(ret.data) + ret.stdout + ret.stderr
    assert RABBIT_PASSWORD not in whole
    text = CONF.read_text()
    assert "# From the HA guide (2014), step 3:\n" in text and "sql_connection" not in text
    assert f"transport_url = rabbit://guest:{RABBIT_PASSWORD}@127.0.0.1:5672/" in text

    # After: the configured file gets the tables, the fallback never appears.
    db_sync()
    assert "services" in tables(CONFIGURED_DB)
    assert not FALLBACK_DB.exists()

    log = open(T5 / "cinder-api.log", "wb")
    api = subprocess.Popen([str(CINDER_BIN / "cinder-api"), "--config-file", str(CONF)], stdout=log,
                           stderr=subprocess.STDOUT, env=ENV, cwd=T5, start_new_session=True)
    t5.append(api)
    status = None
    for _ in range(120):  # cinder-api queries the services table at start: it dies without it
        if api.poll() is not None:
            break
        try:
            status = urllib.request.urlopen(f"http://{LISTEN}:{PORT}/healthcheck", timeout=2).status
            break
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.25)
    assert status == 200, (T5 / "cinder-api.log").read_text()[-3000:]
    with sqlite3.connect(CONFIGURED_DB) as db:
        # the table cinder-api read at start (it dies without it) is here; cinder-api adds no row (measured)
        assert db.execute("SELECT count(*) FROM services").fetchone()[0] == 0
    assert not FALLBACK_DB.exists()

    _ret, again = managed(salt_call_cli, DEFAULT={"osapi_volume_listen": LISTEN, "osapi_volume_listen_port": PORT})
    assert again["result"] is True and again["changes"] == {}


# ---------------------------------------------------------------- issue 23: no outage we cause
# The t8r instance of tests/integration/test_reactor.py: the formula's real cinder_ha.config, a real
# master (reactor, runner) and minion (engine), a real cinder-api under the cluster as reactor_api.

real_paths, real_minion, real_api = t8r.real_paths, t8r.real_minion, t8r.real_api  # its fixtures, by name
OUTAGE_WINDOW = 30  # the live check: the same cinder-api pid 30 s after the edit


def start_record():
    return pathlib.Path(T8R_PID + ".start").read_bytes()


def state_of(ret, prefix):
    (state,) = [s for key, s in ret["return"].items() if key.startswith(prefix)]
    return state


def managed_state(ret):
    return state_of(ret, "cinder_conf_|-cinder_ha-config-cinder-conf-managed")


def settle_until(since):
    time.sleep(max(0.0, since + OUTAGE_WINDOW - time.time()))


def sed(path, expression):
    """sed -i: a new file renamed over the old one, owner and mode kept."""
    subprocess.run(["sed", "-i", expression, str(path)], check=True, timeout=10)


def config_status(cli, minion):
    ret = cli.run("cinder_ha.status", minion_tgt=minion.id)
    assert isinstance(ret.data, dict), ret
    return ret.data["config"]


def test_a_conf_moved_away_is_never_recreated_and_cinder_api_keeps_running(real_api, real_paths, event_listener):
    """mv cinder.conf away (to edit it elsewhere): the engine reports it absent, the reactor's run
    fails saying how to restore it, writes nothing and restarts nothing."""
    master, _minion = real_api
    conf = pathlib.Path(real_paths["conf"])
    aside = T8R / "cinder.conf.aside"
    pid, offset, record = running_pid(T8R_PID), log_offset(), start_record()
    since = time.time()
    os.rename(conf, aside)
    try:
        ret = one_reactor_job(event_listener, master, since)
        state = managed_state(ret)
        assert state["result"] is False and state["changes"] == {}, state
        assert f"{conf} does not exist" in state["comment"] and f"{T8R_PID}.conf" in state["comment"], state
        assert f"pid {pid}" in state["comment"] and "cinder_conf:create" in state["comment"]
        assert restart_state(ret)["changes"] == {}
        settle_until(since)
        assert not conf.exists(), f"{conf} was recreated"
        api_unchanged(pid, offset)
        assert start_record() == record
    finally:
        os.rename(aside, conf)


def test_an_unmanaged_key_edit_is_pending_until_the_next_explicit_apply(real_api, real_paths, event_listener):
    """An operator's own key (osapi_max_limit) is not the formula's: the reactor's run restarts
    nothing and reports the restart pending (state comment, cinder_ha.status); the next explicit
    apply restarts exactly once."""
    master, minion = real_api
    cli = master.salt_cli(timeout=300)
    conf = real_paths["conf"]
    pid, offset, record = running_pid(T8R_PID), log_offset(), start_record()
    since = time.time()
    sed(conf, r"s/^\[DEFAULT\]$/[DEFAULT]\nosapi_max_limit = 500/")
    try:
        ret = one_reactor_job(event_listener, master, since)
        assert managed_state(ret)["changes"] == {}  # nothing of the formula's to correct
        state = restart_state(ret)
        assert state["result"] is True and state["changes"] == {}, state
        assert "cinder.conf differs from what cinder-api runs with: restart pending" in state["comment"], state
        assert "[DEFAULT] osapi_max_limit" in state["comment"]
        settle_until(since)
        api_unchanged(pid, offset)
        assert start_record() == record
        status = config_status(cli, minion)
        assert status["restart_pending"] is True, status
        assert status["changed"] == {"[DEFAULT] osapi_max_limit": {"old": None, "new": "500"}}, status

        # the next explicit apply: exactly one restart, onto the edited file
        offset = log_offset()
        ret = cli.run("state.apply", "cinder_ha.config", minion_tgt=minion.id)
        state = restart_state({"return": ret.data})
        assert state["result"] is True and state["changes"]["restarted"] == T8R_RSC, state
        assert list(state["changes"]["changed"]) == ["[DEFAULT] osapi_max_limit"]
        new_pid = running_pid(T8R_PID)
        assert new_pid != pid and resource_ops_since(offset, T8R_RSC) == ["stop", "start"]
        assert "osapi_max_limit = 500" in pathlib.Path(T8R_PID + ".conf").read_text()
        offset = log_offset()
        again = cli.run("state.apply", "cinder_ha.config", minion_tgt=minion.id)
        assert restart_state({"return": again.data})["changes"] == {}
        api_unchanged(new_pid, offset)
        assert config_status(cli, minion)["restart_pending"] is False
    finally:
        since = time.time()
        sed(conf, "/^osapi_max_limit = 500$/d")
        one_reactor_job(event_listener, master, since)
        cli.run("state.apply", "cinder_ha.config", minion_tgt=minion.id)  # back to what the file says


def test_the_reactors_correction_of_a_managed_key_restarts_once(real_api, real_paths, event_listener):
    """A managed key the pillar changed (not applied yet): the reactor's run after any edit writes
    it, and restarts cinder-api for it, once."""
    master, minion = real_api
    cli = master.salt_cli(timeout=300)
    conf = real_paths["conf"]
    pillar = json.loads(json.dumps(real_paths["pillar_data"]))
    pillar["cinder_ha"]["cinder_conf"]["extra"]["DEFAULT"] = {"debug": True}
    write_pillar(real_paths, pillar)
    try:
        assert cli.run("saltutil.refresh_pillar", "wait=True", minion_tgt=minion.id).returncode == 0
        pid, offset = running_pid(T8R_PID), log_offset()
        since = time.time()
        with open(conf, "a") as handle:
            handle.write("# an operator's note\n")
        ret = one_reactor_job(event_listener, master, since)
        assert "[DEFAULT] debug" in managed_state(ret)["changes"]
        state = restart_state(ret)
        assert state["changes"]["restarted"] == T8R_RSC and list(state["changes"]["changed"]) == ["[DEFAULT] debug"]
        assert running_pid(T8R_PID) != pid and resource_ops_since(offset, T8R_RSC) == ["stop", "start"]
    finally:
        write_pillar(real_paths, real_paths["pillar_data"])
        cli.run("saltutil.refresh_pillar", "wait=True", minion_tgt=minion.id)
        cli.run("state.apply", "cinder_ha.config", minion_tgt=minion.id)
