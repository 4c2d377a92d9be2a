"""ocf:openstack:cinder-api run directly (as pacemaker-execd would) against a real cinder-api and
the real Keystone: ocf-tester with the guide's and the modern parameters, monitor return codes,
stop edge cases, secrets. Plus the formula's agent state through a real masterless salt-call.

Private instance: /srv/cinder-ha/agent-instance config, 127.0.0.113:18763 (see tests/support/agent.py).
"""
import hashlib
import json
import os
import pathlib
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import threading
import xml.etree.ElementTree as ET

import pytest

from tests.conftest import PROJECT, SANDBOX
from tests.support import agent as support

RETIRED_PARAMS = {"binary", "config", "user", "pid", "url", "keystone_get_token_url", "os_username", "os_password",
                  "os_tenant_name", "additional_parameters"}
MODERN_PARAMS = {"os_auth_url", "os_project_name", "os_user_domain_name", "os_project_domain_name"}



@pytest.fixture(scope="module")
def sandbox_facts(sandbox_facts):
    """The sandbox, seen through a throwaway Keystone user (see support.throwaway_keystone_user)."""
    with support.throwaway_keystone_user(sandbox_facts) as facts:
        yield facts

@pytest.fixture(scope="module")
def instance():
    configs = support.prepare_instance()
    support.install_agent()
    support.kill_instance()
    yield configs
    support.kill_instance()


@pytest.fixture
def spool(tmp_path):
    """An alert spool folder of the test's own (alert_spool): nothing reaches the sandbox's. The
    test reads it, as the engine would: its heartbeat is kept fresh."""
    folder = tmp_path / "spool"
    folder.mkdir()
    with support.engine_heartbeat(folder):
        yield str(folder)


@pytest.fixture
def stopped(instance, sandbox_facts):
    """Each test starts and ends with the private instance stopped (even when the test fails)."""
    support.kill_instance()
    yield instance
    support.run_agent("stop", support.modern_params(sandbox_facts), timeout=120)
    support.kill_instance()


def ocf_tester(params):
    """ocf-tester with the password in the environment, not on ocf-tester's own command line."""
    # the start timeout the formula gives the cluster's start op (60 s), not ocf-tester's own
    # 20 s: with the three-node tier beside, cinder-api took longer than 18 s to answer
    args = ["ocf-tester", "-n", "agent_cinder-api", "-o", "CRM_meta_timeout=60000"]
    extra_env = {}
    for key, value in params.items():
        if key == "os_password":
            extra_env["OCF_RESKEY_os_password"] = value
        else:
            args += ["-o", f"{key}={value}"]
    args.append(str(support.AGENT_PATH))
    return subprocess.run(args, env=support.env(**extra_env), capture_output=True, text=True, timeout=300)


def test_meta_data_declares_every_parameter_and_action(instance):
    result = support.run_agent("meta-data", {})
    assert result.returncode == 0
    root = ET.fromstring(result.stdout)
    names = {p.get("name") for p in root.iter("parameter")}
    assert RETIRED_PARAMS | MODERN_PARAMS <= names
    actions = {a.get("name"): a.get("timeout") for a in root.iter("action")}
    assert actions["start"] == "60s" and actions["stop"] == "90s" and actions["monitor"] == "30s"
    assert {"validate-all", "meta-data", "status"} <= set(actions)


def test_ocf_tester_guide_parameters_with_v2_token_url(stopped, sandbox_facts):
    params = support.guide_params(sandbox_facts)
    assert params["keystone_get_token_url"].endswith("/v2.0/tokens")
    result = ocf_tester(params)
    output = result.stdout + result.stderr
    assert sandbox_facts["keystone_admin_password"] not in output
    assert result.returncode == 0, output
    assert "passed all tests" in output
    assert not support.cinder_pids()


def test_ocf_tester_modern_parameters(stopped, sandbox_facts):
    result = ocf_tester(support.modern_params(sandbox_facts))
    output = result.stdout + result.stderr
    assert sandbox_facts["keystone_admin_password"] not in output
    assert result.returncode == 0, output
    assert not support.cinder_pids()


def test_ocf_tester_without_credentials_healthcheck_only(stopped):
    result = ocf_tester({"binary": support.BINARY, "config": support.CONF_NOAUTH, "pid": support.PID_FILE})
    assert result.returncode == 0, result.stdout + result.stderr


