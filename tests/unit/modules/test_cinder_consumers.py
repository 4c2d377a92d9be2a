"""cinder_consumers execution module with Salt's loader mocked (the settings, cinder_conf, the
catalog lookup) on real files: what is planned and how the consumer's endpoint is resolved."""
from unittest.mock import MagicMock

import pytest
from salt.exceptions import CommandExecutionError

from _modules import cinder_consumers
from cinder_ha_lib import pillar

VIP = "198.18.0.10"
PILLAR = {
    "vip": {"address": VIP},
    "database": {"host": "198.18.0.254", "user": "cinder", "password": "pw"},
    "rabbitmq": {"hosts": ["198.18.0.254"], "password": "pw"},
    "keystone": {"auth_url": "http://198.18.0.254:5000/v3", "username": "admin", "password": "pw",
                 "project_name": "admin"},
}
NOVA = "[cinder]\n# before the cluster\nendpoint_template = http://198.18.0.11:8776/v3/%(project_id)s\n"


@pytest.fixture
def salt_funcs():
    settings = pillar.normalize(PILLAR)[0]
    return {"cinder_ha.settings": MagicMock(return_value=settings),
            "cinder_conf.check": MagicMock(return_value={"digest": None, "errors": [], "changed": True}),
            "cinder_conf.apply": MagicMock(return_value={"digest": "new", "errors": [], "changed": True}),
            "cinder_keystone.catalog_lookup": MagicMock(return_value={"found": True,
                                                                      "url": f"http://{VIP}:8776/v3"})}


@pytest.fixture
def configure_loader_modules(salt_funcs):
    return {cinder_consumers: {"__salt__": salt_funcs, "__opts__": {"test": False}}}


@pytest.fixture
def nova_conf(tmp_path):
    path = tmp_path / "nova.conf"
    path.write_text(NOVA)
    return str(path)


def test_check_hands_cinder_conf_the_planned_options_and_names_the_bypass(salt_funcs, nova_conf):
    report = cinder_consumers.check(nova_conf, "nova")
    options = salt_funcs["cinder_conf.check"].call_args.kwargs["options"]
    assert options["cinder"]["catalog_info"] == "volumev3::internalURL"
    assert options["cinder"]["os_region_name"] == "RegionOne"
    assert repr(options["cinder"]["endpoint_template"]) == "ABSENT"
    assert report["bypasses"][0]["host"] == "198.18.0.11" and "not a VIP (198.18.0.10)" in report["notes"][0]


def test_resolve_uses_the_template_while_it_is_there_and_the_catalog_after(salt_funcs, nova_conf):
    now = cinder_consumers.resolve(nova_conf, "nova")
    assert now["on_vip"] is False and now["lookups"][0]["how"] == "endpoint_template"
    assert now["lookups"][0]["host"] == "198.18.0.11"
    salt_funcs["cinder_keystone.catalog_lookup"].assert_not_called()
    after = cinder_consumers.resolve(nova_conf, "nova", planned=True)
    assert after["on_vip"] is True and after["lookups"][0]["url"] == f"http://{VIP}:8776/v3"
    salt_funcs["cinder_keystone.catalog_lookup"].assert_called_once_with(
        service_type="volumev3", interface="internalURL", region="RegionOne")


def test_a_catalog_off_the_vip_is_not_on_vip(salt_funcs, nova_conf):
    salt_funcs["cinder_keystone.catalog_lookup"].return_value = {"found": True, "url": "http://198.18.0.11:8776/v3"}
    assert cinder_consumers.resolve(nova_conf, "nova", planned=True)["on_vip"] is False


def test_apply_refuses_a_file_changed_since_the_check(salt_funcs, nova_conf):
    with pytest.raises(CommandExecutionError, match="changed since it was checked"):
        cinder_consumers.apply(nova_conf, "nova", expected_digest="0" * 64)
    salt_funcs["cinder_conf.apply"].assert_not_called()


def test_a_missing_file_a_link_and_a_bad_kind_are_clear_errors(tmp_path, nova_conf):
    with pytest.raises(CommandExecutionError, match="does not exist"):
        cinder_consumers.check(str(tmp_path / "absent.conf"), "nova")
    link = tmp_path / "link.conf"
    link.symlink_to(nova_conf)
    with pytest.raises(CommandExecutionError, match="symbolic link"):
        cinder_consumers.check(str(link), "nova")
    with pytest.raises(CommandExecutionError, match="kind: 'cinder'"):
        cinder_consumers.check(nova_conf, "cinder")
