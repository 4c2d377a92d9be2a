"""crm.failures_cleared with Salt's loader mocked (the other crm states run against real
Pacemaker tools: tests/functional/test_crm.py)."""
from unittest.mock import MagicMock

import pytest

from _states import crm

FAILURES = [{"op_key": "p_haproxy-cinder-api_start_0", "node": "n1", "exitreason": "could not bind"},
            {"op_key": "p_haproxy-cinder-api_start_0", "node": "n2"},
            {"op_key": "p_cinder-api_monitor_5000", "node": "n1"},
            {"op_key": "p_haproxy-cinder-api-extra_start_0", "node": "n1"},
            {"op_key": "p_haproxy_x_start_0", "node": "n1"}]


@pytest.fixture
def salt_funcs():
    return {"crm.node_name": MagicMock(return_value="n1"), "crm.failures": MagicMock(return_value=FAILURES),
            "crm.cleanup": MagicMock(return_value="")}


@pytest.fixture
def configure_loader_modules(salt_funcs, test_mode):
    return {crm: {"__salt__": salt_funcs, "__opts__": {"test": test_mode}}}


def test_only_this_nodes_failures_of_that_resource_are_cleared(salt_funcs, test_mode):
    salt_funcs["crm.failures"].return_value = FAILURES[:3]
    ret = crm.failures_cleared("p_haproxy-cinder-api")
    assert ret["changes"] == {"cleared": ["p_haproxy-cinder-api_start_0"]}
    if test_mode:
        assert ret["result"] is None
        salt_funcs["crm.cleanup"].assert_not_called()
    else:
        assert ret["result"] is True
        salt_funcs["crm.cleanup"].assert_called_once_with("p_haproxy-cinder-api", node="n1")


def test_a_resource_whose_name_only_starts_alike_is_not_it(salt_funcs):
    salt_funcs["crm.failures"].return_value = FAILURES[3:]
    ret = crm.failures_cleared("p_haproxy")
    assert ret["result"] is True and ret["changes"] == {} and "no failed action on n1" in ret["comment"]
    salt_funcs["crm.cleanup"].assert_not_called()
