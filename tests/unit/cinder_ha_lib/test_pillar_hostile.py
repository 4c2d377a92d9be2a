"""Hostile and mistyped pillar values: each one is a listed problem naming its key, never a
traceback, before anything changes (the corpus is shared with the integration test that
applies each case to the live sandbox)."""
import copy

import pytest

from cinder_ha_lib import pillar

GOOD = {
    "vip": {"address": "127.0.0.103", "netmask": 32, "nic": "lo"},
    "database": {"host": "127.0.0.1", "user": "cinder", "password": "pw", "name": "cinder"},
    "rabbitmq": {"hosts": ["127.0.0.1:5672"], "user": "openstack", "password": "r@bbit:pw"},
    "keystone": {"auth_url": "http://127.0.0.1:5000/v3", "username": "admin", "password": "pw",
                 "project_name": "admin"},
    "agent": {"os_username": "admin", "os_password": "pw", "os_project_name": "admin",
              "os_auth_url": "http://127.0.0.1:5000/v3"},
}


def with_value(path, value):
    raw = copy.deepcopy(GOOD)
    node = raw
    for part in path[:-1]:
        node = node.setdefault(part, {})
    node[path[-1]] = value
    return raw


# (key path, hostile value, the key the message must name)
CORPUS = [
    # control characters in single-line contexts
    (("keystone", "auth_url"), "http://127.0.0.1:5000/v3\nX-Evil: 1", "keystone:auth_url"),
    (("keystone", "region"), "RegionOne\n", "keystone:region"),
    (("keystone", "username"), "admin\r", "keystone:username"),
    (("keystone", "password"), "pw\x00x", "keystone:password"),
    (("keystone", "project_name"), "ad\tmin", "keystone:project_name"),
    (("database", "password"), "p\nw", "database:password"),
    (("database", "host"), "127.0.0.1\n", "database:host"),
    (("rabbitmq", "password"), "a\x1bb", "rabbitmq:password"),
    (("rabbitmq", "virtual_host"), "/vh\n", "rabbitmq:virtual_host"),
    (("agent", "os_username"), "ad\nmin", "agent:os_username"),
    (("agent", "additional_parameters"), "--debug\n--x", "agent:additional_parameters"),
    (("endpoints", "description"), "Block\nStorage", "endpoints:description"),
    (("endpoints", "service_name"), "cinder\x7f", "endpoints:service_name"),
    (("cinder_conf", "extra"), {"DEFAULT": {"debug": "true\n[evil]"}}, "cinder_conf:extra:DEFAULT:debug"),
    (("cinder_conf", "extra"), {"DEFAULT": {"my_ips": ["a", "b\nc"]}}, "cinder_conf:extra:DEFAULT:my_ips"),
    (("controller", ), "node1\n", "controller"),
    # Pacemaker ids
    (("cluster", "primitive_id"), 'p"<x/>', "cluster:primitive_id"),
    (("cluster", "primitive_id"), "../../etc", "cluster:primitive_id"),
    (("cluster", "primitive_id"), "1abc", "cluster:primitive_id"),
    (("cluster", "primitive_id"), "", "cluster:primitive_id"),
    (("cluster", "vip_id"), "p ip", "cluster:vip_id"),
    (("cluster", "vip_id"), "p;rm -rf /", "cluster:vip_id"),
    (("cluster", "vip_id"), "x" * 101, "cluster:vip_id"),
    (("cluster", "vip_id"), "p_cinder-api", "cluster: primitive_id and vip_id"),
    # cinder.conf sections and keys
    (("cinder_conf", "extra"), {"DEFAULT": {"a=b": "1"}}, "cinder_conf:extra:DEFAULT:a=b"),
    (("cinder_conf", "extra"), {"DEFAULT": {"a b": "1"}}, "cinder_conf:extra:DEFAULT:a b"),
    (("cinder_conf", "extra"), {"DEFAULT": {"#x": "1"}}, "cinder_conf:extra:DEFAULT:#x"),
    (("cinder_conf", "extra"), {"sec]tion": {"a": "1"}}, "cinder_conf:extra:sec]tion"),
    (("cinder_conf", "extra"), {"[x": {"a": "1"}}, "cinder_conf:extra:[x"),
    (("cinder_conf", "extra"), {"DEFAULT": {"a": {"nested": 1}}}, "cinder_conf:extra:DEFAULT:a"),
    # paths
    (("cinder_conf", "path"), "etc/cinder/cinder.conf", "cinder_conf:path"),
    (("cinder_conf", "path"), "/etc/cinder/../shadow", "cinder_conf:path"),
    (("agent", "binary"), "cinder-api", "agent:binary"),
    (("agent", "config"), "./cinder.conf", "agent:config"),
    (("agent", "pid"), "run/x.pid", "agent:pid"),
    (("keystone", "cacert"), "ca.pem", "keystone:cacert"),
    # user names
    (("agent", "user"), "cinder;id", "agent:user"),
    (("agent", "user"), "-cinder", "agent:user"),
    (("agent", "user"), "cin der", "agent:user"),
    (("agent", "user"), "$(id)", "agent:user"),
    (("agent", "user"), "x" * 33, "agent:user"),
    # URLs
    (("keystone", "auth_url"), "http://127.0.0.1:5000/v3 ; curl x", "keystone:auth_url"),
    (("agent", "url"), "http://127.0.0.103:8776/ v3", "agent:url"),
    (("notifications", "transport_url"), "rabbit://u:p@h:5672/ x", "notifications:transport_url"),
    (("keystone", "auth_url"), "ftp://127.0.0.1/v3", "keystone:auth_url"),
    # wrong types
    (("vip", ), "127.0.0.103", "vip"),
    (("database", ), "mysql+pymysql://cinder:pw@127.0.0.1/cinder", "database"),
    (("keystone", "timeout"), "ten", "keystone:timeout"),
    (("keystone", "timeout"), -1, "keystone:timeout"),
    (("keystone", "insecure"), "yes", "keystone:insecure"),
    (("rabbitmq", "hosts"), [{"host": "x"}], "rabbitmq:hosts"),
    (("rabbitmq", "password"), ["a", "b"], "rabbitmq:password"),
    (("endpoints", "retire_legacy"), "no", "endpoints:retire_legacy"),
    (("endpoints", ), ["v3"], "endpoints"),
    (("cluster", ), "p_cinder-api", "cluster"),
    (("cluster", "primitive_id"), 12, "cluster:primitive_id"),
    (("cinder_conf", "extra"), ["DEFAULT"], "cinder_conf:extra"),
    (("agent", ), True, "agent"),
    (("agent", "os_password"), {"pillar": "x"}, "agent:os_password"),
    (("vip", "address"), ["127.0.0.103"], "vip:address"),
    # values the stack cannot use
    (("rabbitmq", "password"), "p/w", "rabbitmq:password"),
    (("rabbitmq", "user"), "us/er", "rabbitmq:user"),
    (("agent", "os_password"), "pw ", "agent:os_password"),
    (("agent", "os_password"), "x" * 255, "agent:os_password"),
    # values of a category that cannot work, refused by what the key means (test_meanings.py
    # generates every key's valid and invalid values from its declared meaning)
    (("vip", "address"), "224.0.0.18", "vip:address"),
    (("vip", "address"), "0.0.0.0", "vip:address"),
    (("vip", "netmask"), "0.0.0.0", "vip:netmask"),
    (("agent", "monitor_timeout"), 0, "agent:monitor_timeout"),
    (("cluster", "stickiness"), "garbage", "cluster:stickiness"),
    (("keystone", "region"), "", "keystone:region"),
    (("endpoints", "interfaces"), [], "endpoints:interfaces"),
    (("endpoints", "service_name"), "cinder/v3", "endpoints:service_name"),
    (("notifications", "driver"), "rabbit", "notifications:driver"),
]


