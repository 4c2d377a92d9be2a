"""cinder_conf.managed through Salt's loaders, on real files (never /etc/cinder/cinder.conf)."""
import grp
import hashlib
import json
import os
import pwd
import struct
import threading
from unittest import mock

import pytest

from tests.support.conf import DB_PASSWORD, GUIDE_CONF, RABBIT_PASSWORD, only_legacy_lines_removed, oslo_read

LISTEN = {"DEFAULT": {"osapi_volume_listen": "192.168.42.103", "osapi_volume_listen_port": 8776}}
PILLAR_DB_PASSWORD = "pillar-db-pw%$'\"x"
PILLAR_RABBIT_PASSWORD = "pillar-r@bbit:pw"  # no "/": kombu cannot take it (the pillar refuses it)
PILLAR = {
    "vip": {"address": "127.0.0.115"},
    "cinder_api_port": 18765,
    "database": {"host": "127.0.0.1", "user": "cinder", "password": PILLAR_DB_PASSWORD},
    "rabbitmq": {"hosts": ["127.0.0.1", "127.0.0.2:5673"], "user": "openstack", "password": PILLAR_RABBIT_PASSWORD},
    "keystone": {"auth_url": "http://127.0.0.1:5000/v3", "username": "admin", "password": "ks-pw",
                 "project_name": "admin"},
    "cinder_conf": {"extra": {"DEFAULT": {"osapi_volume_workers": 1}}},
}
SECRETS = (DB_PASSWORD, RABBIT_PASSWORD, PILLAR_DB_PASSWORD, PILLAR_RABBIT_PASSWORD, "pillar-db-pw",
           "pillar-r%40bbit%3Apw")


def sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def managed(loaders, path, pillar=None, **kwargs):
    if pillar is not None:
        set_pillar(loaders, pillar)
    return loaders.states.cinder_conf.managed(name=str(path), **kwargs)


def set_pillar(loaders, pillar):
    """A real pillar (pillar_roots files, compiled by Salt) for the minion the loaders emulate."""
    roots = loaders.opts["pillar_roots"]["base"][0]
    os.makedirs(roots, exist_ok=True)
    with open(os.path.join(roots, "top.sls"), "w") as handle:
        handle.write("base:\n  '*':\n    - cinder_ha\n")
    with open(os.path.join(roots, "cinder_ha.sls"), "w") as handle:
        json.dump(pillar, handle)  # JSON is YAML
    loaders.refresh_pillar()
    loaders.reload_all()


def assert_no_secret(ret):
    text = json.dumps(ret.full_return if hasattr(ret, "full_return") else ret, default=str)
    for secret in SECRETS:
        assert secret not in text, f"a secret leaked into the state return: {secret[:4]}..."


@pytest.fixture
def guide_conf(tmp_path):
    path = tmp_path / "etc" / "cinder.conf"
    path.parent.mkdir()
    path.write_text(GUIDE_CONF)
    return path


def test_guide_conf_is_migrated_keeping_every_other_byte(loaders, guide_conf):
    ret = managed(loaders, guide_conf, options=LISTEN)
    assert ret.result is True, ret.comment
    text = guide_conf.read_text()
    assert only_legacy_lines_removed(GUIDE_CONF, text)
    for name in ("[database] connection", "[DEFAULT] transport_url", "[oslo_messaging_notifications] driver",
                 "[DEFAULT] sql_connection", "[DEFAULT] rabbit_host", "[DEFAULT] notifier_strategy",
                 "[DEFAULT] osapi_volume_listen_port"):
        assert name in ret.changes
    assert ret.changes["[database] connection"]["new"] == "mysql://cinder:***@192.168.42.101/cinder"
    assert ret.changes["[DEFAULT] rabbit_password"] == {"old": "***", "new": None}
    assert "local SQLite file" in ret.comment and "guest@localhost" in ret.comment
    assert_no_secret(ret)
    # cinder's own oslo.config reads the migrated values under today's names
    read = oslo_read(guide_conf, [["database", "connection"], ["DEFAULT", "transport_url"],
                                  ["oslo_messaging_notifications", "driver"]])
    assert read == {"database connection": f"mysql://cinder:{DB_PASSWORD}@192.168.42.101/cinder",
                    "DEFAULT transport_url": f"rabbit://guest:{RABBIT_PASSWORD}@192.168.42.102:5672/",
                    "oslo_messaging_notifications driver": "messagingv2"}
    # second run: no change, nothing written, the digest of the file is the recorded one
    inode, mtime = guide_conf.stat().st_ino, guide_conf.stat().st_mtime_ns
    again = managed(loaders, guide_conf, options=LISTEN)
    assert again.result is True and again.changes == {}
    assert (guide_conf.stat().st_ino, guide_conf.stat().st_mtime_ns) == (inode, mtime)
    assert loaders.modules.cinder_conf.recorded_digest(str(guide_conf)) == sha256(guide_conf)
    assert loaders.modules.cinder_conf.digest(str(guide_conf)) == sha256(guide_conf)