def test_monitor_codes_and_v2_url_against_real_keystone(stopped, sandbox_facts, spool):
    params = support.guide_params(sandbox_facts)
    assert support.run_agent("monitor", params, CRM_meta_interval=5000).returncode == 7
    started = support.run_agent("start", params)
    assert started.returncode == 0, started.stderr
    assert support.healthcheck() == 200
    parent = min(support.cinder_pids())
    uid_line = next(line for line in pathlib.Path(f"/proc/{parent}/status").read_text().splitlines()
                    if line.startswith("Uid:"))
    assert uid_line.split()[1:] == [str(pwd.getpwnam("cinder").pw_uid)] * 4  # runs as the default user

    probe = support.run_agent("monitor", params, CRM_meta_interval=0)
    assert probe.returncode == 0, probe.stderr
    assert "is Keystone v2.0 (removed in Queens): using its v3 equivalent http://127.0.0.1:5000/v3/auth/tokens" \
        in probe.stderr
    # the authenticated check reached cinder with a real token (cinder logs the user id)
    cinder_log = (support.INSTANCE_DIR / "log" / "cinder-api.log").read_text()
    assert [line for line in cinder_log.splitlines() if '"GET /v3/ HTTP/1.1" status: 200' in line]

    # wrong password: logged, but Keystone's answer is no reason to restart cinder
    wrong = support.run_agent("monitor", dict(params, os_password="not-the-password", alert_spool=spool),
                              CRM_meta_interval=5000)
    assert wrong.returncode == 0
    assert "rejected the monitor's credentials (HTTP 401)" in wrong.stderr
    assert "not-the-password" not in wrong.stdout + wrong.stderr

    # cinder answering a valid token with 404 is a cinder failure
    broken = support.run_agent("monitor", dict(params, url=f"http://{support.VIP}:{support.PORT}/v3/no-such-path"),
                               CRM_meta_interval=5000)
    assert broken.returncode == 1
    assert "authenticated GET" in broken.stderr

    # a hung daemon (SIGSTOP) is a failure (1), not "not running" (7)
    processes = support.cinder_pids()  # parent and worker: the worker serves requests
    for pid in processes:
        os.kill(pid, signal.SIGSTOP)
    try:
        hung = support.run_agent("monitor", params, CRM_meta_interval=5000, CRM_meta_timeout=6000)
        assert hung.returncode == 1
        assert "does not answer" in hung.stderr
    finally:
        for pid in processes:
            os.kill(pid, signal.SIGCONT)




def test_stop_when_not_running_succeeds_without_config_or_binary(stopped):
    params = {"binary": "/nonexistent/cinder-api", "config": "/nonexistent/cinder.conf", "pid": support.PID_FILE}
    assert support.run_agent("stop", params).returncode == 0
    assert support.run_agent("monitor", params, CRM_meta_interval=0).returncode == 7
    assert support.run_agent("validate-all", params).returncode == 5
    assert support.run_agent("start", params).returncode == 5


def test_stop_of_a_running_daemon_needs_only_the_pid_file(stopped, sandbox_facts):
    params = support.modern_params(sandbox_facts)
    assert support.run_agent("start", params).returncode == 0
    stop = support.run_agent("stop", {"binary": "/gone", "config": "/gone", "pid": support.PID_FILE})
    assert stop.returncode == 0, stop.stderr
    assert not support.cinder_pids()
    assert not os.path.exists(support.PID_FILE)


def test_stop_ends_a_hung_daemon(stopped, sandbox_facts):
    """A hung (SIGSTOPped) daemon: stop sends SIGCONT to its group with the TERM, so it handles
    the TERM at once instead of waiting for the KILL."""
    params = support.modern_params(sandbox_facts)
    assert support.run_agent("start", params).returncode == 0
    for pid in support.cinder_pids():
        os.kill(pid, signal.SIGSTOP)
    stop = support.run_agent("stop", params, CRM_meta_timeout=12000)
    assert stop.returncode == 0, stop.stderr
    assert support.wait_for(lambda: not support.cinder_pids(), 5)


