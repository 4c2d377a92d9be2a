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
import signal
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
def stopped(instance, sandbox_facts):
    """Each test starts and ends with the private instance stopped (even when the test fails)."""
    support.kill_instance()
    yield instance
    support.run_agent("stop", support.modern_params(sandbox_facts), timeout=120)
    support.kill_instance()


def ocf_tester(params):
    """ocf-tester with the password in the environment, not on ocf-tester's own command line."""
    args = ["ocf-tester", "-n", "agent_cinder-api"]
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


def test_monitor_codes_and_v2_url_against_real_keystone(stopped, sandbox_facts):
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
    wrong = support.run_agent("monitor", dict(params, os_password="not-the-password"), CRM_meta_interval=5000)
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


def test_cinder_that_cannot_validate_tokens_fails_the_monitor(stopped, sandbox_facts):
    params = support.modern_params(sandbox_facts, config=str(support.CONF_BADAUTH))
    started = support.run_agent("start", params)
    assert started.returncode == 0, started.stderr  # /healthcheck needs no Keystone
    result = support.run_agent("monitor", params, CRM_meta_interval=5000)
    assert result.returncode == 1
    assert "with a valid Keystone token" in result.stderr


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


def test_stop_kills_a_daemon_that_ignores_term(stopped, sandbox_facts):
    params = support.modern_params(sandbox_facts)
    assert support.run_agent("start", params).returncode == 0
    for pid in support.cinder_pids():
        os.kill(pid, signal.SIGSTOP)  # TERM stays pending: only KILL ends it
    stop = support.run_agent("stop", params, CRM_meta_timeout=12000)
    assert stop.returncode == 0, stop.stderr
    assert "sending SIGKILL" in stop.stderr
    assert support.wait_for(lambda: not support.cinder_pids(), 5)


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
    assert support.run_agent("monitor", dict(noauth_params(), config=str(copy)),
                             CRM_meta_interval=5000).returncode == 1


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
