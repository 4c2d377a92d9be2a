"""Block Storage end to end on the formula-built three nodes: cinder-scheduler (a clone) and
cinder-volume (active_passive under backend_host) on the real Ceph of the nodes (bound to
198.18.0.254), MariaDB, RabbitMQ and Keystone.

For each fault of the node that runs cinder-volume (kill -9 of cinder-volume, power cut,
partition, standby): a volume created before the fault is extended and deleted after it; a
create issued right at the fault ends `available` with its RBD image (or, only if the dying
cinder-volume was already working on it, `error` through cinder's own cleanup at the next
start: then a retry succeeds); nothing is left in `creating`; cinder's services table shows
exactly one cinder-volume row per backend, up. The outcomes are counted and printed.

Then the switches of where a backend's volumes are filed: to active_active (a cinder cluster),
a rename of that cluster, and back to active_passive, each in one apply.
"""
import os
import signal
import time

import pytest

from tests.multinode.conftest import NODES
from tests.support.volumes import Volumes, rbd_images

VOLUME_RSC = "p_cinder-volume"
BACKEND_ROW = "cinder-ha-volume@ceph"
OUTCOMES = {}


@pytest.fixture(scope="module")
def volume_cluster(formula_cluster):
    formula_cluster.ensure_built()
    c, mn = formula_cluster, formula_cluster.mn
    facts = mn.storage_facts()
    c.set_pillar(mode="active_passive", volume=c.sandbox.volume_pillar(facts, ceph_conf=facts["ceph_conf"]))
    c.apply()
    mn.wait_settled(timeout=180)
    # 20 creates at once (active_active), their retries, and what a failed test leaves
    Volumes(c.facts, region=mn.REGION).set_quota(volumes=60, gigabytes=200)
    yield c
    print("\nvolume outcomes per fault (create issued at the fault):", OUTCOMES)


def volume_node(c, timeout=90):
    """The node running cinder-volume (waits through a cleanup's re-probe or a move)."""
    mn = c.mn
    deadline = time.monotonic() + timeout
    node = None
    while time.monotonic() < deadline:
        node = mn.locate(resource=VOLUME_RSC, via=mn.running_node())
        if node in NODES:
            return node
        time.sleep(1)
    raise AssertionError(f"{VOLUME_RSC} runs nowhere after {timeout}s")


def wait_moved_off(c, node, timeout=120):
    """The node cinder-volume runs on once it has left ``node`` (a stop takes seconds: a look
    right after the fault still finds it there)."""
    deadline = time.monotonic() + timeout
    now = None
    while time.monotonic() < deadline:
        now = c.mn.locate(resource=VOLUME_RSC, via=c.mn.running_node())
        if now in NODES and now != node:
            return now
        time.sleep(1)
    raise AssertionError(f"{VOLUME_RSC} still on {now} (not moved off {node}) after {timeout}s")


def volume_rows(c):
    """(host, up) of every cinder-volume row in cinder's services table (the shared MariaDB)."""
    out = c.db_scalar("SELECT CONCAT(host, ' ', IF(TIMESTAMPDIFF(SECOND, updated_at, UTC_TIMESTAMP()) <= 60, "
                      f"'up', 'down')) FROM {c.mn.DEPLOYMENT}.services WHERE deleted = 0 AND `binary` = 'cinder-volume'")
    return sorted(tuple(line.split()) for line in out.splitlines() if line.strip())


def wait_one_row_up(c, timeout=120):
    deadline = time.monotonic() + timeout
    rows = None
    while time.monotonic() < deadline:
        rows = volume_rows(c)
        if rows == [(BACKEND_ROW, "up")]:
            return rows
        time.sleep(2)
    raise AssertionError(f"cinder-volume rows: {rows}, expected exactly [{BACKEND_ROW} up]")


def wait_members_up(c, cluster, timeout=120):
    """Until the cinder-volume rows filed in a cluster are exactly one up member per node, all
    in ``cluster`` (``name@backend``)."""
    deadline = time.monotonic() + timeout
    rows = []
    while time.monotonic() < deadline:
        rows = c.db_scalar(f"SELECT CONCAT(host, ' ', cluster_name) FROM {c.mn.DEPLOYMENT}.services WHERE deleted = 0 "
                           "AND `binary` = 'cinder-volume' AND cluster_name IS NOT NULL "
                           "AND TIMESTAMPDIFF(SECOND, updated_at, UTC_TIMESTAMP()) <= 60").splitlines()
        if sorted(r.split()[1] for r in rows) == [cluster] * len(NODES):
            return rows
        time.sleep(2)
    raise AssertionError(f"cinder-volume members up: {rows}, expected one per node in {cluster}")