def test_the_corpus_is_large_and_the_good_pillar_is_valid():
    assert len(CORPUS) >= 40
    assert pillar.normalize(GOOD)[1] == []


@pytest.mark.parametrize("path,value,key", CORPUS, ids=[f"{i}-{':'.join(c[0])}" for i, c in enumerate(CORPUS)])
def test_each_hostile_value_is_a_problem_naming_its_key(path, value, key):
    settings, errors, _ = pillar.normalize(with_value(path, value))
    assert settings is None, f"{path}={value!r} passed validation"
    assert any(e.startswith(key) for e in errors), errors
    # the message names the key and never echoes a secret back
    if "password" in path[-1] and isinstance(value, str) and len(value) > 2:
        assert not any(value in e for e in errors)


def test_wrong_types_are_messages_not_tracebacks():
    raw = {"vip": "127.0.0.103", "database": "x", "keystone": {"timeout": "ten", "auth_url": 5},
           "rabbitmq": {"hosts": 5, "password": None}, "endpoints": {"interfaces": "public"},
           "cinder_conf": {"extra": {"DEFAULT": 3}}, "cluster": [], "agent": {"monitor_interval": []}}
    settings, errors, _ = pillar.normalize(raw)
    assert settings is None
    text = "\n".join(errors)
    assert "vip: got a string, expected a mapping" in text
    assert "database: got a string, expected a mapping" in text
    assert "keystone:timeout: got a string, expected a number" in text
    assert "cluster: got a list, expected a mapping" in text
    assert "agent:monitor_interval: got a list" in text
    assert pillar.normalize("a string")[1] == ["cinder_ha: got a string, expected a mapping"]
