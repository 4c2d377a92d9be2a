"""Pure logic behind "does the running cinder-api need a restart" and "can cinder load its
database driver": effective-config comparison, the agent's start record, driver and #! parsing."""
import pytest

from cinder_ha_lib import conf
from tests.support.conf import DB_PASSWORD, GUIDE_CONF

STARTED = ("[DEFAULT]\n# operator note\nosapi_volume_listen = 127.0.0.103\nosapi_volume_listen_port = 8776\n"
           f"[database]\nconnection = mysql+pymysql://cinder:{DB_PASSWORD}@127.0.0.1/cinder\n"
           "[filter]\nf = a\nf = b\n")


def test_identical_text_is_no_difference():
    assert conf.effective_changes(STARTED, STARTED) == {}
    assert conf.effective_changes(GUIDE_CONF, GUIDE_CONF) == {}


@pytest.mark.parametrize("edited", [
    STARTED.replace("# operator note\n", "# another note\n\n; and another\n"),     # comments, blank lines
    STARTED.replace("osapi_volume_listen = 127.0.0.103", "osapi_volume_listen=127.0.0.103"),  # spelling
    STARTED.replace("osapi_volume_listen = 127.0.0.103\nosapi_volume_listen_port = 8776\n",
                    "osapi_volume_listen_port = 8776\nosapi_volume_listen = 127.0.0.103\n"),  # key order
    STARTED.replace("[database]", "[DATABASE]"),                                   # group name case
    STARTED.replace("\n", "\r\n"),                                                 # line endings
])
def test_comment_order_and_spelling_edits_are_no_difference(edited):
    assert edited != STARTED
    assert conf.effective_changes(STARTED, edited) == {}


def test_a_key_change_is_listed_with_its_value_masked():
    edited = STARTED.replace("127.0.0.1/cinder", "10.9.9.9/cinder").replace(DB_PASSWORD, "other-Secret-77")
    edited = edited.replace("osapi_volume_listen = 127.0.0.103", "osapi_volume_listen = 0.0.0.0")
    edited += "[keystone_authtoken]\npassword = ks-Secret-55\n"
    changes = conf.effective_changes(STARTED, edited)
    assert changes == {
        "[DEFAULT] osapi_volume_listen": {"old": "127.0.0.103", "new": "0.0.0.0"},
        "[database] connection": {"old": "mysql+pymysql://cinder:***@127.0.0.1/cinder",
                                  "new": "mysql+pymysql://cinder:***@10.9.9.9/cinder"},
        "[keystone_authtoken] password": {"old": None, "new": "***"},
    }
    text = repr(changes)
    for secret in (DB_PASSWORD, "other-Secret-77", "ks-Secret-55"):
        assert secret not in text


def test_a_password_only_change_is_a_difference_that_shows_no_password():
    edited = STARTED.replace(DB_PASSWORD, "rotated-Secret-1")
    changes = conf.effective_changes(STARTED, edited)
    assert list(changes) == ["[database] connection"]
    assert DB_PASSWORD not in repr(changes) and "rotated-Secret-1" not in repr(changes)


def test_removed_key_and_multi_valued_key():
    edited = STARTED.replace("osapi_volume_listen_port = 8776\n", "").replace("f = b\n", "f = b\nf = c\n")
    assert conf.effective_changes(STARTED, edited) == {
        "[DEFAULT] osapi_volume_listen_port": {"old": "8776", "new": None},
        "[filter] f": {"old": ["a", "b"], "new": ["a", "b", "c"]},
    }


def test_the_last_occurrence_decides_like_oslo_config_but_any_occurrence_change_counts():
    # oslo.config uses the last value of a single-valued key; a change of an earlier duplicate
    # may matter for a multi-valued one: counted as a difference (a restart too many, never one too few)
    edited = STARTED.replace("[DEFAULT]\n", "[DEFAULT]\nosapi_volume_listen = 1.2.3.4\n")
    assert "[DEFAULT] osapi_volume_listen" in conf.effective_changes(STARTED, edited)


RECORD = ("version=1\npid=4242\nstarttime=987654\nstarted=1796145340\nconfig=/etc/cinder/cinder.conf\n"
          "api_base=http://127.0.0.103:8776\napi_path=/v3/\nsnapshot=/run/resource-agents/p_cinder-api.pid.conf\n"
          "sha256=" + "ab" * 32 + "\n")


def test_start_record_is_parsed():
    record = conf.parse_start_record(RECORD)
    assert record["pid"] == 4242 and record["starttime"] == 987654 and record["started"] == 1796145340
    assert record["config"] == "/etc/cinder/cinder.conf" and record["api_base"] == "http://127.0.0.103:8776"
    assert record["snapshot"].endswith(".pid.conf") and record["sha256"] == "ab" * 32
    # unknown keys are ignored (a newer agent may add some); '=' inside a value is kept
    extra = conf.parse_start_record(RECORD + "future=1\n").keys()
    assert "future" not in extra
    assert conf.parse_start_record(RECORD.replace("/v3/", "/v3/?a=b"))["api_path"] == "/v3/?a=b"


@pytest.mark.parametrize("broken", [
    RECORD.replace("pid=4242\n", ""),
    RECORD.replace("starttime=987654", "starttime=soon"),
    RECORD.replace("sha256=" + "ab" * 32, "sha256=xyz"),
    RECORD.replace("config=/etc", "config=etc"),
    "",
])
def test_a_broken_start_record_is_refused(broken):
    with pytest.raises(ValueError):
        conf.parse_start_record(broken)


@pytest.mark.parametrize("url,module", [
    ("mysql+pymysql://cinder:pw@127.0.0.1/cinder", "pymysql"),
    ("mysql://cinder:pw@127.0.0.1/cinder", "MySQLdb"),
    ("mysql+mysqldb://cinder:pw@127.0.0.1/cinder", "MySQLdb"),
    ("postgresql+psycopg2://cinder:pw@127.0.0.1/cinder", "psycopg2"),
    ("postgresql://cinder:pw@127.0.0.1/cinder", "psycopg2"),
    ("sqlite:////var/lib/cinder/cinder.db", "sqlite3"),
    ("MYSQL+PyMySQL://cinder:pw@h/c", "pymysql"),
])
def test_database_driver_of_a_url(url, module):
    scheme, found, hint = conf.db_driver(url)
    assert found == module and scheme == url.split("://")[0].lower()
    assert "pw" not in hint


def test_unknown_dialect_or_no_url_has_no_driver():
    assert conf.db_driver("oracle+cx_oracle://u:p@h/db") is None
    assert conf.db_driver("not a url") is None
    assert conf.db_driver("") is None and conf.db_driver(None) is None
    assert "PyMySQL" in conf.db_driver("mysql+pymysql://h/c")[2]


@pytest.mark.parametrize("line,argv", [
    ("#!/srv/cinder-ha/venv/cinder/bin/python3.11", ["/srv/cinder-ha/venv/cinder/bin/python3.11"]),
    ("#! /usr/bin/python3 -s", ["/usr/bin/python3", "-s"]),
    ("#!/usr/bin/env python3", ["/usr/bin/env", "python3"]),
    (b"#!/usr/bin/python3", ["/usr/bin/python3"]),
    ("\x7fELF\x02\x01", None),
    ("#!", None),
    ("", None),
])
def test_shebang_argv(line, argv):
    assert conf.shebang_argv(line) == argv
