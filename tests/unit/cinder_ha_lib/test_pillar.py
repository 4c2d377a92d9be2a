"""Pillar validation and normalization (pure logic)."""
import pytest

from cinder_ha_lib import conf, pillar
from cinder_ha_lib import secret_rule as secrets
from cinder_ha_lib.errors import ConfError

GOOD = {
    "vip": {"address": "127.0.0.103", "netmask": 32, "nic": "lo"},
    "database": {"connection": "mysql+pymysql://cinder:s3cret@127.0.0.1/cinder"},
    "rabbitmq": {"hosts": ["127.0.0.1:5672", "127.0.0.2"], "user": "openstack", "password": "r@bbit:pw%"},
    "keystone": {"auth_url": "http://127.0.0.1:5000/v3", "username": "admin", "password": "pw",
                 "project_name": "admin"},
}


def test_good_pillar_normalizes_with_defaults():
    settings, errors, warnings = pillar.normalize(GOOD)
    assert errors == []
    assert settings["port"] == 8776
    assert settings["public_vip"] == settings["vip"]
    assert settings["transport_url"] == ("rabbit://openstack:r%40bbit%3Apw%25@127.0.0.1:5672,"
                                         "openstack:r%40bbit%3Apw%25@127.0.0.2:5672/")
    assert settings["notifications"] == {"driver": "messagingv2"}
    assert settings["cluster"] == {"primitive_id": "p_cinder-api", "vip_id": "p_ip_cinder-api", "stickiness": None,
                                   "mode": "active_passive", "nodes": None, "node_addresses": None, "clone_id": None, "clone_max": None,
                                   "vip_stickiness": None, "failure_timeout": None}
    assert settings["endpoint_urls"] == {i: "http://127.0.0.103:8776/v3" for i in ("public", "internal", "admin")}
    assert not [w for w in warnings if "guide" in w]


def test_every_problem_is_listed_at_once():
    bad = {"vip": {"address": "10.0.0.300"}, "cinder_api_port": "87x6", "keystone": {"auth_url": "ftp://x"},
           "rabitmq": {}, "endpoints": {"url_form": "v4"}}
    settings, errors, _ = pillar.normalize(bad)
    assert settings is None
    text = "\n".join(errors)
    assert "vip:address: not an IP address: '10.0.0.300'" in text
    assert "cinder_api_port: port must be an integer" in text
    assert "rabitmq: unknown key (did you mean 'rabbitmq'?)" in text
    assert "keystone:auth_url: not an http(s) URL" in text
    assert "keystone:username: missing" in text
    assert "database: give connection" in text
    assert "endpoints:url_form: one of v3, v3_project, legacy_v1, got 'v4'" in text
    assert len(errors) >= 8


def test_guide_inputs_are_migrated_with_warnings():
    raw = {
        "vip": {"address": "192.168.42.103"}, "public_vip": {"address": "192.168.42.104"},
        "sql_connection": "mysql://cinder:CINDER_DBPASS@10.0.0.10/cinder",
        "rabbit_host": "10.0.0.11", "rabbit_password": "RABBIT_PASS", "notifier_strategy": "rabbit",
        "keystone": GOOD["keystone"],
        "agent": {"keystone_get_token_url": "http://192.168.42.103:5000/v2.0/tokens", "os_password": "x"},
    }
    settings, errors, warnings = pillar.normalize(raw)
    assert errors == []
    assert settings["database_connection"] == "mysql+pymysql://cinder:CINDER_DBPASS@10.0.0.10/cinder"
    assert settings["transport_url"] == "rabbit://guest:RABBIT_PASS@10.0.0.11:5672/"
    assert settings["notifications"]["driver"] == "messagingv2"
    joined = "\n".join(warnings)
    for word in ("sql_connection", "rabbit_host", "notifier_strategy", "v2.0", "mysql+pymysql"):
        assert word in joined
    urls = pillar.endpoint_urls(settings)
    assert urls["public"] == "http://192.168.42.104:8776/v3"
    assert urls["internal"] == urls["admin"] == "http://192.168.42.103:8776/v3"


def test_secret_values_found_by_key_and_url():
    raw = dict(GOOD, agent={"os_password": "agentpw"})
    found = secrets.secret_values(raw)  # the one rule (cinder_ha_secrets) over the pillar
    assert {"s3cret", "r@bbit:pw%", "pw", "agentpw"} <= set(found)
    assert "127.0.0.103" not in found


def test_url_source_needs_hash_and_durations_get_units():
    raw = dict(GOOD, agent={"source": "https://example.invalid/cinder-api", "monitor_interval": 5})
    settings, errors, _ = pillar.normalize(raw)
    assert any("source_hash" in e for e in errors)
    settings, errors, _ = pillar.normalize(dict(GOOD, agent={"monitor_interval": 5}))
    assert settings["agent"]["monitor_interval"] == "5s"


