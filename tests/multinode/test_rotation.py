"""A password rotation of the monitor's lrm secret never moves or stops cinder-api.

The controller's minion (the DC's) is stopped while the two other nodes apply the new password,
the way `salt -L n1,n2 state.apply cinder_ha` does when one minion is down: every node stays
eligible, cinder-api and the VIP stay where they run with the same process and no failed
action. When the controller's minion runs, the rotation completes: the rule accepts the new
digest only, and every node publishes it.
"""
import xml.etree.ElementTree as ET

import pytest

from tests.multinode.conftest import NODES

ROTATED = "R0tated 'monitor' pass"  # Keystone rejects it: the monitor logs that, and never fails


def start_record(mn, node):
    """The pid and start time lines of the start record of cinder-api on `node`."""
    text = mn.node_exec(node, ["cat", f"/run/resource-agents/{mn.PRIMITIVE_ID}.pid.start"]).stdout
    return sorted(line for line in text.splitlines() if line.startswith(("pid=", "starttime=", "started=")))


def running_pid(mn, node):
    """The pid of the cinder-api process on `node` (pgrep: the process itself, not a file)."""
    out = mn.node_exec(node, ["pgrep", "-o", "-f", "bin/cinder-api"]).stdout.split()
    return out[0] if out else None


def published(mn, via):
    """{node: its cinder_ha_secrets_<primitive> attribute (None when not set)}."""
    found = {}
    for node in NODES:
        res = mn.node_exec(via, ["crm_attribute", "--node", node, "--name", f"cinder_ha_secrets_{mn.PRIMITIVE_ID}",
                                 "--lifetime", "forever", "--query", "--quiet"], timeout=20)
        found[node] = res.stdout.strip() if res.returncode == 0 else None
    return found


def accepted(mn, via, rule_id):
    """The digests the secrets rule `rule_id` accepts (its `ne` expressions)."""
    xml = mn.node_exec(via, ["cibadmin", "-Q", "--xpath", f"//rsc_location[@id='{rule_id}']"], check=True).stdout
    location = ET.fromstring(xml)
    return sorted(e.get("value") for e in location.iter("expression") if e.get("operation") == "ne")


def write_monitor_password(c, password):
    pillar = c.mn.formula_pillar(c.facts, **c.pillar)
    pillar["cinder_ha"]["agent"]["os_password"] = password
    c.mn.write_pillar(str(c.pillar_dir), pillar)


def refresh_pillar(c, nodes):
    c.cli.run("-L", "--timeout=90", "saltutil.refresh_pillar", "wait=True", minion_tgt=",".join(nodes))


@pytest.fixture
def placed(built_cluster):
    """The cluster in active_passive mode with cinder-api on a node that is not the controller
    (the DC): the rotation must run where cinder-api runs, without the controller."""
    c, mn = built_cluster, built_cluster.mn
    assert c.pillar["mode"] == "active_passive", c.pillar
    via = mn.running_node()
    dc = mn.cluster_view(via)["dc"]
    assert dc, "no DC"
    if mn.locate(via=dc) == dc:
        target = next(n for n in NODES if n != dc)
        mn.node_exec(dc, ["crm_resource", "--move", "-r", mn.VIP_ID, "-N", target], check=True, timeout=30)
        mn.wait_settled(via=dc, timeout=120)
        mn.node_exec(dc, ["crm_resource", "--clear", "-r", mn.VIP_ID], check=True, timeout=30)
        mn.wait_settled(via=dc, timeout=120)
        mn.wait_answering(timeout=120)
    mn.node_exec(dc, ["crm_resource", "--cleanup"], timeout=60)
    mn.wait_settled(via=dc, timeout=120)
    yield c, dc
    # back to the sandbox's password, on every node at once (a rotation too)
    c.nodes_running()
    if mn.node_exec(dc, ["pgrep", "-f", "bin/salt-minion"]).returncode != 0:
        mn.minion_start(dc)
    c.wait_minions(list(NODES))
    write_monitor_password(c, c.facts["keystone_admin_password"])
    refresh_pillar(c, NODES)
    c.apply()
    c.apply()  # a digest the first concurrent run still accepted goes: later tests see a converged CIB
    mn.wait_settled(via=dc, timeout=120)


def test_a_rotation_without_the_controllers_minion_moves_nothing_and_completes_with_it(placed):
    c, dc = placed
    mn = c.mn
    others = [n for n in NODES if n != dc]
    api = mn.locate(via=dc)
    assert api in others and mn.locate(mn.VIP_ID, via=dc) == api
    record, pid = start_record(mn, api), running_pid(mn, api)
    assert record and pid, (record, pid)
    assert c.failures(dc) == []
    old_digest = published(mn, dc)[dc]
    rule_ids = (f"l_{mn.PRIMITIVE_ID}_secrets", f"l_{mn.VIP_ID}_secrets")
    assert accepted(mn, dc, rule_ids[0]) == [old_digest]

    mn.minion_stop(dc)
    try:
        write_monitor_password(c, ROTATED)
        refresh_pillar(c, others)
        runs = c.apply(*others)
        assert set(runs) == set(others)
        mn.wait_settled(via=dc, timeout=120)
        # nothing moved, nothing stopped, nothing failed
        assert mn.locate(via=dc) == api and mn.locate(mn.VIP_ID, via=dc) == api
        assert start_record(mn, api) == record and running_pid(mn, api) == pid
        assert c.failures(dc) == []
        # every node stays eligible: the rule accepts the old and the new digest
        for node in NODES:
            assert c.score(node, via=dc, rsc=mn.VIP_ID) != "-INFINITY", node
        digests = published(mn, dc)
        new_digest = digests[others[0]]
        assert new_digest not in (None, old_digest) and digests[others[1]] == new_digest
        assert digests[dc] == old_digest  # the controller's run has not come yet
        for rule_id in rule_ids:
            assert accepted(mn, dc, rule_id) == sorted([old_digest, new_digest]), rule_id
        for node in others:
            assert c.secret_file(node).read_text() == ROTATED
        assert c.secret_file(dc).read_text() == c.facts["keystone_admin_password"]
    finally:
        mn.minion_start(dc)
        c.wait_minions([dc])

    # the controller runs: the rotation completes, and still nothing moves
    c.apply(dc)
    mn.wait_settled(via=dc, timeout=120)
    assert published(mn, dc) == {node: new_digest for node in NODES}
    for rule_id in rule_ids:
        assert accepted(mn, dc, rule_id) == [new_digest], rule_id
    assert c.secret_file(dc).read_text() == ROTATED
    assert mn.locate(via=dc) == api and mn.locate(mn.VIP_ID, via=dc) == api
    assert start_record(mn, api) == record and running_pid(mn, api) == pid
    assert c.failures(dc) == []
