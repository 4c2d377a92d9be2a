"""cinder_conf.restart_needed / running_process and cinder_conf.driver_check through Salt's
loaders, on real files and real processes (a stand-in process plays the running cinder-api, with a
start record as the agent writes it); cinder_conf.managed refusing a cinder.conf whose database
driver cinder's Python cannot import. Never touches /etc/cinder or the cluster."""
import hashlib
import json
import os
import pathlib
import subprocess
import time

import pytest

from tests.conftest import SANDBOX

DB_PASSWORD = "restart-Db-s3cret"
CONF = ("[DEFAULT]\n# written by the formula\nosapi_volume_listen = 127.0.0.103\nosapi_volume_listen_port = 8776\n"
        f"[database]\nconnection = mysql+pymysql://cinder:{DB_PASSWORD}@127.0.0.1/cinder\n")
CINDER_API = SANDBOX / "venv" / "cinder" / "bin" / "cinder-api"


def starttime(pid):
    return int(pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])


@pytest.fixture
def process():
    """A live process standing in for cinder-api."""
    proc = subprocess.Popen(["sleep", "600"])
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait()


@pytest.fixture
def started(tmp_path, process):
    """cinder.conf, the pid file, and the agent's start record + config copy for `process`."""
    conf = tmp_path / "cinder.conf"
    conf.write_text(CONF)
    run = tmp_path / "run"
    run.mkdir(mode=0o755)
    pid_file = run / "p_cinder-api.pid"
    pid_file.write_text(f"{process.pid}\n")
    snapshot = pathlib.Path(str(pid_file) + ".conf")
    snapshot.write_bytes(conf.read_bytes())
    os.chmod(snapshot, 0o600)
    record = pathlib.Path(str(pid_file) + ".start")
    record.write_text(
        f"version=1\npid={process.pid}\nstarttime={starttime(process.pid)}\nstarted={int(time.time())}\n"
        f"config={conf}\napi_base=http://127.0.0.103:8776\napi_path=/v3/\nsnapshot={snapshot}\n"
        f"sha256={hashlib.sha256(conf.read_bytes()).hexdigest()}\n")
    os.chmod(record, 0o600)
    return {"conf": conf, "pid_file": pid_file, "record": record, "snapshot": snapshot, "pid": process.pid}


def needed(loaders, started, **kwargs):
    return loaders.modules.cinder_conf.restart_needed(str(started["conf"]), str(started["pid_file"]), **kwargs)


def no_secret(value):
    text = json.dumps(value, default=str)
    return DB_PASSWORD not in text and "rotated-pw" not in text


def test_running_process_reports_the_record_without_the_copy(loaders, started):
    info = loaders.modules.cinder_conf.running_process(str(started["pid_file"]))
    assert info["pid"] == started["pid"] and info["problem"] is None
    assert abs(info["started"] - time.time()) < 60
    assert info["record"]["api_base"] == "http://127.0.0.103:8776"
    assert info["record"]["config"] == str(started["conf"])
    assert no_secret(info)


def test_unchanged_or_comment_only_edit_needs_no_restart(loaders, started):
    decision = needed(loaders, started)
    assert decision["needed"] is False and decision["basis"] == "start record" and decision["changes"] == {}
    started["conf"].write_text(CONF.replace("# written by the formula\n", "# an operator's note\n\n"))
    decision = needed(loaders, started)
    assert decision["needed"] is False, decision
    assert f"(pid {started['pid']}) already runs" in decision["reason"]


def test_a_key_change_needs_a_restart_and_says_which_key_masked(loaders, started):
    started["conf"].write_text(CONF.replace("127.0.0.103", "0.0.0.0").replace(DB_PASSWORD, "rotated-pw"))
    decision = needed(loaders, started)
    assert decision["needed"] is True and decision["basis"] == "start record"
    assert set(decision["changes"]) == {"[DEFAULT] osapi_volume_listen", "[database] connection"}
    assert decision["changes"]["[DEFAULT] osapi_volume_listen"] == {"old": "127.0.0.103", "new": "0.0.0.0"}
    assert "[DEFAULT] osapi_volume_listen" in decision["reason"]
    assert no_secret(decision)


def test_planned_compares_what_the_state_would_write(loaders, started):
    # the file drifted; the state would put the started value back: no restart in test mode
    started["conf"].write_text(CONF.replace("8776", "9999"))
    options = {"DEFAULT": {"osapi_volume_listen_port": 8776}}
    assert needed(loaders, started)["needed"] is True
    assert needed(loaders, started, planned=True, options=options)["needed"] is False
    # an option change the state would write: a restart in test mode, file untouched
    before = started["conf"].read_bytes()
    decision = needed(loaders, started, planned=True, options={"DEFAULT": {"osapi_volume_listen_port": 8777}})
    assert decision["needed"] is True and list(decision["changes"]) == ["[DEFAULT] osapi_volume_listen_port"]
    assert started["conf"].read_bytes() == before


