"""Issue 8 with a real master (reactor) and minion (cinder_ha_watch engine): drift corrected, no loops.

Own master and minion (module scope): the master's reactor maps cinder_ha/* to
salt://cinder_ha/reactor/dispatch.sls; its file_roots put a test cinder_ha.config first
(tests/support/reactor.py); the minion's engine watches a temp cinder.conf, never /etc/cinder.
The alert test adds its own resource reactor_dummy and alert reactor_alert to the live cluster and
removes both afterwards. The tests with the formula's real cinder_ha.config run a real
cinder-api (instance t8r, 127.0.0.118:18768) under the cluster as reactor_api: a drift the reactor
undoes never restarts it; a pillar change restarts it exactly once.
"""
import contextlib
import grp
import json
import os
import pwd
import shutil
import subprocess
import tempfile
import time

import pytest

from tests.conftest import sandbox_script
from tests.support import agent as agent_support
from tests.support import reactor as support

CLUSTER_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C"}
JOB_NEW = "salt/job/*/new"


@pytest.fixture(scope="module")
def reactor_paths():
    # under /tmp (1777), not pytest's 0700 tmp dirs: hacluster must reach the alert spool
    base = tempfile.mkdtemp(prefix="reactor-")
    os.chmod(base, 0o755)
    paths = {"base": base, "conf": os.path.join(base, "etc", "cinder.conf"),
             "spool": os.path.join(base, "spool"), "roots": os.path.join(base, "roots"),
             "pillar": os.path.join(base, "pillar")}
    os.makedirs(os.path.dirname(paths["conf"]))
    os.makedirs(paths["spool"])
    os.chown(paths["spool"], pwd.getpwnam("hacluster").pw_uid, grp.getgrnam("haclient").gr_gid)
    os.chmod(paths["spool"], 0o750)
    os.makedirs(paths["pillar"])
    with open(paths["conf"], "w") as handle:
        handle.write(support.WANTED)
    support.make_file_roots(paths["roots"], paths["conf"])
    try:
        yield paths
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def reactor_master(salt_factories, reactor_paths):
    factory = salt_factories.salt_master_daemon(
        "reactor-master", overrides=support.master_overrides(reactor_paths["roots"], reactor_paths["pillar"], allow=["reactor-minion"],
                                                        cinder_ha_orch_tgt="reactor-minion"))
    with factory.started(start_timeout=120):
        yield factory


@pytest.fixture(scope="module")
def reactor_minion(reactor_master, reactor_paths):
    factory = reactor_master.salt_minion_daemon(
        "reactor-minion", overrides=support.minion_overrides(reactor_paths["conf"], reactor_paths["spool"]))
    with factory.started(start_timeout=120):
        yield factory


@pytest.fixture(scope="module")
def reactor_cli(reactor_master):
    return reactor_master.salt_cli(timeout=120)


@pytest.fixture
def conf(reactor_paths, reactor_minion, reactor_cli):
    """The watched file, in its managed state, with the test state in `normal` mode."""
    set_mode(reactor_paths, "normal")
    ret = reactor_cli.run("state.apply", "cinder_ha.config", minion_tgt=reactor_minion.id)
    assert ret.returncode == 0, ret
    time.sleep(1)  # let the state's own write pass the engine before counting
    return reactor_paths["conf"]


def set_mode(paths, mode):
    with open(paths["conf"] + ".mode", "w") as handle:
        handle.write(mode)