def no_volume_creating(client):
    stuck = [v for v in client.listing() if v[2] == "creating"]
    assert not stuck, f"left in creating: {stuck}"


class VolumeFault:
    """Before, fault, after: what every fault of the cinder-volume node checks."""

    def __init__(self, c, kind):
        self.c, self.mn, self.kind = c, c.mn, kind
        self.node = volume_node(c)
        self.client = Volumes(c.facts, region=self.mn.REGION)
        self.before = self.client.create(f"before-{kind}")
        assert self.client.wait(self.before) == "available"
        self.during = self.outcome = self.seconds = None

    def create_at_fault(self):
        """Issued right after the fault; retried while the API itself is away (its node may be
        the one that failed). Waits for its outcome: the seconds from the fault to it are
        printed with the outcomes (a measurement, not a limit: bench/volume_bench.py)."""
        fault_at = time.monotonic()
        self.during = self.client.create(f"during-{self.kind}", retry_for=90)
        self.outcome = self.client.wait(self.during, timeout=300)
        self.seconds = round(time.monotonic() - fault_at, 1)

    def check_after(self):
        client = self.client
        outcome = self.outcome
        retried = None
        if outcome == "error":
            # the dying cinder-volume had it: cinder's cleanup at the next start marked it
            retry = client.create(f"retry-{self.kind}")
            retried = client.wait(retry, timeout=240)
            assert retried == "available"
            assert client.delete(retry)
        OUTCOMES[self.kind] = {"create_at_fault": outcome, "seconds": self.seconds, "retry": retried,
                               "failed_requests": client.failed_requests}
        assert outcome in ("available", "error"), f"{self.kind}: the create issued at the fault ended {outcome}"
        if outcome == "available":
            assert f"volume-{self.during}" in rbd_images(self.mn.storage_facts()["ceph_admin_conf"])
        no_volume_creating(client)
        # the volume made before the fault is still manageable from the new cinder-volume
        assert client.extend(self.before, 2) == "available"
        assert client.show(self.before)["size"] == 2
        assert client.delete(self.before) and client.delete(self.during)
        wait_one_row_up(self.c)


def test_one_volume_service_row_and_a_volume_on_ceph(volume_cluster):
    c = volume_cluster
    wait_one_row_up(c)
    client = Volumes(c.facts, region=c.mn.REGION)
    vol = client.create("first")
    assert client.wait(vol) == "available"
    assert f"volume-{vol}" in rbd_images(c.mn.storage_facts()["ceph_admin_conf"])
    assert client.delete(vol)
    # the scheduler runs on every node
    mon = c.crm_mon(c.mn.running_node())
    running = {n.get("name") for r in mon.iter("resource") if r.get("id") == "p_cinder-scheduler"
               for n in r.iter("node")}
    assert running == set(NODES)


def test_kill_9_of_cinder_volume(volume_cluster):
    c, mn = volume_cluster, volume_cluster.mn
    fault = VolumeFault(c, "kill")
    pid = mn.node_exec(fault.node, ["cat", f"/run/resource-agents/{VOLUME_RSC}.pid"], check=True).stdout.strip()
    mn.node_exec(fault.node, ["kill", "-9", pid], check=True)
    fault.create_at_fault()
    # the agent's watcher kills the orphaned backend worker at once (no cast reaches it) and
    # reports the crash to the cluster, which starts a new group without waiting for its next
    # monitor; pids repeat across the nodes' PID namespaces: a new process is a new (node, pid)
    deadline = time.monotonic() + 180

    def replaced():
        return now and new_pid.isdigit() and (now, new_pid) != (fault.node, pid)

    now, new_pid = fault.node, pid
    while time.monotonic() < deadline and not replaced():
        time.sleep(1)
        now = mn.locate(resource=VOLUME_RSC, via=mn.running_node())  # None while it recovers
        new_pid = mn.node_exec(now, ["cat", f"/run/resource-agents/{VOLUME_RSC}.pid"]).stdout.strip() if now else ""
    assert replaced(), f"cinder-volume was not started again (on {now}: {new_pid!r})"
    assert (fault.node, f"{VOLUME_RSC}_asyncmon_0") in [f[:2] for f in c.failures(now)], \
        "the watcher did not report the crash (crm_resource --fail: a failed asyncmon)"
    # no orphan of the killed process: on its node only the new group (its main process and
    # the backend's worker), or nothing if it moved
    left = mn.node_exec(fault.node, ["pgrep", "-f", "cinder-volume --config-file"]).stdout.split()
    if now == fault.node:
        assert new_pid in left and len(left) <= 2, left
    else:
        assert left == [], left
    fault.check_after()
    mn.node_exec(mn.running_node(), ["crm_resource", "--cleanup", "-r", VOLUME_RSC], check=True)
    mn.wait_settled(timeout=120)


