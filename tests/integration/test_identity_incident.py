"""Issue 23 item 5, live: an identity incident is never a cinder-api failure.

Under the live single-node cluster, with the agent installed from the tree:
- Keystone stopped for 2 minutes (its gunicorn, as sandbox.py keystone_down does);
- Keystone frozen for 20 s (SIGSTOP of its gunicorn processes);
- cinder's [keystone_authtoken] password made wrong (the password of its service user changed
  in Keystone while cinder-api runs: Keystone revokes that user's tokens, and cinder's
  keystonemiddleware then answers every token with 503).
In each case: no restart (same pid and same start record), no start, stop or failed action,
the VIP stays, and the warning is seen, in pacemaker.log and as a spooled identity_warning.

Resources: the sandbox's own p_cinder-api and p_ip_cinder-api (Keystone cases; its spool is
found through the CIB's cinder_ha_alert alert), and a private pair, agent_cinder-api (the
private instance, 127.0.0.113:18763, cinder's service user and the monitor's user both
throwaway Keystone users, spool of its own) behind agent_ip (127.0.0.113/32 on lo), made and
deleted here. Monitors every 5 s.
"""
import json
import os
import pathlib
import signal
import subprocess
import time

import pytest

from tests.conftest import sandbox_script
from tests.support import agent as support

RSC, VIP_RSC = "agent_cinder-api", "agent_ip"
SANDBOX_RSC, SANDBOX_VIP_RSC = "p_cinder-api", "p_ip_cinder-api"
PID_FILES = {RSC: support.PID_FILE, SANDBOX_RSC: "/run/resource-agents/p_cinder-api.pid"}
MONITOR_INTERVAL = 5
SANDBOX_SPOOL = pathlib.Path("/var/lib/cinder-ha/alerts")


@pytest.fixture(scope="module")
def monitor_user(sandbox_facts):
    with support.throwaway_keystone_user(sandbox_facts) as facts:
        yield facts


@pytest.fixture(scope="module")
def service_user(sandbox_facts):
    with support.throwaway_keystone_user(sandbox_facts) as facts:
        yield facts


@pytest.fixture(scope="module")
def spool(tmp_path_factory):
    """agent_cinder-api's own spool: the test reads it, as an engine would (fresh heartbeat)."""
    folder = tmp_path_factory.mktemp("identity-spool")
    with support.engine_heartbeat(folder):
        yield folder


@pytest.fixture(scope="module")
def resources(sandbox_facts, monitor_user, service_user, spool):
    """agent_cinder-api behind agent_ip, running; the sandbox's pair running too."""
    support.prepare_instance()
    support.install_agent()
    support.delete_primitive(RSC)
    delete_vip()
    support.kill_instance()
    real = support.facts()
    conf = support.conf_variant("service-user", [
        (f"username = {real['keystone_admin_user']}\n", f"username = {service_user['keystone_admin_user']}\n"),
        (f"password = {real['keystone_admin_password']}\n",
         f"password = {service_user['keystone_admin_password']}\n")])
    params = dict(support.modern_params(monitor_user, config=str(conf)), alert_spool=str(spool))
    del params["pid"]  # the default: /run/resource-agents/agent_cinder-api.pid
    support.create_primitive(RSC, params, monitor_interval=f"{MONITOR_INTERVAL}s")
    load(f"primitive {VIP_RSC} ocf:heartbeat:IPaddr2 params ip={support.VIP} cidr_netmask=32 nic=lo "
         f"op monitor interval=10s timeout=20s\n"
         f"colocation c_{RSC}_with_ip inf: {RSC} {VIP_RSC}\n"
         f"order o_ip_before_{RSC} Mandatory: {VIP_RSC} {RSC}\n")
    try:
        assert support.start_resource(RSC, timeout=90), "the cluster did not start agent_cinder-api"
        assert support.resource_running_on(SANDBOX_RSC), "the sandbox's p_cinder-api does not run"
        yield params
    finally:
        support.delete_primitive(RSC)
        delete_vip()
        support.kill_instance()


