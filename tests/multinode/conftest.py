"""Three controller nodes in namespaces (sandbox/multinode.py), for the multinode tier.

Every test in this folder gets the `multinode` marker from tests/conftest.py. The tier needs
root, the sandbox's Keystone (127.0.0.1:5000) and the cinder venv; each module brings its own
cluster up and takes it down (sandbox/multinode.py down) even when a test fails.
"""
import json
import os
import pathlib
import subprocess
import urllib.request

import pytest

from tests.conftest import sandbox_script

PROJECT = pathlib.Path(__file__).resolve().parents[2]


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
    res = subprocess.run(argv, capture_output=True, text=True, timeout=180)
    assert res.returncode == 0, res.stderr


def take_down(multinode):
    argv = [multinode.sys.executable, str(PROJECT / "sandbox" / "multinode.py"), "down"]
    res = subprocess.run(argv, capture_output=True, text=True, timeout=180)
    assert res.returncode == 0, res.stderr


@pytest.fixture(scope="module")
def failover_cluster(multinode):
    """Three nodes, the guide's VIP + cinder-api primitives (real agent, monitor 5s), answering."""
    take_down(multinode)
    bring_up(multinode, "--nodes", "3")
    try:
        multinode.configure_resources(monitor="5s")
        multinode.wait_answering(timeout=90)
        yield multinode
    finally:
        take_down(multinode)


class KeystoneAdmin:
    """Just enough of the Keystone v3 API over plain HTTP to add and remove a test endpoint."""

    def __init__(self, facts):
        self.url = facts["keystone_url"].rstrip("/")
        self.facts = facts
        self.token = None

    def request(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        if self.token:
            req.add_header("X-Auth-Token", self.token)
        with urllib.request.urlopen(req, timeout=20) as resp:
            raw = resp.read()
            return resp, (json.loads(raw) if raw else None)

    def login(self):
        body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
            "name": self.facts["keystone_admin_user"], "domain": {"name": "Default"},
            "password": self.facts["keystone_admin_password"]}}},
            "scope": {"project": {"name": self.facts["keystone_admin_project"], "domain": {"name": "Default"}}}}}
        resp, _ = self.request("POST", "/auth/tokens", body)
        self.token = resp.headers["X-Subject-Token"]
        return self


@pytest.fixture
def catalog_endpoint(sandbox_facts):
    """A block-storage service with a public endpoint on the VIP in a region of its own;
    removed afterwards (deleting the service deletes its endpoints)."""
    admin = KeystoneAdmin(sandbox_facts).login()
    region, name = "cinder-ha-multinode", "cinder-multinode-test"
    try:
        admin.request("POST", "/regions", {"region": {"id": region}})
    except urllib.error.HTTPError as exc:
        if exc.code != 409:
            raise
    _, body = admin.request("POST", "/services", {"service": {"type": "block-storage", "name": name}})
    service_id = body["service"]["id"]
    try:
        admin.request("POST", "/endpoints", {"endpoint": {
            "service_id": service_id, "interface": "public", "region_id": region,
            "url": "http://198.18.0.100:8776/v3"}})
        yield {"region": region, "service_name": name}
    finally:
        admin.request("DELETE", f"/services/{service_id}")
        admin.request("DELETE", f"/regions/{region}")


@pytest.fixture(scope="session")
def salt_factories_config():
    # salt-factories' log server binds 0.0.0.0 by default: loopback only here.
    return {"log_server_host": "127.0.0.1"}
