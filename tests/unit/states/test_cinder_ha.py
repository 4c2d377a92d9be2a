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
        salt_funcs["crm.restart"].assert_called_once_with(RSC, wait=True, timeout="120s", cloned=None, only_here=True,
                                                              after_absent=None, move_first=None)


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


NEEDED = {"needed": True, "reason": "osapi_volume_listen changed", "basis": "record", "pid": 42,
          "changes": ["DEFAULT.osapi_volume_listen"]}
PEERS = ["http://198.18.0.2:8776/healthcheck", "http://198.18.0.3:8776/healthcheck"]


@pytest.mark.parametrize("test_mode", [False])
def test_balanced_restart_waits_for_another_instance_answering(salt_funcs):
    """cluster:mode balanced: the restart waits until another node's cinder-api answers, so that
    HAProxy has somewhere to send requests meanwhile."""
    salt_funcs["cinder_conf.restart_needed"].return_value = NEEDED
    answers = iter([503, None, 200])
    salt_funcs["cinder_ha.http_probe"] = MagicMock(side_effect=lambda url, timeout: {"status": next(answers)})
    ret = cinder_ha.restarted_through_cluster(RSC, peers=PEERS[:1], timeout=30)
    assert ret["result"] is True and ret["changes"]["restarted"] == RSC
    assert salt_funcs["cinder_ha.http_probe"].call_count == 3
    assert "No other cinder-api answered" not in ret["comment"]


@pytest.mark.parametrize("test_mode", [False])
def test_balanced_restart_with_no_other_instance_says_requests_failed(salt_funcs):
    salt_funcs["cinder_conf.restart_needed"].return_value = NEEDED
    salt_funcs["cinder_ha.http_probe"] = MagicMock(return_value={"status": None})
    ret = cinder_ha.restarted_through_cluster(RSC, peers=PEERS, timeout=0)
    assert ret["result"] is True and ret["changes"]["restarted"] == RSC  # the operator's change still applies
    assert "No other cinder-api answered within 0 s" in ret["comment"] and PEERS[1] in ret["comment"]


@pytest.mark.parametrize("test_mode", [False])
def test_an_instance_a_mode_switch_stopped_is_not_restarted(salt_funcs):
    salt_funcs["cinder_conf.restart_needed"].return_value = NEEDED
    salt_funcs["crm.restart"].return_value = {"restarted": None, "nodes": ["node2"]}
    ret = cinder_ha.restarted_through_cluster(RSC, cloned=False, after_absent=["cl_p_haproxy-cinder-api"])
    assert ret["result"] is True and ret["changes"] == {} and "no longer runs on node1" in ret["comment"]
    salt_funcs["crm.restart"].assert_called_once_with(RSC, wait=True, timeout="120s", cloned=False, only_here=True,
                                                      after_absent=["cl_p_haproxy-cinder-api"], move_first=None)


@pytest.mark.parametrize("where", ["here", "elsewhere", "nowhere"])
@pytest.mark.parametrize("test_mode", [False])
def test_balanced_moves_the_vip_first_only_where_haproxy_cannot_serve_it(salt_funcs, where):
    """In a switch to balanced this node's HAProxy cannot bind the VIP's port until this restart
    frees it: the VIP goes first to a node where HAProxy runs. Where HAProxy runs here, the VIP
    stays (a move costs clients more); with HAProxy nowhere else, there is nowhere to move it."""
    salt_funcs["cinder_conf.restart_needed"].return_value = NEEDED
    nodes = {"here": ["node1", "node2"], "elsewhere": ["node2"], "nowhere": []}[where]
    salt_funcs["crm.locate"] = MagicMock(side_effect=lambda rsc, reuse=False: {"p_ip_cinder-api": ["node1"], RSC: ["node1"],
                                                                  "p_haproxy": nodes}[rsc])
    cinder_ha.restarted_through_cluster(RSC, vip_id="p_ip_cinder-api", haproxy_id="p_haproxy", timeout=0)
    expected = ["p_ip_cinder-api"] if where == "elsewhere" else None
    assert salt_funcs["crm.restart"].call_args.kwargs["move_first"] == expected


@pytest.mark.parametrize("now,wanted,allowed", [
    ("balanced", "cloned", False), ("cloned", "balanced", False), ("active_passive", "balanced", True),
    ("balanced", "active_passive", True), ("cloned", "active_passive", True), ("balanced", "balanced", True),
    (None, "balanced", True), (None, "cloned", True)])
def test_a_straight_switch_between_the_clone_modes_goes_through_active_passive(salt_funcs, now, wanted, allowed):
    salt_funcs["cinder_ha.cib_mode"] = MagicMock(return_value=now)
    ret = cinder_ha.mode_switch_supported(wanted)
    assert ret["result"] is allowed and ret["changes"] == {}
    if not allowed:
        assert "set cluster:mode active_passive, apply, then" in ret["comment"] and "Nothing was changed" in ret["comment"]