def load(text):
    result = subprocess.run(["crm", "configure", "load", "update", "-"], input=text, env=support.env(),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "ERROR" not in result.stdout + result.stderr, result.stdout + result.stderr


def delete_vip():
    if support.primitive_exists(VIP_RSC):
        support.crm("resource", "stop", VIP_RSC, check=False)
        support.wait_for(lambda: not support.resource_running_on(VIP_RSC), 60, step=0.5)
        support.crm("configure", "delete", "--force", VIP_RSC, check=False)
        subprocess.run(["crm_resource", "--cleanup", "-r", VIP_RSC], env=support.env(), capture_output=True,
                       timeout=30)


def failcount(rsc):
    result = subprocess.run(["crm_failcount", "--query", "-r", rsc, "-N", "node1"], env=support.env(),
                            capture_output=True, text=True, timeout=30)
    return result.stdout.strip()


def snapshot():
    """What must not change: each cinder-api's pid and start record, each fail count, where the
    VIPs run."""
    state = {}
    for rsc, pid_file in PID_FILES.items():
        state[rsc] = (support.running_pid(pid_file), pathlib.Path(pid_file + ".start").read_text())
    for rsc in (RSC, SANDBOX_RSC, VIP_RSC, SANDBOX_VIP_RSC):
        state[f"{rsc} failcount"] = failcount(rsc)
        state[f"{rsc} on"] = support.resource_running_on(rsc)
    return state


def own_files(folder, kind):
    return {name for name in os.listdir(folder) if name.endswith(".json")
            and json.loads((folder / name).read_text()).get("kind") == kind}


@pytest.fixture
def observed(resources, spool):
    """The state before, the log offset and the spool contents; after the test, what it spooled
    in the sandbox's folder is removed (the engine would forward it to the master later)."""
    before_sandbox = set(os.listdir(SANDBOX_SPOOL))
    state = snapshot()
    assert all(state[f"{rsc} on"] for rsc in (RSC, SANDBOX_RSC, VIP_RSC, SANDBOX_VIP_RSC)), state
    # the sandbox's spool is read here too, whether or not an engine drains it
    with support.engine_heartbeat(SANDBOX_SPOOL):
        yield state, support.log_offset(), set(os.listdir(spool)), before_sandbox
    for name in set(os.listdir(SANDBOX_SPOOL)) - before_sandbox:
        path = SANDBOX_SPOOL / name
        if "-identity-" in name:
            path.unlink(missing_ok=True)


def log_since(offset):
    with support.PACEMAKER_LOG.open("rb") as log:
        log.seek(offset)
        return log.read().decode(errors="replace")


def assert_undisturbed(observed_state):
    """Same pids and start records, same fail counts (a failed monitor counts), the VIPs where
    they were, no start or stop logged, both APIs answering."""
    before, offset, _, _ = observed_state
    after = snapshot()
    assert after == before, (before, after)
    for rsc in (RSC, SANDBOX_RSC, VIP_RSC, SANDBOX_VIP_RSC):
        assert support.resource_ops_since(offset, rsc) == [], rsc
    for rsc in PID_FILES:
        assert os.path.exists(f"/proc/{before[rsc][0]}"), rsc
    assert support.healthcheck() == 200
    assert support.healthcheck(vip="127.0.0.103", port=8776) == 200


def warned(observed_state, spool, rsc, cause):
    """The warning in pacemaker.log and as a spooled identity_warning of rsc with this cause."""
    _, offset, spool_before, sandbox_before = observed_state
    in_log = any(rsc in line and f"identity incident, not a cinder-api failure ({cause})" in line
                 for line in log_since(offset).splitlines())
    folder, before = (spool, spool_before) if rsc == RSC else (SANDBOX_SPOOL, sandbox_before)
    spooled = [json.loads((folder / name).read_text()) for name in own_files(folder, "identity_warning") - before]
    return in_log and any(event["rsc"] == rsc and event["desc"].startswith(f"{cause}:") for event in spooled)


def keystone_answers():
    return support.wait_for(lambda: subprocess.run(
        ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "2", "http://127.0.0.1:5000/v3"],
        capture_output=True, text=True, timeout=10).stdout == "200", 30, step=0.5)