def test_a_kill_9_of_the_main_process_takes_its_workers_with_it(stopped, sandbox_facts):
    """kill -9 of the daemon's main process: the agent's watcher (one per start, outside the
    group) kills the orphaned workers at once. Without it they live on about a second (measured:
    1.08 s for cinder-volume's worker), and a cinder-volume worker takes casts meanwhile, which
    are then lost. The worker is frozen first, so that only the watcher can end it (it cannot
    notice its parent's death by itself); the watcher then ends too."""
    params = support.modern_params(sandbox_facts)
    assert support.run_agent("start", params).returncode == 0
    leader = int(pathlib.Path(support.PID_FILE).read_text())
    workers = [pid for pid in support.cinder_pids() if pid != leader]
    assert workers, "the instance runs osapi_volume_workers = 1: a worker besides its main process"
    watchers = [line for line in support.all_cmdlines() if "pidfd_open" in line and line.endswith(f" {leader} ")]
    assert len(watchers) == 1, watchers
    for pid in workers:
        os.kill(pid, signal.SIGSTOP)
    os.kill(leader, signal.SIGKILL)
    assert support.wait_for(lambda: not support.cinder_pids(), 2, step=0.01), "the orphaned worker outlived its main process"
    assert support.wait_for(lambda: not [line for line in support.all_cmdlines() if line in watchers], 5)
    stop = support.run_agent("stop", params)
    assert stop.returncode == 0, stop.stderr


def test_start_failure_is_reported(stopped, sandbox_facts):
    params = support.modern_params(sandbox_facts)
    params["additional_parameters"] = "--no-such-option"
    result = support.run_agent("start", params)
    assert result.returncode == 1
    assert "cinder-api exited during start" in result.stderr
    assert not support.cinder_pids()


def test_incomplete_credentials_are_a_configuration_error(instance, sandbox_facts):
    params = support.modern_params(sandbox_facts)
    del params["os_auth_url"]
    result = support.run_agent("validate-all", params)
    assert result.returncode == 6
    assert "os_auth_url" in result.stderr
    params = support.modern_params(sandbox_facts)
    params["os_project_name"] = ""
    assert support.run_agent("validate-all", params).returncode == 6


def test_password_never_on_a_command_line_during_monitor(stopped, sandbox_facts):
    secret = sandbox_facts["keystone_admin_password"]
    params = support.guide_params(sandbox_facts)
    assert support.run_agent("start", params).returncode == 0
    seen_secret, seen_curl, done = [], [], threading.Event()

    def sample():
        while not done.is_set():
            for line in support.all_cmdlines():
                if secret in line:
                    seen_secret.append(line.replace(secret, "***"))
                if line.startswith("curl "):
                    seen_curl.append(line)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        for _ in range(15):
            assert support.run_agent("monitor", params, CRM_meta_interval=5000).returncode == 0
    finally:
        done.set()
        sampler.join()
    assert seen_curl, "the sampler never saw the monitor's curl: it proves nothing"
    assert not seen_secret


# ---- the start record: what the running daemon was started with ----

RECORD = support.PID_FILE + ".start"
SNAPSHOT = support.PID_FILE + ".conf"


def noauth_params():
    return {"binary": support.BINARY, "config": str(support.CONF_NOAUTH), "pid": support.PID_FILE}


def read_record():
    return dict(line.split("=", 1) for line in pathlib.Path(RECORD).read_text().splitlines())


def with_listen(text, address):
    return text.replace(f"osapi_volume_listen = {support.VIP}\n", f"osapi_volume_listen = {address}\n")


@pytest.fixture
def conf_restored(instance):
    """The noauth config as prepare_instance wrote it, put back after the test edits it."""
    original = support.CONF_NOAUTH.read_bytes()
    yield support.CONF_NOAUTH
    support.CONF_NOAUTH.write_bytes(original)


def test_start_records_what_the_daemon_runs_with(stopped, conf_restored):
    started = support.run_agent("start", noauth_params())
    assert started.returncode == 0, started.stderr
    pid = int(pathlib.Path(support.PID_FILE).read_text())
    record = read_record()
    assert record["pid"] == str(pid) and record["config"] == str(support.CONF_NOAUTH)
    assert record["api_base"] == f"http://{support.VIP}:{support.PORT}" and record["api_path"] == "/v3/"
    assert record["starttime"] == pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    assert record["snapshot"] == SNAPSHOT
    snapshot = pathlib.Path(SNAPSHOT).read_bytes()
    assert snapshot == support.CONF_NOAUTH.read_bytes()
    assert record["sha256"] == hashlib.sha256(snapshot).hexdigest()
    for path in (RECORD, SNAPSHOT):  # the copy holds passwords: root's alone
        st = os.lstat(path)
        assert stat.S_ISREG(st.st_mode) and (st.st_uid, st.st_mode & 0o777) == (0, 0o600), path
    assert not [name for name in os.listdir("/run/resource-agents") if name.startswith(".agent_cinder-api")]


