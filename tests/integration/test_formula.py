"""`state.apply cinder_ha` end to end through a real master and minion, on the live sandbox:
the real cluster starts the real cinder-api on the VIP and Keystone's catalog leads to it.

The tests run in file order and share the sandbox's real names (p_cinder-api, 127.0.0.103,
/etc/cinder/cinder.conf, RegionOne), starting from a clean slate.
"""
import hashlib
import json
import pathlib
import subprocess
import time

import pytest

from tests.conftest import SANDBOX, cluster_env
from tests.support.formula import (
    CLUSTER_IDS,
    cib_epoch,
    keystone_get,
    reset_slate,
    services_but_the_three_nodes,
    state_results,
)

PROJECT = pathlib.Path(__file__).resolve().parents[2]
PACEMAKER_LOG = pathlib.Path("/var/log/pacemaker/pacemaker.log")


@pytest.fixture(scope="module")
def slate(sandbox_facts):
    reset_slate(sandbox_facts)
    yield sandbox_facts


def apply(salt_cli, target, *args, timeout=600):
    return salt_cli.run("state.apply", "cinder_ha", *args, minion_tgt=target, _timeout=timeout)


def snapshot(facts):
    conf = pathlib.Path(facts["cinder_conf"]).read_bytes()
    services = services_but_the_three_nodes(facts)
    return {"epoch": cib_epoch(), "conf": hashlib.sha256(conf).hexdigest(),
            "services": sorted((s["type"], s["id"]) for s in services)}


def test_bad_pillar_fails_in_validation_and_changes_nothing(slate, salt_cli, salt_minion):
    before = snapshot(slate)
    bad = json.dumps({"cinder_ha": {"vip": {"address": "127.0.0.300"}, "cinder_api_port": "eighty",
                                    "rabitmq": {"hosts": ["x"]}}})
    ret = apply(salt_cli, salt_minion.id, f"pillar={bad}")
    results = state_results(ret)
    assert len(results) == 1, f"only the validation state may run: {list(results)}"
    (state,) = results.values()
    assert state["result"] is False
    for problem in ("vip:address: not an IP address: '127.0.0.300'", "cinder_api_port: port must be an integer",
                    "rabitmq: unknown key (did you mean 'rabbitmq'?)"):
        assert problem in state["comment"]
    assert snapshot(slate) == before


def test_rabbitmq_password_with_a_slash_is_refused_and_changes_nothing(slate, salt_cli, salt_minion):
    """kombu cannot connect with '/' in the password, however encoded: a clear pillar error."""
    before = snapshot(slate)
    override = json.dumps({"cinder_ha": {"rabbitmq": {"password": "pass/word"}}})
    results = state_results(apply(salt_cli, salt_minion.id, f"pillar={override}"))
    assert len(results) == 1, f"only the validation state may run: {list(results)}"
    (state,) = results.values()
    assert state["result"] is False
    assert "rabbitmq:password: contains '/'" in state["comment"]
    assert "pass/word" not in state["comment"]
    assert snapshot(slate) == before


def test_first_apply_converges_and_the_api_answers_through_the_catalog(slate, salt_cli, salt_minion):
    log_offset = PACEMAKER_LOG.stat().st_size
    ret = apply(salt_cli, salt_minion.id)
    results = state_results(ret)
    failed = {k: v["comment"] for k, v in results.items() if v["result"] is not True}
    assert not failed, failed
    conf = pathlib.Path(slate["cinder_conf"]).read_text()
    assert "sql_connection" not in conf and "notifier_strategy" not in conf and "rabbit_host" not in conf
    # the real MariaDB, the URL built and percent-encoded from the pillar's parts
    assert f"connection = {slate['cinder_db_url']}" in conf
    assert "transport_url = rabbit://cinder:" in conf and "@127.0.0.1:5672/cinder" in conf
    assert "sqlite" not in conf
    assert not (pathlib.Path(slate["cinder_state_path"]) / "cinder.sqlite").exists()
    assert "osapi_volume_listen = 127.0.0.103" in conf
    assert "# From the OpenStack HA guide" in conf, "the operator's comments are kept"
    located = subprocess.run(["crm_resource", "--locate", "--resource", CLUSTER_IDS[0]], capture_output=True,
                             text=True, env=cluster_env(), timeout=30).stdout
    assert "is running on: node1" in located
    # the apply returned only once cinder's services table showed the scheduler and volume up:
    # a create right after it finds a backend
    assert any("services_up" in key for key in results), sorted(results)
    client = subprocess.run([str(SANDBOX / "venv" / "salt" / "bin" / "python"), str(PROJECT / "scripts" / "catalog_client.py"),
                             "--facts", str(SANDBOX / "sandbox.json")], capture_output=True, text=True, timeout=120)
    assert client.returncode == 0, client.stdout + client.stderr
    assert "http://127.0.0.103:8776/v3" in client.stdout
    password = slate["keystone_admin_password"]
    assert password not in json.dumps(ret.data) + client.stdout
    # the agent's os_password is a Pacemaker secret: not in the CIB, not in what Pacemaker
    # logged about this change, not in Salt's minion caches (the SLS names it by pillar key)
    cib = subprocess.run(["cibadmin", "-Q"], capture_output=True, text=True, env=cluster_env(), timeout=30).stdout
    assert 'name="os_password" value="lrm://"' in cib and password not in cib
    with PACEMAKER_LOG.open("rb") as log:
        log.seek(log_offset)
        assert password.encode() not in log.read()
    cache = pathlib.Path(salt_minion.config["cachedir"])
    leaked = [str(p) for p in cache.rglob("*") if p.is_file() and "pillar" not in p.name
              and password.encode() in p.read_bytes()]
    assert not leaked, leaked
    secret = pathlib.Path("/var/lib/pacemaker/lrm/secrets/p_cinder-api/os_password")
    assert secret.read_text() == password and secret.stat().st_mode & 0o777 == 0o600


