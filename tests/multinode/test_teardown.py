"""`multinode.py down` leaves nothing behind: namespaces, links, addresses, mounts, processes,
the nodes' Ceph cluster and anything listening on the bridge's host address."""
import json
import os
import re
import subprocess

from tests.multinode.conftest import bring_up, load_multinode, take_down


def out(*argv):
    return subprocess.run(argv, capture_output=True, text=True, timeout=30).stdout


def processes():
    """{pid: (cmdline, pid-namespace, net-namespace)} for every process."""
    found = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
                found[int(entry)] = (cmd, os.readlink(f"/proc/{entry}/ns/pid"), os.readlink(f"/proc/{entry}/ns/net"))
            except OSError:
                continue
    return found


def ancestors():
    """This process and its parents: `scripts/test -m multinode` names the tier on its command
    line, and is no survivor of `down`."""
    found, pid = set(), os.getpid()
    while pid > 1:
        found.add(pid)
        with open(f"/proc/{pid}/stat") as f:
            pid = int(f.read().rsplit(")", 1)[1].split()[1])
    return found


def listening_on(addr):
    """`ss` lines of TCP sockets listening on `addr` (a socket outlives its address), but the
    tier's own salt-master's: salt-factories keeps it for the whole session (the formula tests
    before and after this one use it), and `down` is not what stops it."""
    def owner(line):
        match = re.search(r"pid=(\d+),", line)
        try:
            with open(f"/proc/{match.group(1)}/cmdline", "rb") as handle:
                return handle.read().decode(errors="replace")
        except (AttributeError, OSError):
            return ""

    return [line for line in out("ss", "-Hltnp").splitlines()
            if line.split()[3].rsplit(":", 1)[0] == addr and "cli_salt_master" not in owner(line)]


def ceph_daemons(conf):
    """Pids of the ceph daemons started with `conf` (the nodes' cluster, not the sandbox's)."""
    return [p for p, (cmd, _, _) in processes().items() if cmd.split(" ", 1)[0].startswith("ceph-") and conf in cmd]


RBD_AND_LOCK = """
import json, sys, rados, rbd
from tooz import coordination
with rados.Rados(conffile="/etc/ceph/ceph.conf", rados_id="cinder") as cluster:
    with cluster.open_ioctx("volumes") as ioctx:
        rbd.RBD().create(ioctx, "teardown-probe", 1 << 30)
        listed = rbd.RBD().list(ioctx)
        rbd.RBD().remove(ioctx, "teardown-probe")
coordinator = coordination.get_coordinator(sys.argv[1], b"teardown-probe")
coordinator.start(start_heart=True)
lock = coordinator.get_lock(b"teardown-probe")
locked = lock.acquire(blocking=False)
lock.release()
coordinator.stop()
print(json.dumps({"listed": listed, "locked": locked}))
"""


NODES_BASE = load_multinode().BASE


def ours(text):
    """What names the three nodes' things: their namespaces, links and folders, the bridge's
    subnet. The other tiers run beside this one (scripts/test) and add and remove their own
    namespaces, mounts and loopback addresses meanwhile."""
    return "cha-" in text or "198.18." in text or NODES_BASE in text


def snapshot():
    return {
        "netns": "\n".join(ns for ns in out("ip", "netns", "list").splitlines() if ours(ns)),
        "links": sorted(name for name in (line.split(":")[1].strip() for line in out("ip", "-o", "link").splitlines())
                        if ours(name)),
        "addrs": "\n".join(line for line in out("ip", "-o", "addr").splitlines() if ours(line)),
        # the first `ip netns add` since boot makes /run/netns a mount point of its own and
        # iproute2 keeps it (machine setup, shared by every netns user): not ours to remove
        "mounts": [line for line in open("/proc/mounts").read().splitlines()
                   if line.split()[1] != "/run/netns" and ours(line)],
    }


def test_down_leaves_nothing_behind(multinode):
    take_down(multinode)
    before = snapshot()
    bring_up(multinode, "--nodes", "3")
    during = snapshot()
    assert "cha-n3" in during["netns"] and any(link.startswith("cha-host") for link in during["links"])
    assert "198.18.0.254/24" in during["addrs"]
    # the nodes' own Ceph cluster, on the bridge's host address only, serves a node's cinder
    # user with the node's /etc/ceph; etcd answers through the relay
    storage = multinode.storage_facts()
    ceph_pids = ceph_daemons(storage["ceph_admin_conf"])
    assert len(ceph_pids) == 3
    ceph_addrs = {line.split()[3] for line in out("ss", "-Hltnp").splitlines()
                  if any(f"pid={pid}," in line for pid in ceph_pids)}
    assert {"198.18.0.254:3300", "198.18.0.254:6789"} <= ceph_addrs
    assert all(a.startswith("198.18.0.254:") for a in ceph_addrs), ceph_addrs
    probe = multinode.node_exec("n2", ["runuser", "-u", "cinder", "--", multinode.CINDER_VENV + "/bin/python",
                                       "-W", "ignore", "-c", RBD_AND_LOCK, storage["coordination_backend_url"]],
                                timeout=120)
    assert probe.returncode == 0, probe.stderr[-2000:]
    found = json.loads(probe.stdout)
    # the pool may also hold volumes of the tier's volume tests (the nodes' Ceph keeps its data)
    assert "teardown-probe" in found["listed"] and found["locked"] is True, found
    keyring = multinode.node_exec("n2", ["stat", "-c", "%a %U %G", storage["ceph_keyring"]], check=True)
    assert keyring.stdout.split() == ["640", "root", "cinder"]
    # the namespaces the nodes' processes live in, to look for survivors after `down`
    state = multinode.load_state()
    ours = set()
    for pid in state["pids"].values():
        ours.add(os.readlink(f"/proc/{pid}/ns/pid"))
        ours.add(os.readlink(f"/proc/{pid}/ns/net"))
    root_ns = {os.readlink("/proc/self/ns/pid"), os.readlink("/proc/self/ns/net")}
    assert len(ours) == 6 and not ours & root_ns
    node_procs = [p for p, (_, pidns, netns) in processes().items() if pidns in ours or netns in ours]
    assert len(node_procs) >= 3 * 9  # init, corosync, pacemakerd + 6 daemons per node
    forwarder = state["forwarder"]

    take_down(multinode)
    after = snapshot()
    assert after == before
    mine = ancestors()
    survivors = {p: cmd for p, (cmd, pidns, netns) in processes().items()
                 if pidns in ours or netns in ours or "multinode" in cmd and "pytest" not in cmd and p not in mine}
    assert not survivors
    assert not ceph_daemons(storage["ceph_admin_conf"])
    assert not listening_on("198.18.0.254")
    assert not os.path.exists(f"/proc/{forwarder}") or "_forward" not in open(f"/proc/{forwarder}/cmdline").read()
