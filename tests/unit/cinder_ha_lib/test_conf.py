"""cinder.conf model, planning, migration and masking (pure logic)."""
import pytest

from cinder_ha_lib import conf, pillar
from tests.support.conf import DB_PASSWORD, GUIDE_CONF, RABBIT_PASSWORD, only_legacy_lines_removed

LISTEN = {"DEFAULT": {"osapi_volume_listen": "192.168.42.103", "osapi_volume_listen_port": 8776}}


@pytest.mark.parametrize("text", [
    GUIDE_CONF,
    "[DEFAULT]\r\nkey = v\r\n\r\n# c\r\n",          # CRLF
    "[DEFAULT]\nkey=v",                              # no final newline
    "[a]\nk = 1\n  two\n\tthree\n\n[a]\nk = 4\n",    # continuations, repeated section
    "",
    "[DEFAULT]\nx = \u00e9\x0b\u2028y\n",            # characters str.splitlines would split on
    "junk before a section\n[DEFAULT\n",             # invalid: still kept byte for byte
])
def test_round_trip_is_byte_for_byte(text):
    assert conf.parse(text).render() == text


def test_parse_follows_oslo_config():
    config = conf.parse("[DEFAULT]\na = \"quoted\"\nb: colon = x\nc = 'x\"\nd = 1\n  cont\n\n[Database]\nconnection = x\n")
    effective = config.effective()
    assert effective["DEFAULT"] == {"a": ["quoted"], "b": ["colon = x"], "c": ["'x\""], "d": ["1\ncont"]}
    assert effective["database"] == {"connection": ["x"]}  # group names are case-insensitive
    assert config.errors == []
    bad = conf.parse("key = before section\n[DEFAULT]\n  \n[]\nnot an assignment\n")
    assert len(bad.errors) == 3
    assert "before any [section]" in bad.errors[0]


def test_guide_conf_is_migrated_and_everything_else_kept():
    plan = conf.plan(GUIDE_CONF, LISTEN)
    assert plan.errors == [] and plan.changed
    assert only_legacy_lines_removed(GUIDE_CONF, plan.new_text)
    effective = conf.parse(plan.new_text).effective()
    assert effective["database"]["connection"] == [f"mysql://cinder:{DB_PASSWORD}@192.168.42.101/cinder"]
    assert effective["DEFAULT"]["transport_url"] == [f"rabbit://guest:{RABBIT_PASSWORD}@192.168.42.102:5672/"]
    assert effective["oslo_messaging_notifications"]["driver"] == ["messagingv2"]
    for dead in ("sql_connection", "notifier_strategy", "rabbit_host", "rabbit_password"):
        assert dead not in effective["DEFAULT"]
    assert effective["filter"]["scheduler_default_filters"] == ["AvailabilityZoneFilter", "CapacityFilter"]
    assert effective["DEFAULT"]["enabled_backends"] == ["lvm ; not a comment for oslo.config\ncontinued line"]
    text = "\n".join(plan.migrations)
    assert "local SQLite file" in text and "guest@localhost" in text and "no notification" in text
    # new DEFAULT keys follow the last DEFAULT option, new sections come at the end
    assert "enabled_backends=lvm" in plan.new_text.split("osapi_volume_listen_port = 8776")[0]
    assert plan.new_text.rstrip().endswith("[oslo_messaging_notifications]\ndriver = messagingv2")
    assert not conf.plan(plan.new_text, LISTEN).changed


def test_pillar_connection_wins_over_the_files_legacy_value():
    wanted = dict(LISTEN, database={"connection": "mysql+pymysql://cinder:new@10.0.0.1/cinder"})
    plan = conf.plan(GUIDE_CONF, wanted)
    assert conf.parse(plan.new_text).effective()["database"]["connection"] == [
        "mysql+pymysql://cinder:new@10.0.0.1/cinder"]
    assert any("pillar's value is used" in m for m in plan.migrations)


def test_file_with_both_names_keeps_the_current_one():
    text = "[DEFAULT]\nsql_connection = sqlite:////old.db\n[database]\nconnection = sqlite:////new.db\n"
    plan = conf.plan(text, {})
    assert plan.new_text == "[DEFAULT]\n[database]\nconnection = sqlite:////new.db\n"
    assert "already sets it" in plan.migrations[0]


