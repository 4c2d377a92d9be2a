"""Block Storage end to end on the live sandbox: cinder-scheduler (a clone) and cinder-volume
(active_passive, backend_host) under the cluster, on the real Ceph, through the real
cinder-api found in Keystone's catalog; faults of the services; the volume pillar refused by
cinder's own Python before anything changes.

Runs in file order on the sandbox's real names (p_cinder-volume, cl_p_cinder-scheduler,
/etc/cinder/cinder.conf). Under the live lock: flock /tmp/cinder-ha-live.lock scripts/test
tests/integration/test_volume.py
"""
import hashlib
import json
import os
import pathlib
import re
import signal
import socket
import subprocess
import time

import pytest

from tests.conftest import PROJECT, SANDBOX, cluster_env, sandbox_script
from tests.support.crm import crash_reports
from tests.support.formula import cib_epoch, state_results
from tests.support.volumes import Volumes, alive, pid_of, rbd_images

VOLUME_RSC, SCHEDULER_RSC = "p_cinder-volume", "p_cinder-scheduler"
BACKEND_ROW = "cinder-ha-volume@ceph"


def apply(salt_cli, minion, *args, timeout=600):
    return state_results(salt_cli.run("state.apply", "cinder_ha", *args, minion_tgt=minion, _timeout=timeout))


@pytest.fixture(scope="module")
def built(salt_cli, salt_minion, sandbox_facts):
    results = apply(salt_cli, salt_minion.id)
    failed = {k: v["comment"] for k, v in results.items() if v["result"] is not True}
    assert not failed, failed
    wait_started(VOLUME_RSC)
    wait_started(SCHEDULER_RSC)
    return sandbox_facts


@pytest.fixture(scope="module")
def api(built):
    return Volumes(built)


def locate(rsc):
    out = subprocess.run(["crm_resource", "--locate", "--resource", rsc], capture_output=True, text=True,
                         env=cluster_env(), timeout=30).stdout
    return "is running on" in out


