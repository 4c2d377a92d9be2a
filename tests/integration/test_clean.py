"""`state.apply cinder_ha.clean` through a real master and minion, on the live sandbox cluster and
the real Keystone: it removes what `state.apply cinder_ha` built, `test=True` lists exactly that,
a second run changes nothing, the catalog goes only with `cinder_ha:clean:catalog: true` (and
only in the pillar's region), and `state.apply cinder_ha` afterwards restores a working cluster.

The tests run in file order. Run under the live lock:
    flock /tmp/cinder-ha-live.lock pytest tests/integration/test_clean.py
The module's teardown re-applies cinder_ha whatever happened: the sandbox is left with
cinder-api running behind its VIP and the catalog present, as other tests expect.
"""
import hashlib
import json
import pathlib
import subprocess
import time

import pytest

from tests.conftest import SANDBOX, cluster_env
from tests.support.formula import CLUSTER_IDS, cib_epoch, keystone_get, keystone_session, pgrep_here, state_results

PROJECT = pathlib.Path(__file__).resolve().parents[2]
SECRETS = pathlib.Path("/var/lib/pacemaker/lrm/secrets") / CLUSTER_IDS[0]
AGENT = pathlib.Path("/usr/lib/ocf/resource.d/openstack/cinder-api")
ALERT_AGENT = pathlib.Path("/usr/share/pacemaker/alerts/cinder_ha_alert")
ALERT_SPOOL = pathlib.Path("/var/lib/cinder-ha/alerts")
PID_FILE = pathlib.Path("/run/resource-agents/p_cinder-api.pid")
OBJECT_IDS = ("l_p_cinder-api_secrets", "l_p_ip_cinder-api_secrets", "c_p_cinder-api_with_ip",
              "o_ip_before_p_cinder-api", *CLUSTER_IDS, "cinder_ha_salt",
              # the sandbox pillar runs cinder-scheduler (a clone) and cinder-volume (active_passive)
              "cl_p_cinder-scheduler", "p_cinder-scheduler", "p_cinder-volume")
OTHER_REGION = "cinder-ha-clean-other"
FORMULA_SERVICES = {("block-storage", "cinder"), ("volumev3", "cinderv3")}
CATALOG = json.dumps({"cinder_ha": {"clean": {"catalog": True}}})
DRY_RUN = {}


def apply(salt_cli, minion, sls, *args, timeout=600):
    return state_results(salt_cli.run("state.apply", sls, *args, minion_tgt=minion.id, _timeout=timeout))


def by_id(results):
    return {key.split("_|-")[1]: value for key, value in results.items()}


def changed(results):
    return {state_id: value["changes"] for state_id, value in by_id(results).items() if value["changes"]}


def engine_conf(minion):
    return pathlib.Path(minion.config["conf_file"]).parent / "minion.d" / "cinder_ha_watch.conf"


def cib_text():
    return subprocess.run(["cibadmin", "--query"], capture_output=True, text=True, env=cluster_env(), timeout=30,
                          check=True).stdout


def formula_services(facts):
    """The Block Storage services the formula made (by type and name; other tests' entries ignored)."""
    found = keystone_get(facts, "/services")["services"]
    return sorted((s["type"], s["id"]) for s in found if (s["type"], s["name"]) in FORMULA_SERVICES)


def catalog(facts, region):
    """(service type, service id, interface) of the formula's Block Storage endpoints in ``region``."""
    found = []
    for stype, service_id in formula_services(facts):
        for ep in keystone_get(facts, f"/endpoints?service_id={service_id}")["endpoints"]:
            if ep["region_id"] == region:
                found.append((stype, service_id, ep["interface"]))
    return sorted(found)


def identity(facts):
    """The sandbox's identity service and endpoints: what the catalog clean must never touch."""
    (service,) = keystone_get(facts, "/services?type=identity")["services"]
    # this region's (the three-node tier, running beside, adds and removes its own region's)
    return service["id"], sorted(e["id"] for e in keystone_get(facts, f"/endpoints?service_id={service['id']}")
                                 ["endpoints"] if e["region_id"] == facts["keystone_region"])


def untouched(before, after):
    """The identity service and every endpoint it had are still there (other tests may add some)."""
    return before[0] == after[0] and set(before[1]) <= set(after[1])


def snapshot(facts, minion):
    conf = pathlib.Path(facts["cinder_conf"]).read_bytes()
    files = {str(p): p.exists() for p in (SECRETS, AGENT, ALERT_AGENT, ALERT_SPOOL, engine_conf(minion))}
    return {"epoch": cib_epoch(), "conf": hashlib.sha256(conf).hexdigest(), "files": files,
            "services": formula_services(facts), "catalog": catalog(facts, facts["keystone_region"]),
            "identity": identity(facts)[0]}


def cinder_api_answers(timeout=90):
    deadline = time.monotonic() + timeout
    while True:
        probe = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "2",
                                "http://127.0.0.103:8776/healthcheck"], capture_output=True, text=True)
        if probe.stdout == "200" or time.monotonic() > deadline:
            return probe.stdout == "200"
        time.sleep(0.5)


