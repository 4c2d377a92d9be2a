"""cinder_haproxy.config_managed with Salt's loader mocked: nothing done for a config as rendered,
a diff in test mode, HAProxy's refusal fails with its words and writes nothing, a running
HAProxy is reloaded through its agent, a stopped one is left to the cluster."""
from unittest.mock import MagicMock

import pytest
from salt.exceptions import CommandExecutionError

from _states import cinder_haproxy

NAME = "/etc/haproxy/cinder-ha.cfg"
OLD = "global\n    master-worker\n\nfrontend cinder_api_internal\n    bind 192.0.2.10:8776\n"
NEW = "global\n    master-worker\n\nfrontend cinder_api_internal\n    bind 192.0.2.10:8776 transparent\n"
PID = "/run/resource-agents/p_haproxy.pid"
AGENT = "/usr/lib/ocf/resource.d/openstack/haproxy"
PARAMS = {"config": NAME, "pid": PID}


@pytest.fixture
def salt_funcs():
    return {"cinder_haproxy.config_file": MagicMock(return_value=OLD),
            "cinder_haproxy.check_config": MagicMock(return_value=(True, "Configuration file is valid")),
            "cinder_haproxy.install_config": MagicMock(return_value=True),
            "cinder_haproxy.running": MagicMock(return_value=True),
            "cinder_haproxy.reload": MagicMock(return_value=True)}


@pytest.fixture
def configure_loader_modules(salt_funcs, test_mode):
    return {cinder_haproxy: {"__salt__": salt_funcs, "__opts__": {"test": test_mode}}}


def managed(text=NEW):
    return cinder_haproxy.config_managed(NAME, text, PID, AGENT, PARAMS, "p_haproxy")


def test_a_config_as_rendered_is_left_alone(salt_funcs):
    ret = managed(OLD)
    assert ret == {"name": NAME, "result": True, "changes": {}, "comment": f"{NAME} is as rendered"}
    for name in ("install_config", "reload", "check_config"):
        salt_funcs[f"cinder_haproxy.{name}"].assert_not_called()


def test_a_changed_config_is_written_and_haproxy_reloaded(salt_funcs, test_mode):
    ret = managed()
    diff = ret["changes"]["diff"]
    assert diff.startswith(f"--- {NAME}\n+++ {NAME}\n")
    assert "-    bind 192.0.2.10:8776\n+    bind 192.0.2.10:8776 transparent\n" in diff
    if test_mode:
        assert ret["result"] is None and ret["comment"] == f"{NAME} would be written, then HAProxy reloaded"
        salt_funcs["cinder_haproxy.check_config"].assert_called_once_with(NEW, binary=cinder_haproxy.BINARY)
        salt_funcs["cinder_haproxy.install_config"].assert_not_called()
        salt_funcs["cinder_haproxy.reload"].assert_not_called()
    else:
        assert ret["result"] is True and ret["comment"] == f"{NAME} written and HAProxy reloaded"
        salt_funcs["cinder_haproxy.install_config"].assert_called_once_with(NAME, NEW, binary=cinder_haproxy.BINARY)
        salt_funcs["cinder_haproxy.running"].assert_called_once_with(PID, binary=cinder_haproxy.BINARY)
        salt_funcs["cinder_haproxy.reload"].assert_called_once_with(AGENT, PARAMS, "p_haproxy")


def test_haproxy_not_running_leaves_the_start_to_the_cluster(salt_funcs, test_mode):
    salt_funcs["cinder_haproxy.running"].return_value = False
    ret = managed()
    salt_funcs["cinder_haproxy.reload"].assert_not_called()
    if test_mode:
        assert ret["result"] is None
        assert ret["comment"] == (f"{NAME} would be written, then HAProxy not running on this node: the cluster "
                                  "starts it from this file")
    else:
        assert ret["result"] is True and "diff" in ret["changes"]
        assert ret["comment"] == (f"{NAME} written; HAProxy not running on this node, the cluster starts it from "
                                  "this file")


def test_a_new_file_diffs_from_nothing(salt_funcs):
    salt_funcs["cinder_haproxy.config_file"].return_value = None
    ret = managed()
    assert ret["changes"]["diff"].startswith(f"--- /dev/null\n+++ {NAME}\n")
    assert "+    bind 192.0.2.10:8776 transparent\n" in ret["changes"]["diff"]


def test_a_config_haproxy_refuses_fails_with_its_words_and_writes_nothing(salt_funcs, test_mode):
    said = "[ALERT]    (1) : config : parsing [<config>:5] : unknown keyword 'bogus' in 'frontend' section"
    salt_funcs["cinder_haproxy.check_config"].return_value = (False, said)
    salt_funcs["cinder_haproxy.install_config"].side_effect = CommandExecutionError(
        f"HAProxy refuses the config for {NAME} (nothing written): {said}")
    ret = managed(NEW + "    bogus\n")
    assert ret["result"] is False and ret["changes"] == {}
    assert said in ret["comment"]
    salt_funcs["cinder_haproxy.reload"].assert_not_called()
    if test_mode:
        salt_funcs["cinder_haproxy.install_config"].assert_not_called()


def test_a_failed_reload_fails_the_state_saying_the_file_was_written(salt_funcs, test_mode):
    salt_funcs["cinder_haproxy.reload"].side_effect = CommandExecutionError("rc 1: could not load")
    ret = managed()
    if test_mode:
        assert ret["result"] is None
    else:
        assert ret["result"] is False and "diff" in ret["changes"]
        assert ret["comment"] == f"{NAME} written, but the reload of p_haproxy failed: rc 1: could not load"


def test_an_unreadable_file_fails(salt_funcs):
    salt_funcs["cinder_haproxy.config_file"].side_effect = CommandExecutionError(f"{NAME} cannot be read: EIO")
    ret = managed()
    assert ret["result"] is False and ret["comment"] == f"{NAME} cannot be read: EIO"
    salt_funcs["cinder_haproxy.install_config"].assert_not_called()


def test_virtual_needs_the_execution_module():
    assert cinder_haproxy.__virtual__() == "cinder_haproxy"