def test_power_cut_of_the_cinder_volume_node(volume_cluster):
    c, mn = volume_cluster, volume_cluster.mn
    fault = VolumeFault(c, "powercut")
    try:
        mn.power_cut(fault.node)
        fault.create_at_fault()
        wait_moved_off(c, fault.node, timeout=180)
        fault.check_after()
    finally:
        mn.restart_node(fault.node)
    mn.wait_settled(via=[n for n in NODES if n != fault.node][0], timeout=120)


def test_partition_of_the_cinder_volume_node(volume_cluster):
    c, mn = volume_cluster, volume_cluster.mn
    fault = VolumeFault(c, "partition")
    survivor = [n for n in NODES if n != fault.node][0]
    mn.set_partitioned(fault.node, True)
    try:
        fault.create_at_fault()
        fault.check_after()
        assert mn.locate(resource=VOLUME_RSC, via=survivor) != fault.node
    finally:
        mn.set_partitioned(fault.node, False)  # its salt-minion started afresh
    c.wait_minions([fault.node])
    mn.wait_online(list(NODES), via=survivor)
    mn.wait_settled(via=survivor, timeout=120)
    wait_one_row_up(c)


def test_standby_of_the_cinder_volume_node(volume_cluster):
    c, mn = volume_cluster, volume_cluster.mn
    fault = VolumeFault(c, "standby")
    mn.set_standby(fault.node, True)
    try:
        fault.create_at_fault()
        wait_moved_off(c, fault.node)
        fault.check_after()
    finally:
        mn.set_standby(fault.node, False)
    mn.wait_settled(timeout=120)
    # a clean move: no failed operation of cinder-volume anywhere
    assert not [f for f in c.failures(mn.running_node()) if f[1].startswith(VOLUME_RSC)]


def test_active_active_kill_9_of_one_instance_while_20_creates_run(volume_cluster):
    """volume:mode active_active: a cinder-volume on every node in one cinder cluster, tooz on
    the sandbox's etcd (etcd3+http). kill -9 of one instance while 20 creates run: none is left
    in creating; those the killed instance had not started end available; the ones it held are
    set to error by cinder's own cleanup when the cluster starts it again on its node, and a
    retry succeeds."""
    import concurrent.futures

    c, mn = volume_cluster, volume_cluster.mn
    facts = mn.storage_facts()
    # 20 creates at once on one cinder-api of a 2-core machine take up to 35 s each (seen): a
    # client that gives up sooner counts a POST that cinder accepts as "no answer", and its retry
    # makes a second volume
    client = Volumes(c.facts, region=mn.REGION, timeout=120)
    for vol_id, _name, _status in client.listing():
        client.delete(vol_id)
    before = client.create("made-in-active-passive")  # moved into the cluster by the switch
    assert client.wait(before) == "available"
    c.set_pillar(volume=c.sandbox.volume_pillar(facts, ceph_conf=facts["ceph_conf"], mode="active_active",
                                                coordination_url=facts["coordination_backend_url"]))
    applied = c.apply()
    removed = [item for states in applied.values() for key, ret in states.items() if "placement_moved" in key
               for item in ret["changes"].get("removed", [])]
    assert "cinder-volume cinder-ha-volume@ceph" in removed, removed
    assert c.db_scalar(f"SELECT cluster_name FROM {mn.DEPLOYMENT}.volumes WHERE id = '{before}'").strip() == \
        "cinder-ha-cluster@ceph#ceph"
    mn.wait_settled(timeout=180)
    mon = c.crm_mon(mn.running_node())
    running = sorted(n.get("name") for r in mon.iter("resource") if r.get("id") == VOLUME_RSC for n in r.iter("node"))
    assert running == sorted(NODES), running
    wait_members_up(c, "cinder-ha-cluster@ceph")
    # The active_passive service's row (backend_host, no cluster) would count as up for cinder's
    # service_down_time after its process stopped, and creates scheduled to it meanwhile stayed
    # in `creating` (seen: 4 of 20): the apply moved its volumes and removed it.
    assert c.db_scalar(f"SELECT COUNT(*) FROM {mn.DEPLOYMENT}.services WHERE deleted = 0 AND "
                       "`binary` = 'cinder-volume' AND cluster_name IS NULL").strip() == "0"
    victim = "n2"
    pid = mn.node_exec(victim, ["cat", f"/run/resource-agents/{VOLUME_RSC}.pid"], check=True).stdout.strip()
    with concurrent.futures.ThreadPoolExecutor(max_workers=20) as pool:
        futures = [pool.submit(client.create, f"aa-{n}", 1, 60) for n in range(20)]
        time.sleep(0.3)
        mn.node_exec(victim, ["kill", "-9", pid], check=True)
        ids = [f.result() for f in futures]
    outcomes = {vol_id: client.wait(vol_id, timeout=300) for vol_id in ids}
    errors = [vol_id for vol_id, state in outcomes.items() if state == "error"]
    counts = {state: list(outcomes.values()).count(state) for state in set(outcomes.values())}
    retried = []
    for _failed in errors:
        retry = client.create("aa-retry")
        retried.append(client.wait(retry, timeout=240))
    OUTCOMES["active_active_kill"] = {"creates": counts, "retries": retried, "failed_requests": client.failed_requests}
    assert set(outcomes.values()) <= {"available", "error"}, counts
    assert all(state == "available" for state in retried), retried
    no_volume_creating(client)
    for vol_id, _name, _status in client.listing():
        assert client.delete(vol_id)
    mn.node_exec(mn.running_node(), ["crm_resource", "--cleanup", "-r", VOLUME_RSC], check=True)