@pytest.fixture(scope="module")
def built(sandbox_facts, salt_cli, salt_minion):
    """cinder_ha applied (and its engine config written); re-applied at the end, whatever happened."""
    results = apply(salt_cli, salt_minion, "cinder_ha")
    failed = {k: v["comment"] for k, v in results.items() if v["result"] is not True}
    assert not failed, failed
    watch = apply(salt_cli, salt_minion, "cinder_ha.watch")
    assert all(v["result"] is True for v in watch.values()), watch
    try:
        yield sandbox_facts
    finally:
        session = keystone_session(sandbox_facts)
        url = sandbox_facts["keystone_url"]
        for ep in session.get(f"{url}/endpoints?region_id={OTHER_REGION}").json()["endpoints"]:
            session.delete(f"{url}/endpoints/{ep['id']}")
        session.delete(f"{url}/regions/{OTHER_REGION}", raise_exc=False)
        again = apply(salt_cli, salt_minion, "cinder_ha")
        engine_conf(salt_minion).unlink(missing_ok=True)  # the session minion's own config: as found
        assert all(v["result"] is True for v in again.values()), {k: v["comment"] for k, v in again.items()}


def test_invalid_pillar_fails_in_validation_and_removes_nothing(built, salt_cli, salt_minion):
    before = snapshot(built, salt_minion)
    bad = json.dumps({"cinder_ha": {"clean": {"catalog": "yes please"}, "lookup": {"agent_dir": "relative"}}})
    results = apply(salt_cli, salt_minion, "cinder_ha.clean", f"pillar={bad}")
    assert list(by_id(results)) == ["cinder_ha-validate-pillar-valid"], list(results)
    (state,) = results.values()
    assert state["result"] is False
    assert "clean:catalog: got a string, expected true or false" in state["comment"]
    assert "lookup:agent_dir: must be an absolute path" in state["comment"]
    assert snapshot(built, salt_minion) == before


def test_dry_run_lists_everything_and_changes_nothing(built, salt_cli, salt_minion):
    before = snapshot(built, salt_minion)
    assert all(before["files"].values()), before["files"]
    results = apply(salt_cli, salt_minion, "cinder_ha.clean", "test=True")
    assert all(v["result"] in (True, None) for v in results.values()), results
    would = changed(results)
    assert set(would["cinder_ha-clean-cluster-objects-absent"]["objects"]) == set(OBJECT_IDS)
    assert would["cinder_ha-clean-cluster-secrets-absent"]["secret files"] == ["os_password"]
    assert "node attribute cinder_ha_secrets_p_cinder-api@node1" in would["cinder_ha-clean-cluster-secrets-absent"]
    for state_id in ("cinder_ha-clean-agent-file-absent", "cinder_ha-clean-alerts-agent-file-absent",
                     "cinder_ha-clean-alerts-spool-absent", "cinder_ha-clean-watch-engine-config-absent"):
        assert state_id in would, state_id
    # the catalog is kept without the flag: said, not planned
    kept = by_id(results)["cinder_ha-clean-catalog-kept"]
    assert kept["result"] is True and "kept" in kept["comment"]
    assert "cinder_ha-clean-catalog-absent" not in by_id(results)
    assert "stop p_cinder-api on node1" in by_id(results)["cinder_ha-clean-cluster-objects-absent"]["comment"]
    assert built["keystone_admin_password"] not in json.dumps(results)
    assert snapshot(built, salt_minion) == before
    DRY_RUN["changed"] = would


def test_clean_removes_what_the_formula_built(built, salt_cli, salt_minion):
    before = snapshot(built, salt_minion)
    results = apply(salt_cli, salt_minion, "cinder_ha.clean")
    failed = {k: v["comment"] for k, v in results.items() if v["result"] is not True}
    assert not failed, failed
    # exactly what the dry run listed: the same states, objects, secret names, attribute and files
    done = changed(results)
    assert set(done) == set(DRY_RUN["changed"])
    for state_id, changes in done.items():
        if "objects" in changes:
            assert set(changes["objects"]) == set(DRY_RUN["changed"][state_id]["objects"]) == set(OBJECT_IDS)
        else:
            assert changes == DRY_RUN["changed"][state_id], state_id
    cib = cib_text()
    for object_id in OBJECT_IDS:
        assert f'id="{object_id}"' not in cib, object_id
    assert "cinder_ha_secrets_" not in cib and "cinder_ha_alert" not in cib
    assert not SECRETS.exists()
    for path in (AGENT, ALERT_AGENT, ALERT_SPOOL, engine_conf(salt_minion)):
        assert not path.exists(), path
    for name in ("cinder-scheduler", "cinder-volume", ".cinder-ha-functions"):
        assert not AGENT.with_name(name).exists(), name
    # stopped: no cinder-api, cinder-scheduler or cinder-volume process of the sandbox left (the
    # agent's stop deletes its pid file, so the pid file alone proves nothing), nothing on the
    # VIP (the address is gone)
    pid = PID_FILE.read_text().strip() if PID_FILE.exists() else None
    assert not (pid and pathlib.Path(f"/proc/{pid}").exists()), pid
    left = pgrep_here("bin/cinder-(api|scheduler|volume) --config-file", "-a").stdout
    assert not left.strip(), left
    assert not cinder_api_answers(timeout=0)
    addresses = subprocess.run(["ip", "-o", "addr", "show"], capture_output=True, text=True).stdout
    assert f"inet {built['vip']}/" not in addresses
    after = snapshot(built, salt_minion)
    # cinder.conf stays; the catalog stays without the flag
    assert after["conf"] == before["conf"]
    assert after["services"] == before["services"] and after["catalog"] == before["catalog"]
    assert built["keystone_admin_password"] not in json.dumps(results)