def test_test_mode_shows_everything_masked_and_writes_nothing(loaders, guide_conf):
    ret = managed(loaders, guide_conf, options=LISTEN, test=True)
    assert ret.result is None
    assert guide_conf.read_text() == GUIDE_CONF
    assert "-sql_connection = mysql://cinder:***@192.168.42.101/cinder" in ret.changes["diff"]
    assert "+connection = mysql://cinder:***@192.168.42.101/cinder" in ret.changes["diff"]
    assert "would be updated" in ret.comment and "sql_connection" in ret.comment
    assert_no_secret(ret)
    assert loaders.modules.cinder_conf.recorded_digest(str(guide_conf)) is None


def test_from_pillar_with_secrets_never_shown(loaders, guide_conf):
    ret = managed(loaders, guide_conf, pillar={"cinder_ha": PILLAR})
    assert ret.result is True, ret.comment
    assert_no_secret(ret)
    assert "pillar's value is used" in ret.comment
    read = oslo_read(guide_conf, [["database", "connection"], ["DEFAULT", "transport_url"],
                                  ["DEFAULT", "osapi_volume_listen"], ["DEFAULT", "osapi_volume_workers"]])
    assert read["database connection"] == "mysql+pymysql://cinder:pillar-db-pw%25%24%27%22x@127.0.0.1:3306/cinder"
    assert read["DEFAULT transport_url"] == ("rabbit://openstack:pillar-r%40bbit%3Apw@127.0.0.1:5672,"
                                             "openstack:pillar-r%40bbit%3Apw@127.0.0.2:5673/")
    assert read["DEFAULT osapi_volume_listen"] == "127.0.0.115"
    assert managed(loaders, guide_conf, pillar={"cinder_ha": PILLAR}).changes == {}


def test_hostile_value_is_written_literally(loaders, tmp_path):
    path = tmp_path / "cinder.conf"
    path.write_text("[DEFAULT]\n# keep me\n")
    hostile = {"q": "\"double\" and 'single'", "s": "$(touch " + str(tmp_path / "pwned") + ")",
               "p": "100% %(percent)s %s", "d": "$state_path/x", "w": " padded ", "qq": "\"whole\""}
    ret = managed(loaders, path, options={"hostile": hostile})
    assert ret.result is True, ret.comment
    assert not (tmp_path / "pwned").exists()
    assert oslo_read(path, [["hostile", key] for key in hostile]) == {f"hostile {k}": v for k, v in hostile.items()}
    assert managed(loaders, path, options={"hostile": hostile}).changes == {}
    newline = managed(loaders, path, options={"hostile": {"n": "line1\n[DEFAULT]\nsql_connection = x"}})
    assert newline.result is False and "contains a newline" in newline.comment
    assert "hostile" in path.read_text() and "line1" not in path.read_text()


