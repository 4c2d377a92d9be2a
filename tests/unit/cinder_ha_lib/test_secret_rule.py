"""The one rule for secrets (cinder_ha_secrets): names, URL passwords, trees."""
import pytest

from cinder_ha_lib import secret_rule as secrets


@pytest.mark.parametrize("name", ["password", "os_password", "rabbit_password", "passwd", "admin_token",
                                  "secret_key", "memcache_secret_key", "hmac_keys", "key", "credentials",
                                  "Password", "private_key"])
def test_secret_names(name):
    assert secrets.is_secret_name(name)


@pytest.mark.parametrize("name", ["username", "auth_url", "keystone_get_token_url", "transport_url",
                                  "connection", "password_hash_rounds", "auth_type", "cacert", "region",
                                  "secret_mode"])
def test_not_secret_names(name):
    assert not secrets.is_secret_name(name)


@pytest.mark.parametrize("url,shown", [
    ("mysql+pymysql://u:p@h/db", "mysql+pymysql://u:***@h/db"),
    ("mysql+pymysql://u:p@ss@h:3306/db", "mysql+pymysql://u:***@h:3306/db"),   # unescaped '@'
    ("mysql://u:p/w@h/db", "mysql://u:***@h/db"),                                # unescaped '/'
    ("rabbit://u:p1@h1:5672,u:p2@h2:5672/v", "rabbit://u:***@h1:5672,u:***@h2:5672/v"),
    ("rabbit://u:p,x@h1,u:y@h2/", "rabbit://u:***@h1,u:***@h2/"),
    ("http://127.0.0.1:5000/v3", "http://127.0.0.1:5000/v3"),
    ("rabbit://guest@h/", "rabbit://guest@h/"),
])
def test_url_passwords_are_masked_whole(url, shown):
    assert secrets.mask_url(url) == shown


def test_trees_are_masked_by_name_numbers_included():
    tree = {"keystone": {"password": 12345678, "username": "admin"},
            "extra": {"profiler": {"hmac_keys": ["k1", "k2"]}, "database": {"connection": "mysql://u:pw@h/db"}}}
    shown = secrets.masked(tree)
    assert shown["keystone"] == {"password": "***", "username": "admin"}
    assert shown["extra"]["profiler"]["hmac_keys"] == ["***", "***"]
    assert shown["extra"]["database"]["connection"] == "mysql://u:***@h/db"
    assert set(secrets.secret_values(tree)) >= {"12345678", "k1", "k2", "pw"}
