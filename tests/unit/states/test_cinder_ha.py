"""cinder_ha states with Salt's loader mocked: pillar_valid, restarted_through_cluster, api_answers."""
from unittest.mock import MagicMock

import pytest
from salt.exceptions import CommandExecutionError

from _states import cinder_ha

RSC = "p_cinder-api"


@pytest.fixture
def salt_funcs():
    return {"cinder_ha.validate": MagicMock(return_value={"valid": True, "errors": [], "warnings": []}),
            "crm.node_name": MagicMock(return_value="node1"),
            "crm.locate": MagicMock(return_value=["node1"]),
            "cinder_conf.restart_needed": MagicMock(return_value={"needed": False, "reason": "same configuration"}),
            "crm.restart": MagicMock(),
            "cinder_ha.probe_catalog": MagicMock(return_value={"answers": True, "comment": "answers (HTTP 300)"})}


@pytest.fixture
def configure_loader_modules(salt_funcs, test_mode):
    return {cinder_ha: {"__salt__": salt_funcs, "__opts__": {"test": test_mode}}}


def test_invalid_pillar_lists_every_error(salt_funcs):
    salt_funcs["cinder_ha.validate"].return_value = {"valid": False, "errors": ["vip:address: missing",
                                                                                 "keystone:auth_url: missing"],
                                                     "warnings": []}
    ret = cinder_ha.pillar_valid("check")
    assert ret["result"] is False and ret["changes"] == {}
    assert "vip:address: missing" in ret["comment"] and "keystone:auth_url: missing" in ret["comment"]


def test_legacy_names_are_warnings(salt_funcs):
    salt_funcs["cinder_ha.validate"].return_value = {"valid": True, "errors": [],
                                                     "warnings": ["sql_connection: migrated"]}
    ret = cinder_ha.pillar_valid("check")
    assert ret["result"] is True and ret["warnings"] == ["sql_connection: migrated"]


def test_no_restart_where_the_resource_does_not_run(salt_funcs):
    salt_funcs["crm.locate"].return_value = ["node2"]
    ret = cinder_ha.restarted_through_cluster(RSC)
    assert ret["result"] is True and ret["changes"] == {} and "runs on node2" in ret["comment"]
    salt_funcs["cinder_conf.restart_needed"].assert_not_called()


def test_undeclared_resource_is_no_restart(salt_funcs):
    salt_funcs["crm.locate"].side_effect = CommandExecutionError("no such resource")
    ret = cinder_ha.restarted_through_cluster(RSC)
    assert ret["result"] is True and "no node" in ret["comment"]


def test_same_configuration_is_no_restart(salt_funcs, test_mode):
    ret = cinder_ha.restarted_through_cluster(RSC, pid_file="/run/x.pid")
    assert ret["result"] is True and ret["changes"] == {}
    salt_funcs["cinder_conf.restart_needed"].assert_called_once_with("/etc/cinder/cinder.conf", "/run/x.pid",
                                                                     planned=test_mode, reads_backends=True)
    salt_funcs["crm.restart"].assert_not_called()


def test_a_service_that_reads_no_backend_section_says_so(salt_funcs):
    cinder_ha.restarted_through_cluster(RSC, pid_file="/run/x.pid", reads_backends=False)
    assert salt_funcs["cinder_conf.restart_needed"].call_args.kwargs["reads_backends"] is False


def test_changed_configuration_restarts_through_the_cluster(salt_funcs, test_mode):
    salt_funcs["cinder_conf.restart_needed"].return_value = {
        "needed": True, "reason": "osapi_volume_workers changed", "basis": "record", "pid": 42,
        "changes": ["DEFAULT.osapi_volume_workers"]}
    ret = cinder_ha.restarted_through_cluster(RSC)
    assert ret["changes"]["changed"] == ["DEFAULT.osapi_volume_workers"]
    if test_mode:
        assert ret["result"] is None and ret["changes"]["restart"] == RSC
        salt_funcs["crm.restart"].assert_not_called()
    else:
        assert ret["result"] is True and ret["changes"]["restarted"] == RSC
        salt_funcs["crm.restart"].assert_called_once_with(RSC, wait=True, timeout="120s", cloned=None)


def test_failed_restart_fails_and_is_retried_next_time(salt_funcs, test_mode):
    salt_funcs["cinder_conf.restart_needed"].return_value = {"needed": True, "reason": "x", "basis": "record",
                                                             "pid": 42, "changes": []}
    salt_funcs["crm.restart"].side_effect = CommandExecutionError("timed out")
    ret = cinder_ha.restarted_through_cluster(RSC)
    if test_mode:  # only says it would restart
        assert ret["result"] is None and ret["changes"]["restart"] == RSC
    else:
        assert ret["result"] is False and ret["changes"] == {} and "next apply retries" in ret["comment"]


def test_api_answers_probes_only_for_real(salt_funcs, test_mode):
    ret = cinder_ha.api_answers("block-storage", region="RegionOne")
    assert ret["changes"] == {}
    assert salt_funcs["cinder_ha.probe_catalog"].called is (not test_mode)
    assert ret["result"] is True


def test_loopback_vip_puts_the_address_on_lo_with_arp_silent(salt_funcs, test_mode):
    state = {"on_loopback": False, "arp": {"arp_ignore": "0", "arp_announce": "0"}, "arp_silent": False}
    done = {"on_loopback": True, "arp": {"arp_ignore": "1", "arp_announce": "2"}, "arp_silent": True}
    salt_funcs["cinder_ha.loopback_vip"] = MagicMock(return_value=state)
    salt_funcs["cinder_ha.set_loopback_vip"] = MagicMock(return_value=done)
    ret = cinder_ha.loopback_vip("198.18.0.10")
    assert ret["changes"] == {"on_loopback": {"old": False, "new": True}, "arp_silent": {"old": False, "new": True}}
    assert ret["result"] is (None if test_mode else True)
    assert salt_funcs["cinder_ha.set_loopback_vip"].called is (not test_mode)


def test_loopback_vip_absent_waits_for_the_clone_and_is_idempotent(salt_funcs, test_mode):
    salt_funcs["cinder_ha.loopback_vip"] = MagicMock(return_value={"on_loopback": True, "arp_silent": True})
    salt_funcs["cinder_ha.set_loopback_vip"] = MagicMock(return_value={"on_loopback": False, "arp_silent": True})
    ret = cinder_ha.loopback_vip("198.18.0.10", present=False, clone_id="cl_p_cinder-api")
    assert ret["changes"] == {"on_loopback": {"old": True, "new": False}}
    if not test_mode:
        salt_funcs["cinder_ha.set_loopback_vip"].assert_called_once_with("198.18.0.10", present=False,
                                                                         clone_id="cl_p_cinder-api",
                                                                         primitive_id=None, vip_id=None)
    salt_funcs["cinder_ha.loopback_vip"].return_value = {"on_loopback": False, "arp_silent": False}
    again = cinder_ha.loopback_vip("198.18.0.10", present=False)
    assert again["result"] is True and again["changes"] == {}
