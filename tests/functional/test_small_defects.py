"""Smaller defects found by reading the code, each pinned by a test (issue 14, item 7):
crm.delete keeps a secret until its patch is in, a crm_verify that never finished is not a
pass, the catalog lock lives in root's own folder, and a failed duplicate check after the
catalog creates is a failed state."""
import importlib.util
import os
import stat
import subprocess

import pytest

from tests.conftest import PROJECT


@pytest.fixture
def offline(cib_file, monkeypatch):
    monkeypatch.setenv("CIB_file", str(cib_file))
    return cib_file


def module_globals(loaded_function):
    """The globals of a loaded Salt function's module (to swap one private helper)."""
    func = getattr(loaded_function, "func", loaded_function)
    return func.__globals__


def test_delete_removes_secrets_only_after_its_patch(loaders, offline, tmp_path, monkeypatch):
    crm = loaders.modules.crm
    secrets = tmp_path / "secrets"
    obj = {"primitive": "trust_del", "agent": "ocf:pacemaker:Dummy", "params": {"passwd": "s3cret"},
           "secret_params": ["passwd"], "secret_mode": "lrm"}
    created = crm.configure([obj], secrets_dir=str(secrets))
    assert created["result"] is True, created
    assert (secrets / "trust_del" / "passwd").exists()
    glob = module_globals(crm.delete)
    real_patch = glob["_patch"]
    monkeypatch.setitem(glob, "_patch", lambda old, new: ("error", "cibadmin --patch failed (rc 1): injected"))
    failed = crm.delete(["trust_del"], secrets_dir=str(secrets))
    assert failed["result"] is False
    # the resource is still in the CIB, so its secret must still be on disk
    assert (secrets / "trust_del" / "passwd").exists()
    monkeypatch.setitem(glob, "_patch", real_patch)
    done = crm.delete(["trust_del"], secrets_dir=str(secrets))
    assert done["result"] is True, done
    assert not (secrets / "trust_del").exists()


def test_a_crm_verify_timeout_is_a_failure(loaders, offline, monkeypatch):
    crm = loaders.modules.crm
    glob = module_globals(crm.configure)
    real_run = glob["_run"]

    def slow_verify(args, stdin=None, timeout=60):
        if args[0] == "crm_verify":
            return subprocess.CompletedProcess(args, 124, "", "crm_verify timed out after 60 s")
        return real_run(args, stdin=stdin, timeout=timeout)

    monkeypatch.setitem(glob, "_run", slow_verify)
    ret = crm.configure([{"primitive": "trust_v", "agent": "ocf:pacemaker:Dummy"}])
    assert ret["result"] is False
    assert "crm_verify did not finish" in ret["comment"]
    assert "trust_v" not in subprocess.run(["cibadmin", "-Q"], capture_output=True, text=True,
                                         env={"PATH": "/usr/sbin:/usr/bin", "CIB_file": str(offline)}).stdout


def test_the_catalog_lock_is_in_a_root_only_folder(loaders):
    keystone = loaders.modules.cinder_keystone
    glob = module_globals(keystone.plan)
    with glob["catalog_lock"](timeout=5):
        info = os.lstat(glob["LOCK_DIR"])
        assert glob["LOCK_DIR"] == "/run/cinder-ha"
        assert stat.S_ISDIR(info.st_mode) and info.st_uid == 0 and not info.st_mode & 0o077


def test_a_world_writable_lock_folder_is_refused(loaders, tmp_path, monkeypatch):
    keystone = loaders.modules.cinder_keystone
    glob = module_globals(keystone.plan)
    planted = tmp_path / "lock"
    planted.mkdir()
    planted.chmod(0o1777)
    monkeypatch.setitem(glob, "LOCK_DIR", str(planted))
    with pytest.raises(Exception, match="not a private folder"):
        with glob["catalog_lock"](timeout=1):
            pass


def test_a_failed_duplicate_check_after_creates_fails_the_state():
    # the state module imported plainly, its loader dunder mocked: _report is pure
    spec = importlib.util.spec_from_file_location("keystone_states", PROJECT / "_states" / "cinder_keystone.py")
    states = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(states)
    report = states._report
    action = {"action": "create", "service_type": "block-storage", "interface": "public", "region": "RegionOne",
              "url": "http://127.0.0.103:8776/v3", "service_id": "abc", "endpoint_id": "e1"}
    ret = {"name": "block-storage", "result": True, "changes": {}, "comment": ""}
    out = report(ret, "block-storage endpoints", {"actions": [action]},
                 {"done": [action], "failed": None, "error": "after the creates: HTTP 503", "pending": []}, False)
    assert out["result"] is False
    assert "FAILED after the changes" in out["comment"] and "HTTP 503" in out["comment"]


def test_an_edit_between_plan_and_rename_is_not_lost(loaders, tmp_path, monkeypatch):
    """cinder.conf is re-checked right before the rename: an outside edit made while the
    state was writing stays, the state fails, and the next run plans from it."""
    conf_mod = loaders.modules.cinder_conf
    glob = module_globals(conf_mod.apply)
    conf = tmp_path / "cinder.conf"
    conf.write_text("[DEFAULT]\ndebug = false\n")
    real_record = glob["record_digest"]
    edits = []

    def edit_meanwhile(name, hexdigest=None):
        real_record(name, hexdigest)
        if not edits:  # the operator's edit lands right now, once
            edits.append(1)
            with open(name, "a") as handle:
                handle.write("# edited by hand\n")

    monkeypatch.setitem(glob, "record_digest", edit_meanwhile)
    with pytest.raises(Exception, match="changed while this run was writing it"):
        conf_mod.apply(str(conf), options={"DEFAULT": {"debug": "true"}})
    assert conf.read_text() == "[DEFAULT]\ndebug = false\n# edited by hand\n"
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    monkeypatch.setitem(glob, "record_digest", real_record)
    conf_mod.apply(str(conf), options={"DEFAULT": {"debug": "true"}})
    assert "debug = true" in conf.read_text() and "# edited by hand" in conf.read_text()
