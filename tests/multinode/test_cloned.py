"""cluster:mode cloned on the formula-built three nodes: a warm cinder-api on every controller,
only the VIP moves.

Runs after test_build.py (file order) on the same session cluster: the pillar switches to
cloned mode (one CIB transaction, the VIP polled every 100 ms from the root namespace: no
failed poll), a config change applied with state.apply restarts the instances one at a time
(no failed poll), then each fault: the API answers again on the VIP and what was written
before reads back. A node rebooted rejoins warm without the formula (its instance puts the VIP
back on its loopback). Then cinder_ha.clean takes the VIP off every loopback with the rest and the
formula builds the cloned cluster again. The last test switches back to active_passive (no
failed poll either) and the module's fixture makes sure of it whatever happened, so
test_failover.py finds the guide's mode. A second apply after each switch changes nothing.
"""
import datetime
import time

import pytest

from tests.multinode.conftest import NODES, by_minion

CLONE = "cl_p_cinder-api"
CONFIGURED = "cinder_ha-cluster-objects-configured"


def instances(c, via):
    """Nodes where an instance of the clone runs."""
    clone = next((e for e in c.crm_mon(via).iter("clone") if e.get("id") == CLONE), None)
    if clone is None:
        return []
    return sorted(n.get("name") for r in clone.iter("resource") if r.get("active") == "true"
                  for n in r.findall("node"))


def vip_on_loopback(mn, node):
    """Whether the VIP is on `node`'s lo (cluster:mode cloned keeps it there)."""
    return mn.VIP in mn.node_exec(node, ["ip", "-o", "addr", "show", "dev", "lo"]).stdout


def wait_instances(c, via, expected=NODES, timeout=90):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if instances(c, via) == sorted(expected):
            return
        time.sleep(0.5)
    raise AssertionError(f"instances on {instances(c, via)}, expected {sorted(expected)}")


def changed(runs):
    """{minion: {state id: changes}} of the states that changed something."""
    found = {}
    for minion, states in runs.items():
        for key, ret in states.items():
            if ret["changes"]:
                found.setdefault(minion, {})[key.split("_|-")[1]] = ret["changes"]
    return found


class Polled:
    """The VIP polled every 100 ms while the block runs; failed() = failed polls sent in it."""

    def __init__(self, mn):
        self.mn = mn
        self.probe = mn.OutageProbe()

    def __enter__(self):
        self.probe.__enter__()
        time.sleep(0.5)
        self.since = time.monotonic()
        return self

    def __exit__(self, *exc):
        time.sleep(1.0)
        self.until = time.monotonic()
        self.probe.__exit__(*exc)

    def polls(self):
        return [r for r in self.probe.results if self.since <= r[0] <= self.until]

    def failed(self):
        polls = self.polls()
        failed = [r for r in polls if not r[2]]
        if not failed:  # "none failed" means something only if polls were sent (one per 100 ms)
            assert len(polls) >= (self.until - self.since) / 0.1 / 2, \
                f"only {len(polls)} polls in {self.until - self.since:.1f} s"
        return failed

    def report(self):
        """The failed polls, each with its wall-clock time (to match the nodes' logs), how long it
        took and what happened (refused, reset, timed out, an HTTP status)."""
        offset = time.time() - time.monotonic()
        failed = self.failed()
        lines = [f"{len(failed)} of {len(self.polls())} polls failed:"]
        for sent, answered, _ok, why in failed:
            stamp = datetime.datetime.fromtimestamp(sent + offset, datetime.UTC).strftime("%H:%M:%S.%f")[:-3]
            lines.append(f"  sent {stamp} UTC, failed after {(answered - sent) * 1000:.0f} ms: {why}")
        return "\n".join(lines)


def start_records(mn):
    """{node: the 'started' line of its instance's start record} (a new one per start)."""
    found = {}
    for node in NODES:
        text = mn.node_exec(node, ["cat", f"/run/resource-agents/{mn.PRIMITIVE_ID}.pid.start"]).stdout
        found[node] = next((line for line in text.splitlines() if line.startswith("started=")), None)
    return found


@pytest.fixture(scope="module")
def cloned(formula_cluster):
    """The session cluster switched to cloned mode by the first test; back to active_passive
    (the pillar test_failover.py expects) at the end, whatever happened."""
    c = formula_cluster
    c.ensure_built()
    yield c
    c.back_to_active_passive()


@pytest.fixture(autouse=True)
def three_nodes(cloned):
    """Every test starts with the three nodes running (a failed one may have left one down)."""
    cloned.nodes_running()