@pytest.mark.parametrize("kwargs", [
    {"options": {"DEFAULT": {"osapi_volume_listen": "not-an-ip", "osapi_volume_listen_port": "80a",
                             "transport_url": "rabbit://u:" + RABBIT_PASSWORD + "@h:notaport/"},
                 "database": {"connection": "://nothing"}}},
    {"pillar": {"cinder_ha": dict(PILLAR, vip={"address": "10.0.0.300"}, cinder_api_port="x")}},
    {"pillar": {"cinder_ha": dict(PILLAR, cinder_conf={"extra": {"database": {"connection": "sqlite:////x"}}})}},
])
def test_bad_input_leaves_the_file_identical(loaders, guide_conf, kwargs):
    before = (guide_conf.read_bytes(), guide_conf.stat().st_ino, guide_conf.stat().st_mtime_ns)
    ret = managed(loaders, guide_conf, **kwargs)
    assert ret.result is False
    assert "left unchanged" in ret.comment
    assert (guide_conf.read_bytes(), guide_conf.stat().st_ino, guide_conf.stat().st_mtime_ns) == before
    assert_no_secret(ret)
    if "options" in kwargs:  # every problem listed at once
        for expected in ("not an IP address", "port must be an integer", "port of h", "not a database URL"):
            assert expected in ret.comment
    assert list(guide_conf.parent.iterdir()) == [guide_conf]  # no temp file left behind


def test_owner_group_kept_world_bits_removed_and_new_file_is_0640_root_cinder(loaders, tmp_path):
    path = tmp_path / "cinder.conf"
    path.write_text("[DEFAULT]\n")
    nobody = pwd.getpwnam("nobody").pw_uid
    cinder_gid = grp.getgrnam("cinder").gr_gid
    os.chown(path, nobody, cinder_gid)
    os.chmod(path, 0o664)
    ret = managed(loaders, path, options=LISTEN)
    assert ret.result is True and "World permission bits removed" in ret.comment, ret.comment
    st = path.stat()
    assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (nobody, cinder_gid, 0o660)
    # content already right: the world bits go all the same (the file holds passwords)
    os.chmod(path, 0o644)
    inode = path.stat().st_ino
    ret = managed(loaders, path, options=LISTEN)
    assert ret.result is True and ret.changes == {"mode": {"old": "0644", "new": "0640"}}, ret.changes
    assert path.stat().st_mode & 0o7777 == 0o640 and path.stat().st_ino == inode
    fresh = tmp_path / "new.conf"
    ret = managed(loaders, fresh, options=LISTEN, create=True)
    assert ret.result is True and ret.changes
    st = fresh.stat()
    assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (0, cinder_gid, 0o640)


@pytest.mark.parametrize("test", [False, True])
def test_a_missing_file_is_not_created_from_the_formulas_keys_alone(loaders, tmp_path, test):
    """Issue 23: the formula's keys alone are no working cinder.conf (no api_paste_config,
    log_dir, lock_path, backends): without create the state fails, says how to restore it,
    and writes nothing."""
    path = tmp_path / "etc" / "cinder.conf"
    path.parent.mkdir()
    ret = managed(loaders, path, options=LISTEN, test=test)
    assert ret.result is False and ret.changes == {}, ret.comment
    assert f"{path} does not exist" in ret.comment and "cinder_conf:create" in ret.comment, ret.comment
    assert list(path.parent.iterdir()) == []
    assert loaders.modules.cinder_conf.recorded_digest(str(path)) is None


def test_a_symlinked_conf_is_refused_and_nothing_is_written(loaders, tmp_path):
    """A link in a folder the cinder user can write would point root's write anywhere."""
    real = tmp_path / "real.conf"
    real.write_text("[DEFAULT]\n")
    link = tmp_path / "cinder.conf"
    link.symlink_to(real)
    ret = managed(loaders, link, options=LISTEN)
    assert ret.result is False and ret.changes == {}
    assert "symbolic link" in ret.comment, ret.comment
    assert link.is_symlink() and real.read_text() == "[DEFAULT]\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cinder.conf", "minion", "real.conf"]


def in_thread(func, timeout=15):
    """func() in a thread: (finished, result). A call blocked in open() never finishes."""
    out = {}
    thread = threading.Thread(target=lambda: out.setdefault("ret", func()), daemon=True)
    thread.start()
    thread.join(timeout)
    return not thread.is_alive(), out.get("ret")


