"""cinder_conf.managed with Salt's loader mocked: every branch, test=True and not."""
from unittest.mock import MagicMock

import pytest

from _states import cinder_conf

CONF = "/etc/cinder/cinder.conf"


def report(**overrides):
    base = {"errors": [], "migrations": [], "changed": False, "changes": {}, "diff": "", "digest": "d1"}
    return dict(base, **overrides)


@pytest.fixture
def salt_funcs():
    return {"cinder_conf.check": MagicMock(return_value=report()),
            "cinder_conf.driver_check": MagicMock(return_value={"ok": True, "comment": "pymysql imports"}),
            "cinder_conf.record_digest": MagicMock(),
            "cinder_conf.apply": MagicMock()}


@pytest.fixture
def configure_loader_modules(salt_funcs, test_mode):
    return {cinder_conf: {"__salt__": salt_funcs, "__opts__": {"test": test_mode}}}


def test_invalid_input_fails_and_writes_nothing(salt_funcs):
    salt_funcs["cinder_conf.check"].return_value = report(errors=["database:connection: not a database URL"])
    ret = cinder_conf.managed(CONF)
    assert ret["result"] is False and ret["changes"] == {}
    assert "database:connection: not a database URL" in ret["comment"]
    salt_funcs["cinder_conf.apply"].assert_not_called()
    salt_funcs["cinder_conf.record_digest"].assert_not_called()


def test_missing_driver_fails_before_writing(salt_funcs):
    salt_funcs["cinder_conf.check"].return_value = report(changed=True, changes={"database.connection": "x"})
    salt_funcs["cinder_conf.driver_check"].return_value = {"ok": False, "comment": "no module named pymysql"}
    ret = cinder_conf.managed(CONF, binary="/usr/bin/cinder-api")
    assert ret["result"] is False and "no module named pymysql" in ret["comment"]
    salt_funcs["cinder_conf.apply"].assert_not_called()


def test_no_change_records_the_digest_only_for_real(salt_funcs, test_mode):
    ret = cinder_conf.managed(CONF, binary="/usr/bin/cinder-api")
    salt_funcs["cinder_conf.driver_check"].assert_not_called()  # nothing to write: nothing to check
    assert ret["result"] is True and ret["changes"] == {}
    assert salt_funcs["cinder_conf.record_digest"].called is (not test_mode)
    salt_funcs["cinder_conf.apply"].assert_not_called()


def test_change_is_shown_under_test_and_applied_with_the_read_digest(salt_funcs, test_mode):
    changes = {"DEFAULT.osapi_volume_listen": {"old": None, "new": "198.18.0.10"}}
    salt_funcs["cinder_conf.check"].return_value = report(changed=True, changes=changes, diff="+x", digest="d7",
                                                          migrations=["sql_connection -> [database] connection"])
    salt_funcs["cinder_conf.apply"].return_value = {"changed": True, "changes": changes, "diff": "+x"}
    ret = cinder_conf.managed(CONF)
    assert ret["changes"] == dict(changes, diff="+x")
    assert "sql_connection -> [database] connection" in ret["comment"]
    if test_mode:
        assert ret["result"] is None
        salt_funcs["cinder_conf.apply"].assert_not_called()
    else:
        assert ret["result"] is True
        salt_funcs["cinder_conf.apply"].assert_called_once_with(CONF, None, expected_digest="d7", create=False)


def test_failed_write_reports_and_claims_no_change(salt_funcs, test_mode):
    salt_funcs["cinder_conf.check"].return_value = report(changed=True, changes={"a": 1})
    salt_funcs["cinder_conf.apply"].side_effect = RuntimeError("changed since it was read")
    ret = cinder_conf.managed(CONF)
    if test_mode:  # test=True never writes, so cannot fail writing
        assert ret["result"] is None and ret["changes"]["a"] == 1
    else:
        assert ret == {"name": CONF, "result": False, "changes": {}, "comment": "changed since it was read"}


def test_identical_write_by_another_run_is_no_change(salt_funcs, test_mode):
    salt_funcs["cinder_conf.check"].return_value = report(changed=True, changes={"a": 1})
    salt_funcs["cinder_conf.apply"].return_value = {"changed": False}
    ret = cinder_conf.managed(CONF)
    if test_mode:
        assert ret["result"] is None and "would be updated" in ret["comment"]
    else:
        assert ret["result"] is True and ret["changes"] == {} and "written meanwhile" in ret["comment"]
