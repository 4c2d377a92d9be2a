"""Three controller nodes in namespaces (sandbox/multinode.py), built by the formula alone.

Every test in this folder gets the `multinode` marker from tests/conftest.py. The tier needs
root and the sandbox's services (MariaDB, RabbitMQ, Keystone on loopback, the cinder venv);
the nodes reach them through the relay on 198.18.0.254.

One cluster serves the whole tier (session scope): three nodes (corosync token 1000), a
salt-factories master on 198.18.0.254 and a salt-minion per node. Nothing declares a cluster
object or a catalog entry by hand: `salt '*' state.apply cinder_ha` with
multinode.formula_pillar() builds the primitives, constraints, alert, lrm secrets (authenticated
monitor on all three nodes) and the catalog in region cinder-ha-multinode. test_build.py goes
first and applies the formula the way a partial rollout would; `built_cluster` applies it for
any test run on its own.
"""
import os
import pathlib
import re
import socket
import subprocess
import time
import uuid
import xml.etree.ElementTree as ET

import pytest

from tests.conftest import sandbox_script

PROJECT = pathlib.Path(__file__).resolve().parents[2]
NODES = ("n1", "n2", "n3")


def load_multinode():
    return sandbox_script("multinode")


@pytest.fixture(scope="session")
def multinode():
    if os.geteuid() != 0:
        pytest.fail("the multinode tier runs as root (namespaces, corosync, pacemaker)")
    return load_multinode()


def bring_up(multinode, *extra):
    """`multinode.py up` in a subprocess (its launcher children must not be ours to reap)."""
    argv = [multinode.sys.executable, str(PROJECT / "sandbox" / "multinode.py"), "up", *extra]
    res = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr


def take_down(multinode):
    argv = [multinode.sys.executable, str(PROJECT / "sandbox" / "multinode.py"), "down"]
    res = subprocess.run(argv, capture_output=True, text=True, timeout=180)
    assert res.returncode == 0, res.stderr


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def by_minion(ret, targets):
    """{minion: return}: salt-factories unwraps the return of a single-minion target."""
    if len(targets) == 1 and not (isinstance(ret.data, dict) and set(ret.data) == set(targets)):
        return {targets[0]: ret.data}
    assert isinstance(ret.data, dict), ret
    return ret.data


