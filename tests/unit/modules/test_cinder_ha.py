"""cinder_ha execution module with Salt's loader mocked: validation and masked settings."""
import json
from unittest.mock import MagicMock

import pytest
from salt.exceptions import CommandExecutionError

from _modules import cinder_ha

PILLAR = {
    "vip": {"address": "198.18.0.10", "netmask": 24},
    "database": {"host": "198.18.0.254", "user": "cinder", "password": "db@pa:ss/%#?"},
    "rabbitmq": {"hosts": ["198.18.0.254"], "user": "openstack", "password": "mq-s3cret"},
    "keystone": {"auth_url": "http://198.18.0.254:5000/v3", "username": "admin", "password": "ks-s3cret",
                 "project_name": "admin"},
    "agent": {"os_password": "agent-s3cret"},
}
SECRETS = ("db@pa:ss/%#?", "mq-s3cret", "ks-s3cret", "agent-s3cret")


@pytest.fixture
def pillar_get():
    return MagicMock(return_value=PILLAR)


@pytest.fixture
def configure_loader_modules(pillar_get):
    return {cinder_ha: {"__salt__": {"pillar.get": pillar_get}, "__opts__": {"test": False}, "__context__": {}}}


def test_validate_reads_the_unmasked_pillar_and_lists_no_values(pillar_get):
    result = cinder_ha.validate()
    assert result == {"valid": True, "errors": [], "warnings": result["warnings"]}
    pillar_get.assert_called_with("cinder_ha", {}, unmask=True)  # Salt masks secrets for custom modules


def test_validate_of_a_bad_secret_names_the_key_never_the_value():
    bad = dict(PILLAR, keystone=dict(PILLAR["keystone"], password=["ks-s3cret"]),
               rabbitmq=dict(PILLAR["rabbitmq"], password="mq/s3cret"))
    result = cinder_ha.validate(pillar=bad)
    assert result["valid"] is False
    assert any(e.startswith("keystone:password") for e in result["errors"])
    assert any(e.startswith("rabbitmq:password") for e in result["errors"])
    assert "s3cret" not in json.dumps(result)


def test_settings_hold_no_secret_anywhere():
    text = json.dumps(cinder_ha.settings())
    assert not [secret for secret in SECRETS if secret in text]
    assert "198.18.0.10" in text  # the rest is there


def test_settings_of_an_invalid_pillar_raise_with_every_problem():
    with pytest.raises(CommandExecutionError) as raised:
        cinder_ha.settings(pillar={"vip": {"address": "x"}})
    assert "invalid cinder_ha pillar" in str(raised.value)
    assert "vip:address" in str(raised.value) and "keystone:auth_url: missing" in str(raised.value)