def test_rabbit_hosts_and_notification_driver_migrate():
    text = ("[DEFAULT]\nnotification_driver = cinder.openstack.common.notifier.no_op_notifier\n"
            "notifier_strategy = rabbit\n[oslo_messaging_rabbit]\nrabbit_hosts = h1:5673,h2\n"
            "rabbit_userid = u\nrabbit_password = p@ss/w\nrabbit_virtual_host = /v\n")
    effective = conf.parse(conf.plan(text, {}).new_text).effective()
    assert effective["DEFAULT"]["transport_url"] == ["rabbit://u:p%40ss%2Fw@h1:5673,u:p%40ss%2Fw@h2:5672/v"]
    assert effective["oslo_messaging_notifications"]["driver"] == ["noop"]
    assert "oslo_messaging_rabbit" not in effective  # its header stays, its dead keys went


def test_comment_only_difference_is_not_a_change():
    first = conf.plan(GUIDE_CONF, LISTEN).new_text
    edited = first.replace("# We bind Block", "#   We bind the Block").replace("verbose = True", "verbose=True")
    plan = conf.plan(edited, LISTEN)
    assert not plan.changed and plan.actions == [] and plan.new_text == edited


def test_hostile_values_are_written_so_that_oslo_reads_them_back_literally():
    hostile = {"quotes": "\"quoted\"", "shell": "$(touch /tmp/pwned) `id` ; rm -rf /", "percent": "100% %(x)s",
               "dollar": "$state_path", "spaces": "  padded  ", "hash": "# not a comment", "empty": "",
               "lone_quote": "'"}
    plan = conf.plan("[DEFAULT]\n", {"hostile": hostile})
    assert plan.errors == []
    parsed = conf.parse(plan.new_text).effective()["hostile"]
    for key, literal in hostile.items():
        assert conf.unescape(parsed[key][0]) == literal, key
    assert "dollar = $$state_path\n" in plan.new_text
    assert "spaces = \"  padded  \"\n" in plan.new_text


def test_invalid_input_lists_every_problem_and_changes_nothing():
    wanted = {"DEFAULT": {"osapi_volume_listen": "vip.example", "osapi_volume_listen_port": "87x6",
                          "transport_url": "http://h", "bad key": 1, "sql_connection": "x",
                          "multi": "line1\nline2", "bs": "a\\$b"},
              "database": {"connection": "not a url"}}
    plan = conf.plan(GUIDE_CONF, wanted)
    assert not plan.changed and plan.new_text == GUIDE_CONF
    text = "\n".join(plan.errors)
    for expected in ("not an IP address: 'vip.example'", "port must be an integer", "scheme must be one of",
                     "[DEFAULT] bad key: not an option name", "the HA guide's name", "contains a newline",
                     "'\\$'", "[database] connection: not a database URL"):
        assert expected in text, expected
    assert len(plan.errors) == 8


def test_unparsable_file_is_not_touched():
    text = "no_section = 1\n[DEFAULT]\n"
    plan = conf.plan(text, LISTEN)
    assert plan.errors and plan.new_text == text


def test_repeated_and_multi_valued_keys():
    text = "[DEFAULT]\nk = a\n# between\nk = b\nother = 1\n"
    single = conf.plan(text, {"DEFAULT": {"k": "c"}})  # a single value: the last occurrence (the one used)
    assert single.new_text == "[DEFAULT]\nk = a\n# between\nk = c\nother = 1\n"
    assert not conf.plan(text, {"DEFAULT": {"k": "b"}}).changed
    multi = conf.plan(text, {"DEFAULT": {"k": ["x", "y", "z"]}})
    assert multi.new_text == "[DEFAULT]\nk = x\n# between\nk = y\nk = z\nother = 1\n"
    fewer = conf.plan(multi.new_text, {"DEFAULT": {"k": ["x"]}})
    assert fewer.new_text == "[DEFAULT]\nk = x\n# between\nother = 1\n"