def test_a_record_of_another_process_is_not_trusted(loaders, started, tmp_path):
    text = started["record"].read_text()
    started["record"].write_text(text.replace(f"starttime={starttime(started['pid'])}", "starttime=1"))
    info = loaders.modules.cinder_conf.running_process(str(started["pid_file"]))
    assert info["record"] is None and "another process" in info["problem"]
    # so the answer falls back to the file's mtime against the process start: older, then newer
    old = time.time() - 3600
    os.utime(started["conf"], (old, old))
    decision = needed(loaders, started)
    assert decision["basis"] == "mtime" and decision["needed"] is False, decision
    os.utime(started["conf"], None)
    decision = needed(loaders, started)
    assert decision["needed"] is True and "modified after" in decision["reason"]


@pytest.mark.parametrize("damage", ["symlinked_record", "symlinked_copy", "copy_differs", "not_root"])
def test_a_damaged_or_planted_record_falls_back_to_mtime(loaders, started, tmp_path, damage):
    elsewhere = tmp_path / "elsewhere"
    if damage == "symlinked_record":
        elsewhere.write_bytes(started["record"].read_bytes())
        started["record"].unlink()
        started["record"].symlink_to(elsewhere)
    elif damage == "symlinked_copy":
        elsewhere.write_bytes(started["snapshot"].read_bytes())
        started["snapshot"].unlink()
        started["snapshot"].symlink_to(elsewhere)
    elif damage == "copy_differs":
        started["snapshot"].write_text(CONF.replace("127.0.0.103", "127.0.0.99"))
    else:
        os.chown(started["record"], 65534, 65534)
    old = time.time() - 3600
    os.utime(started["conf"], (old, old))
    decision = needed(loaders, started)
    assert decision["basis"] == "mtime" and decision["needed"] is False, decision


def test_no_pid_file_or_dead_process_cannot_tell_and_does_not_restart(loaders, started, process):
    process.kill()
    process.wait()
    decision = needed(loaders, started)
    assert decision["needed"] is False and decision["pid"] is None and "cannot tell" in decision["reason"]
    started["pid_file"].unlink()
    assert "no pid in" in needed(loaders, started)["reason"]


@pytest.mark.parametrize("damage", ["missing", "directory"])
def test_a_missing_or_unreadable_conf_never_restarts(loaders, started, damage):
    """Issue 23: a cinder.conf moved away (or replaced by what cannot be read) is no new
    configuration: restarting cinder-api on it could only take it down."""
    started["conf"].unlink()
    if damage == "directory":
        started["conf"].mkdir()
    decision = needed(loaders, started)
    assert decision["needed"] is False and decision["changes"] == {}, decision
    assert "not restarting" in decision["reason"] and str(started["conf"]) in decision["reason"], decision


def test_a_missing_conf_is_not_recreated_and_the_message_names_the_running_copy(loaders, started):
    started["conf"].unlink()
    options = {"DEFAULT": {"osapi_volume_listen": "127.0.0.103"}}
    ret = loaders.states.cinder_conf.managed(name=str(started["conf"]), options=options,
                                             pid_file=str(started["pid_file"]))
    assert ret.result is False and ret.changes == {}
    assert f"{started['conf']} does not exist" in ret.comment
    assert f"pid {started['pid']}" in ret.comment and str(started["snapshot"]) in ret.comment, ret.comment
    assert "cinder_conf:create" in ret.comment
    assert not started["conf"].exists() and no_secret(ret.full_return)
    # asked for explicitly (a brand-new install): created from the keys given
    ret = loaders.states.cinder_conf.managed(name=str(started["conf"]), options=options, create=True)
    assert ret.result is True and started["conf"].read_text() == "[DEFAULT]\nosapi_volume_listen = 127.0.0.103\n"


def test_managed_keys_name_the_formulas_keys_only(loaders):
    options = {"DEFAULT": {"osapi_volume_listen": "127.0.0.103", "transport_url": "fake://"},
               "Database": {"connection": f"mysql+pymysql://cinder:{DB_PASSWORD}@127.0.0.1/cinder"}}
    keys = loaders.modules.cinder_conf.managed_keys(options=options)
    assert keys == ["[DEFAULT] osapi_volume_listen", "[DEFAULT] transport_url", "[database] connection"]
    assert no_secret(keys)


# ---------------------------------------------------------------- the database driver


def fake_cinder_api(folder, interpreter):
    """A cinder-api script whose #! line names `interpreter`, as pip writes console scripts."""
    path = folder / "cinder-api"
    path.write_text(f"#!{interpreter}\nimport sys\nsys.exit('not run by the check')\n")
    os.chmod(path, 0o755)
    return path


@pytest.fixture
def spy_python(tmp_path):
    """A 'python' without PyMySQL (the system Python 3) that logs its argv, to show what the
    check puts on a command line."""
    if subprocess.run(["/usr/bin/python3", "-c", "import pymysql"], capture_output=True).returncode == 0:
        pytest.fail("/usr/bin/python3 has pymysql: this test needs an interpreter without it")
    log = tmp_path / "argv.log"
    spy = tmp_path / "python3-spy"
    spy.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" >> {log}\nexec /usr/bin/python3 "$@"\n')
    os.chmod(spy, 0o755)
    return spy, log