def test_monitor_checks_the_recorded_address_whatever_the_config_says(stopped, conf_restored, tmp_path):
    assert support.run_agent("start", noauth_params()).returncode == 0
    # the reproduction: a copy of the config with another listen address
    copy = tmp_path / "cinder.conf"
    copy.write_text(with_listen(support.CONF_NOAUTH.read_text(), "127.0.0.99"))
    monitor = support.run_agent("monitor", dict(noauth_params(), config=str(copy)), CRM_meta_interval=5000)
    assert monitor.returncode == 0, monitor.stderr
    # the live config edited in place (drift, or the formula's new address before its restart)
    support.CONF_NOAUTH.write_text(with_listen(support.CONF_NOAUTH.read_text(), "127.0.0.99").replace(
        f"osapi_volume_listen_port = {support.PORT}", "osapi_volume_listen_port = 1"))
    for interval in (5000, 0):  # recurring monitor and probe
        monitor = support.run_agent("monitor", noauth_params(), CRM_meta_interval=interval)
        assert monitor.returncode == 0, monitor.stderr
    # a daemon that stopped answering still fails, record or not
    for pid in support.cinder_pids():
        os.kill(pid, signal.SIGSTOP)
    try:
        hung = support.run_agent("monitor", noauth_params(), CRM_meta_interval=5000, CRM_meta_timeout=6000)
        assert hung.returncode == 1 and f"http://{support.VIP}:{support.PORT}/healthcheck" in hung.stderr
    finally:
        for pid in support.cinder_pids():
            os.kill(pid, signal.SIGCONT)
    stop = support.run_agent("stop", noauth_params())
    assert stop.returncode == 0, stop.stderr
    assert not os.path.lexists(RECORD) and not os.path.lexists(SNAPSHOT)
    assert not os.path.exists(support.PID_FILE)


def test_without_a_record_the_monitor_reads_the_config(stopped, tmp_path):
    """A daemon started by an older agent has no record: the config decides, as before."""
    assert support.run_agent("start", noauth_params()).returncode == 0
    os.unlink(RECORD)
    copy = tmp_path / "cinder.conf"
    copy.write_text(with_listen(support.CONF_NOAUTH.read_text(), "127.0.0.99"))
    assert support.run_agent("monitor", noauth_params(), CRM_meta_interval=5000).returncode == 0
    probe = support.run_agent("monitor", dict(noauth_params(), config=str(copy)), CRM_meta_interval=0)
    assert probe.returncode == 1 and "no start record for pid" in probe.stderr
    # a record of another process (a recycled pid) is not used either
    assert support.run_agent("stop", noauth_params()).returncode == 0
    assert support.run_agent("start", noauth_params()).returncode == 0
    record = pathlib.Path(RECORD).read_text()
    starttime = read_record()["starttime"]
    pathlib.Path(RECORD).write_text(record.replace(f"starttime={starttime}\n", "starttime=1\n"))
    # (issue 23: the record then says that the process with this pid is not the one started,
    # so it is not ours at all)
    assert support.run_agent("monitor", dict(noauth_params(), config=str(copy)),
                             CRM_meta_interval=5000).returncode == 7


