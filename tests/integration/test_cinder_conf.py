"""The real cinder reads what cinder_conf.managed writes: from a cinder.conf with only the HA
guide's legacy keys, cinder-manage and cinder-api use the configured database after the state ran
(and silently did not before). Works in /srv/cinder-ha/t5 only (127.0.0.115:18765)."""
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from tests.conftest import SANDBOX

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
        assert db.execute("SELECT count(*) FROM services").fetchone() is not None
    assert not FALLBACK_DB.exists()

    _ret, again = managed(salt_call_cli, DEFAULT={"osapi_volume_listen": LISTEN, "osapi_volume_listen_port": PORT})
    assert again["result"] is True and again["changes"] == {}
