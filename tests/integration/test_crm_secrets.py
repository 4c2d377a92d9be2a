"""lrm secrets on the LIVE single-node cluster: a node without the current secret digest is
neither probed nor used (no failed action), and the resource starts once the node publishes it.

Ids are prefixed formula_, the VIP is 127.0.0.120, cinder-api (the project's agent) listens on
127.0.0.120:8720 with a copy of cinder.conf under /srv/cinder-ha/secrets-instance. Everything (objects, node
attribute, secret files) is removed in teardown, even on failure. Run under the live lock:
flock /tmp/cinder-ha-live.lock pytest tests/integration/test_crm_secrets.py
"""
import os
import pathlib
import shutil
import subprocess
import time
import urllib.request
import xml.etree.ElementTree as ET

import pytest

from tests.conftest import SANDBOX
from tests.support import crm as cib

pytestmark = pytest.mark.skipif(os.environ.get("CIB_file"), reason="needs the live cluster")

WORK = SANDBOX / "secrets-instance"
VIP, PORT = "127.0.0.120", 8720
API, IP = "formula_api", "formula_ip"
IDS = ("formula_l_api_secrets", "formula_l_ip_secrets", "formula_c_api_with_ip", "formula_o_ip_before_api", API, IP)
ATTRIBUTE = "cinder_ha_secrets_" + API
SECRETS = pathlib.Path("/var/lib/pacemaker/lrm/secrets") / API


def run(*args, timeout=60):
    return subprocess.run(list(args), capture_output=True, text=True, env=cib.env(), timeout=timeout)


def objects(facts, target_role):
    return [
        {"primitive": IP, "agent": "ocf:heartbeat:IPaddr2", "params": {"ip": VIP, "cidr_netmask": 32, "nic": "lo"},
         "ops": {"monitor": {"interval": "10s", "timeout": "20s"}}, "meta": {"target-role": target_role}},
        {"primitive": API, "agent": "ocf:openstack:cinder-api",
         "params": {"binary": facts["cinder_api"], "user": "root", "config": str(WORK / "cinder.conf"),
                    "os_auth_url": facts["keystone_url"], "os_username": facts["keystone_admin_user"],
                    "os_password": facts["keystone_admin_password"],
                    "os_project_name": facts["keystone_admin_project"]},
         "secret_params": ["os_password"], "secret_mode": "lrm",
         "ops": {"monitor": {"interval": "10s", "timeout": "30s"}, "start": {"timeout": "60s"},
                 "stop": {"timeout": "90s"}},
         "meta": {"target-role": target_role}},
        {"colocation": "formula_c_api_with_ip", "resources": [API, IP]},
        {"order": "formula_o_ip_before_api", "first": IP, "then": API},
        {"location": "formula_l_api_secrets", "resource": API, "secrets_of": API, "resource_discovery": "never"},
        {"location": "formula_l_ip_secrets", "resource": IP, "secrets_of": API},
    ]


def cinder_conf_copy(facts):
    """/etc/cinder/cinder.conf listening on the formula VIP and port (cinder-api runs as root here)."""
    WORK.mkdir(mode=0o755, exist_ok=True)
    (WORK / "log").mkdir(exist_ok=True)
    path = WORK / "cinder.conf"
    path.write_text(cib.sandbox_conf_copy(facts, WORK, VIP, PORT))
    path.chmod(0o600)


def remove_secrets_objects():
    # Stop first: with the rules deleted before the resources, Pacemaker would start formula_api on a
    # node without its secret ("Unable to load CIB secrets", a hard failure).
    for rsc in (API, IP):
        run("crm_resource", "--resource", rsc, "--meta", "--set-parameter", "target-role",
            "--parameter-value", "Stopped")
    run("crm_resource", "--wait", "--timeout=120s", timeout=150)
    for object_id in IDS:
        for section, tag in (("constraints", "rsc_location"), ("constraints", "rsc_colocation"),
                             ("constraints", "rsc_order"), ("resources", "primitive")):
            run("cibadmin", "--delete", "--scope", section, "--xml-text", f'<{tag} id="{object_id}"/>')
    run("crm_resource", "--wait", "--timeout=120s", timeout=150)
    for object_id in (API, IP):
        run("crm_resource", "--cleanup", "--resource", object_id)
    run("crm_attribute", "--node", "node1", "--name", ATTRIBUTE, "--lifetime", "forever", "--delete")
    shutil.rmtree(SECRETS, ignore_errors=True)  # after the stop: a stop needs the secret too


