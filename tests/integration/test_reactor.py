"""Issue 8 with a real master (reactor) and minion (cinder_ha_watch engine): drift corrected, no loops.

Own master and minion (module scope): the master's reactor maps cinder_ha/* to
salt://cinder_ha/reactor/dispatch.sls; its file_roots put a test cinder_ha.config first
(tests/reactor_support.py); the minion's engine watches a temp cinder.conf, never /etc/cinder.
The alert test adds its own resource t8_dummy and alert t8_alert to the live cluster and
removes both afterwards.
"""
import contextlib
import json
import os
import pwd
import grp
import shutil
import subprocess
import tempfile
import time

import pytest

from tests.conftest import sandbox_script

from tests import reactor_support as support

CLUSTER_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C"}
JOB_NEW = "salt/job/*/new"


@pytest.fixture(scope="module")
def t8_paths():
    # under /tmp (1777), not pytest's 0700 tmp dirs: hacluster must reach the alert spool
    base = tempfile.mkdtemp(prefix="t8-")
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
def t8_master(salt_factories, t8_paths):
    factory = salt_factories.salt_master_daemon(
        "t8-master", overrides=support.master_overrides(t8_paths["roots"], t8_paths["pillar"],
                                                        cinder_ha_orch_tgt="t8-minion"))
    with factory.started(start_timeout=120):
        yield factory


@pytest.fixture(scope="module")
def t8_minion(t8_master, t8_paths):
    factory = t8_master.salt_minion_daemon(
        "t8-minion", overrides=support.minion_overrides(t8_paths["conf"], t8_paths["spool"]))
    with factory.started(start_timeout=120):
        yield factory


@pytest.fixture(scope="module")
def t8_cli(t8_master):
    return t8_master.salt_cli(timeout=120)


@pytest.fixture
def conf(t8_paths, t8_minion, t8_cli):
    """The watched file, in its managed state, with the test state in `normal` mode."""
    set_mode(t8_paths, "normal")
    ret = t8_cli.run("state.apply", "cinder_ha.config", minion_tgt=t8_minion.id)
    assert ret.returncode == 0, ret
    time.sleep(1)  # let the state's own write pass the engine before counting
    return t8_paths["conf"]


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
def test_outside_edit_is_corrected_with_exactly_one_job(editor, conf, t8_master, event_listener):
    since = time.time()
    if editor == "in_place":
        support.edit_in_place(conf)
    else:
        subprocess.run(["sed", "-i", "s/debug = false/debug = true/", conf], check=True, timeout=10)
    assert not corrected(conf)
    assert wait_until(lambda: corrected(conf), 30), open(conf).read()
    time.sleep(3)  # a loop would show up as further jobs in these seconds
    jobs = jobs_since(event_listener, t8_master, since)
    assert [(j.data["fun"], j.data["tgt"], j.data["arg"][0]["mods"]) for j in jobs] == \
        [("state.apply", ["t8-minion"], "cinder_ha.config")], jobs
    assert jobs[0].data["tgt_type"] == "list"


def test_state_writing_something_new_every_run_does_not_loop(conf, t8_paths, t8_master, event_listener):
    set_mode(t8_paths, "churn")
    since = time.time()
    support.edit_in_place(conf)
    assert wait_until(lambda: "# run " in open(conf).read(), 30)
    time.sleep(5)
    jobs = jobs_since(event_listener, t8_master, since, fun="state.apply")
    assert len(jobs) == 1, [j.data for j in jobs]


def test_edit_during_a_long_state_run_is_corrected_afterwards(conf, t8_paths, t8_master, event_listener):
    set_mode(t8_paths, "long")
    since = time.time()
    support.edit_in_place(conf)  # -> job 1: writes, then sleeps 5 s
    assert wait_until(lambda: corrected(conf), 30)
    time.sleep(1)  # job 1 is now in its sleep
    support.edit_in_place(conf, "debug = maybe\n")  # -> job 2, queued behind job 1
    time.sleep(2)
    assert not corrected(conf), "corrected too early: the second edit was not made during the run"
    assert wait_until(lambda: corrected(conf), 40), open(conf).read()
    time.sleep(2)
    jobs = jobs_since(event_listener, t8_master, since, fun="state.apply")
    assert len(jobs) == 2, [j.data for j in jobs]
    assert all(j.data["arg"][0].get("queue") is True for j in jobs)