def osd_frozen(mn, frozen):
    """SIGSTOP (or SIGCONT) the OSD of the nodes' Ceph: a client's write then waits in librados
    (the mon still answers, so a driver connects and reaches its first write)."""
    pid = mn.nodes_ceph().pid("osd")
    assert pid, "no OSD of the nodes' Ceph runs"
    os.kill(pid, signal.SIGSTOP if frozen else signal.SIGCONT)


def test_active_active_power_cut_of_a_member_holding_a_create(volume_cluster):
    """active_active (after the test above): a member that dies while it works on a create
    holds it in `creating`; cinder cleans that up only at the member's own next start, or when
    asked through its workers cleanup API. Ceph's OSD is frozen so that the create stays in
    flight in its member's driver, that member is powered off, the OSD resumes: once cinder
    counts the member down (service_down_time, 60 s), a live member's monitor asks for the
    cleanup and the volume ends `error`, while the node is still off; a new create ends
    `available` on the live members."""
    c, mn = volume_cluster, volume_cluster.mn
    client = Volumes(c.facts, region=mn.REGION, timeout=60)
    osd_frozen(mn, True)
    node = None
    try:
        held = client.create("held-at-power-cut")
        deadline = time.monotonic() + 60
        host = ""
        while time.monotonic() < deadline and not host:
            host = c.db_scalar(f"SELECT s.host FROM {mn.DEPLOYMENT}.workers w JOIN {mn.DEPLOYMENT}.services s "
                               f"ON s.id = w.service_id WHERE w.resource_id = '{held}' AND w.deleted = 0 "
                               "AND s.`binary` = 'cinder-volume'").strip()
            time.sleep(0.5)
        assert host, "no cinder-volume took the create within 60 s"
        node = host.split("@")[0]
        assert node in NODES, host
        time.sleep(2)  # in its driver, waiting on the frozen OSDs
        assert client.status(held) == "creating"
        mn.power_cut(node)
        cut_at = time.monotonic()
    finally:
        osd_frozen(mn, False)
    try:
        outcome = client.wait(held, wanted=("error", "available"), timeout=240)
        seconds = round(time.monotonic() - cut_at, 1)
        OUTCOMES["active_active_powercut_held"] = {"outcome": outcome, "seconds": seconds}
        assert outcome == "error", f"the create held by the powered-off {node} is {outcome} after {seconds}s"
        fresh = client.create("after-power-cut")
        assert client.wait(fresh) == "available"
        no_volume_creating(client)
        assert client.delete(held) and client.delete(fresh)
    finally:
        if node:
            mn.restart_node(node)
    mn.wait_settled(timeout=180)