def test_second_apply_reports_no_changes(slate, salt_cli, salt_minion):
    epoch = cib_epoch()
    results = state_results(apply(salt_cli, salt_minion.id))
    changed = {k: v["changes"] for k, v in results.items() if v["changes"]}
    assert not changed, changed
    assert all(v["result"] is True for v in results.values())
    assert cib_epoch() == epoch


def cinder_api_pid():
    return pathlib.Path("/run/resource-agents/p_cinder-api.pid").read_text().strip()


def test_config_drift_is_corrected_without_a_restart(slate, salt_cli, salt_minion):
    """The running cinder-api started with the right file: undoing an outside edit needs no
    restart (no outage we cause)."""
    conf = pathlib.Path(slate["cinder_conf"])
    pid = cinder_api_pid()
    conf.write_text(conf.read_text().replace("osapi_volume_listen = 127.0.0.103", "osapi_volume_listen = 0.0.0.0"))
    results = state_results(apply(salt_cli, salt_minion.id))
    restart = next(v for k, v in results.items() if "restarted_through_cluster" in k)
    assert not restart["changes"], restart
    assert "osapi_volume_listen = 127.0.0.103" in conf.read_text()
    assert all(v["result"] is True for v in results.values())
    assert cinder_api_pid() == pid


def test_status_reports_where_it_runs_and_that_it_answers(slate, salt_cli, salt_minion):
    ret = salt_cli.run("cinder_ha.status", minion_tgt=salt_minion.id)
    status = ret.data
    assert status["resources"]["p_cinder-api"] == ["node1"]
    assert status["api"]["status"] == 200, status["api"]
    assert status["catalog"]["matches"] is True, status["catalog"]
    assert slate["keystone_admin_password"] not in json.dumps(status)


def test_two_minions_applying_at_once_leave_one_copy_of_everything(slate, salt_master, salt_minion, salt_cli):
    reset_slate(slate)
    second = salt_master.salt_minion_daemon("node1-twin", overrides={"state_queue": True})
    with second.started(start_timeout=120):
        ret = salt_cli.run("-L", "state.apply", "cinder_ha", minion_tgt=f"{salt_minion.id},{second.id}",
                           _timeout=600)
        for minion_id in (salt_minion.id, second.id):
            results = ret.data[minion_id]
            assert isinstance(results, dict), results
            failed = {k: v["comment"] for k, v in results.items() if v["result"] is not True}
            assert not failed, (minion_id, failed)
    cib = subprocess.run(["cibadmin", "-Q", "-o", "configuration"], capture_output=True, text=True,
                         env=cluster_env(), timeout=30).stdout
    for rsc in CLUSTER_IDS:
        assert cib.count(f'<primitive id="{rsc}"') == 1
    assert cib.count("<rsc_colocation ") == 1 and cib.count("<rsc_order ") == 1
    services = services_but_the_three_nodes(slate, "?type=block-storage")
    assert len(services) == 1
    endpoints = keystone_get(slate, f"/endpoints?service_id={services[0]['id']}")["endpoints"]
    assert sorted(e["interface"] for e in endpoints if e["region_id"] == "RegionOne") == ["admin", "internal", "public"]
    # and the API still answers on the VIP
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        probe = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "2",
                                "http://127.0.0.103:8776/healthcheck"], capture_output=True, text=True)
        if probe.stdout == "200":
            break
        time.sleep(0.5)
    assert probe.stdout == "200"