def test_planted_links_are_never_followed(stopped, tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("must stay as it is\n")
    os.chmod(victim, 0o644)
    planted = [RECORD, SNAPSHOT, support.PID_FILE, support.PID_FILE + ".tmp"]  # .tmp: the old agent's name
    for path in planted:
        if os.path.lexists(path):
            os.unlink(path)
        os.symlink(victim, path)
    try:
        started = support.run_agent("start", noauth_params())
        assert started.returncode == 0, started.stderr
        assert victim.read_text() == "must stay as it is\n" and (victim.stat().st_mode & 0o777) == 0o644
        for path in (RECORD, SNAPSHOT, support.PID_FILE):
            assert not os.path.islink(path) and os.path.isfile(path), path
        assert read_record()["pid"] == pathlib.Path(support.PID_FILE).read_text().strip()
        assert support.run_agent("monitor", noauth_params(), CRM_meta_interval=5000).returncode == 0
        # a link planted while it runs is not read as the record: the config decides
        os.unlink(RECORD)
        os.symlink(victim, RECORD)
        probe = support.run_agent("monitor", noauth_params(), CRM_meta_interval=0)
        assert probe.returncode == 0 and "no start record for pid" in probe.stderr
        assert support.run_agent("stop", noauth_params()).returncode == 0
        assert not os.path.lexists(RECORD) and victim.read_text() == "must stay as it is\n"
    finally:
        for path in planted:
            if os.path.islink(path):
                os.unlink(path)


def test_no_record_in_a_folder_others_may_write(stopped, tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o1777)
    params = dict(noauth_params(), pid=str(shared / "agent.pid"))
    try:
        started = support.run_agent("start", params)
        assert started.returncode == 0, started.stderr
        assert "is not root's alone: no start record" in started.stderr
        assert sorted(os.listdir(shared)) == ["agent.pid"]
        assert support.run_agent("monitor", params, CRM_meta_interval=5000).returncode == 0
    finally:
        support.run_agent("stop", params)


# ---- the formula's agent state, through a real masterless salt-call ----

GOOD_PILLAR = {
    "vip": {"address": "127.0.0.113", "netmask": 32, "nic": "lo"},
    "database": {"connection": "mysql+pymysql://cinder:s3cret@127.0.0.1/cinder"},
    "rabbitmq": {"hosts": ["127.0.0.1:5672"], "user": "openstack", "password": "rabbitpw"},
    "keystone": {"auth_url": "http://127.0.0.1:5000/v3", "username": "admin", "password": "pw",
                 "project_name": "admin"},
}


def salt_call_agent_state(tmp_path, pillar):
    conf = tmp_path / "conf"
    pillar_dir = tmp_path / "pillar"
    conf.mkdir(exist_ok=True)
    pillar_dir.mkdir(exist_ok=True)
    (pillar_dir / "top.sls").write_text("base:\n  '*':\n    - cinder_ha\n")
    (pillar_dir / "cinder_ha.sls").write_text(json.dumps({"cinder_ha": pillar}))
    (conf / "minion").write_text(
        f"file_client: local\nid: agent-minion\nroot_dir: {tmp_path}/root\n"
        f"file_roots:\n  base:\n    - {PROJECT}/salt\n    - {PROJECT}\n"
        f"pillar_roots:\n  base:\n    - {pillar_dir}\n"
    )
    salt_call = [str(SANDBOX / "venv" / "salt" / "bin" / "salt-call"), "--local", "-c", str(conf), "--out=json",
                 "state.apply", "cinder_ha.agent"]
    result = subprocess.run(salt_call, env=dict(os.environ), capture_output=True, text=True, timeout=180)
    try:
        return result, json.loads(result.stdout)["local"]
    except (ValueError, KeyError):
        raise AssertionError(f"salt-call rc={result.returncode}: {result.stdout[-2000:]} {result.stderr[-2000:]}") from None


def state_by_id(ret, state_id):
    return next(v for k, v in ret.items() if v.get("__id__") == state_id)


def test_agent_state_installs_the_project_agent(tmp_path):
    with support.agent_file_removed():
        result, ret = salt_call_agent_state(tmp_path, GOOD_PILLAR)
        installed = state_by_id(ret, "cinder_ha-agent-file-managed")
        assert installed["result"] is True, installed["comment"]
        assert support.AGENT_PATH.read_bytes() == support.AGENT_SOURCE.read_bytes()
        assert oct(support.AGENT_PATH.stat().st_mode & 0o7777) == "0o755"
        assert result.returncode == 0
        _, again = salt_call_agent_state(tmp_path, GOOD_PILLAR)
        assert state_by_id(again, "cinder_ha-agent-file-managed")["changes"] == {}


def test_url_source_without_hash_fails_validation_and_installs_nothing(tmp_path):
    with support.agent_file_removed():
        pillar = dict(GOOD_PILLAR, agent={"source": "https://127.0.0.1:9/cinder-api"})
        result, ret = salt_call_agent_state(tmp_path, pillar)
        assert result.returncode != 0
        valid = state_by_id(ret, "cinder_ha-validate-pillar-valid")
        assert valid["result"] is False and "source_hash" in valid["comment"]
        # nothing else renders on an invalid pillar (or, rendered, it fails on the requisite)
        installed = [v for v in ret.values() if v.get("__id__") == "cinder_ha-agent-file-managed"]
        assert all(v["result"] is False for v in installed)
        assert not support.AGENT_PATH.exists()
        assert "s3cret" not in result.stdout + result.stderr


def test_console_log_never_written_through_a_planted_link(stopped):
    """root opens the daemon's console log, so never in cinder's log folder: a link planted
    there (cinder owns it) makes root create or append to nothing; the console log lives next
    to the pid file, in root's own folder."""
    planted = support.INSTANCE_DIR / "log" / "cinder-api.console.log"
    missing = pathlib.Path("/root/cinder-ha-console-canary")
    existing = support.INSTANCE_DIR / "root-owned-canary"
    existing.write_text("untouched\n")
    os.chown(existing, 0, 0)
    os.chmod(existing, 0o644)
    for target in (missing, existing):
        missing.unlink(missing_ok=True)
        if planted.exists() or planted.is_symlink():
            planted.unlink()
        planted.symlink_to(target)
        try:
            started = support.run_agent("start", noauth_params())
            assert started.returncode == 0, started.stderr
            assert not missing.exists()
            assert existing.read_text() == "untouched\n"
            console = pathlib.Path(support.PID_FILE).parent / "agent_cinder-api.console.log"
            assert console.exists() and not console.is_symlink() and console.stat().st_uid == 0
        finally:
            support.run_agent("stop", noauth_params())
            planted.unlink()
    existing.unlink()


# ---- issue 23: an identity incident is never a cinder-api failure ----

def watch_engine():
    """The cinder_ha_watch engine's module: what it makes of a spool file is what it forwards."""
    from tests.support.reactor import load

    return load("identity_watch_engine", PROJECT / "_engines" / "cinder_ha_watch.py")


def started_with(params):
    started = support.run_agent("start", params)
    assert started.returncode == 0, started.stderr  # /healthcheck needs no Keystone
    return support.running_pid(), read_record()["starttime"]


def assert_warned_once(spool, params, cause, pid_and_start):
    """Two monitors: both succeed and log the cause; one identity_warning is spooled (the
    engine forwards it as is), not two; the daemon is the one started."""
    results = [support.run_agent("monitor", params, CRM_meta_interval=5000, CRM_meta_timeout=12000)
               for _ in range(2)]
    for result in results:
        assert result.returncode == 0, result.stderr
        assert f"identity incident, not a cinder-api failure ({cause})" in result.stderr, result.stderr
    warnings = support.spooled(spool, "identity_warning")
    assert len(warnings) == 1, warnings
    assert warnings[0]["rsc"] == "agent_cinder-api" and warnings[0]["desc"].startswith(f"{cause}: ")
    [name] = [n for n in os.listdir(spool) if n.endswith(".json")]
    forwarded = watch_engine().read_alert_file(os.path.join(spool, name))
    assert forwarded["kind"] == "identity_warning" and forwarded["desc"].startswith(cause)
    assert (support.running_pid(), read_record()["starttime"]) == pid_and_start
    return results


def test_wrong_service_credentials_in_cinder_warn_and_never_fail(stopped, sandbox_facts, spool):
    """cinder's [keystone_authtoken] password is wrong: keystonemiddleware answers a token
    Keystone has just issued with 503 "The Keystone service is temporarily unavailable"
    (measured). The same on every node: a failure would move or ban cinder-api for nothing."""
    params = dict(support.modern_params(sandbox_facts, config=str(support.CONF_BADAUTH)), alert_spool=spool)
    running = started_with(params)
    results = assert_warned_once(spool, params, "cinder_service_credentials", running)
    assert "ERROR" in results[0].stderr  # loud: an operator must fix the service credentials


def test_keystone_unreachable_for_the_monitor_warns_on_the_alert_path(stopped, sandbox_facts, spool):
    params = dict(support.modern_params(sandbox_facts), alert_spool=spool)
    running = started_with(params)
    down = dict(params, os_auth_url="http://127.0.0.1:9/v3")  # a closed port: Keystone down
    assert_warned_once(spool, down, "keystone_unreachable", running)
    # Keystone back: the check passes, and that is spooled too
    back = support.run_agent("monitor", params, CRM_meta_interval=5000)
    assert back.returncode == 0, back.stderr
    assert [e["desc"].split(":")[0] for e in support.spooled(spool, "identity_recovered")] == ["keystone_unreachable"]


def test_without_an_engine_an_identity_incident_is_only_logged(stopped, sandbox_facts, tmp_path):
    """No engine drains the spool (no fresh heartbeat): the incident is logged, nothing is
    spooled, so no backlog piles up for the day an engine starts (issue 23)."""
    folder = tmp_path / "no-engine"
    folder.mkdir()
    params = dict(support.modern_params(sandbox_facts), alert_spool=str(folder))
    started_with(params)
    down = dict(params, os_auth_url="http://127.0.0.1:9/v3")
    result = support.run_agent("monitor", down, CRM_meta_interval=5000, CRM_meta_timeout=12000)
    assert result.returncode == 0, result.stderr
    assert "identity incident, not a cinder-api failure (keystone_unreachable)" in result.stderr
    assert "no cinder_ha_watch engine drains" in result.stderr, result.stderr
    assert os.listdir(folder) == []


def test_cinder_that_cannot_reach_keystone_warns(stopped, sandbox_facts, spool):
    """cinder's own auth_url unreachable, the monitor's Keystone fine: 503 from keystonemiddleware."""
    conf = support.conf_variant("idm-closed", [("auth_url = http://127.0.0.1:5000", "auth_url = http://127.0.0.1:9")])
    params = dict(support.modern_params(sandbox_facts, config=str(conf)), alert_spool=spool)
    assert_warned_once(spool, params, "keystone_unreachable_from_cinder", started_with(params))


def test_cinder_hung_on_a_frozen_keystone_warns(stopped, sandbox_facts, spool):
    """cinder's Keystone accepts connections and never answers (as a SIGSTOPped one does):
    keystonemiddleware waits, the authenticated GET times out. Keystone is what hangs."""
    frozen = socket.socket()
    frozen.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    frozen.bind(("127.0.0.1", 0))
    frozen.listen(64)
    port = frozen.getsockname()[1]
    try:
        conf = support.conf_variant("idm-frozen", [("auth_url = http://127.0.0.1:5000",
                                                    f"auth_url = http://127.0.0.1:{port}")])
        params = dict(support.modern_params(sandbox_facts, config=str(conf)), alert_spool=spool)
        assert_warned_once(spool, params, "keystone_unreachable_from_cinder", started_with(params))
    finally:
        frozen.close()


def test_a_5xx_from_cinders_own_code_still_fails(stopped, sandbox_facts, spool):
    """A 500 from cinder itself (its database file corrupted under it: computeFault) is a
    cinder-api failure, Keystone being fine."""
    db = support.INSTANCE_DIR / "state" / "cinder.db"
    copy = support.INSTANCE_DIR / "state" / "cinder-corrupt.db"
    shutil.copyfile(db, copy)
    cinder = pwd.getpwnam("cinder")
    os.chown(copy, cinder.pw_uid, cinder.pw_gid)
    conf = support.conf_variant("corrupt-db", [(f"sqlite:///{db}", f"sqlite:///{copy}")])
    from keystoneauth1 import session as ks_session
    from keystoneauth1.identity import v3

    auth = v3.Password(auth_url=sandbox_facts["keystone_url"], username=sandbox_facts["keystone_admin_user"],
                       password=sandbox_facts["keystone_admin_password"],
                       project_name=sandbox_facts["keystone_admin_project"],
                       user_domain_name="Default", project_domain_name="Default")
    project_id = auth.get_project_id(ks_session.Session(auth=auth, timeout=10))  # for the volumes URL
    params = dict(support.modern_params(sandbox_facts, config=str(conf)), alert_spool=spool,
                  url=f"http://{support.VIP}:{support.PORT}/v3/{project_id}/volumes")
    try:
        started_with(params)
        assert support.run_agent("monitor", params, CRM_meta_interval=5000).returncode == 0
        with open(copy, "r+b") as handle:
            handle.write(b"not a database" * 8)
        failed = support.run_agent("monitor", params, CRM_meta_interval=5000)
        assert failed.returncode == 1, failed.stderr
        assert "answered HTTP 500 to an authenticated GET" in failed.stderr
        assert support.spooled(spool) == []
    finally:
        copy.unlink(missing_ok=True)


# ---- issue 23: a recycled pid is never ours; the console log is capped ----

def test_a_recycled_pid_is_neither_monitored_nor_stopped(stopped):
    """The pid file and start record name a pid that now belongs to another process whose
    command line names cinder-api: monitor says not running, stop leaves it alone."""
    assert support.run_agent("start", noauth_params()).returncode == 0
    record = pathlib.Path(RECORD).read_text()
    old_pid = support.running_pid()
    for pid in support.cinder_pids():
        os.kill(pid, signal.SIGKILL)
    assert support.wait_for(lambda: not support.cinder_pids(), 10)
    impostor = subprocess.Popen(["bash", "-c", "exec -a cinder-api sleep 300"], start_new_session=True)
    try:
        assert support.wait_for(lambda: "cinder-api" in pathlib.Path(f"/proc/{impostor.pid}/cmdline").read_text(), 5)
        pathlib.Path(support.PID_FILE).write_text(f"{impostor.pid}\n")
        pathlib.Path(RECORD).write_text(record.replace(f"pid={old_pid}\n", f"pid={impostor.pid}\n"))
        monitor = support.run_agent("monitor", noauth_params(), CRM_meta_interval=5000)
        assert monitor.returncode == 7, monitor.stderr
        stop = support.run_agent("stop", noauth_params())
        assert stop.returncode == 0, stop.stderr
        assert impostor.poll() is None, "stop killed a process that is not cinder-api's"
    finally:
        impostor.kill()
        impostor.wait()


def test_the_console_log_is_capped_at_start_and_by_the_monitor(stopped):
    console = pathlib.Path(support.PID_FILE).parent / "agent_cinder-api.console.log"
    params = dict(noauth_params(), console_log_max=2)  # MiB
    with console.open("ab") as handle:
        handle.write(b"old line\n" * (3 * 1024 * 1024 // 9))
    assert console.stat().st_size > 3 * 1024 * 1024
    assert support.run_agent("start", params).returncode == 0
    assert console.stat().st_size <= 2 * 1024 * 1024
    with console.open("ab") as handle:  # a cinder.conf without log_file: the daemon's output grows
        handle.write(b"new line\n" * (3 * 1024 * 1024 // 9))
    monitor = support.run_agent("monitor", params, CRM_meta_interval=5000)
    assert monitor.returncode == 0, monitor.stderr
    assert console.stat().st_size <= 2 * 1024 * 1024
    assert console.read_bytes().endswith(b"new line\n")  # the most recent output is kept


# ---- issue 23: a clone instance puts only the VIP on lo ----

@pytest.fixture
def node_netns():
    with support.network_namespace(f"cha-vip-{os.getpid()}") as name:
        yield name


def run_agent_in(netns, action, params, **meta):
    """support.run_agent, inside network namespace ``netns`` (a node of its own)."""
    agent_env = support.env(OCF_ROOT="/usr/lib/ocf", OCF_RESOURCE_INSTANCE="agent_cinder-api",
                            OCF_RESOURCE_TYPE="cinder-api", OCF_RESOURCE_PROVIDER="openstack", __OCF_ACTION=action)
    agent_env.update({f"OCF_RESKEY_{key}": str(value) for key, value in {**params, **meta}.items()})
    return subprocess.run(["ip", "netns", "exec", netns, str(support.AGENT_PATH), action], env=agent_env,
                          capture_output=True, text=True, timeout=120)


def lo_of(netns):
    return subprocess.run(["ip", "-n", netns, "-o", "addr", "show", "dev", "lo"], capture_output=True, text=True,
                          timeout=10, check=True).stdout


NETNS_LISTEN = "198.18.255.223"


@pytest.mark.parametrize("vip", ["198.18.255.224", None], ids=["another-address", "no-vip-parameter"])
def test_a_clone_instance_refuses_to_put_anything_but_the_vip_on_lo(stopped, node_netns, vip):
    """cinder.conf names an address that is not the VIP (a typo, the database's address): a clone
    instance must not make its node answer for it. Start fails with the reason, nothing runs,
    lo is untouched."""
    conf = support.conf_variant("netns", [(f"osapi_volume_listen = {support.VIP}",
                                           f"osapi_volume_listen = {NETNS_LISTEN}")], source=support.CONF_NOAUTH)
    params = dict(noauth_params(), config=str(conf), **({"vip": vip} if vip else {}))
    before = lo_of(node_netns)
    started = run_agent_in(node_netns, "start", params, CRM_meta_clone=0)
    assert started.returncode != 0, started.stderr
    assert f"{NETNS_LISTEN}/32" not in lo_of(node_netns) and lo_of(node_netns) == before
    assert not support.cinder_pids()
    reason = "is not the VIP" if vip else "vip parameter"
    assert reason in started.stderr, started.stderr


def test_a_clone_instance_puts_the_vip_on_lo(stopped, node_netns):
    conf = support.conf_variant("netns", [(f"osapi_volume_listen = {support.VIP}",
                                           f"osapi_volume_listen = {NETNS_LISTEN}")], source=support.CONF_NOAUTH)
    params = dict(noauth_params(), config=str(conf), vip=NETNS_LISTEN)
    try:
        started = run_agent_in(node_netns, "start", params, CRM_meta_clone=0)
        assert started.returncode == 0, started.stderr
        assert f"{NETNS_LISTEN}/32" in lo_of(node_netns)
        assert run_agent_in(node_netns, "monitor", params, CRM_meta_clone=0, CRM_meta_interval=5000).returncode == 0
    finally:
        run_agent_in(node_netns, "stop", params)


def test_a_vip_parameter_that_is_no_address_is_a_configuration_error(instance):
    result = support.run_agent("validate-all", dict(noauth_params(), vip="cinder.example.org"))
    assert result.returncode == 6 and "vip" in result.stderr
