"""ocf:openstack:cinder-api under the live Pacemaker cluster: the HA guide's literal primitive
(v2.0 keystone_get_token_url, plain credentials) loaded with crm, the real cinder-api on
127.0.0.113:18763, an edit of its config that fails no monitor and restarts nothing, recovery
after kill -9, no password in any process's argv, clean stop.

Resource id agent_cinder-api; created stopped, deleted in teardown (even on failure).
"""
import os
import pathlib
import signal
import threading
import time

import pytest

from tests.support import agent as support
from tests.support.crm import crash_reports

RSC = "agent_cinder-api"
MONITOR_INTERVAL = 5  # seconds
START_TIMEOUT = 60



@pytest.fixture(scope="module")
def sandbox_facts(sandbox_facts):
    """The sandbox, seen through a throwaway Keystone user (see support.throwaway_keystone_user)."""
    with support.throwaway_keystone_user(sandbox_facts) as facts:
        yield facts

@pytest.fixture(scope="module")
def guide_resource(sandbox_facts):
    support.prepare_instance()
    support.install_agent()
    support.delete_primitive(RSC)
    support.kill_instance()
    params = support.guide_params(sandbox_facts)
    del params["pid"]  # the default: /run/resource-agents/agent_cinder-api.pid
    support.create_primitive(RSC, params, monitor_interval=f"{MONITOR_INTERVAL}s")
    try:
        yield params
    finally:
        support.delete_primitive(RSC)
        support.kill_instance()


@pytest.fixture
def running(guide_resource):
    assert support.start_resource(RSC, timeout=START_TIMEOUT + 30), "the cluster did not start cinder-api"
    return guide_resource


def failcount():
    result = support.crm("resource", "failcount", RSC, "show", "node1", check=False)
    return support.ANSI.sub("", result.stdout)


def test_guide_primitive_loads_and_cluster_starts_real_cinder_api(running, sandbox_facts):
    assert support.resource_running_on(RSC) == sandbox_facts["node"]
    pids = support.cinder_pids()
    assert pids, "no cinder-api process of the private instance"
    assert support.healthcheck() == 200
    cmdline = open(f"/proc/{min(pids)}/cmdline", "rb").read().replace(b"\0", b" ").decode()
    assert str(support.CONF_KEYSTONE) in cmdline
    # let several monitors (with the v2.0 URL, mapped to v3) run: no failure recorded
    log = support.INSTANCE_DIR / "log" / "cinder-api.log"
    before = log.read_text().count('"GET /v3/ HTTP/1.1" status: 200')
    assert support.wait_for(lambda: log.read_text().count('"GET /v3/ HTTP/1.1" status: 200') >= before + 2,
                            4 * MONITOR_INTERVAL, step=1)
    assert support.resource_running_on(RSC)
    assert "value=0" in failcount(), failcount()  # no monitor failed


def test_password_never_in_any_command_line_while_monitors_run(running, sandbox_facts):
    secret = sandbox_facts["keystone_admin_password"]
    canary = f"agent-canary-{os.getpid()}"
    seen_secret, seen_monitor, seen_curl, seen_canary, done = [], [], [], [], threading.Event()

    def sample():
        while not done.is_set():
            for line in support.all_cmdlines():
                if secret in line:
                    seen_secret.append(line.replace(secret, "***"))
                if str(support.AGENT_PATH) in line and line.rstrip().endswith(" monitor"):
                    seen_monitor.append(line)
                if line.startswith("curl "):
                    seen_curl.append(line)
                if canary in line:
                    seen_canary.append(line)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        # the sampler must be able to see a short-lived process's argv at all
        os.spawnv(os.P_WAIT, "/bin/sh", ["/bin/sh", "-c", "sleep 0.2", canary])
        time.sleep(3 * MONITOR_INTERVAL + 1)
    finally:
        done.set()
        sampler.join()
    assert seen_canary, "the sampler missed a 0.2 s process: it proves nothing"
    assert seen_monitor, "no monitor ran while sampling"
    assert seen_curl, "no monitor curl was caught while sampling"
    assert not seen_secret