def test_switch_to_cloned_is_one_transaction_without_a_failed_poll(cloned):
    c, mn = cloned, cloned.mn
    holder = mn.locate(mn.VIP_ID)
    written = c.client().create_type("before-switch")
    c.set_pillar(mode="cloned")
    dc = mn.cluster_view(holder)["dc"]
    # test=True on the controller: what changes and what the cluster would do
    dry = by_minion(c.cli.run("state.apply", "cinder_ha", "test=True", minion_tgt=dc, _timeout=300), [dc])[dc]
    plan = next(v for k, v in dry.items() if CONFIGURED in k)
    assert plan["result"] is None, plan["comment"]
    assert plan["changes"]["objects"][CLONE]["action"] == "create"
    assert plan["changes"]["objects"]["c_p_cinder-api_with_ip"]["action"] == "delete"
    would = plan["changes"]["cluster"]
    assert sorted(would) == sorted(f"start p_cinder-api:{i} on {n}" for i, n in
                                   zip((1, 2), [n for n in NODES if n != holder])), would
    with Polled(mn) as polled:
        runs = c.apply()
        wait_instances(c, holder)
        mn.wait_settled(via=holder)
    assert polled.failed() == [], polled.report()
    writers = {m: states[CONFIGURED] for m, states in changed(runs).items() if CONFIGURED in states}
    assert list(writers) == [dc]  # one CIB transaction, by the controller
    assert mn.locate(mn.VIP_ID, via=holder) == holder  # the running instance was adopted: no move
    assert changed(c.apply()) == {}  # a second apply changes nothing
    assert c.failures(holder) == []
    assert c.client().get_type(written["id"])["name"] == written["name"]


def test_config_change_restarts_one_instance_at_a_time_without_a_failed_poll(cloned):
    c, mn = cloned, cloned.mn
    assert c.pillar["mode"] == "cloned"
    before = start_records(mn)
    c.set_pillar(options={"DEFAULT": {"osapi_max_limit": 321}})
    with Polled(mn) as polled:
        runs = c.apply()
        mn.wait_settled()
    assert polled.failed() == [], polled.report()
    restarted = {m for m, states in changed(runs).items()
                 if "cinder_ha-config-cinder-api-restarted-through-cluster" in states}
    assert restarted == set(NODES), changed(runs)
    after = start_records(mn)
    assert all(after[n] != before[n] for n in NODES), (before, after)
    starts = sorted(int(v.split("=")[1]) for v in after.values())
    assert all(b - a >= 2 for a, b in zip(starts, starts[1:])), f"instances restarted together: {starts}"
    wait_instances(c, mn.running_node())
    assert changed(c.apply()) == {}
    for node in NODES:
        assert "osapi_max_limit = 321" in mn.node_exec(node, ["cat", "/etc/cinder/cinder.conf"]).stdout


def fault_and_repair(c, kind):
    """Inject `kind` on the VIP's node while polling; the API answers again on the VIP from another
    node with what was written before. Returns (outage seconds, old holder, new holder)."""
    mn = c.mn
    mn.wait_online(list(NODES), via=mn.running_node())
    mn.wait_settled()
    holder = mn.locate(mn.VIP_ID)
    survivor = next(n for n in NODES if n != holder)
    written = c.client().create_type(f"before-{kind}")
    probe = mn.OutageProbe().__enter__()
    try:  # the repair runs whatever fails, from the fault on: the next test needs three nodes
        try:
            time.sleep(0.5)
            since = time.monotonic()
            mn.inject_fault(kind, holder)
            deadline = time.monotonic() + 60
            now = None
            while time.monotonic() < deadline and now in (None, holder):
                now = mn.locate(mn.VIP_ID, via=survivor)
                time.sleep(0.2)
            mn.wait_answering(timeout=30)
            time.sleep(0.5)
            outage = probe.outage(since)  # None: no failed poll at all
        finally:
            probe.__exit__(None, None, None)
        assert now in NODES and now != holder, f"{kind}: the VIP is on {now}"
        assert c.client().get_type(written["id"])["name"] == written["name"]
        assert c.secret_failures(survivor) == []
    finally:
        if kind == "powercut":
            mn.restart_node(holder)  # no state.apply: its instance puts the VIP back on its loopback
            c.wait_minions([holder])
        elif kind == "partition":
            mn.set_partitioned(holder, False)
            mn.wait_online(list(NODES), via=survivor)
        elif kind == "standby":
            mn.set_standby(holder, False)
        heal(c, survivor)
    return outage, holder, now