def test_edits_keep_the_operators_spelling_and_line_endings():
    text = "[DEFAULT]\r\nosapi_volume_listen:10.0.0.1\r\nx=1\r\n"
    plan = conf.plan(text, {"DEFAULT": {"osapi_volume_listen": "10.0.0.2"}})
    assert plan.new_text == "[DEFAULT]\r\nosapi_volume_listen:10.0.0.2\r\nx=1\r\n"


def test_new_default_section_goes_first_and_other_sections_last():
    plan = conf.plan("# head\n[lvm]\na = 1", {"DEFAULT": {"b": "2"}, "database": {"connection": "sqlite:////x.db"}})
    assert plan.new_text == "# head\n[DEFAULT]\nb = 2\n\n[lvm]\na = 1\n\n[database]\nconnection = sqlite:////x.db\n"


def test_masking():
    assert conf.mask_url("mysql+pymysql://cinder:pw@db/cinder?x=1") == "mysql+pymysql://cinder:***@db/cinder?x=1"
    assert conf.mask_url("rabbit://u:p1@h1:5672,u:p,2@h2:5672/v") == "rabbit://u:***@h1:5672,u:***@h2:5672/v"
    assert conf.mask_url("rabbit://h1:5672/") == "rabbit://h1:5672/"
    assert conf.mask_url("sqlite:////var/lib/cinder.db") == "sqlite:////var/lib/cinder.db"
    for key in ("password", "rabbit_password", "admin_token", "secret_key", "api_key", "memcache_secret_key"):
        assert conf.mask_value(key, "v") == "***"
    assert conf.mask_value("osapi_volume_listen", "1.2.3.4") == "1.2.3.4"
    plan = conf.plan(GUIDE_CONF, LISTEN)
    shown = repr(plan.masked_changes()) + conf.masked_diff(GUIDE_CONF, plan.new_text) + "".join(plan.migrations)
    assert DB_PASSWORD not in shown and RABBIT_PASSWORD not in shown
    assert "mysql://cinder:***@192.168.42.101/cinder" in shown


def test_desired_options_from_normalized_pillar():
    raw = {"vip": {"address": "127.0.0.115"}, "cinder_api_port": 18765,
           "database": {"connection": "mysql+pymysql://cinder:pw@127.0.0.1/cinder"},
           "rabbitmq": {"hosts": ["127.0.0.1"], "password": "rp"},
           "notifications": {"topics": ["notifications", "audit"]},
           "keystone": {"auth_url": "http://127.0.0.1:5000/v3", "username": "a", "password": "b", "project_name": "c"},
           "cinder_conf": {"extra": {"DEFAULT": {"osapi_volume_workers": 2}, "lvm": {"volume_group": "vg"}}}}
    settings, errors, _ = pillar.normalize(raw)
    assert errors == []
    assert conf.desired_options(settings) == {
        "DEFAULT": {"osapi_volume_listen": "127.0.0.115", "osapi_volume_listen_port": 18765,
                    "transport_url": "rabbit://guest:rp@127.0.0.1:5672/", "osapi_volume_workers": 2},
        "database": {"connection": "mysql+pymysql://cinder:pw@127.0.0.1/cinder"},
        "oslo_messaging_notifications": {"driver": "messagingv2", "topics": "notifications,audit"},
        "lvm": {"volume_group": "vg"},
    }
    settings["cinder_conf"]["extra"] = {"database": {"connection": "sqlite:////other.db"}}
    with pytest.raises(ValueError, match=r"\[database\] connection conflicts"):
        conf.desired_options(settings)


def test_managed_keys_are_named_as_effective_changes_names_them():
    desired = {"DEFAULT": {"osapi_volume_listen": "127.0.0.115", "transport_url": "fake://"},
               "Database": {"connection": "sqlite:////x.db"}, "lvm": {"volume_group": "vg"}, "empty": {}}
    keys = conf.managed_keys(desired)
    assert keys == ["[DEFAULT] osapi_volume_listen", "[DEFAULT] transport_url", "[database] connection",
                    "[lvm] volume_group"]
    changes = conf.effective_changes("[DEFAULT]\nosapi_max_limit = 1\n[database]\nconnection = a\n",
                                     "[DEFAULT]\n[DATABASE]\nconnection = b\n")
    assert [key for key in changes if key in keys] == ["[database] connection"]
    assert "[DEFAULT] osapi_max_limit" in changes


