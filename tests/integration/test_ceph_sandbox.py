"""The sandbox's Ceph and etcd, as cinder-volume will use them: the real daemons, loopback only,
cinder's own user and venv, the keyring cinder reads and the one it must not."""
import grp
import json
import os
import pwd
import subprocess
import urllib.request
import uuid

import pytest

from tests.conftest import SANDBOX

CINDER_PYTHON = str(SANDBOX / "venv" / "cinder" / "bin" / "python")


def as_cinder(script, *args, timeout=120):
    """`script` in cinder's venv as the user cinder (no root, nothing inherited but PATH)."""
    return subprocess.run(["runuser", "-u", "cinder", "--", "env", "-i", "PATH=/usr/bin:/bin", CINDER_PYTHON,
                           "-W", "ignore", "-c", script, *args],
                          capture_output=True, text=True, timeout=timeout)


def listening(pid):
    """Local addresses `pid` listens on (TCP), from ss."""
    out = subprocess.run(["ss", "-Hltnp"], capture_output=True, text=True, timeout=30).stdout
    return [line.split()[3] for line in out.splitlines() if f"pid={pid}," in line]


def recorded(name):
    with open(SANDBOX / "run" / f"{name}.pid") as f:
        return int(f.read())


@pytest.mark.parametrize("daemon", ["ceph-mon", "ceph-mgr", "ceph-osd", "etcd"])
def test_daemon_listens_on_loopback_only(daemon):
    addrs = listening(recorded(daemon))
    assert addrs, f"{daemon} listens nowhere"
    assert all(a.rsplit(":", 1)[0].startswith("127.") for a in addrs), addrs


def test_mon_speaks_msgr2_and_msgr1_on_its_ports():
    assert sorted(listening(recorded("ceph-mon"))) == ["127.0.0.1:3300", "127.0.0.1:6789"]


RBD_ROUND_TRIP = """
import json, sys, rados, rbd
conf, user, pool, name = sys.argv[1:]
with rados.Rados(conffile=conf, rados_id=user) as cluster:
    with cluster.open_ioctx(pool) as ioctx:
        rbd.RBD().create(ioctx, name, 1 << 30)
        with rbd.Image(ioctx, name) as image:
            size = image.size()
        listed = rbd.RBD().list(ioctx)
        rbd.RBD().remove(ioctx, name)
        print(json.dumps({"size": size, "listed": listed, "after": rbd.RBD().list(ioctx)}))
"""


def test_cinder_creates_lists_and_removes_an_image_with_its_keyring(sandbox_facts):
    name = f"probe-{uuid.uuid4().hex[:8]}"
    res = as_cinder(RBD_ROUND_TRIP, sandbox_facts["ceph_conf"], sandbox_facts["rbd_user"], sandbox_facts["rbd_pool"],
                    name)
    assert res.returncode == 0, res.stderr[-2000:]
    seen = json.loads(res.stdout)
    assert seen["size"] == 1 << 30
    assert name in seen["listed"] and name not in seen["after"]


def test_cinder_user_is_confined_to_its_pool(sandbox_facts):
    """`profile rbd pool=volumes`: no other pool, and no admin keyring to fall back on."""
    script = """
import sys, rados
with rados.Rados(conffile=sys.argv[1], rados_id=sys.argv[2]) as cluster:
    ioctx = cluster.open_ioctx(".mgr" if ".mgr" in cluster.list_pools() else "device_health_metrics")
    try:
        ioctx.write_full("probe", b"x")
    except rados.PermissionError:
        print("refused")
"""
    res = as_cinder(script, sandbox_facts["ceph_conf"], sandbox_facts["rbd_user"])
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.strip() == "refused"


def test_cinder_keyring_is_0640_root_cinder(sandbox_facts):
    st = os.stat(sandbox_facts["ceph_keyring"])
    assert oct(st.st_mode & 0o7777) == "0o640"
    assert (pwd.getpwuid(st.st_uid).pw_name, grp.getgrgid(st.st_gid).gr_name) == ("root", "cinder")
    assert sandbox_facts["ceph_keyring"] == "/etc/ceph/ceph.client.cinder.keyring"
    with open(sandbox_facts["ceph_conf"]) as f:
        assert "mon host = [v2:127.0.0.1:3300,v1:127.0.0.1:6789]" in f.read()


def test_admin_keyring_is_out_of_cinders_reach(sandbox_facts):
    admin = sandbox_facts["ceph_admin_keyring"]
    st = os.stat(admin)
    assert oct(st.st_mode & 0o7777) == "0o600" and st.st_uid == 0
    assert not admin.startswith("/etc/ceph/")
    res = subprocess.run(["runuser", "-u", "cinder", "--", "cat", admin], capture_output=True, text=True, timeout=30)
    assert res.returncode != 0 and "Permission denied" in res.stderr
    assert not os.path.exists("/etc/ceph/ceph.client.admin.keyring")


def test_etcd_answers(sandbox_facts):
    with urllib.request.urlopen(f"{sandbox_facts['etcd_url']}/health", timeout=5) as resp:
        assert json.load(resp)["health"] == "true"
    assert sandbox_facts["coordination_backend_url"] == "etcd3+http://127.0.0.1:2379"


TOOZ_LOCK = """
import json, sys
from tooz import coordination
url, lock = sys.argv[1], sys.argv[2].encode()
first = coordination.get_coordinator(url, b"probe-1")
second = coordination.get_coordinator(url, b"probe-2")
first.start(start_heart=True)
second.start(start_heart=True)
held = first.get_lock(lock)
got = held.acquire(blocking=False)
while_held = second.get_lock(lock).acquire(blocking=False)
held.release()
other = second.get_lock(lock)
after_release = other.acquire(blocking=False)
other.release()
first.stop()
second.stop()
print(json.dumps([got, while_held, after_release]))
"""


def test_tooz_lock_through_etcd3gw_from_cinders_venv(sandbox_facts):
    res = as_cinder(TOOZ_LOCK, sandbox_facts["coordination_backend_url"], f"probe-{uuid.uuid4().hex[:8]}")
    assert res.returncode == 0, res.stderr[-2000:]
    # the second member is refused while the first holds the lock: a real lock, not a no-op
    assert json.loads(res.stdout) == [True, False, True]