def wait_started(rsc, other_than=None, timeout=150):
    """The resource runs under a pid (not ``other_than``) and the cluster has settled."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pid = pid_of(rsc)
        if pid and pid != other_than and alive(pid) and locate(rsc):
            done = subprocess.run(["crm_resource", "--wait", "--timeout", "60s"], capture_output=True,
                                  env=cluster_env(), timeout=90)
            if done.returncode == 0:
                return pid
        time.sleep(0.5)
    raise AssertionError(f"{rsc} did not run again under a new pid within {timeout}s")


def services_rows(salt_cli, minion):
    ret = salt_cli.run("cinder_volume.services", minion_tgt=minion, _timeout=120)
    assert isinstance(ret.data, list), ret.stdout + ret.stderr
    return ret.data


def rbd_in_pool(facts):
    return rbd_images(facts["ceph_admin_conf"], facts["ceph_admin_keyring"], facts.get("rbd_pool", "volumes"))


def test_demo_client_creates_a_volume_and_a_snapshot_on_ceph(built):
    """The README's catalog client: a client that knows only Keystone gets a 1 GiB volume and a
    snapshot `available`, sees their RBD images, and deletes both."""
    proc = subprocess.run([str(SANDBOX / "venv" / "salt" / "bin" / "python"),
                           str(PROJECT / "scripts" / "catalog_client.py"), "--facts", str(SANDBOX / "sandbox.json")],
                          capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "(1 GiB) -> available" in proc.stdout
    assert re.search(r"RBD image volume-\S+: in the pool, snapshots \['snapshot-", proc.stdout), proc.stdout
    assert "snapshot and volume deleted: yes" in proc.stdout


def test_one_volume_row_per_backend_under_backend_host(built, salt_cli, salt_minion):
    rows = services_rows(salt_cli, salt_minion.id)
    volume_rows = [r for r in rows if r["binary"] == "cinder-volume"]
    scheduler_rows = [r for r in rows if r["binary"] == "cinder-scheduler"]
    assert [r["host"] for r in volume_rows if r["up"]] == [BACKEND_ROW], rows
    assert [r["host"] for r in scheduler_rows if r["up"]] == [socket.gethostname()], rows


def test_kill_9_of_cinder_volume_a_create_issued_during_the_fault_ends_available(built, api, salt_cli,
                                                                                 salt_minion):
    """kill -9 of cinder-volume's main process: the agent's watcher kills the orphaned backend
    worker at once, before a cast can reach it (it used to take the create and be cut off
    half-way: the volume ended error); the cluster starts a new group; a volume created before
    the fault is extended and deleted after it; a create issued right after the kill waits in
    RabbitMQ and ends available with its RBD image."""
    before = api.create("before-kill")
    assert api.wait(before) == "available"
    old = pid_of(VOLUME_RSC)
    workers = subprocess.run(["pgrep", "-g", str(old)], capture_output=True, text=True).stdout.split()
    assert len(workers) >= 2, f"cinder-volume should run a worker per backend: {workers}"
    killed = time.time()
    os.kill(old, signal.SIGKILL)
    during = api.create("during-kill")
    new = wait_started(VOLUME_RSC, other_than=old)
    assert new != old
    # the watcher told the cluster at once, instead of waiting for the next monitor
    assert crash_reports(VOLUME_RSC, killed), f"no crash report; new process {time.time() - killed:.1f} s after the kill"
    assert api.wait(during, timeout=240) == "available"
    assert f"volume-{during}" in rbd_in_pool(built)
    # the orphaned worker of the killed process is gone: one cinder-volume group only
    assert not [p for p in workers if alive(int(p)) and int(p) != new]
    assert api.extend(before, 2) == "available"
    assert api.show(before)["size"] == 2
    assert api.delete(before) and api.delete(during)
    rows = [r for r in services_rows(salt_cli, salt_minion.id) if r["binary"] == "cinder-volume"]
    assert [r["host"] for r in rows] == [BACKEND_ROW], rows


def test_a_hung_cinder_volume_is_found_by_its_heartbeat_and_restarted(built, api):
    """SIGSTOP keeps the pid alive: only the heartbeat in cinder's services table shows the hang.
    The monitor fails it, the cluster restarts it, and a create issued during the hang ends
    available."""
    old = pid_of(VOLUME_RSC)
    os.killpg(old, signal.SIGSTOP)
    try:
        during = api.create("during-hang")
        new = wait_started(VOLUME_RSC, other_than=old, timeout=180)
    finally:
        if alive(old):
            os.killpg(old, signal.SIGCONT)
    assert new != old and not alive(old)
    assert api.wait(during, timeout=240) == "available"
    log = pathlib.Path("/var/log/pacemaker/pacemaker.log").read_text(errors="replace")
    assert "heartbeat is older than" in log
    assert api.delete(during)
    subprocess.run(["crm_resource", "--cleanup", "--resource", VOLUME_RSC], env=cluster_env(), capture_output=True,
                   timeout=60)


def test_kill_9_of_the_scheduler_then_no_create_fails(built, api):
    """cinder-scheduler is stateless: creates cast while it restarts wait in RabbitMQ."""
    old = pid_of(SCHEDULER_RSC)
    os.killpg(old, signal.SIGKILL)
    ids = [api.create(f"during-scheduler-kill-{n}") for n in range(3)]
    wait_started(SCHEDULER_RSC, other_than=old)
    outcomes = [api.wait(volume_id, timeout=240) for volume_id in ids]
    assert outcomes == ["available"] * 3
    for volume_id in ids:
        assert api.delete(volume_id)


def test_a_new_scheduler_waiting_for_the_volume_services_is_not_taken_for_hung(built, api):
    """A new cinder-scheduler heartbeats only once the volume services answered its request for
    capabilities (up to scheduler_driver_init_wait_time, 60 s). Started while cinder-volume is
    away, it stays silent beyond heartbeat_timeout (30 s): its monitor must not kill it (seen on
    a first apply: killed at 33 s, and the create it held was set to error at its next start)."""
    run = {"env": cluster_env(), "capture_output": True, "timeout": 60}
    subprocess.run(["crm_resource", "--resource", VOLUME_RSC, "--meta", "--set-parameter", "target-role",
                    "--parameter-value", "Stopped"], check=True, **run)
    try:
        subprocess.run(["crm_resource", "--wait", "--timeout", "50s"], **run)
        assert pid_of(VOLUME_RSC) is None or not alive(pid_of(VOLUME_RSC))
        old = pid_of(SCHEDULER_RSC)
        os.killpg(old, signal.SIGKILL)
        new = wait_started(SCHEDULER_RSC, other_than=old)
        offset = pathlib.Path("/var/log/pacemaker/pacemaker.log").stat().st_size
        time.sleep(45)
        with open("/var/log/pacemaker/pacemaker.log", "rb") as log:
            log.seek(offset)
            failed = [line for line in log.read().decode(errors="replace").splitlines()
                      if "p_cinder-scheduler" in line and "heartbeat is older" in line]
        assert pid_of(SCHEDULER_RSC) == new and alive(new) and not failed, failed
    finally:
        subprocess.run(["crm_resource", "--resource", VOLUME_RSC, "--meta", "--delete-parameter", "target-role"],
                       **run)
    wait_started(VOLUME_RSC)
    # the capabilities request of this scheduler went unanswered: a scheduler started now gets
    # them at once (the next tests create volumes)
    os.killpg(new, signal.SIGKILL)
    wait_started(SCHEDULER_RSC, other_than=new)
    subprocess.run(["crm_resource", "--cleanup", "--resource", SCHEDULER_RSC], **run)
    during = api.create("after-scheduler-start")
    assert api.wait(during, timeout=240) == "available"
    assert api.delete(during)


def test_a_backend_option_change_restarts_cinder_volume_only(built, api, salt_cli, salt_minion):
    """Only cinder-volume reads the backend sections: an apply that changes a backend option
    restarts it, and neither cinder-api (an outage in active_passive) nor cinder-scheduler."""
    volume = sandbox_script("sandbox").volume_pillar(built)  # the sandbox pillar's, as it writes it
    assert volume["backends"]["ceph"]["options"]["rados_connect_timeout"] != 7
    volume["backends"]["ceph"]["options"]["rados_connect_timeout"] = 7
    pids = {rsc: pid_of(rsc) for rsc in ("p_cinder-api", SCHEDULER_RSC, VOLUME_RSC)}
    try:
        results = apply(salt_cli, salt_minion.id, f"pillar={json.dumps({'cinder_ha': {'volume': volume}})}")
        assert all(v["result"] is True for v in results.values())
        assert "rados_connect_timeout = 7" in pathlib.Path(built["cinder_conf"]).read_text()
        wait_started(VOLUME_RSC, other_than=pids[VOLUME_RSC])
        assert pid_of("p_cinder-api") == pids["p_cinder-api"] and pid_of(SCHEDULER_RSC) == pids[SCHEDULER_RSC]
    finally:
        apply(salt_cli, salt_minion.id)  # back to the sandbox's pillar
    wait_started(VOLUME_RSC)
    assert pid_of("p_cinder-api") == pids["p_cinder-api"] and pid_of(SCHEDULER_RSC) == pids[SCHEDULER_RSC]
    vol = api.create("after-backend-option-change")
    assert api.wait(vol) == "available"
    assert api.delete(vol)


def snapshot(facts):
    conf = pathlib.Path(facts["cinder_conf"]).read_bytes()
    return {"epoch": cib_epoch(), "conf": hashlib.sha256(conf).hexdigest()}


def refused(salt_cli, minion, facts, override):
    before = snapshot(facts)
    results = apply(salt_cli, minion, f"pillar={json.dumps({'cinder_ha': override})}")
    failed = {k: v["comment"] for k, v in results.items() if v["result"] is False}
    assert snapshot(facts) == before, "a refused pillar changed the CIB or cinder.conf"
    return "\n".join(failed.values())


def test_active_active_with_a_driver_without_active_active_support_is_refused(built, salt_cli, salt_minion):
    why = refused(salt_cli, salt_minion.id, built, {"volume": {
        "mode": "active_active", "cluster": "cinder-ha-cluster",
        "coordination": {"backend_url": built["coordination_backend_url"]},
        "backends": {"lvm": {"driver": "cinder.volume.drivers.lvm.LVMVolumeDriver",
                             "options": {"volume_group": "cinder-volumes"}}}}})
    assert "active_active is refused for backend lvm" in why
    assert "cinder.volume.drivers.lvm.LVMVolumeDriver does not declare SUPPORTS_ACTIVE_ACTIVE" in why


def test_a_cluster_name_equal_to_a_host_is_refused(built, salt_cli, salt_minion):
    # this node's own host (cinder's default [DEFAULT] host is the machine's name)
    why = refused(salt_cli, salt_minion.id, built, {"volume": {
        "mode": "active_active", "cluster": socket.gethostname(),
        "coordination": {"backend_url": built["coordination_backend_url"]}}})
    assert "volume:cluster" in why and "equals a host name" in why
    # and a backend_host in active_active is a pillar error, before any state
    why = refused(salt_cli, salt_minion.id, built, {"volume": {"mode": "active_active", "cluster": "c1",
                                                               "backend_host": "c1"}})
    assert "volume:backend_host: only with volume:mode active_passive" in why


def test_a_coordination_url_with_nothing_listening_is_refused(built, salt_cli, salt_minion):
    with socket.socket() as probe:  # a closed port on loopback
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    why = refused(salt_cli, salt_minion.id, built, {"volume": {
        "mode": "active_active", "cluster": "cinder-ha-cluster",
        "coordination": {"backend_url": f"etcd3+http://127.0.0.1:{port}"}}})
    assert "volume:coordination:backend_url: the lock manager at etcd3+http://127.0.0.1" in why
    assert "does not answer" in why


def test_the_old_guides_shared_host_is_migrated_with_its_volumes(built, api, salt_cli, salt_minion):
    """A cinder.conf with the old HA guide's shared `[DEFAULT] host` (and no backend_host): a
    volume created under it is moved to backend_host@backend by the next apply (with a warning),
    the old service row is removed, and the volume is extended and deleted afterwards."""
    for volume_id, _name, status in api.listing():  # what an earlier failed run left behind
        if status not in ("available", "error"):
            api.reset_state(volume_id)
        api.delete(volume_id)
    conf = pathlib.Path(built["cinder_conf"])
    text = conf.read_text()
    legacy = text.replace("backend_host = cinder-ha-volume\n", "").replace("[DEFAULT]\n", "[DEFAULT]\nhost = legacy-shared\n", 1)
    assert "host = legacy-shared" in legacy and "backend_host" not in legacy
    conf.write_text(legacy)
    subprocess.run(["crm_resource", "--restart", "--resource", VOLUME_RSC, "--timeout=120s"], env=cluster_env(),
                   capture_output=True, timeout=180, check=True)
    wait_started(VOLUME_RSC)
    # the old guide's setup never had the backend_host row: without it the scheduler cannot pick
    # a host that no process serves any more (a rename strands creates, which is why the
    # formula moves volumes and rows itself)
    manage = pathlib.Path(built["cinder_api"]).with_name("cinder-manage")
    subprocess.run([str(manage), "--config-file", str(conf), "service", "remove", "cinder-volume", BACKEND_ROW],
                   capture_output=True, timeout=120, check=True)
    rows = [r["host"] for r in services_rows(salt_cli, salt_minion.id) if r["binary"] == "cinder-volume" and r["up"]]
    assert rows == ["legacy-shared@ceph"], rows
    old_volume = api.create("under-the-shared-host")
    assert api.wait(old_volume) == "available"
    assert api.show(old_volume)["os-vol-host-attr:host"] == "legacy-shared@ceph#ceph"

    results = apply(salt_cli, salt_minion.id)
    failed = {k: v["comment"] for k, v in results.items() if v["result"] is not True}
    assert not failed, failed
    recorded = next(v for k, v in results.items() if "placement_recorded" in k)
    assert any("legacy-shared" in w and "highly discouraged" in w for w in recorded.get("warnings", [])), recorded
    moved = next(v for k, v in results.items() if "placement_moved" in k)
    # (an earlier failed run may have left a volume under it too)
    [move] = moved["changes"]["moved"]
    assert move.startswith("legacy-shared@ceph -> cinder-ha-volume@ceph ("), moved
    assert moved["changes"]["removed"] == ["cinder-volume legacy-shared@ceph"], moved
    assert "host = legacy-shared" not in conf.read_text()
    wait_started(VOLUME_RSC)
    assert api.show(old_volume)["os-vol-host-attr:host"] == "cinder-ha-volume@ceph#ceph"
    assert api.extend(old_volume, 2) == "available"
    assert api.delete(old_volume)
    hosts = [r["host"] for r in services_rows(salt_cli, salt_minion.id) if r["binary"] == "cinder-volume"]
    assert hosts == [BACKEND_ROW], hosts