BACKENDS_BEFORE = "[DEFAULT]\nenabled_backends = ceph, lvm-1\n[ceph]\nrbd_pool = volumes\n[database]\nmax_pool_size = 5\n"


@pytest.mark.parametrize("after, kept", [
    # a backend option: only cinder-volume reads it
    (BACKENDS_BEFORE.replace("rbd_pool = volumes", "rbd_pool = other"), []),
    # a backend section the new text enables (no longer in the old one's list)
    ("[DEFAULT]\nenabled_backends = ceph, lvm-1, new\n[ceph]\nrbd_pool = volumes\n[new]\nx = 1\n"
     "[database]\nmax_pool_size = 5\n", ["[DEFAULT] enabled_backends"]),
    # a backend the new text disables: its section's removal is still the backend's business
    ("[DEFAULT]\nenabled_backends = lvm-1\n[database]\nmax_pool_size = 5\n", ["[DEFAULT] enabled_backends"]),
    # everything else is read by every service
    (BACKENDS_BEFORE.replace("max_pool_size = 5", "max_pool_size = 9"), ["[database] max_pool_size"]),
])
def test_backend_sections_are_no_change_for_the_services_that_do_not_read_them(after, kept):
    changes = conf.effective_changes(BACKENDS_BEFORE, after)
    assert sorted(conf.without_backend_sections(changes, BACKENDS_BEFORE, after)) == kept


def test_backend_sections_come_from_enabled_backends_only():
    assert conf.backend_sections(BACKENDS_BEFORE, "[DEFAULT]\nenabled_backends = \n") == {"ceph", "lvm-1"}
    assert conf.backend_sections("[ceph]\nrbd_pool = x\n") == set()


@pytest.mark.parametrize("first_line, argv", [
    (b"#!/srv/cinder/venv/bin/python3.11\n", ["/srv/cinder/venv/bin/python3.11"]),
    (b"#!/usr/bin/python3 -s\r\n", ["/usr/bin/python3", "-s"]),      # an option after the interpreter
    (b"#!/usr/bin/env python3\n", ["/usr/bin/env", "python3"]),
])
def test_python_argv_of_a_python_script(first_line, argv):
    assert conf.python_argv(first_line) == (argv, None)


@pytest.mark.parametrize("first_line, why", [
    (b"#!/bin/sh\n", "not on Python"),
    (b"#!/usr/bin/env perl\n", "not on Python"),
    (b"\x7fELF\x02\x01", "no #! line"),
    (b"", "no #! line"),
])
def test_python_argv_refuses_what_is_not_python(first_line, why):
    argv, problem = conf.python_argv(first_line)
    assert argv is None and why in problem


def test_balanced_mode_listens_on_this_nodes_own_address():
    raw = {"vip": {"address": "198.18.0.100", "netmask": 24},
           "database": {"connection": "mysql+pymysql://cinder:pw@127.0.0.1/cinder"},
           "rabbitmq": {"hosts": ["127.0.0.1"], "password": "rp"},
           "keystone": {"auth_url": "http://127.0.0.1:5000/v3", "username": "a", "password": "b", "project_name": "c"},
           "cluster": {"mode": "balanced", "nodes": {"n1": "198.18.0.1", "n2": "198.18.0.2"}}}
    settings, errors, _ = pillar.normalize(raw)
    assert errors == []
    assert conf.desired_options(settings, node="n2")["DEFAULT"]["osapi_volume_listen"] == "198.18.0.2"
    # a node the pillar does not name has nowhere to listen: an error, never the VIP or 0.0.0.0
    with pytest.raises(ValueError, match=r"this node \(n9\) is not named"):
        conf.desired_options(settings, node="n9")
    settings["cluster"]["mode"] = "cloned"  # the other modes: the VIP, whatever the node
    assert conf.desired_options(settings, node="n2")["DEFAULT"]["osapi_volume_listen"] == "198.18.0.100"