def test_driver_missing_in_cinders_python_fails_before_writing(loaders, tmp_path, spy_python):
    spy, log = spy_python
    binary = fake_cinder_api(tmp_path, spy)
    conf = tmp_path / "cinder.conf"
    conf.write_text("[DEFAULT]\n# keep\n")
    options = {"database": {"connection": f"mysql+pymysql://cinder:{DB_PASSWORD}@127.0.0.1/cinder"}}
    check = loaders.modules.cinder_conf.driver_check(str(conf), str(binary), options=options)
    assert check["ok"] is False and check["module"] == "pymysql" and check["interpreter"] == str(spy)
    assert "cannot import pymysql" in check["comment"] and "pip install PyMySQL" in check["comment"]
    assert "python3-pymysql" in check["comment"]
    ret = loaders.states.cinder_conf.managed(name=str(conf), options=options, binary=str(binary))
    assert ret.result is False and ret.changes == {}
    assert "left unchanged" in ret.comment and f"{spy}, which cannot import pymysql" in ret.comment
    assert conf.read_text() == "[DEFAULT]\n# keep\n"
    assert no_secret(ret.full_return) and no_secret(check)
    argv = log.read_text()
    assert "pymysql" in argv and DB_PASSWORD not in argv and "cinder:" not in argv


def test_driver_present_lets_the_state_write(loaders, tmp_path):
    conf = tmp_path / "cinder.conf"
    conf.write_text("[DEFAULT]\n")
    options = {"database": {"connection": f"mysql+pymysql://cinder:{DB_PASSWORD}@127.0.0.1/cinder"}}
    ret = loaders.states.cinder_conf.managed(name=str(conf), options=options, binary=str(CINDER_API))
    assert ret.result is True, ret.comment
    assert "imports pymysql" in ret.comment and "[database] connection" in ret.changes
    assert no_secret(ret.full_return)


def test_the_files_own_url_is_checked_and_sqlite_is_fine(loaders, tmp_path, spy_python):
    spy, _log = spy_python
    binary = fake_cinder_api(tmp_path, spy)
    conf = tmp_path / "cinder.conf"
    # a URL already in the file (not managed by these options) is what cinder would load
    conf.write_text(f"[database]\nconnection = mysql+pymysql://cinder:{DB_PASSWORD}@h/cinder\n")
    ret = loaders.states.cinder_conf.managed(name=str(conf), options={"DEFAULT": {"debug": True}},
                                             binary=str(binary))
    assert ret.result is False and "debug" not in conf.read_text()
    conf.write_text("[database]\nconnection = sqlite:////var/lib/cinder/cinder.db\n")
    ret = loaders.states.cinder_conf.managed(name=str(conf), options={"DEFAULT": {"debug": True}},
                                             binary=str(binary))
    assert ret.result is True and "imports sqlite3" in ret.comment


def test_an_unchanged_file_starts_no_python(loaders, tmp_path, spy_python):
    """Nothing to write: the file is what cinder-api runs with, so the no-op run skips the check."""
    spy, log = spy_python
    binary = fake_cinder_api(tmp_path, spy)
    conf = tmp_path / "cinder.conf"
    conf.write_text("[DEFAULT]\n")
    options = {"database": {"connection": f"mysql+pymysql://cinder:{DB_PASSWORD}@127.0.0.1/cinder"}}
    assert loaders.states.cinder_conf.managed(name=str(conf), options=options).result is True
    ret = loaders.states.cinder_conf.managed(name=str(conf), options=options, binary=str(binary))
    assert ret.result is True and ret.changes == {} and not log.exists()


def test_no_binary_or_no_python_script_is_not_checked(loaders, tmp_path):
    conf = tmp_path / "cinder.conf"
    conf.write_text("[DEFAULT]\n")
    options = {"database": {"connection": "mysql+pymysql://cinder:pw@h/cinder"}}
    missing = loaders.modules.cinder_conf.driver_check(str(conf), str(tmp_path / "nope"), options=options)
    assert missing["ok"] is None and "is cinder installed" in missing["comment"]
    shell = tmp_path / "wrapper"
    shell.write_text("#!/bin/sh\nexec true\n")
    os.chmod(shell, 0o755)
    assert loaders.modules.cinder_conf.driver_check(str(conf), str(shell), options=options)["ok"] is None
    ret = loaders.states.cinder_conf.managed(name=str(conf), options=options, binary=str(tmp_path / "nope"))
    assert ret.result is True and "driver not checked" in ret.comment


def test_test_mode_reports_the_missing_driver_too(loaders, tmp_path, spy_python):
    spy, _log = spy_python
    binary = fake_cinder_api(tmp_path, spy)
    conf = tmp_path / "cinder.conf"
    conf.write_text("[DEFAULT]\n")
    options = {"database": {"connection": "mysql://cinder:pw@h/cinder"}}
    ret = loaders.states.cinder_conf.managed(name=str(conf), options=options, binary=str(binary), test=True)
    assert ret.result is False and "cannot import MySQLdb" in ret.comment and "mysqlclient" in ret.comment