def wait_until(predicate, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


def jobs_since(event_listener, master, since, fun=None):
    events = event_listener.get_events([(master.id, JOB_NEW)], after_time=since)
    return [e for e in events if fun is None or e.data.get("fun") == fun]


def corrected(path):
    return os.path.exists(path) and support.sha256(path) == support.wanted_digest()


@pytest.mark.parametrize("editor", ["in_place", "sed_i"])
def test_outside_edit_is_corrected_with_exactly_one_job(editor, conf, reactor_master, event_listener):
    since = time.time()
    if editor == "in_place":
        support.edit_in_place(conf)
    else:
        subprocess.run(["sed", "-i", "s/debug = false/debug = true/", conf], check=True, timeout=10)
    assert not corrected(conf)
    assert wait_until(lambda: corrected(conf), 30), open(conf).read()
    time.sleep(3)  # a loop would show up as further jobs in these seconds
    jobs = jobs_since(event_listener, reactor_master, since)
    assert [(j.data["fun"], j.data["tgt"], j.data["arg"][0]["mods"]) for j in jobs] == \
        [("state.apply", ["reactor-minion"], "cinder_ha.config")], jobs
    assert jobs[0].data["tgt_type"] == "list"


def test_state_writing_something_new_every_run_does_not_loop(conf, reactor_paths, reactor_master, event_listener):
    set_mode(reactor_paths, "churn")
    since = time.time()
    support.edit_in_place(conf)
    assert wait_until(lambda: "# run " in open(conf).read(), 30)
    time.sleep(5)
    jobs = jobs_since(event_listener, reactor_master, since, fun="state.apply")
    assert len(jobs) == 1, [j.data for j in jobs]


def test_edit_during_a_long_state_run_is_corrected_afterwards(conf, reactor_paths, reactor_master, event_listener):
    set_mode(reactor_paths, "long")
    since = time.time()
    support.edit_in_place(conf)  # -> job 1: writes, then sleeps 5 s
    assert wait_until(lambda: corrected(conf), 30)
    time.sleep(1)  # job 1 is now in its sleep
    support.edit_in_place(conf, "debug = maybe\n")  # -> job 2, queued behind job 1
    time.sleep(2)
    assert not corrected(conf), "corrected too early: the second edit was not made during the run"
    assert wait_until(lambda: corrected(conf), 40), open(conf).read()
    time.sleep(2)
    jobs = jobs_since(event_listener, reactor_master, since, fun="state.apply")
    assert len(jobs) == 2, [j.data for j in jobs]
    assert all(j.data["arg"][0].get("queue") is True for j in jobs)


def test_event_with_foreign_path_or_id_is_ignored(reactor_minion, reactor_master, reactor_cli, event_listener):
    """Events a minion fires by hand with a path that is not cinder.conf start nothing."""
    since = time.time()
    call = reactor_minion.salt_call_cli(timeout=60)
    for path in ("/etc/passwd", "relative/cinder.conf", "/etc/cinder/../shadow/cinder.conf"):
        ret = call.run("event.send", "cinder_ha/conf/changed", json.dumps({"path": path, "digest": "x"}))
        assert ret.returncode == 0, ret
    time.sleep(4)
    assert jobs_since(event_listener, reactor_master, since, fun="state.apply") == []


def test_reconfigure_is_an_operator_command_not_an_event(reactor_paths, reactor_minion, reactor_master, event_listener):
    """Anyone on the bus can send the cinder_ha/reconfigure tag: the reactor ignores it. The
    operator runs the orchestration on the master instead: cinder_ha applied once."""
    marker = reactor_paths["conf"] + ".reconfigured"
    if os.path.exists(marker):
        os.unlink(marker)
    since = time.time()
    run = reactor_master.salt_run_cli(timeout=300)
    ret = run.run("event.send", "cinder_ha/reconfigure")
    assert ret.returncode == 0, ret
    time.sleep(4)
    assert not os.path.exists(marker)
    runs = [e for e in event_listener.get_events([(reactor_master.id, "salt/run/*/new")], after_time=since)
            if e.data.get("fun") == "runner.state.orchestrate"]
    assert runs == [], runs
    ret = run.run("state.orchestrate", "cinder_ha.orch.reconfigure")
    assert ret.returncode == 0, ret
    assert wait_until(lambda: os.path.exists(marker), 60)
    time.sleep(2)
    assert open(marker).read() == "reconfigured\n"  # applied once


# ---------------------------------------------------------------- the alert path (live cluster)


def cluster(*argv, check=True):
    res = subprocess.run(list(argv), capture_output=True, text=True, timeout=60, env=CLUSTER_ENV)
    if check and res.returncode != 0:
        raise AssertionError(f"{argv}: rc {res.returncode}: {res.stdout} {res.stderr}")
    return res


@pytest.fixture
def reactor_cluster(reactor_paths):
    agent = os.path.join(reactor_paths["base"], "cinder_ha_alert")
    shutil.copy(support.PROJECT / "salt/cinder_ha/files/alert/cinder_ha_alert", agent)
    os.chmod(agent, 0o755)
    alert = (f'<alert id="reactor_alert" path="{agent}"><select><select_resources/></select>'
             '<instance_attributes id="reactor_alert-ia"><nvpair id="reactor_alert-ia-rsc" name="cinder_ha_resources" '
             f'value="reactor_dummy"/></instance_attributes><recipient id="reactor_alert-to" value="{reactor_paths["spool"]}"/>'
             '</alert>')
    created_section = cluster("cibadmin", "-Q", "-o", "alerts", check=False).returncode != 0
    if created_section:
        cluster("cibadmin", "-C", "-o", "configuration", "-X", f"<alerts>{alert}</alerts>")
    else:
        cluster("cibadmin", "-C", "-o", "alerts", "-X", alert)
    try:
        with dummy_resource("reactor_dummy"):
            yield "reactor_dummy"
    finally:
        cluster("cibadmin", "-D", "-o", "alerts", "-X", '<alert id="reactor_alert"/>', check=False)
        if created_section:  # only if nobody else added an alert meanwhile
            cluster("cibadmin", "-D", "--xpath", "/cib/configuration/alerts[not(*)]", check=False)


def test_stopping_a_resource_produces_event_and_reactor_job(reactor_cluster, reactor_paths, reactor_minion, reactor_master, reactor_cli,
                                                           event_listener):
    since = time.time()
    cluster("crm", "resource", "stop", reactor_cluster)

    def stop_events():
        events = event_listener.get_events([(reactor_master.id, "cinder_ha/cluster/resource")], after_time=since)
        return [e for e in events if e.data["data"].get("task") == "stop"]
    assert wait_until(stop_events, 60), "no cinder_ha/cluster/resource stop event reached the master"
    stops = stop_events()
    assert len(stops) == 1 and stops[0].data["data"]["rsc"] == reactor_cluster and stops[0].data["id"] == reactor_minion.id

    def recorded():
        ret = reactor_cli.run("cinder_ha_events.recent", "limit=20", minion_tgt=reactor_minion.id)
        return [r for r in ret.data or [] if r.get("rsc") == reactor_cluster and r.get("task") == "stop"]
    assert wait_until(lambda: recorded(), 30), "the reactor's handle_move did not record the stop"
    # the start when reactor_dummy was created was recorded too, with the check of where it runs
    ret = reactor_cli.run("cinder_ha_events.recent", "limit=20", minion_tgt=reactor_minion.id)
    starts = [r for r in ret.data if r.get("rsc") == reactor_cluster and r.get("task") == "start"]
    assert starts and starts[-1]["check"]["location"]["running"] is True, ret.data
    jobs = jobs_since(event_listener, reactor_master, since, fun="cinder_ha_events.handle_move")
    assert jobs and jobs[0].data["tgt"] == [reactor_minion.id]
    assert wait_until(lambda: agent_support.spool_entries(reactor_paths["spool"]) == [], 10), "spooled alerts not removed"


# ---------------------------------------------------------------- with the formula's real cinder_ha.config

T8R = agent_support.SANDBOX / "t8r"
T8R_VIP, T8R_PORT = "127.0.0.118", 18768
T8R_RSC = "reactor_api"
T8R_PID = f"/run/resource-agents/{T8R_RSC}.pid"  # the agent's default, and the restart state's
MONITOR_INTERVAL = 5


@pytest.fixture(scope="module")
def real_paths(sandbox_facts):
    """The sandbox pillar, aimed at a private cinder-api instance t8r (its own cinder.conf,
    127.0.0.118:18768) that the cluster runs as reactor_api, never at /etc/cinder or p_cinder-api."""
    sandbox = sandbox_script("sandbox")
    configs = agent_support.prepare_instance(T8R, T8R_VIP, T8R_PORT)
    # the reactor acts on files named cinder.conf only
    etc = T8R / "etc"
    etc.mkdir(exist_ok=True)
    shutil.chown(etc, "root", "cinder")
    os.chmod(etc, 0o750)
    conf = etc / "cinder.conf"
    shutil.copyfile(configs["noauth"], conf)
    shutil.chown(conf, "root", "cinder")
    os.chmod(conf, 0o640)
    base = tempfile.mkdtemp(prefix="t8r-")
    paths = {"base": base, "conf": str(conf), "pillar": os.path.join(base, "pillar")}
    os.makedirs(paths["pillar"])
    raw = os.path.join(paths["pillar"], "raw.json")
    sandbox.write_sandbox_pillar(raw)
    with open(raw) as handle:
        pillar = json.loads(handle.read().split("\n", 1)[1])
    os.unlink(raw)
    pillar["cinder_ha"]["cinder_conf"]["path"] = paths["conf"]
    pillar["cinder_ha"]["vip"] = {"address": T8R_VIP, "netmask": 32, "nic": "lo"}
    pillar["cinder_ha"]["cinder_api_port"] = T8R_PORT
    pillar["cinder_ha"]["cluster"] = {"primitive_id": T8R_RSC}
    # its own SQLite database (prepare_instance synced it): independent of the sandbox's MariaDB
    pillar["cinder_ha"]["database"] = {"connection": f"sqlite:///{T8R}/state/cinder.db"}
    paths["pillar_data"] = pillar
    write_pillar(paths, pillar)
    with open(os.path.join(paths["pillar"], "top.sls"), "w") as handle:
        handle.write("base:\n  '*':\n    - cinder_ha\n")
    try:
        yield paths
    finally:
        shutil.rmtree(base, ignore_errors=True)


def write_pillar(paths, pillar):
    target = os.path.join(paths["pillar"], "cinder_ha.sls")
    with open(target, "w") as handle:
        json.dump(pillar, handle)
    os.chmod(target, 0o600)


@pytest.fixture(scope="module")
def real_minion(salt_factories, real_paths):
    overrides = support.master_overrides(support.PROJECT / "salt", real_paths["pillar"], allow=["t8r-minion"])
    overrides["file_roots"] = {"base": [str(support.PROJECT / "salt"), str(support.PROJECT)]}
    master = salt_factories.salt_master_daemon("t8r-master", overrides=overrides)
    with master.started(start_timeout=120):
        minion = master.salt_minion_daemon("t8r-minion", overrides=support.minion_overrides(real_paths["conf"]))
        with minion.started(start_timeout=120):
            yield master, minion


@pytest.fixture(scope="module")
def real_api(real_minion, real_paths, sandbox_facts):
    """cinder.conf managed once (before the resource exists: nothing to restart), then the real
    cinder-api on it under the cluster as reactor_api, started by this project's agent."""
    master, minion = real_minion
    if cluster("crmadmin", "-D", "-t", "5s", check=False).returncode != 0:
        pytest.fail("no live cluster: python3 sandbox/sandbox.py up cluster")
    agent_support.install_agent()
    agent_support.delete_primitive(T8R_RSC)
    agent_support.kill_instance(T8R, T8R_PID)
    first = master.salt_cli(timeout=300).run("state.apply", "cinder_ha.config", minion_tgt=minion.id)
    assert isinstance(first.data, dict), first
    assert all(s["result"] is True for s in first.data.values()), first.data
    assert "not on this node" in restart_state({"return": first.data})["comment"]
    time.sleep(1)  # let the state's own write pass the engine
    agent_support.create_primitive(T8R_RSC, {"binary": agent_support.BINARY, "config": real_paths["conf"]},
                                   monitor_interval=f"{MONITOR_INTERVAL}s")
    try:
        agent_support.crm("resource", "start", T8R_RSC)
        assert wait_until(lambda: agent_support.resource_running_on(T8R_RSC)
                          and agent_support.healthcheck(vip=T8R_VIP, port=T8R_PORT) == 200, 120), \
            "the cluster did not start reactor_api"
        # the start's result is logged once the agent returned: settle before tests read the log
        cluster("crm_resource", "--wait", "--timeout", "60s", check=False)
        assert os.path.exists(T8R_PID + ".start")
        yield master, minion
    finally:
        agent_support.delete_primitive(T8R_RSC)
        agent_support.kill_instance(T8R, T8R_PID)


def job_returns(event_listener, master, since):
    return [e.data for e in event_listener.get_events([(master.id, "salt/job/*/ret/*")], after_time=since)
            if e.data.get("fun") == "state.apply"]


def restart_state(ret):
    (state,) = [s for key, s in ret["return"].items() if key.startswith("cinder_ha_|-cinder_ha-config-cinder-api-restarted")]
    return state


def one_reactor_job(event_listener, master, since):
    """The single state.apply the reactor ran for an edit, once it returned (no loop after it)."""
    # the job queues behind any running one and may wait for a busy shared cluster: allow for it
    assert wait_until(lambda: job_returns(event_listener, master, since), 240), "no reactor job returned"
    time.sleep(3)
    rets = job_returns(event_listener, master, since)
    assert len(rets) == 1, rets  # exactly one job, no loop
    return rets[0]


def api_unchanged(pid, offset):
    """reactor_api still the same process, answering, and Pacemaker neither stopped nor started it."""
    assert agent_support.running_pid(T8R_PID) == pid and pid in agent_support.cinder_pids(T8R)
    assert agent_support.healthcheck(vip=T8R_VIP, port=T8R_PORT) == 200
    assert agent_support.resource_ops_since(offset, T8R_RSC) == []


def test_drift_undone_by_the_reactor_never_restarts_cinder_api(real_api, real_paths, event_listener):
    """Issue 12 item 5: the reactor puts a sed -i edit of [database] connection back byte for
    byte; the running cinder-api started with the right file, so it keeps running."""
    master, _minion = real_api
    conf = real_paths["conf"]
    managed = support.sha256(conf)
    pid, offset = agent_support.running_pid(T8R_PID), agent_support.log_offset()
    since = time.time()
    subprocess.run(["sed", "-i", r"s|^connection *= *.*|connection = mysql+pymysql://intruder:x@127.0.0.9/cinder|",
                    conf], check=True, timeout=10)
    assert support.sha256(conf) != managed, "sed did not change the file: no connection line?"
    ret = one_reactor_job(event_listener, master, since)
    assert support.sha256(conf) == managed
    state = restart_state(ret)
    assert state["result"] is True and state["changes"] == {}, state
    assert "no restart needed" in state["comment"] and f"(pid {pid}) already runs" in state["comment"]
    time.sleep(2 * MONITOR_INTERVAL)  # monitors keep passing, nothing restarts it by itself
    api_unchanged(pid, offset)

    # a comment only: one job, no restart either
    since = time.time()
    with open(conf, "a") as handle:
        handle.write("# a note from the operator\n")
    ret = one_reactor_job(event_listener, master, since)
    assert restart_state(ret)["changes"] == {}
    api_unchanged(pid, offset)


def test_a_pillar_change_of_a_managed_key_restarts_exactly_once(real_api, real_paths):
    master, minion = real_api
    cli = master.salt_cli(timeout=300)
    pillar = json.loads(json.dumps(real_paths["pillar_data"]))
    pillar["cinder_ha"]["cinder_conf"]["extra"]["DEFAULT"] = {"debug": True}
    write_pillar(real_paths, pillar)
    try:
        assert cli.run("saltutil.refresh_pillar", "wait=True", minion_tgt=minion.id).returncode == 0
        pid, offset = agent_support.running_pid(T8R_PID), agent_support.log_offset()

        dry = cli.run("state.apply", "cinder_ha.config", "test=True", minion_tgt=minion.id)
        state = restart_state({"return": dry.data})
        assert state["result"] is None and "would be restarted" in state["comment"], state
        assert list(state["changes"]["changed"]) == ["[DEFAULT] debug"]
        api_unchanged(pid, offset)

        ret = cli.run("state.apply", "cinder_ha.config", minion_tgt=minion.id)
        state = restart_state({"return": ret.data})
        assert state["result"] is True and state["changes"]["restarted"] == T8R_RSC, state
        assert state["changes"]["changed"] == {"[DEFAULT] debug": {"old": None, "new": "true"}}
        new_pid = agent_support.running_pid(T8R_PID)
        assert new_pid != pid and agent_support.healthcheck(vip=T8R_VIP, port=T8R_PORT) == 200
        assert agent_support.resource_ops_since(offset, T8R_RSC) == ["stop", "start"]
        with open(T8R_PID + ".conf") as handle:  # the new process started with the new file
            assert "debug = true" in handle.read()

        offset = agent_support.log_offset()
        again = cli.run("state.apply", "cinder_ha.config", minion_tgt=minion.id)
        state = restart_state({"return": again.data})
        assert state["result"] is True and state["changes"] == {}, state
        api_unchanged(new_pid, offset)
    finally:
        write_pillar(real_paths, real_paths["pillar_data"])
        cli.run("saltutil.refresh_pillar", "wait=True", minion_tgt=minion.id)


@contextlib.contextmanager
def dummy_resource(rsc):
    """A Dummy resource on the live cluster (standing in for p_cinder-api), removed afterwards."""
    if cluster("crmadmin", "-D", "-t", "5s", check=False).returncode != 0:
        pytest.fail("no live cluster: python3 sandbox/sandbox.py up cluster")
    try:
        cluster("crm", "configure", "primitive", rsc, "ocf:heartbeat:Dummy", "op", "monitor", "interval=10s")
        cluster("crm_resource", "--wait", "--timeout", "60s", check=False)
        yield rsc
    finally:
        cluster("crm_resource", "-r", rsc, "--meta", "-p", "target-role", "-v", "Stopped", check=False)
        cluster("crm_resource", "--wait", "--timeout", "60s", check=False)
        cluster("cibadmin", "-D", "-o", "resources", "-X", f'<primitive id="{rsc}"/>', check=False)
        cluster("crm_resource", "-C", "-r", rsc, check=False)