def test_active_active_cluster_rename_moves_the_volumes(volume_cluster):
    """volume:cluster renamed in active_active (after the tests above): one apply restarts the
    members under the new name, and the placement move files the old cluster's volumes under the
    new one (their pool kept, as cinder's include_in_cluster does) and removes the old cluster and
    its rows, so that the scheduler stops choosing it; a volume made under the old name is then
    extended by the renamed cluster, and a new create ends available."""
    c, mn = volume_cluster, volume_cluster.mn
    facts = mn.storage_facts()
    old, new = c.pillar["volume"]["cluster"], "cinder-ha-renamed"
    client = Volumes(c.facts, region=mn.REGION, timeout=60)
    made = client.create("made-before-rename")
    assert client.wait(made) == "available"
    c.set_pillar(volume=c.sandbox.volume_pillar(facts, ceph_conf=facts["ceph_conf"], mode="active_active",
                                                coordination_url=facts["coordination_backend_url"], cluster=new))
    applied = c.apply()
    removed = [item for states in applied.values() for key, ret in states.items() if "placement_moved" in key
               for item in ret["changes"].get("removed", [])]
    assert f"cluster {old}@ceph" in removed, removed
    assert c.db_scalar(f"SELECT cluster_name FROM {mn.DEPLOYMENT}.volumes WHERE id = '{made}'") == f"{new}@ceph#ceph"
    assert c.db_scalar(f"SELECT COUNT(*) FROM {mn.DEPLOYMENT}.clusters WHERE deleted = 0 AND name = '{old}@ceph'") == "0"
    mn.wait_settled(timeout=180)
    wait_members_up(c, f"{new}@ceph")
    assert client.extend(made, 2) == "available"
    fresh = client.create("after-rename")
    assert client.wait(fresh) == "available"
    no_volume_creating(client)
    assert client.delete(made) and client.delete(fresh)


def test_back_to_active_passive_moves_the_clusters_volumes_to_backend_host(volume_cluster):
    """volume:mode active_active -> active_passive (after the tests above): the apply restarts
    cinder-volume as one primitive under backend_host, and the placement move files the
    cluster's volumes under ``backend_host@backend#pool`` (cinder's cluster_name cleared) and
    removes the cluster's rows and the cluster itself, so that the scheduler stops choosing it;
    a volume made in active_active is then extended and deleted by the one cinder-volume left,
    and a new create ends available."""
    c, mn = volume_cluster, volume_cluster.mn
    facts = mn.storage_facts()
    client = Volumes(c.facts, region=mn.REGION, timeout=60)
    made = client.create("made-in-active-active")
    assert client.wait(made) == "available"
    cluster = c.pillar["volume"]["cluster"]  # renamed by the test above, when it ran
    assert c.db_scalar(f"SELECT cluster_name FROM {mn.DEPLOYMENT}.volumes WHERE id = '{made}'") == \
        f"{cluster}@ceph#ceph"
    c.set_pillar(volume=c.sandbox.volume_pillar(facts, ceph_conf=facts["ceph_conf"]))
    applied = c.apply()
    removed = [item for states in applied.values() for key, ret in states.items() if "placement_moved" in key
               for item in ret["changes"].get("removed", [])]
    assert f"cluster {cluster}@ceph" in removed, removed
    assert c.db_scalar(f"SELECT CONCAT(host, ' ', IFNULL(cluster_name, '-')) FROM {mn.DEPLOYMENT}.volumes "
                       f"WHERE id = '{made}'") == f"{BACKEND_ROW}#ceph -"
    assert c.db_scalar(f"SELECT COUNT(*) FROM {mn.DEPLOYMENT}.clusters WHERE deleted = 0 AND "
                       "`binary` = 'cinder-volume'") == "0"
    mn.wait_settled(timeout=180)
    mon = c.crm_mon(mn.running_node())
    running = [n.get("name") for r in mon.iter("resource") if r.get("id") == VOLUME_RSC for n in r.iter("node")]
    assert len(running) == 1 and not [cl for cl in mon.iter("clone") if cl.get("id") == f"cl_{VOLUME_RSC}"], running
    wait_one_row_up(c)  # the cluster's members' rows are gone, the backend_host one is up
    assert client.extend(made, 2) == "available"
    fresh = client.create("after-back-to-active-passive")
    assert client.wait(fresh) == "available"
    assert f"volume-{fresh}" in rbd_images(facts["ceph_admin_conf"])
    no_volume_creating(client)
    assert client.delete(made) and client.delete(fresh)