def test_keystone_stopped_for_two_minutes(observed, spool):
    sandbox = sandbox_script("sandbox")
    started = time.monotonic()
    sandbox.keystone_down()
    try:
        while time.monotonic() - started < 120:
            time.sleep(5)
            before = observed[0]
            for rsc, pid_file in PID_FILES.items():
                assert support.running_pid(pid_file) == before[rsc][0], f"{rsc} restarted while Keystone was down"
        for rsc in (RSC, SANDBOX_RSC):
            assert warned(observed, spool, rsc, "keystone_unreachable"), rsc
    finally:
        sandbox.keystone_up()
    assert keystone_answers()
    # back: both resources say so on the alert path (and the next incident is spooled afresh)
    assert support.wait_for(lambda: own_files(spool, "identity_recovered") - observed[2], 4 * MONITOR_INTERVAL, step=1)
    assert support.wait_for(lambda: own_files(SANDBOX_SPOOL, "identity_recovered") - observed[3],
                            4 * MONITOR_INTERVAL, step=1)
    assert_undisturbed(observed)


def keystone_processes():
    pid = int((pathlib.Path(support.SANDBOX) / "run" / "keystone.pid").read_text())
    children = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True, timeout=10).stdout.split()
    return [pid, *map(int, children)]


def test_keystone_frozen_for_20_seconds(observed, spool):
    processes = keystone_processes()
    for pid in processes:
        os.kill(pid, signal.SIGSTOP)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            time.sleep(2)
            for rsc, pid_file in PID_FILES.items():
                assert support.running_pid(pid_file) == observed[0][rsc][0], f"{rsc} restarted"
        seen = {rsc: warned(observed, spool, rsc, "keystone_unreachable") for rsc in (RSC, SANDBOX_RSC)}
    finally:
        for pid in processes:
            os.kill(pid, signal.SIGCONT)
    assert keystone_answers()
    time.sleep(2 * MONITOR_INTERVAL)  # the monitors after the thaw pass too
    assert seen == {RSC: True, SANDBOX_RSC: True}, seen
    assert_undisturbed(observed)


def test_cinder_service_password_made_wrong(observed, spool, service_user, sandbox_facts):
    from keystoneauth1 import session as ks_session
    from keystoneauth1.identity import v3

    admin = ks_session.Session(auth=v3.Password(
        auth_url=sandbox_facts["keystone_url"], username=sandbox_facts["keystone_admin_user"],
        password=sandbox_facts["keystone_admin_password"], project_name=sandbox_facts["keystone_admin_project"],
        user_domain_name="Default", project_domain_name="Default"), timeout=10)
    url = sandbox_facts["keystone_url"]
    [user] = admin.get(f"{url}/users?name={service_user['keystone_admin_user']}").json()["users"]
    # the password cinder has in [keystone_authtoken] is now wrong; Keystone revokes its tokens
    admin.patch(f"{url}/users/{user['id']}", json={"user": {"password": "rotated-" + os.urandom(6).hex()}})
    try:
        assert support.wait_for(lambda: warned(observed, spool, RSC, "cinder_service_credentials"),
                                4 * MONITOR_INTERVAL, step=1), log_since(observed[1])[-3000:]
        time.sleep(2 * MONITOR_INTERVAL)  # more monitors, still no failure
        assert len(own_files(spool, "identity_warning") - observed[2]) == 1  # spooled once, not per monitor
        assert any("ERROR: identity incident" in line and RSC in line for line in log_since(observed[1]).splitlines())
        assert_undisturbed(observed)
    finally:
        admin.patch(f"{url}/users/{user['id']}", json={"user": {"password": service_user["keystone_admin_password"]}})