def test_event_with_foreign_path_or_id_is_ignored(t8_minion, t8_master, t8_cli, event_listener):
    """Events a minion fires by hand with a path that is not cinder.conf start nothing."""
    since = time.time()
    call = t8_minion.salt_call_cli(timeout=60)
    for path in ("/etc/passwd", "relative/cinder.conf", "/etc/cinder/../shadow/cinder.conf"):
        ret = call.run("event.send", "cinder_ha/conf/changed", json.dumps({"path": path, "digest": "x"}))
        assert ret.returncode == 0, ret
    time.sleep(4)
    assert jobs_since(event_listener, t8_master, since, fun="state.apply") == []


def test_reconfigure_tag_runs_one_orchestration(t8_paths, t8_minion, t8_master, event_listener):
    marker = t8_paths["conf"] + ".reconfigured"
    if os.path.exists(marker):
        os.unlink(marker)
    since = time.time()
    run = t8_master.salt_run_cli(timeout=60)
    ret = run.run("event.send", "cinder_ha/reconfigure")
    assert ret.returncode == 0, ret
    assert wait_until(lambda: os.path.exists(marker), 60)
    time.sleep(3)
    assert open(marker).read() == "reconfigured\n"  # applied once
    runs = [e for e in event_listener.get_events([(t8_master.id, "salt/run/*/new")], after_time=since)
            if e.data.get("fun") == "runner.state.orchestrate"]
    assert len(runs) == 1, runs


# ---------------------------------------------------------------- the alert path (live cluster)


def cluster(*argv, check=True):
    res = subprocess.run(list(argv), capture_output=True, text=True, timeout=60, env=CLUSTER_ENV)
    if check and res.returncode != 0:
        raise AssertionError(f"{argv}: rc {res.returncode}: {res.stdout} {res.stderr}")
    return res


@pytest.fixture
def t8_cluster(t8_paths):
    agent = os.path.join(t8_paths["base"], "cinder_ha_alert")
    shutil.copy(support.PROJECT / "salt/cinder_ha/files/alert/cinder_ha_alert", agent)
    os.chmod(agent, 0o755)
    alert = (f'<alert id="t8_alert" path="{agent}"><select><select_resources/></select>'
             '<instance_attributes id="t8_alert-ia"><nvpair id="t8_alert-ia-rsc" name="cinder_ha_resources" '
             f'value="t8_dummy"/></instance_attributes><recipient id="t8_alert-to" value="{t8_paths["spool"]}"/>'
             '</alert>')
    created_section = cluster("cibadmin", "-Q", "-o", "alerts", check=False).returncode != 0
    if created_section:
        cluster("cibadmin", "-C", "-o", "configuration", "-X", f"<alerts>{alert}</alerts>")
    else:
        cluster("cibadmin", "-C", "-o", "alerts", "-X", alert)
    try:
        with dummy_resource("t8_dummy"):
            yield "t8_dummy"
    finally:
        cluster("cibadmin", "-D", "-o", "alerts", "-X", '<alert id="t8_alert"/>', check=False)
        if created_section:  # only if nobody else added an alert meanwhile
            cluster("cibadmin", "-D", "--xpath", "/cib/configuration/alerts[not(*)]", check=False)


def test_stopping_a_resource_produces_event_and_reactor_job(t8_cluster, t8_paths, t8_minion, t8_master, t8_cli,
                                                           event_listener):
    since = time.time()
    cluster("crm", "resource", "stop", t8_cluster)

    def stop_events():
        events = event_listener.get_events([(t8_master.id, "cinder_ha/cluster/resource")], after_time=since)
        return [e for e in events if e.data["data"].get("task") == "stop"]
    assert wait_until(stop_events, 60), "no cinder_ha/cluster/resource stop event reached the master"
    stops = stop_events()
    assert len(stops) == 1 and stops[0].data["data"]["rsc"] == t8_cluster and stops[0].data["id"] == t8_minion.id

    def recorded():
        ret = t8_cli.run("cinder_ha_events.recent", "limit=20", minion_tgt=t8_minion.id)
        return [r for r in ret.data or [] if r.get("rsc") == t8_cluster and r.get("task") == "stop"]
    assert wait_until(lambda: recorded(), 30), "the reactor's handle_move did not record the stop"
    # the start when t8_dummy was created was recorded too, with the check of where it runs
    ret = t8_cli.run("cinder_ha_events.recent", "limit=20", minion_tgt=t8_minion.id)
    starts = [r for r in ret.data if r.get("rsc") == t8_cluster and r.get("task") == "start"]
    assert starts and starts[-1]["check"]["location"]["running"] is True, ret.data
    jobs = jobs_since(event_listener, t8_master, since, fun="cinder_ha_events.handle_move")
    assert jobs and jobs[0].data["tgt"] == [t8_minion.id]
    assert wait_until(lambda: os.listdir(t8_paths["spool"]) == [], 10), "spooled alerts not removed"