class FormulaCluster:
    """The three nodes, their master's CLI and what the tests ask of them."""

    def __init__(self, mn, cli, facts, pillar_dir=None):
        self.mn, self.cli, self.facts = mn, cli, facts
        self.built = False
        self.sandbox = mn.load_sandbox()
        self.pillar_dir = pillar_dir
        self.pillar = {"monitor": "5s", "stickiness": 100, "mode": "active_passive", "options": {}}

    def set_pillar(self, **changes):
        """A new pillar on the master (multinode.formula_pillar: cluster:mode, cinder.conf
        options), refreshed on every minion; the next apply uses it."""
        self.pillar.update(changes)
        self.wait_minions(list(NODES))  # a minion still reconnecting would keep its old pillar
        self.mn.write_pillar(str(self.pillar_dir), self.mn.formula_pillar(self.facts, **self.pillar))
        self.cli.run("--timeout=90", "saltutil.refresh_pillar", "wait=True", minion_tgt="*")

    # ------------------------------------------------------------ salt

    def apply(self, *targets, sls="cinder_ha"):
        """state.apply `sls` (cinder_ha) on `targets` (default '*'); {minion: {state id: ret}};
        every state must succeed."""
        flags = ["-L"] if targets else []
        # A minion reconnecting after a fault test (seen: n3, 15 s after a partition healed)
        # never gets a job published meanwhile, and the CLI waited its 900 s for it.
        self.wait_minions(list(targets) or list(NODES))
        ret = self.cli.run(*flags, "--static", "state.apply", sls, minion_tgt=",".join(targets) or "*",
                           _timeout=900)
        data = by_minion(ret, targets)
        for minion, states in data.items():
            assert isinstance(states, dict), f"{minion}: {states}"
            failed = {k: v["comment"] for k, v in states.items() if v["result"] is not True}
            assert not failed, f"{minion}: {failed}"
        return data

    def wait_minions(self, names, timeout=120):
        deadline = time.monotonic() + timeout
        answered = set()
        while time.monotonic() < deadline and not set(names) <= answered:
            # --timeout: the CLI's own (900 s, for state.apply) would wait that long for a minion that
            # is down; a ping that short polls again instead
            ret = self.cli.run("-L", "--static", "--timeout=10", "test.ping", minion_tgt=",".join(names))
            try:
                answered = {k for k, v in by_minion(ret, names).items() if v is True}
            except AssertionError:
                answered = set()
            time.sleep(1)
        assert set(names) <= answered, f"minions answering: {answered}"

    def nodes_running(self):
        """Start again a node a failed test left down, and wait for its minion: a salt call to
        '*' otherwise waits the CLI's whole timeout for it, test after test."""
        started = self.mn.ensure_running(NODES)
        if started:
            self.wait_minions(started)

    def back_to_active_passive(self):
        """The guide's mode and no extra option again (the pillar the next module expects),
        whatever a module of another mode left."""
        self.nodes_running()
        if self.pillar["mode"] != "active_passive" or self.pillar["options"]:
            self.set_pillar(mode="active_passive", options={})
            self.apply()
        self.mn.wait_settled(timeout=120)
        self.mn.wait_answering(timeout=120)

    def ensure_built(self):
        self.nodes_running()
        if not self.built:
            self.apply()
            self.built = True
        self.mn.wait_answering(timeout=120)

    # ------------------------------------------------------------ cluster

    def crm_mon(self, via):
        return ET.fromstring(self.mn.node_exec(via, ["crm_mon", "-1", "--output-as=xml"], check=True).stdout)

    def failures(self, via):
        """[(node, op_key, exitstatus, exitreason)] of every failed action the cluster shows."""
        return [(f.get("node"), f.get("op_key"), f.get("exitstatus"), f.get("exitreason", ""))
                for f in self.crm_mon(via).iter("failure")]

    def secret_failures(self, via):
        """Failed actions a missing or mismatched lrm secret causes: 'Unable to load CIB secrets'
        is reported as an invalid parameter (rc 2) or not configured (rc 6)."""
        return [f for f in self.failures(via)
                if "secret" in f[3].lower() or f[2] in ("invalid parameter", "not configured", "2", "6")]

    def operations(self, node, via, rsc=None):
        """The operations the cluster ran for `rsc` on `node` (probes included)."""
        rsc = rsc or self.mn.PRIMITIVE_ID
        out = self.mn.node_exec(via, ["crm_resource", "--list-operations", "-r", rsc], timeout=20).stdout
        return [line for line in out.splitlines() if f"node={node}" in line]

    def score(self, node, via, rsc=None):
        """Pacemaker's allocation score of `rsc` on `node` (crm_simulate on the live CIB)."""
        rsc = rsc or self.mn.PRIMITIVE_ID
        out = self.mn.node_exec(via, ["crm_simulate", "-Ls"], timeout=30, check=True).stdout
        scores = re.findall(rf"{re.escape(rsc)} allocation score on {node}: (\S+)", out)
        assert scores, out
        return scores[-1]

    def secret_file(self, node):
        return pathlib.Path(self.mn.node_dir(node)) / "lib/pacemaker/lrm/secrets" / self.mn.PRIMITIVE_ID / "os_password"

    # ------------------------------------------------------------ data and notifications

    def client(self):
        return BlockStorage(self.facts, self.mn.REGION)

    def notifications(self):
        """Messages cinder published to the broker's notifications.info queue (the nodes' vhost)."""
        out = self.sandbox.rabbitmqctl("list_queues", "-p", self.mn.DEPLOYMENT, "name", "messages",
                                       "--quiet", "--no-table-headers").stdout
        for line in out.splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[0] == "notifications.info":
                return int(parts[1])
        return 0

    def wait_notifications_above(self, count, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            now = self.notifications()
            if now > count:
                return now
            time.sleep(0.3)
        raise AssertionError(f"no new notification on the broker within {timeout}s (still {count})")

    def db_scalar(self, sql):
        return self.sandbox.mariadb_sql(sql).strip()


class BlockStorage:
    """A client that knows only Keystone: the block-storage URL comes from the catalog."""

    def __init__(self, facts, region):
        import keystoneauth1.session
        from keystoneauth1.identity import v3

        auth = v3.Password(auth_url=facts["keystone_url"], username=facts["keystone_admin_user"],
                           password=facts["keystone_admin_password"], project_name=facts["keystone_admin_project"],
                           user_domain_name="Default", project_domain_name="Default")
        self.session = keystoneauth1.session.Session(auth=auth)
        self.url = self.session.get_endpoint(service_type="block-storage", interface="public", region_name=region)
        self.project = self.session.get_project_id()

    def create_type(self, prefix):
        """A volume type (needs the database; cinder notifies volume_type.create)."""
        name = f"{prefix}-{uuid.uuid4().hex[:8]}"
        resp = self.session.post(f"{self.url}/{self.project}/types", json={"volume_type": {"name": name}},
                                 timeout=30, raise_exc=False)
        assert resp.status_code == 200, (resp.status_code, resp.text[:500])
        return resp.json()["volume_type"]

    def get_type(self, type_id):
        resp = self.session.get(f"{self.url}/{self.project}/types/{type_id}", timeout=30, raise_exc=False)
        assert resp.status_code == 200, (resp.status_code, resp.text[:500])
        return resp.json()["volume_type"]


@pytest.fixture(scope="session")
def formula_cluster(multinode, salt_factories, tmp_path_factory, sandbox_facts):
    """Three nodes with minions and a master; the formula not applied yet (test_build does)."""
    pillar_dir = tmp_path_factory.mktemp("multinode-pillar")
    multinode.write_pillar(str(pillar_dir), multinode.formula_pillar(sandbox_facts, monitor="5s", stickiness=100))
    ret_port, publish_port = free_port(), free_port()
    take_down(multinode)
    multinode.region_absent(sandbox_facts)  # an earlier run's leftovers
    multinode.region_present(sandbox_facts)
    # nodes first: the master binds 198.18.0.254, which exists once the bridge is up
    bring_up(multinode, "--nodes", "3", "--token", "1000", "--master-ret-port", str(ret_port),
             "--master-publish-port", str(publish_port))
    try:
        master = salt_factories.salt_master_daemon(
            "cinder-ha-mn-master", overrides=multinode.master_config(ret_port, publish_port, str(pillar_dir)))
        with master.started(start_timeout=120):
            cluster = FormulaCluster(multinode, master.salt_cli(timeout=900), sandbox_facts, pillar_dir)
            cluster.wait_minions(NODES, timeout=180)
            yield cluster
    finally:
        take_down(multinode)
        multinode.region_absent(sandbox_facts)


@pytest.fixture
def built_cluster(formula_cluster):
    """The formula applied on all three nodes and the API answering on the VIP."""
    formula_cluster.ensure_built()
    return formula_cluster


@pytest.fixture(scope="session")
def salt_factories_config():
    # salt-factories' log server binds 0.0.0.0 by default: loopback only here.
    return {"log_server_host": "127.0.0.1"}
