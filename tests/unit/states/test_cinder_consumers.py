"""cinder_consumers.pointed_at_vip with Salt's loader mocked: every branch, test=True and not."""
from unittest.mock import MagicMock

import pytest

from _states import cinder_consumers

NOVA = "/srv/consumers/nova.conf"
BYPASS = "[cinder] endpoint_template = http://127.0.0.1:8776/v3/%(project_id)s names 127.0.0.1, not a VIP"


def report(**overrides):
    base = {"errors": [], "migrations": [], "notes": [], "bypasses": [], "changed": False, "changes": {},
            "diff": "", "digest": "d1", "mode": None}
    return dict(base, **overrides)


def lookup(url="http://127.0.0.103:8776/v3", on_vip=True, **overrides):
    entry = {"section": "cinder", "how": "catalog", "url": url, "host": url.split("/")[2].split(":")[0] if url else None,
             "on_vip": on_vip, "service_type": "volumev3", "interface": "internalURL", "region": "RegionOne",
             "probe": None, "note": ""}
    entry.update(overrides)
    return {"on_vip": entry["on_vip"], "lookups": [entry]}


@pytest.fixture
def salt_funcs():
    return {"cinder_consumers.check": MagicMock(return_value=report()),
            "cinder_consumers.apply": MagicMock(),
            "cinder_consumers.resolve": MagicMock(return_value=lookup())}


@pytest.fixture
def configure_loader_modules(salt_funcs, test_mode):
    return {cinder_consumers: {"__salt__": salt_funcs, "__opts__": {"test": test_mode}}}


def test_nothing_to_change_still_proves_the_vip(salt_funcs):
    ret = cinder_consumers.pointed_at_vip(NOVA, "nova")
    assert ret["result"] is True and ret["changes"] == {}
    assert "catalog volumev3 internalURL in RegionOne -> http://127.0.0.103:8776/v3 (on a VIP)" in ret["comment"]
    salt_funcs["cinder_consumers.apply"].assert_not_called()
    salt_funcs["cinder_consumers.resolve"].assert_called_once_with(NOVA, "nova")


def test_a_bypass_is_shown_under_test_and_fixed_for_real(salt_funcs, test_mode):
    changes = {"[cinder] endpoint_template": {"old": "http://127.0.0.1:8776/v3/%(project_id)s", "new": None}}
    salt_funcs["cinder_consumers.check"].return_value = report(changed=True, changes=changes, diff="-endpoint",
                                                               notes=[BYPASS], digest="d7")
    salt_funcs["cinder_consumers.apply"].return_value = report(changed=True, changes=changes, diff="-endpoint")
    ret = cinder_consumers.pointed_at_vip(NOVA, "nova")
    assert ret["changes"] == dict(changes, diff="-endpoint")
    assert BYPASS in ret["comment"]
    if test_mode:
        assert ret["result"] is None
        salt_funcs["cinder_consumers.apply"].assert_not_called()
        salt_funcs["cinder_consumers.resolve"].assert_called_once_with(NOVA, "nova", planned=True)
        assert "After the change, nova would resolve" in ret["comment"]
    else:
        assert ret["result"] is True
        salt_funcs["cinder_consumers.apply"].assert_called_once_with(NOVA, "nova", expected_digest="d7")
        assert "updated (1 options)" in ret["comment"]


def test_a_catalog_off_the_vip_fails(salt_funcs):
    salt_funcs["cinder_consumers.resolve"].return_value = lookup("http://10.0.0.11:8776/v3", on_vip=False)
    ret = cinder_consumers.pointed_at_vip(NOVA, "nova")
    assert ret["result"] is False
    assert "NOT on a VIP: 10.0.0.11 bypasses the HA endpoint" in ret["comment"]


def test_no_endpoint_in_the_catalog_fails(salt_funcs):
    salt_funcs["cinder_consumers.resolve"].return_value = lookup(url=None, on_vip=False)
    ret = cinder_consumers.pointed_at_vip(NOVA, "nova")
    assert ret["result"] is False and "no endpoint found" in ret["comment"]


def test_an_https_endpoint_the_consumers_ca_cannot_verify_fails(salt_funcs):
    failed = {"answers": False, "status": None, "error": "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed"}
    salt_funcs["cinder_consumers.resolve"].return_value = lookup("https://127.0.0.103:8776/v3", probe=failed)
    ret = cinder_consumers.pointed_at_vip(NOVA, "nova")
    assert ret["result"] is False and "CERTIFICATE_VERIFY_FAILED" in ret["comment"]


def test_keystone_unreachable_fails_clearly(salt_funcs):
    salt_funcs["cinder_consumers.resolve"].side_effect = RuntimeError("Keystone unreachable at http://127.0.0.1:5000/v3")
    ret = cinder_consumers.pointed_at_vip(NOVA, "nova")
    assert ret["result"] is False and "Keystone unreachable" in ret["comment"]


def test_invalid_input_fails_and_writes_nothing(salt_funcs):
    salt_funcs["cinder_consumers.check"].return_value = report(errors=["[cinder] catalog_info: contains a newline"])
    ret = cinder_consumers.pointed_at_vip(NOVA, "nova")
    assert ret["result"] is False and ret["changes"] == {} and "contains a newline" in ret["comment"]
    salt_funcs["cinder_consumers.apply"].assert_not_called()
    salt_funcs["cinder_consumers.resolve"].assert_not_called()


def test_a_missing_file_fails_and_writes_nothing(salt_funcs):
    salt_funcs["cinder_consumers.check"].side_effect = RuntimeError(f"{NOVA} does not exist")
    ret = cinder_consumers.pointed_at_vip(NOVA, "nova")
    assert ret == {"name": NOVA, "result": False, "changes": {}, "comment": f"{NOVA} does not exist"}


def test_a_failed_write_claims_no_change(salt_funcs, test_mode):
    salt_funcs["cinder_consumers.check"].return_value = report(changed=True, changes={"a": 1})
    salt_funcs["cinder_consumers.apply"].side_effect = RuntimeError("changed while this run was writing it")
    ret = cinder_consumers.pointed_at_vip(NOVA, "nova")
    if test_mode:
        assert ret["result"] is None
    else:
        assert ret == {"name": NOVA, "result": False, "changes": {}, "comment": "changed while this run was writing it"}
