"""URL building: one home (cinder_ha_lib.urls) for hosts, endpoint forms, database and broker URLs."""
from urllib.parse import unquote, urlsplit

import pytest

from cinder_ha_lib import urls


def test_url_host_brackets_ipv6_once():
    assert urls.url_host("192.0.2.10") == "192.0.2.10"
    assert urls.url_host("2001:db8::1") == "[2001:db8::1]"
    assert urls.url_host("[2001:db8::1]") == "[2001:db8::1]"
    assert urls.url_host("db.example") == "db.example"


def test_endpoint_url_forms():
    assert urls.endpoint_url("192.0.2.10") == "http://192.0.2.10:8776/v3"
    assert urls.endpoint_url("2001:db8::1", form="v3_project") == "http://[2001:db8::1]:8776/v3/%(project_id)s"
    assert urls.endpoint_url("192.0.2.10", 18776, "legacy_v1") == "http://192.0.2.10:18776/v1/%(tenant_id)s"
    with pytest.raises(ValueError, match="one of v3, v3_project, legacy_v1"):
        urls.endpoint_url("192.0.2.10", form="v2")


def test_database_url_encodes_every_part():
    url = urls.database_url("2001:db8::5", "cin@der", "p@ss:w/o%rd#?", "cinder db")
    parts = urlsplit(url)
    assert parts.scheme == "mysql+pymysql" and parts.hostname == "2001:db8::5" and parts.port == 3306
    assert (unquote(parts.username), unquote(parts.password)) == ("cin@der", "p@ss:w/o%rd#?")
    assert unquote(parts.path) == "/cinder db"


def test_transport_url_one_netloc_per_broker_and_the_vhost():
    url = urls.transport_url([("198.18.0.1", 5672), ("2001:db8::7", 5673)], "open stack", "p@ss:%#?", "/cinder")
    assert url == ("rabbit://open%20stack:p%40ss%3A%25%23%3F@198.18.0.1:5672,"
                   "open%20stack:p%40ss%3A%25%23%3F@[2001:db8::7]:5673/cinder")
    assert urls.transport_url([("h", 5672)], "u", "p").endswith("@h:5672/")  # the default vhost "/"