def settle():
    assert run("crm_resource", "--wait", "--timeout=120s", timeout=150).returncode == 0


def history(rsc):
    """Operations the cluster ran for ``rsc`` on node1 (probes included), from the status section."""
    status = ET.fromstring(run("cibadmin", "--query", "--scope", "status").stdout)
    return [op.get("operation_key") for op in status.iter("lrm_rsc_op")
            if op.get("operation_key", "").startswith(rsc + "_")]


def history_details(rsc):
    status = ET.fromstring(run("cibadmin", "--query", "--scope", "status").stdout)
    return [{k: op.get(k) for k in ("operation_key", "rc-code", "op-status", "last-rc-change", "exit-reason")}
            for op in status.iter("lrm_rsc_op") if op.get("operation_key", "").startswith(rsc + "_")]


def formula_state(crm):
    status = crm.status()
    failures = [f for f in status["failures"] if f.get("op_key", "").startswith("formula_")]
    return {rsc: status["resources"][rsc]["active"] for rsc in (API, IP)}, failures


@pytest.fixture
def live(loaders, sandbox_facts):
    remove_secrets_objects()
    cinder_conf_copy(sandbox_facts)
    try:
        yield loaders
    finally:
        remove_secrets_objects()
        shutil.rmtree(WORK, ignore_errors=True)


def test_a_node_without_the_current_secret_is_neither_probed_nor_used(live, sandbox_facts):
    crm, states, secret_states = live.modules.crm, live.states.crm, live.states.crm_secrets
    password = sandbox_facts["keystone_admin_password"]
    created = states.configured(name="secrets", objects=objects(sandbox_facts, "Stopped"))
    assert created.result is True, created.comment
    assert f"{ATTRIBUTE}@node1" in created.changes["objects"]  # this node's digest, same transaction
    cib.assert_no_secret(password, [created.raw, cib.query()], "the state return or the CIB")
    settle()

    # node1 loses its secret (a node whose minion has not run yet): attribute gone, files gone,
    # history forgotten (--refresh; --cleanup forgets failures only). Without the rule the next
    # probe would fail "Unable to load CIB secrets".
    assert run("crm_attribute", "--node", "node1", "--name", ATTRIBUTE, "--lifetime", "forever",
               "--delete").returncode == 0
    shutil.rmtree(SECRETS)
    for rsc in (API, IP):
        assert run("crm_resource", "--refresh", "--resource", rsc).returncode == 0
        assert run("crm_resource", "--resource", rsc, "--meta", "--set-parameter", "target-role",
                   "--parameter-value", "Started").returncode == 0
    settle()
    for missing_or_stale in ("missing", "stale"):
        if missing_or_stale == "stale":
            assert run("crm_attribute", "--node", "node1", "--name", ATTRIBUTE, "--lifetime", "forever",
                       "--update", "0" * 64).returncode == 0
            settle()
        active, failures = formula_state(crm)
        assert active == {API: False, IP: False}, (missing_or_stale, active)
        assert failures == [], (missing_or_stale, failures)
        assert history(API) == [], (missing_or_stale, history_details(API), time.time())
        assert history(IP) != []  # the VIP was probed (no secret involved), just not started
        assert crm.verify()["valid"] is True

    # The node's secret state writes the files and publishes the digest: probe, start, answer.
    started = time.monotonic()
    present = secret_states.present(name=API, secrets={"os_password": password})
    assert present.result is True, present.comment
    assert f"node attribute {ATTRIBUTE}@node1" in present.changes
    cib.assert_no_secret(password, present.raw, "the state return")
    settle()
    active, failures = formula_state(crm)
    assert active == {API: True, IP: True} and failures == [], (active, failures)
    assert f"{API}_start_0" in history(API)  # (the probe's record is replaced by the start's)
    with urllib.request.urlopen(f"http://{VIP}:{PORT}/healthcheck", timeout=10) as response:
        assert response.status == 200
    print(f"\nsecrets_present to cinder-api answering: {time.monotonic() - started:.1f} s")

    # The formula's next run changes nothing (the operator's target-role aside, declared here).
    epoch = cib.epoch()
    again = states.configured(name="secrets", objects=objects(sandbox_facts, "Started"))
    assert set(again.changes.get("objects", {})) <= {API, IP}, again.comment
    assert states.configured(name="secrets", objects=objects(sandbox_facts, "Started")).changes == {}
    assert secret_states.present(name=API, secrets={"os_password": password}).changes == {}
    assert cib.epoch()[1] <= epoch[1] + 1