def test_second_clean_changes_nothing(built, salt_cli, salt_minion):
    before = snapshot(built, salt_minion)
    results = apply(salt_cli, salt_minion, "cinder_ha.clean")
    assert not changed(results), changed(results)
    assert all(v["result"] is True for v in results.values()), results
    assert snapshot(built, salt_minion) == before
    dry = apply(salt_cli, salt_minion, "cinder_ha.clean", "test=True")
    assert not changed(dry) and all(v["result"] is True for v in dry.values())


def test_catalog_flag_removes_block_storage_in_this_region_only(built, salt_cli, salt_minion):
    region = built["keystone_region"]
    session = keystone_session(built)
    url = built["keystone_url"]
    session.post(f"{url}/regions", json={"region": {"id": OTHER_REGION}}, raise_exc=False)
    ((_type, service_id),) = formula_services(built)
    session.post(f"{url}/endpoints", json={"endpoint": {
        "service_id": service_id, "interface": "public", "region_id": OTHER_REGION,
        "url": "http://198.18.0.10:8776/v3"}})
    keystone = identity(built)
    assert len(catalog(built, region)) == 3

    dry = apply(salt_cli, salt_minion, "cinder_ha.clean", "test=True", f"pillar={CATALOG}")
    planned = by_id(dry)["cinder_ha-clean-catalog-absent"]
    assert planned["result"] is None and len(planned["changes"]["planned"]) == 3, planned
    assert len(catalog(built, region)) == 3

    # the service keeps its endpoint in the other region: only this region's endpoints go
    results = apply(salt_cli, salt_minion, "cinder_ha.clean", f"pillar={CATALOG}")
    state = by_id(results)["cinder_ha-clean-catalog-absent"]
    assert state["result"] is True, state["comment"]
    assert len(state["changes"]["deleted"]) == 3
    assert catalog(built, region) == []
    assert catalog(built, OTHER_REGION) == [("block-storage", service_id, "public")]
    assert untouched(keystone, identity(built))  # nothing else in Keystone went

    # without endpoints elsewhere the service goes too (the multinode sandbox shares this
    # Keystone and may keep endpoints of the same service in its own region: then it stays)
    for ep in session.get(f"{url}/endpoints?region_id={OTHER_REGION}").json()["endpoints"]:
        session.delete(f"{url}/endpoints/{ep['id']}")
    foreign = [e for e in keystone_get(built, f"/endpoints?service_id={service_id}")["endpoints"]
               if e["region_id"] != region]
    results = apply(salt_cli, salt_minion, "cinder_ha.clean", f"pillar={CATALOG}")
    state = by_id(results)["cinder_ha-clean-catalog-absent"]
    assert state["result"] is True, state
    if foreign:
        assert not state["changes"], state
        remaining = keystone_get(built, f"/endpoints?service_id={service_id}")["endpoints"]
        assert sorted(e["id"] for e in remaining) == sorted(e["id"] for e in foreign)
    else:
        assert state["changes"].get("deleted_services"), state
        assert formula_services(built) == []
    assert untouched(keystone, identity(built))

    again = apply(salt_cli, salt_minion, "cinder_ha.clean", f"pillar={CATALOG}")
    assert not changed(again), changed(again)


def test_apply_after_clean_restores_a_working_cluster(built, salt_cli, salt_minion):
    results = apply(salt_cli, salt_minion, "cinder_ha")
    failed = {k: v["comment"] for k, v in results.items() if v["result"] is not True}
    assert not failed, failed
    located = subprocess.run(["crm_resource", "--locate", "--resource", CLUSTER_IDS[0]], capture_output=True,
                             text=True, env=cluster_env(), timeout=30).stdout
    assert "is running on: node1" in located
    assert SECRETS.joinpath("os_password").exists() and AGENT.exists() and ALERT_AGENT.exists()
    assert cinder_api_answers()
    assert len(catalog(built, built["keystone_region"])) == 3
    assert any("services_up" in key for key in results), sorted(results)  # creates work right after it
    client = subprocess.run([str(SANDBOX / "venv" / "salt" / "bin" / "python"),
                             str(PROJECT / "scripts" / "catalog_client.py"), "--facts", str(SANDBOX / "sandbox.json")],
                            capture_output=True, text=True, timeout=120)
    assert client.returncode == 0, client.stdout + client.stderr