def test_pillar_example_is_valid_and_documents_every_key(project_root=None):
    import pathlib

    import yaml

    root = pathlib.Path(__file__).resolve().parents[3]
    text = (root / "pillar.example").read_text()
    example = yaml.safe_load(text)["cinder_ha"]
    settings, errors, _ = pillar.normalize(example)
    assert errors == []
    assert settings["endpoint_urls"]["public"] == "http://192.168.43.103:8776/v3"
    # every schema key appears in the example, commented out or not
    for key, sub in pillar.SCHEMA.items():
        assert f"{key}:" in text, key
        for subkey in (sub or {}):
            assert f"{subkey}:" in text, f"{key}:{subkey}"


def test_legacy_url_form_and_retirement_contradict():
    _, errors, _ = pillar.normalize(dict(GOOD, endpoints={"url_form": "legacy_v1", "retire_legacy": True}))
    assert any("contradict" in e for e in errors)


def test_rabbitmq_slash_is_refused_by_name():
    """kombu cannot connect with a '/' in the user or password, however it is encoded
    (probed against the real broker): a clear error naming the key, no URL built."""
    for key in ("password", "user"):
        raw = dict(GOOD, rabbitmq=dict(GOOD["rabbitmq"], **{key: "a/b"}))
        settings, errors, _ = pillar.normalize(raw)
        assert settings is None
        assert any(e.startswith(f"rabbitmq:{key}: contains '/'") for e in errors), errors
    # the guide's name is checked too, by the same meaning, naming the key as written
    raw = {k: v for k, v in GOOD.items() if k != "rabbitmq"}
    raw.update(rabbit_host="10.0.0.11", rabbit_password="x/y")
    errors = pillar.normalize(raw)[1]
    assert any(e.startswith("rabbit_password: contains '/'") for e in errors), errors
    assert not any("missing" in e for e in errors), errors


def test_rabbitmq_other_special_characters_are_encoded():
    raw = dict(GOOD, rabbitmq=dict(GOOD["rabbitmq"], user="us:er", password="p@s s#?%[]"))
    settings, errors, _ = pillar.normalize(raw)
    assert errors == []
    assert settings["transport_url"].startswith("rabbit://us%3Aer:p%40s%20s%23%3F%25%5B%5D@127.0.0.1:5672,")


def test_lrm_secret_values_pacemaker_cannot_read_back_are_refused():
    for value, why in (("pw\nx", "line break"), ("pw\r", "line break"), ("pw ", "whitespace"),
                       ("pw\t", "control character"), ("x" * 255, "255 characters"), ("", "empty")):
        raw = dict(GOOD, agent={"os_username": "u", "os_password": value, "os_project_name": "p",
                                "os_auth_url": "http://127.0.0.1:5000/v3"})
        settings, errors, _ = pillar.normalize(raw)
        assert settings is None, value
        assert any(e.startswith("agent:os_password: ") and why in e for e in errors), (value, errors)
    ok = dict(GOOD, agent={"os_password": "x" * 254})
    assert pillar.normalize(ok)[1] == []
    # plain mode stores the value in the CIB: no line-based reader involved
    plain = dict(GOOD, agent={"os_password": "pw ", "secret_mode": "plain"})
    assert pillar.normalize(plain)[1] == []


RBD = {"driver": "cinder.volume.drivers.rbd.RBDDriver", "options": {"rbd_pool": "volumes"}}


def rabbit_options(raw):
    settings, errors, _ = pillar.normalize(raw)
    assert errors == []
    return conf.desired_options(settings).get("oslo_messaging_rabbit")


def test_rabbit_heartbeat_defaults_to_10s_only_where_cinder_consumes_casts():
    """A partitioned node cannot close its AMQP connections: RabbitMQ hands its consumers their
    share of the casts until the heartbeat gives up (measured: a create waited 165 s with
    oslo.messaging's 60). cinder-api alone consumes no cast, and its cinder.conf stays as it was."""
    assert rabbit_options(GOOD) is None
    assert rabbit_options(dict(GOOD, volume={"backends": {"ceph": RBD}})) == {"heartbeat_timeout_threshold": 10}
    explicit = dict(GOOD, rabbitmq=dict(GOOD["rabbitmq"], heartbeat_timeout="45"))
    assert rabbit_options(explicit) == {"heartbeat_timeout_threshold": 45}
    assert rabbit_options(dict(explicit, volume={"backends": {"ceph": RBD}})) == {"heartbeat_timeout_threshold": 45}


def test_rabbit_heartbeat_that_cannot_work_is_refused_naming_the_key():
    for value, why in ((0, "hours"), (4, "reconnects"), (301, "5 to 300"), ("20s", "5 to 300"), (True, "boolean"),
                       (2.5, "5 to 300")):
        settings, errors, _ = pillar.normalize(dict(GOOD, rabbitmq=dict(GOOD["rabbitmq"], heartbeat_timeout=value)))
        assert settings is None
        assert [e for e in errors if e.startswith("rabbitmq:heartbeat_timeout:") and why in e], (value, errors)


def test_rabbit_heartbeat_set_in_extra_as_well_is_a_conflict():
    raw = dict(GOOD, volume={"backends": {"ceph": RBD}},
               cinder_conf={"extra": {"oslo_messaging_rabbit": {"heartbeat_timeout_threshold": 60}}})
    settings, errors, _ = pillar.normalize(raw)
    with pytest.raises(ConfError, match="heartbeat_timeout_threshold conflicts"):
        conf.desired_options(settings)