@pytest.mark.parametrize("kind", ["fifo", "directory"])
def test_a_fifo_or_directory_is_a_clear_error_that_never_blocks(loaders, tmp_path, kind):
    path = tmp_path / "cinder.conf"
    if kind == "fifo":
        os.mkfifo(path)
    else:
        path.mkdir()
    finished, ret = in_thread(lambda: managed(loaders, path, options=LISTEN))
    if not finished:  # unblock the reader, then fail
        os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
    assert finished, f"cinder_conf.managed blocked on a {kind} named cinder.conf"
    assert ret.result is False and "not a regular file" in ret.comment, ret.comment
    assert path.is_fifo() if kind == "fifo" else path.is_dir()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cinder.conf", "minion"]


def posix_acl(entries):
    """A system.posix_acl_access value (linux/posix_acl_xattr.h): version 2, then (tag, perm, id)."""
    return struct.pack("<I", 2) + b"".join(struct.pack("<HHI", tag, perm, ident) for tag, perm, ident in entries)


def test_acl_and_xattrs_of_the_old_file_are_kept(loaders, tmp_path):
    path = tmp_path / "cinder.conf"
    path.write_text("[DEFAULT]\n")
    os.chmod(path, 0o640)
    undefined = 0xFFFFFFFF
    nobody = pwd.getpwnam("nobody").pw_uid
    # user::rw- user:nobody:r-- group::r-- mask::r-- other::---
    acl = posix_acl([(0x01, 6, undefined), (0x02, 4, nobody), (0x04, 4, undefined), (0x10, 4, undefined),
                     (0x20, 0, undefined)])
    os.setxattr(path, "system.posix_acl_access", acl)
    os.setxattr(path, "user.cinder_ha_test", b"keep me")
    before = {name: os.getxattr(path, name) for name in os.listxattr(path)}
    assert set(before) >= {"system.posix_acl_access", "user.cinder_ha_test"}
    inode = path.stat().st_ino
    ret = managed(loaders, path, options=LISTEN)
    assert ret.result is True and "[DEFAULT] osapi_volume_listen" in ret.changes, ret.comment
    assert path.stat().st_ino != inode  # a new file took its place
    after = {name: os.getxattr(path, name) for name in os.listxattr(path)}
    assert after == before
    assert path.stat().st_mode & 0o7777 == 0o640


def test_digest_is_recorded_before_the_rename(loaders, tmp_path):
    path = tmp_path / "cinder.conf"
    path.write_text("[DEFAULT]\n")
    seen = {}
    real_replace = os.replace

    def watching_replace(src, dst, *args, **kwargs):
        if str(dst) == str(path):  # what a file watcher would find at the moment the new file appears
            seen["recorded"] = loaders.modules.cinder_conf.recorded_digest(str(path))
            seen["new"] = hashlib.sha256(open(src, "rb").read()).hexdigest()
        return real_replace(src, dst, *args, **kwargs)

    with mock.patch("os.replace", watching_replace):
        assert managed(loaders, path, options=LISTEN).result is True
    assert seen["recorded"] == seen["new"] == sha256(path)
    digests = json.loads((tmp_path / "minion" / "cache" / "cinder_ha" / "digests.json").read_text())
    assert digests == {str(path): sha256(path)}


def test_comment_edit_is_not_a_change_but_is_recorded(loaders, guide_conf):
    assert managed(loaders, guide_conf, options=LISTEN).changes
    guide_conf.write_text(guide_conf.read_text().replace("# We bind", "# Operator: we bind"))
    ret = managed(loaders, guide_conf, options=LISTEN)
    assert ret.result is True and ret.changes == {}
    assert loaders.modules.cinder_conf.recorded_digest(str(guide_conf)) == sha256(guide_conf)


def test_execution_check_is_masked(loaders, guide_conf):
    report = loaders.modules.cinder_conf.check(str(guide_conf), options=LISTEN)
    assert report["changed"] and report["digest"] == sha256(guide_conf)
    assert_no_secret(report)
    assert guide_conf.read_text() == GUIDE_CONF
