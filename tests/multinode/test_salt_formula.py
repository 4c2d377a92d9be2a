"""The reactor path on the formula-built three nodes: a cluster move, reported by each node's
Pacemaker alert agent -> spool -> cinder_ha_watch engine -> the master's reactor ->
cinder_ha_events.handle_move, is recorded on the node it happened on."""
import time

from tests.multinode.conftest import NODES


def test_standby_move_is_recorded_through_the_alert_and_reactor_path(built_cluster):
    """crm node standby of the active node: the move is clean, and each node's alert agent ->
    spool -> cinder_ha_watch engine -> reactor -> cinder_ha_events.handle_move records it on the
    node it happened on, with the post-start check (where it runs, does the catalog URL answer)."""
    mn, cli = built_cluster.mn, built_cluster.cli
    mn.wait_answering(timeout=60)
    old = mn.locate()
    assert old in NODES
    started = time.time()
    mn.set_standby(old, True)
    try:
        deadline = time.monotonic() + 60
        new = None
        while time.monotonic() < deadline and new in (None, old):
            new = mn.locate(via=[n for n in NODES if n != old][0])
            time.sleep(0.5)
        assert new not in (None, old), "p_cinder-api did not move off the standby node"
        mn.wait_answering(timeout=60)

        def recorded(node, task):
            ret = cli.run("cinder_ha_events.recent", "50", minion_tgt=node, _timeout=30)
            for entry in ret.data or []:
                if (entry.get("rsc") == mn.PRIMITIVE_ID and entry.get("task") == task and entry.get("node") == node
                        and entry.get("recorded", "") >= time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(started - 1))):
                    return entry
            return None

        deadline = time.monotonic() + 60
        start = stop = None
        while time.monotonic() < deadline and not (start and stop and start.get("check")):
            start, stop = recorded(new, "start"), recorded(old, "stop")
            time.sleep(1)
        assert stop, f"no stop of {mn.PRIMITIVE_ID} recorded on {old}"
        assert start, f"no start of {mn.PRIMITIVE_ID} recorded on {new}"
        assert start["check"]["location"]["running"] is True, start["check"]
    finally:
        mn.set_standby(old, False)
        mn.wait_settled(timeout=60)
