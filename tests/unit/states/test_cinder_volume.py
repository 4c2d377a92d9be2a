"""cinder_volume.services_up with Salt's loader mocked: the apply ends only once cinder's
services table shows the scheduler and volume services up, and says what is missing."""
from unittest.mock import MagicMock

import pytest
from salt.exceptions import CommandExecutionError

from _states import cinder_volume

CONF = "/etc/cinder/cinder.conf"
READY = {"ready": True, "missing": [], "waited": 4.2, "rows": []}


@pytest.fixture
def salt_funcs():
    return {"cinder_ha.settings": MagicMock(return_value={"volume": {"mode": "active_passive"}}),
            "cinder_volume.wait_services_up": MagicMock(return_value=READY)}


@pytest.fixture
def configure_loader_modules(salt_funcs, test_mode):
    return {cinder_volume: {"__salt__": salt_funcs, "__opts__": {"test": test_mode}}}


def test_up_services_pass_without_changes(salt_funcs, test_mode):
    ret = cinder_volume.services_up(CONF, timeout=50)
    assert ret["result"] is True and ret["changes"] == {}
    if test_mode:  # test=True reads nothing and waits for nothing
        salt_funcs["cinder_volume.wait_services_up"].assert_not_called()
    else:
        salt_funcs["cinder_volume.wait_services_up"].assert_called_once_with(config=CONF, timeout=50)
        assert "waited 4.2 s" in ret["comment"]


def test_missing_services_after_the_wait_fail_naming_them(salt_funcs, test_mode):
    salt_funcs["cinder_volume.wait_services_up"].return_value = {
        "ready": False, "waited": 90.0, "rows": [],
        "missing": ["no cinder-volume of cinder-ha-volume@ceph (backend ceph) is up"]}
    ret = cinder_volume.services_up(CONF, timeout=90)
    if test_mode:
        assert ret["result"] is True
    else:
        assert ret["result"] is False and ret["changes"] == {}
        assert "90.0 s" in ret["comment"] and "cinder-ha-volume@ceph" in ret["comment"]


def test_an_unreadable_table_fails_with_the_reason(salt_funcs, test_mode):
    salt_funcs["cinder_volume.wait_services_up"].side_effect = CommandExecutionError("no database")
    ret = cinder_volume.services_up(CONF)
    assert ret["result"] is (True if test_mode else False)
    assert test_mode or "no database" in ret["comment"]


def test_no_volume_pillar_waits_for_nothing(salt_funcs):
    salt_funcs["cinder_ha.settings"].return_value = {"volume": None}
    ret = cinder_volume.services_up(CONF)
    assert ret["result"] is True and "nothing to wait for" in ret["comment"]
    salt_funcs["cinder_volume.wait_services_up"].assert_not_called()