# ---------------------------------------------------------------- with the formula's real cinder_ha.config


@pytest.fixture(scope="module")
def real_paths(sandbox_facts):
    """The sandbox pillar, with cinder.conf moved to a temp file and the restart aimed at t8_api."""
    sandbox = sandbox_script("sandbox")
    base = tempfile.mkdtemp(prefix="t8r-")
    paths = {"base": base, "conf": os.path.join(base, "etc", "cinder.conf"), "pillar": os.path.join(base, "pillar")}
    os.makedirs(os.path.dirname(paths["conf"]))
    os.makedirs(paths["pillar"])
    shutil.copy("/etc/cinder/cinder.conf", paths["conf"])
    raw = os.path.join(paths["pillar"], "raw.json")
    sandbox.write_sandbox_pillar(raw)
    with open(raw) as handle:
        pillar = json.loads(handle.read().split("\n", 1)[1])
    os.unlink(raw)
    pillar["cinder_ha"]["cinder_conf"]["path"] = paths["conf"]
    pillar["cinder_ha"]["cluster"] = {"primitive_id": "t8_api"}
    with open(os.path.join(paths["pillar"], "cinder_ha.sls"), "w") as handle:
        json.dump(pillar, handle)
    os.chmod(os.path.join(paths["pillar"], "cinder_ha.sls"), 0o600)
    with open(os.path.join(paths["pillar"], "top.sls"), "w") as handle:
        handle.write("base:\n  '*':\n    - cinder_ha\n")
    try:
        yield paths
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def real_minion(salt_factories, real_paths):
    overrides = support.master_overrides(support.PROJECT / "salt", real_paths["pillar"])
    overrides["file_roots"] = {"base": [str(support.PROJECT / "salt"), str(support.PROJECT)]}
    master = salt_factories.salt_master_daemon("t8r-master", overrides=overrides)
    with master.started(start_timeout=120):
        minion = master.salt_minion_daemon("t8r-minion", overrides=support.minion_overrides(real_paths["conf"]))
        with minion.started(start_timeout=120):
            yield master, minion


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


def job_returns(event_listener, master, since):
    return [e.data for e in event_listener.get_events([(master.id, "salt/job/*/ret/*")], after_time=since)
            if e.data.get("fun") == "state.apply"]


def restart_state(ret):
    (state,) = [s for key, s in ret["return"].items() if key.startswith("cinder_ha_|-cinder-api restarted")]
    return state


def restart_ran(ret):
    return "onchanges" not in restart_state(ret)["comment"]


def test_real_config_state_restores_the_edit_and_restarts_through_the_cluster(real_minion, real_paths,
                                                                           event_listener):
    master, minion = real_minion
    conf = real_paths["conf"]
    # first apply before t8_api exists: it records the digest (its restart step fails: no resource yet)
    master.salt_cli(timeout=300).run("state.apply", "cinder_ha.config", minion_tgt=minion.id)
    time.sleep(1)
    managed = support.sha256(conf)
    with dummy_resource("t8_api"):
        # an effective change: a managed key set to another value, the sed -i way
        since = time.time()
        subprocess.run(["sed", "-i", r"s/^\(transport_url *= *\).*/\1rabbit:\/\/intruder@127.0.0.1:5672\//", conf],
                       check=True, timeout=10)
        assert support.sha256(conf) != managed, "sed did not change the file: no transport_url line?"
        # the restart waits for the (shared, busy) cluster to settle: allow for it
        assert wait_until(lambda: job_returns(event_listener, master, since), 240)
        time.sleep(3)
        rets = job_returns(event_listener, master, since)
        assert len(rets) == 1, rets  # exactly one job, no loop
        assert support.sha256(conf) == managed
        assert restart_ran(rets[0]), restart_state(rets[0])
        # a comment only: no effective change, so no restart; still one job and no loop
        since = time.time()
        with open(conf, "a") as handle:
            handle.write("# a note from the operator\n")
        assert wait_until(lambda: job_returns(event_listener, master, since), 240)
        time.sleep(3)
        rets = job_returns(event_listener, master, since)
        assert len(rets) == 1 and not restart_ran(rets[0]), rets
