"""`salt '*' state.apply cinder_ha` across three namespace controllers.

A salt-factories master in the root namespace listens on 198.18.0.254 (the nodes' bridge);
each node runs its own salt-minion (n1, n2, n3, pip mode: PYTHONPATH=/srv/cinder-ha/site),
started by `multinode.py up --master-ret-port ...`. The pillar is the sandbox's real
Keystone (through 198.18.0.254:5000), the shared SQLite database and the VIP 198.18.0.100/24
on eth0, with the catalog in a region of its own, removed afterwards.
"""
import json
import secrets
import socket
import time
import urllib.error

import pytest
from tests.multinode.conftest import PROJECT, KeystoneAdmin, bring_up, take_down

REGION = "cinder-ha-multinode"
NODES = ("n1", "n2", "n3")
VIP_URL = "http://198.18.0.100:8776/v3"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pillar_sls(facts):
    base = "/srv/cinder-ha/multinode"
    pillar = {
        "vip": {"address": "198.18.0.100", "netmask": 24, "nic": "eth0"},
        "database": {"connection": f"sqlite:///{base}/cinder.db"},
        "rabbitmq": {"hosts": ["198.18.0.254:5672"], "user": "openstack", "password": secrets.token_urlsafe(12)},
        "keystone": {"auth_url": "http://198.18.0.254:5000/v3", "username": facts["keystone_admin_user"],
                     "password": facts["keystone_admin_password"], "project_name": facts["keystone_admin_project"],
                     "region": REGION},
        # root: the cinder venv's interpreter is under /root (0700) on these machines
        "agent": {"binary": f"{facts['cinder_api']}", "monitor_interval": "5s", "user": "root"},
        "endpoints": {"service_types": ["block-storage"]},
        "cinder_conf": {"extra": {
            "DEFAULT": {"auth_strategy": "noauth", "osapi_volume_workers": 1,
                        "state_path": f"{base}/__ID__/lib/cinder", "log_dir": f"{base}/__ID__/log/cinder"},
            "oslo_concurrency": {"lock_path": f"{base}/__ID__/lib/cinder/lock"},
        }},
    }
    # per-node paths: the pillar renders once per minion
    return "cinder_ha: " + json.dumps(pillar).replace("__ID__", "{{ grains['id'] }}") + "\n"


@pytest.fixture(scope="module")
def keystone_region(sandbox_facts):
    admin = KeystoneAdmin(sandbox_facts).login()
    try:
        admin.request("POST", "/regions", {"region": {"id": REGION}})
    except urllib.error.HTTPError as exc:
        if exc.code != 409:
            raise
    yield admin
    # the formula's endpoints in our region only: services are shared with other tests
    _, body = admin.login().request("GET", f"/endpoints?region_id={REGION}")
    for endpoint in body["endpoints"]:
        admin.request("DELETE", f"/endpoints/{endpoint['id']}")
    admin.request("DELETE", f"/regions/{REGION}")


@pytest.fixture(scope="module")
def salt_cluster(multinode, salt_factories, tmp_path_factory, sandbox_facts, keystone_region):
    pillar_dir = tmp_path_factory.mktemp("multinode-pillar")
    (pillar_dir / "top.sls").write_text("base:\n  '*':\n    - cinder_ha\n")
    (pillar_dir / "cinder_ha.sls").write_text(pillar_sls(sandbox_facts))
    pillar_dir.chmod(0o700)
    ret_port, publish_port = free_port(), free_port()
    take_down(multinode)
    # nodes first: the master binds 198.18.0.254, which exists once the bridge is up
    bring_up(multinode, "--nodes", "3", "--master-ret-port", str(ret_port), "--master-publish-port", str(publish_port))
    try:
        multinode.install_agent()  # the OCF directory is shared by the nodes
        master = salt_factories.salt_master_daemon("cinder-ha-mn-master", overrides={
            "interface": "198.18.0.254", "ret_port": ret_port, "publish_port": publish_port,
            "file_roots": {"base": [str(PROJECT / "salt"), str(PROJECT)]},
            "pillar_roots": {"base": [str(pillar_dir)]},
            "auto_accept": True, "open_mode": True,
            "reactor": [{"cinder_ha/*": ["salt://cinder_ha/reactor/dispatch.sls"]}],
        })
        with master.started(start_timeout=120):
            cli = master.salt_cli(timeout=600)
            deadline = time.monotonic() + 180
            answered = set()
            while time.monotonic() < deadline and answered != set(NODES):
                ret = cli.run("--static", "test.ping", minion_tgt="*", _timeout=20)
                answered = {k for k, v in (ret.data or {}).items() if v is True} if isinstance(ret.data, dict) else set()
                time.sleep(1)
            assert answered == set(NODES), f"minions answering: {answered}"
            yield multinode, cli
    finally:
        take_down(multinode)