def test_listen_address_edit_leaves_the_monitor_at_0_and_restarts_nothing(running):
    """Issue 12 item 5: the monitor checks what the process was started with, not the file. An
    edit of the config (a drift, or the formula's new address written before its restart) used
    to fail the monitor of a healthy cinder-api, and Pacemaker restarted it on the edited file."""
    pid = support.running_pid()
    record = dict(line.split("=", 1) for line in open(support.PID_FILE + ".start").read().splitlines())
    assert record["pid"] == str(pid) and record["api_base"] == f"http://{support.VIP}:{support.PORT}"
    fails = failcount()
    offset = support.log_offset()
    original = support.CONF_KEYSTONE.read_bytes()
    edited = original.replace(f"osapi_volume_listen = {support.VIP}\n".encode(), b"osapi_volume_listen = 127.0.0.99\n")
    assert edited != original
    try:
        support.CONF_KEYSTONE.write_bytes(edited)
        time.sleep(2 * MONITOR_INTERVAL + 2)  # two recurring monitors at least
        assert support.running_pid() == pid and pid in support.cinder_pids()
        assert support.healthcheck() == 200
        assert failcount() == fails, failcount()
        assert support.resource_ops_since(offset, RSC) == []
        assert support.resource_running_on(RSC)
    finally:
        support.CONF_KEYSTONE.write_bytes(original)


def test_kill_9_is_recovered_by_pacemaker(running):
    old = set(support.cinder_pids())
    parent = min(old)
    killed = time.time()
    os.kill(parent, signal.SIGKILL)
    # recovery is bounded by the monitor interval plus the start time
    recovered = support.wait_for(
        lambda: (set(support.cinder_pids()) - old) and support.healthcheck() == 200,
        MONITOR_INTERVAL + START_TIMEOUT + 15, step=0.3)
    assert recovered, "cinder-api was not restarted by the cluster"
    # reported at once by the agent's leader watcher (crm_resource --fail), not by the next monitor
    assert crash_reports(RSC, killed), "the watcher did not report the crash"
    assert parent not in support.cinder_pids()
    assert support.resource_running_on(RSC)
    assert "value=0" not in failcount() and "value=" in failcount()  # the cluster saw the failure


def test_kill_9_in_maintenance_mode_is_left_to_the_operator(running):
    """In maintenance mode an operator may stop the daemon by hand: the watcher must not report
    it (the failure would stay recorded and be acted on when maintenance ends). Once out of
    maintenance, the cluster's own probe and monitor find it stopped and start it again."""
    console = pathlib.Path(support.PID_FILE).with_suffix(".console.log")
    parent = support.running_pid()
    with support.cluster_maintenance():
        killed = time.time()
        os.kill(parent, signal.SIGKILL)
        assert support.wait_for(lambda: f"pid {parent} exited outside a stop" in console.read_text(), 10)
        assert f"pid {parent} exited outside a stop, with {RSC} unmanaged" in console.read_text()
        assert not crash_reports(RSC, killed)
        assert not support.cinder_pids()
    assert support.wait_for(lambda: support.cinder_pids() and support.healthcheck() == 200,
                            MONITOR_INTERVAL + START_TIMEOUT + 15, step=0.3), "not started after maintenance"
    assert not crash_reports(RSC, killed)


def test_stop_leaves_no_process(running):
    offset = support.log_offset()
    stopped_at = time.time()
    support.crm("resource", "stop", RSC)
    assert support.wait_for(lambda: not support.resource_running_on(RSC), 100, step=0.5)
    assert support.resource_ops_since(offset, RSC) == ["stop"]  # what the log check above relies on
    assert support.wait_for(lambda: not support.cinder_pids(), 10)
    assert support.healthcheck() is None
    assert not os.path.exists(support.PID_FILE)
    assert not os.path.lexists(support.PID_FILE + ".start") and not os.path.lexists(support.PID_FILE + ".conf")
    # the stop's marker kept the leader's watcher from taking the exit for a crash
    assert not os.path.lexists(support.PID_FILE + ".stopping")
    assert not crash_reports(RSC, stopped_at)
