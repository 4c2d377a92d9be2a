"""Failover of the formula-built cluster: the API, its data and its notifications survive.

Each test finds the active node, writes a volume type through the VIP with a client that knows
only Keystone, injects one fault while polling the VIP every 100 ms from the root namespace,
and asserts that the API answers again from another node (or the same one after kill -9), that
the data written before the fault reads back through the VIP, that the new cinder-api publishes
notifications to the real broker, and that no failed action comes from an lrm secret (the
authenticated monitor runs with os_password=lrm:// on all three nodes). Each test repairs what
it broke, so the next one starts from three healthy nodes.
"""
import pytest

from tests.multinode.conftest import NODES


def other_nodes(active):
    return [n for n in NODES if n != active]


class Fault:
    """Write before, fault, recover, read after: the checks every fault shares."""

    def __init__(self, cluster):
        self.c, self.mn = cluster, cluster.mn
        self.active = self.mn.locate()
        assert self.active in NODES
        self.client = cluster.client()
        self.written = self.client.create_type("before-fault")
        self.probe = None
        self.since = None

    def __enter__(self):
        self.probe = self.mn.OutageProbe().__enter__()
        self.mn.time.sleep(0.5)
        self.since = self.mn.time.monotonic()
        return self

    def __exit__(self, *exc):
        self.probe.__exit__(*exc)

    def recovered(self, timeout=60):
        return self.probe.wait_recovered(self.since, timeout=timeout)

    def data_and_notifications_survive(self, via):
        """The data written before the fault, read through the VIP from wherever it runs now;
        an API action there reaches the broker."""
        self.mn.wait_answering(timeout=60)
        client = self.c.client()
        assert client.get_type(self.written["id"])["name"] == self.written["name"]
        before = self.c.notifications()
        client.create_type("after-fault")
        self.c.wait_notifications_above(before)
        assert self.c.secret_failures(via) == [], "a failed action caused by an lrm secret"


def test_cinder_api_killed_comes_back_on_the_vip(built_cluster):
    c, mn = built_cluster, built_cluster.mn
    fault = Fault(c)
    with fault:
        killed = mn.kill_cinder_api(fault.active)
        # the watcher's report (or at worst the 5 s monitor) + start (~2 s) + a margin for a
        # loaded 2-core machine
        assert fault.recovered(timeout=40), "cinder-api did not answer again on the VIP"
    assert 0 < fault.probe.outage(fault.since) < 40
    mn.wait_settled(via=fault.active)
    now = mn.locate(via=fault.active)
    assert now in NODES
    assert (fault.active, f"{mn.PRIMITIVE_ID}_asyncmon_0") in [f[:2] for f in c.failures(now)], \
        "the watcher did not report the crash (crm_resource --fail: a failed asyncmon)"
    new_pid = mn.node_exec(now, ["cat", f"/run/resource-agents/{mn.PRIMITIVE_ID}.pid"]).stdout.strip()
    assert new_pid.isdigit() and (now != fault.active or int(new_pid) != killed)  # a new cinder-api
    fault.data_and_notifications_survive(via=now)
    mn.node_exec(now, ["crm_resource", "--cleanup", "-r", mn.PRIMITIVE_ID], check=True)  # the kill's failure


def test_power_cut_of_active_node_moves_vip_api_and_data(built_cluster):
    c, mn = built_cluster, built_cluster.mn
    fault = Fault(c)
    survivor = other_nodes(fault.active)[0]
    try:
        with fault:
            mn.power_cut(fault.active)
            assert f"cha-{fault.active}" not in mn.netns_list()
            assert fault.recovered(timeout=60), "no answer on the VIP after the power cut"
        new_active = mn.locate(via=survivor)
        assert new_active in other_nodes(fault.active)
        assert mn.locate(resource=mn.VIP_ID, via=survivor) == new_active
        fault.data_and_notifications_survive(via=survivor)
    finally:
        # the node reboots with its disk (CIB, lrm secret): it rejoins without a failed action
        mn.restart_node(fault.active)
    mn.wait_settled(via=survivor)
    assert mn.locate(via=survivor) == new_active  # stickiness (pillar cluster:stickiness): no move back
    assert c.failures(survivor) == []


def test_partitioned_active_node_loses_the_service_to_the_others(built_cluster):
    c, mn = built_cluster, built_cluster.mn
    fault = Fault(c)
    survivor = other_nodes(fault.active)[0]
    with fault:
        mn.set_partitioned(fault.active, True)
        try:
            assert fault.recovered(timeout=60), "no answer on the VIP after the partition"
            new_active = mn.locate(via=survivor)
            assert new_active in other_nodes(fault.active)
            fault.data_and_notifications_survive(via=survivor)
            # the cut-off node has no quorum: no-quorum-policy=stop takes its copy down
            deadline = mn.time.monotonic() + 60
            while mn.time.monotonic() < deadline and mn.locate(via=fault.active) is not None:
                mn.time.sleep(0.5)
            assert mn.locate(via=fault.active) is None, "the node without quorum still runs cinder-api"
            view = mn.cluster_view(fault.active)
            assert view is not None and not view["quorum"]
            assert "198.18.0.100" not in mn.node_exec(fault.active, ["ip", "-br", "addr", "show", "eth0"]).stdout
        finally:
            mn.set_partitioned(fault.active, False)
    mn.wait_online(list(NODES), via=survivor)
    mn.wait_settled(via=survivor)
    assert mn.locate(via=survivor) == new_active
    mn.wait_answering(timeout=30)
    assert c.secret_failures(survivor) == []


def test_standby_moves_cleanly_with_the_data_and_back(built_cluster):
    c, mn = built_cluster, built_cluster.mn
    mn.node_exec(mn.running_node(), ["crm_resource", "--cleanup"], check=True)  # forget earlier tests' failures
    mn.wait_settled()
    fault = Fault(c)
    with fault:
        mn.set_standby(fault.active, True)
        try:
            mn.wait_settled(via=fault.active)
            new_active = mn.locate(via=fault.active)
            assert new_active in other_nodes(fault.active)
            assert mn.locate(resource=mn.VIP_ID, via=fault.active) == new_active
            fault.data_and_notifications_survive(via=new_active)
        finally:
            mn.set_standby(fault.active, False)
    mn.wait_settled(via=fault.active)
    assert mn.locate(via=fault.active) == new_active
    assert c.failures(fault.active) == []  # a clean move: no failed operation anywhere


@pytest.fixture(autouse=True)
def _three_healthy_nodes(built_cluster):
    """Every failover test starts from three online nodes and a settled cluster."""
    mn = built_cluster.mn
    mn.wait_online(list(NODES), via=mn.running_node())
    mn.wait_settled()
    yield
