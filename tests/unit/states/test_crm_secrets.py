"""crm_secrets states with Salt's loader mocked: present (files, then the digest published with
the rules) and absent (the attribute, then the files)."""
from unittest.mock import MagicMock

import pytest
from salt.exceptions import CommandExecutionError

from _states import crm_secrets

RSC = "p_cinder-api"
ATTR = "cinder_ha_secrets_" + RSC


def published(changed=True, eligible=True, old="d-old", rules=None):
    return {"node": "n2", "attribute": ATTR, "old": old, "new": "d-new", "changed": changed, "eligible": eligible,
            "rules": {"l_p_cinder-api_secrets": ["d-new", "d-old"]} if rules is None else rules, "actions": []}


@pytest.fixture
def salt_funcs():
    return {"pillar.get": MagicMock(return_value="S3cr$t"),
            "crm_secrets.store": MagicMock(return_value=["os_password"]),
            "crm_secrets.digest": MagicMock(return_value="d-new"),
            "crm_secrets.key_status": MagicMock(return_value={"keyed": True, "path": "/etc/corosync/authkey"}),
            "crm_secrets.held": MagicMock(return_value=["os_password"]),
            "crm_secrets.remove": MagicMock(return_value=["os_password"]),
            "crm.node_name": MagicMock(return_value="n2"),
            "crm.publish_secrets_digest": MagicMock(return_value=published()),
            "crm.unpublish_secrets_digest": MagicMock(return_value={"node": "n2", "attribute": ATTR,
                                                                    "present": True})}


@pytest.fixture
def configure_loader_modules(salt_funcs, test_mode):
    return {crm_secrets: {"__salt__": salt_funcs, "__opts__": {"test": test_mode}}}


def present():
    return crm_secrets.present(RSC, {"os_password": {"pillar": "cinder_ha:agent:os_password"}})


def test_a_rotation_reports_the_new_digest_and_the_rules_that_accept_it(salt_funcs, test_mode):
    ret = present()
    assert ret["result"] is (None if test_mode else True)
    assert ret["changes"] == {"os_password": "***", f"node attribute {ATTR}@n2": {"old": "d-old", "new": "d-new"},
                              "accepted by l_p_cinder-api_secrets": ["d-new", "d-old"]}
    assert "S3cr$t" not in str(ret)
    salt_funcs["crm_secrets.digest"].assert_called_once_with(RSC, {"os_password": "S3cr$t"}, secrets_dir=None)
    assert salt_funcs["crm.publish_secrets_digest"].call_args.kwargs["test"] is test_mode
    assert salt_funcs["crm_secrets.store"].call_args.kwargs["test"] is test_mode


def test_a_node_not_eligible_is_told_it_waits_for_the_controller(salt_funcs):
    salt_funcs["crm.publish_secrets_digest"].return_value = published(eligible=False, rules={})
    ret = present()
    assert ret["result"] is not False and "stays ineligible on n2 until the controller" in ret["comment"]


def test_an_unkeyed_digest_is_a_warning(salt_funcs):
    salt_funcs["crm_secrets.key_status"].return_value = {"keyed": False, "path": "/etc/corosync/authkey"}
    assert "no corosync authkey" in present()["comment"]


def test_a_failed_publication_fails_and_names_the_resource(salt_funcs):
    salt_funcs["crm.publish_secrets_digest"].side_effect = CommandExecutionError("node n2 is not in the CIB")
    ret = present()
    assert ret["result"] is False and "could not be published" in ret["comment"] and "n2" in ret["comment"]


def test_missing_pillar_key_writes_nothing(salt_funcs):
    salt_funcs["pillar.get"].return_value = None
    ret = present()
    assert ret["result"] is False and "cinder_ha:agent:os_password is not set" in ret["comment"]
    salt_funcs["crm_secrets.store"].assert_not_called()
    salt_funcs["crm.publish_secrets_digest"].assert_not_called()


def test_absent_removes_the_attribute_then_the_files(salt_funcs, test_mode):
    ret = crm_secrets.absent(RSC)
    assert ret["result"] is (None if test_mode else True)
    assert ret["changes"] == {"secret files": ["os_password"], f"node attribute {ATTR}@n2": "removed"}
    assert salt_funcs["crm.unpublish_secrets_digest"].call_args.kwargs["wait"] is True
    if test_mode:
        salt_funcs["crm_secrets.remove"].assert_not_called()
    else:
        salt_funcs["crm_secrets.remove"].assert_called_once_with(RSC, secrets_dir=None)


def test_absent_with_nothing_left_changes_nothing(salt_funcs):
    salt_funcs["crm_secrets.held"].return_value = None
    salt_funcs["crm.unpublish_secrets_digest"].return_value = {"node": "n2", "attribute": ATTR, "present": False}
    ret = crm_secrets.absent(RSC)
    assert ret["result"] is True and ret["changes"] == {} and "no secret files" in ret["comment"]
