"""`multinode.py down` leaves nothing behind: namespaces, links, addresses, mounts, processes."""
import os
import subprocess

from tests.multinode.conftest import bring_up, take_down


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


def snapshot():
    return {
        "netns": out("ip", "netns", "list"),
        "links": sorted(line.split(":")[1].strip() for line in out("ip", "-o", "link").splitlines()),
        "addrs": out("ip", "-o", "addr"),
        "mounts": open("/proc/mounts").read(),
    }


def test_down_leaves_nothing_behind(multinode):
    take_down(multinode)
    before = snapshot()
    bring_up(multinode, "--nodes", "3")
    during = snapshot()
    assert "cha-n3" in during["netns"] and any(link.startswith("cha-host") for link in during["links"])
    assert "198.18.0.254/24" in during["addrs"]
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
    assert not os.path.exists(f"/proc/{forwarder}") or "_forward" not in open(f"/proc/{forwarder}/cmdline").read()