def heal(c, via, attempts=3):
    """Forget the failures (the banned instance of a kill, a partition's) once the cluster has
    settled, until an instance runs on every node again (a cleanup that races a transition can
    fail the start it triggers: Pacemaker then records one more failure)."""
    mn = c.mn
    for attempt in range(attempts):
        mn.wait_settled(via=via)
        mn.node_exec(via, ["crm_resource", "--cleanup"], check=True)
        mn.wait_settled(via=via)
        try:
            return wait_instances(c, via, timeout=30)
        except AssertionError:
            if attempt == attempts - 1:
                raise


@pytest.mark.parametrize("kind", ["kill", "standby", "partition", "powercut"])
def test_a_fault_on_the_vips_node_moves_only_the_vip(cloned, kind):
    c = cloned
    assert c.pillar["mode"] == "cloned"
    outage, was, now = fault_and_repair(c, kind)
    print(f"cloned mode, {kind} of {was}: outage {outage if outage is None else round(outage, 2)} s, VIP now on {now}")
    if kind == "kill":
        # the failed instance is banned at once (migration-threshold 1): the VIP goes to a warm
        # instance, no local restart first; detection is the 5 s monitor
        assert outage is not None and outage < 5 + 1 + 2, outage  # monitor + 1 s, + slack on 2 loaded cores


def test_a_rebooted_node_rejoins_warm_before_the_formula_runs(cloned):
    """A node rebooted (its network namespace made anew: no VIP on its loopback, the ARP sysctls
    at their defaults) rejoins with its instance running, without a state.apply and without a
    failed action: the clone instance puts the VIP back on lo, ARP silenced, at start. The VIP
    stays where it is (no failed poll), and the formula then finds nothing to do on the node."""
    c, mn = cloned, cloned.mn
    mn.wait_settled()
    holder = mn.locate(mn.VIP_ID)
    node = next(n for n in NODES if n != holder)
    arp = ["cat", "/proc/sys/net/ipv4/conf/all/arp_ignore", "/proc/sys/net/ipv4/conf/all/arp_announce"]
    with Polled(mn) as polled:
        mn.restart_node(node)
        back = time.monotonic()
        wait_instances(c, holder, timeout=120)
        print(f"rebooted {node}: its instance runs {time.monotonic() - back:.1f} s after the node is online again")
        mn.wait_settled(via=holder)
    assert polled.failed() == [], polled.report()
    assert mn.locate(mn.VIP_ID, via=holder) == holder
    assert vip_on_loopback(mn, node)
    assert mn.node_exec(node, arp).stdout.split() == ["1", "2"]
    assert [f for f in c.failures(holder) if f[0] == node] == []
    c.wait_minions([node])
    assert changed(c.apply(node)) == {}


def test_clean_takes_the_vip_off_every_loopback_then_the_formula_builds_again(cloned):
    """cinder_ha.clean removes what cloned mode added too: no cinder-ha object in the CIB, the
    VIP on no node's loopback, and a second clean changes nothing. state.apply cinder_ha then
    builds the cloned cluster again (what the next test switches back)."""
    c, mn = cloned, cloned.mn
    via = NODES[0]
    runs = c.apply(sls="cinder_ha.clean")
    assert all("cinder_ha-clean-cluster-vip-not-on-loopback" in {k.split("_|-")[1] for k in states}
               for states in runs.values()), runs
    cib = mn.node_exec(via, ["cibadmin", "--query"], check=True).stdout
    for object_id in (CLONE, mn.PRIMITIVE_ID, mn.VIP_ID):
        assert f'id="{object_id}"' not in cib, object_id
    for node in NODES:
        assert not vip_on_loopback(mn, node), node
    assert changed(c.apply(sls="cinder_ha.clean")) == {}
    c.apply()
    wait_instances(c, via)
    mn.wait_answering(timeout=120)
    for node in NODES:
        assert vip_on_loopback(mn, node), node
    assert changed(c.apply()) == {}


def test_switch_back_to_active_passive_without_a_failed_poll(cloned):
    c, mn = cloned, cloned.mn
    holder = mn.locate(mn.VIP_ID)
    c.set_pillar(mode="active_passive", options={})
    with Polled(mn) as polled:
        runs = c.apply()
        mn.wait_settled(via=holder)
    assert polled.failed() == [], polled.report()
    objects = next(states[CONFIGURED] for states in changed(runs).values() if CONFIGURED in states)["objects"]
    assert objects[CLONE]["action"] == "delete"
    assert instances(c, holder) == []
    assert mn.locate(via=holder) == holder == mn.locate(mn.VIP_ID, via=holder)  # the instance under the VIP stayed
    assert changed(c.apply()) == {}
    assert c.failures(holder) == []
    for node in NODES:  # no VIP left on any loopback
        assert not vip_on_loopback(mn, node)