def states_of(ret):
    """{minion: {state id: state ret}} from a `salt '*' state.apply` run."""
    assert isinstance(ret.data, dict), ret
    return {minion: data for minion, data in ret.data.items()}


def test_state_apply_converges_on_three_controllers_then_is_idempotent(salt_cluster, keystone_region, sandbox_facts):
    mn, cli = salt_cluster
    ret = cli.run("--static", "state.apply", "cinder_ha", minion_tgt="*", _timeout=600)
    runs = states_of(ret)
    assert set(runs) == set(NODES), ret
    for minion, states in runs.items():
        assert isinstance(states, dict), f"{minion}: {states}"
        failed = {k: v["comment"] for k, v in states.items() if v["result"] is not True}
        assert not failed, f"{minion}: {failed}"
    # the cluster-wide objects are written by exactly one controller
    writers = [m for m, states in runs.items() for k, v in states.items() if k.startswith("crm_") and "configured" in k
               and v["changes"]]
    assert len(writers) == 1, writers
    catalog = [m for m, states in runs.items() for k, v in states.items() if k.startswith("cinder_keystone_")
               and "endpoints" in k and v["changes"]]
    assert catalog == writers, catalog
    # the secret never shows in the output
    assert sandbox_facts["keystone_admin_password"] not in json.dumps(ret.data)

    via = mn.running_node()
    for resource in (mn.PRIMITIVE_ID, mn.VIP_ID):
        xml = mn.node_exec(via, ["cibadmin", "-Q", "--xpath", f"//primitive[@id='{resource}']"]).stdout
        assert xml.count("<primitive ") == 1, xml
    for node in NODES:
        conf = (mn.BASE + f"/{node}/etc/cinder/cinder.conf")
        text = open(conf).read()
        assert "sqlite:////srv/cinder-ha/multinode/cinder.db" in text
        assert f"/srv/cinder-ha/multinode/{node}/lib/cinder" in text
    _, body = keystone_region.login().request("GET", f"/endpoints?region_id={REGION}")
    urls = sorted((e["interface"], e["url"]) for e in body["endpoints"])
    assert [u for _, u in urls] == [VIP_URL] * 3, urls
    mn.wait_answering(timeout=60)

    again = states_of(cli.run("--static", "state.apply", "cinder_ha", minion_tgt="*", _timeout=600))
    for minion, states in again.items():
        changed = {k: v["changes"] for k, v in states.items() if v["changes"] or v["result"] is not True}
        assert not changed, f"{minion}: second run changed {changed}"


def test_standby_move_is_recorded_through_the_alert_and_reactor_path(salt_cluster):
    """crm node standby of the active node: the move is clean, and each node's alert agent ->
    spool -> cinder_ha_watch engine -> reactor -> cinder_ha_events.handle_move records it on the
    node it happened on, with the post-start check (where it runs, does the catalog URL answer)."""
    mn, cli = salt_cluster
    mn.wait_answering(timeout=60)
    old = mn.locate()
    assert old in NODES
    started = time.time()
    mn.set_standby(old, True)
    try:
        deadline = time.monotonic() + 60
        new = None
        while time.monotonic() < deadline and new in (None, old):
            new = mn.locate(via=[n for n in NODES if n != old][0])
            time.sleep(0.5)
        assert new not in (None, old), "p_cinder-api did not move off the standby node"
        mn.wait_answering(timeout=60)

        def recorded(node, task):
            ret = cli.run("cinder_ha_events.recent", "50", minion_tgt=node, _timeout=30)
            for entry in ret.data or []:
                if (entry.get("rsc") == mn.PRIMITIVE_ID and entry.get("task") == task and entry.get("node") == node
                        and entry.get("recorded", "") >= time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(started - 1))):
                    return entry
            return None

        deadline = time.monotonic() + 60
        start = stop = None
        while time.monotonic() < deadline and not (start and stop and start.get("check")):
            start, stop = recorded(new, "start"), recorded(old, "stop")
            time.sleep(1)
        assert stop, f"no stop of {mn.PRIMITIVE_ID} recorded on {old}"
        assert start, f"no start of {mn.PRIMITIVE_ID} recorded on {new}"
        assert start["check"]["location"]["running"] is True, start["check"]
    finally:
        mn.set_standby(old, False)
        mn.wait_settled(timeout=60)
