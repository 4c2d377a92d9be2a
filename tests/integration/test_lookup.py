"""Pillar `cinder_ha:lookup` overrides the formula's parameters (salt/cinder_ha/parameters/defaults.yaml)
through a real master and minion: rendered into every SLS that uses them, and, applied, into the live
CIB. Run under the live lock (flock /tmp/cinder-ha-live.lock); the module re-applies the plain
formula at the end, so the sandbox keeps its defaults.
"""
import json
import pathlib
import subprocess
import xml.etree.ElementTree as ET

import pytest

from tests.conftest import cluster_env
from tests.support.formula import CLUSTER_IDS, state_results


def lookup(**values):
    return "pillar=" + json.dumps({"cinder_ha": {"lookup": values}})


def show(salt_cli, minion, sls, *args):
    ret = salt_cli.run("state.show_sls", sls, *args, minion_tgt=minion.id, _timeout=300)
    assert isinstance(ret.data, dict), ret.data
    return ret.data


def arg(rendered, state_id, name):
    """The value of argument ``name`` of state ``state_id`` in state.show_sls output."""
    state = rendered[state_id]
    for key, value in state.items():
        if key.startswith("__"):
            continue
        for item in value:
            if isinstance(item, dict) and name in item:
                return item[name]
    raise AssertionError(f"{state_id} has no {name}: {state}")


def vip_monitor():
    cib = subprocess.run(["cibadmin", "--query", "--scope", "resources"], capture_output=True, text=True,
                         env=cluster_env(), timeout=30, check=True).stdout
    primitive = next(p for p in ET.fromstring(cib).iter("primitive") if p.get("id") == CLUSTER_IDS[1])
    op = next(o for o in primitive.iter("op") if o.get("name") == "monitor")
    return op.get("interval"), op.get("timeout")


def cinder_api_pid():
    return pathlib.Path("/run/resource-agents/p_cinder-api.pid").read_text().strip()


@pytest.fixture(scope="module")
def applied(salt_cli, salt_minion, sandbox_facts):
    results = state_results(salt_cli.run("state.apply", "cinder_ha", minion_tgt=salt_minion.id, _timeout=600))
    assert all(v["result"] is True for v in results.values()), {k: v["comment"] for k, v in results.items()}
    try:
        yield sandbox_facts
    finally:
        again = state_results(salt_cli.run("state.apply", "cinder_ha", minion_tgt=salt_minion.id, _timeout=600))
        assert all(v["result"] is True for v in again.values()), {k: v["comment"] for k, v in again.items()}
        assert vip_monitor() == ("10s", "20s")


def test_one_override_reaches_every_sls_that_uses_it(applied, salt_cli, salt_minion):
    """alert_spool used to be written three times (alerts, cluster's alert, watch): one lookup key now."""
    override = lookup(alert_spool="/var/lib/cinder-ha/spool-x", settle_timeout=45, agent_dir="/opt/ocf/openstack")
    alerts = show(salt_cli, salt_minion, "cinder_ha.alerts", override)
    assert arg(alerts, "cinder_ha-alerts-spool-directory", "name") == "/var/lib/cinder-ha/spool-x"
    watch = show(salt_cli, salt_minion, "cinder_ha.watch", override)
    engines = arg(watch, "cinder_ha-watch-engine-config-managed", "dataset")["engines"]
    assert engines[0]["cinder_ha_watch"]["alert_spool"] == "/var/lib/cinder-ha/spool-x"
    catalog = show(salt_cli, salt_minion, "cinder_ha.catalog", override)
    assert arg(catalog, "cinder_ha-catalog-api-answers", "timeout") == 45
    (alert,) = [o for o in arg(catalog, "cinder_ha-cluster-objects-configured", "objects") if "alert" in o]
    assert alert["recipient"] == "/var/lib/cinder-ha/spool-x"
    assert arg(catalog, "cinder_ha-agent-file-managed", "name") == "/opt/ocf/openstack/cinder-api"
    clean = show(salt_cli, salt_minion, "cinder_ha.clean", override)
    assert arg(clean, "cinder_ha-clean-alerts-spool-absent", "name") == "/var/lib/cinder-ha/spool-x"
    assert arg(clean, "cinder_ha-clean-agent-file-absent", "name") == "/opt/ocf/openstack/cinder-api"
    # and without the override, the defaults
    assert arg(show(salt_cli, salt_minion, "cinder_ha.catalog"), "cinder_ha-catalog-api-answers", "timeout") == 90


def test_vip_monitor_override_reaches_the_live_cib(applied, salt_cli, salt_minion):
    assert vip_monitor() == ("10s", "20s")
    pid = cinder_api_pid()
    results = state_results(salt_cli.run("state.apply", "cinder_ha", lookup(vip_monitor_interval=15,
                                                                            vip_monitor_timeout="25s"),
                                         minion_tgt=salt_minion.id, _timeout=600))
    assert all(v["result"] is True for v in results.values()), {k: v["comment"] for k, v in results.items()}
    (cluster,) = [v for k, v in results.items() if "cinder_ha-cluster-objects-configured" in k]
    assert "p_ip_cinder-api" in cluster["changes"]["objects"], cluster
    assert vip_monitor() == ("15s", "25s")
    # a monitor's interval is rescheduled, nothing restarted: no outage we cause
    assert cinder_api_pid() == pid


def test_bad_lookup_fails_in_validation(applied, salt_cli, salt_minion):
    results = state_results(salt_cli.run("state.apply", "cinder_ha", lookup(settle_timout=5, vip_monitor_interval="x"),
                                         minion_tgt=salt_minion.id, _timeout=300))
    assert len(results) == 1
    (state,) = results.values()
    assert state["result"] is False
    assert "lookup:settle_timout: unknown key (did you mean 'settle_timeout'?)" in state["comment"]
    assert "lookup:vip_monitor_interval: a duration like 10s" in state["comment"]
