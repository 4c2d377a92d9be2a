"""A Block Storage client for tests and benches: volumes through the catalog's URL, as a user
would, and the RBD images behind them."""
import os
import subprocess
import time

from keystoneauth1 import session as ks_session
from keystoneauth1.identity import v3

END_STATES = ("available", "error", "error_extending", "error_deleting")


class Volumes:
    """Volumes through the public block-storage URL of ``region``'s catalog (credentials from
    the sandbox facts). Every call counts the requests that failed (no answer, or 5xx)."""

    def __init__(self, facts, region=None, timeout=15):
        auth = v3.Password(auth_url=facts["keystone_url"], username=facts["keystone_admin_user"],
                           password=facts["keystone_admin_password"], project_name=facts["keystone_admin_project"],
                           user_domain_name="Default", project_domain_name="Default")
        self.session = ks_session.Session(auth=auth, timeout=timeout)
        region = region or facts["keystone_region"]
        url = self.session.get_endpoint(service_type="block-storage", interface="public", region_name=region)
        self.base = f"{url.rstrip('/')}/{self.session.get_project_id()}"
        self.failed_requests = 0

    def _call(self, method, path, **kwargs):
        try:
            reply = self.session.request(f"{self.base}{path}", method, raise_exc=False, **kwargs)
        except Exception:  # noqa: BLE001 - a connection that failed during a fault is counted, not fatal
            self.failed_requests += 1
            return None
        if reply.status_code >= 500:
            self.failed_requests += 1
        return reply

    def create(self, name, size=1, retry_for=0.0):
        """The new volume's id. ``retry_for``: seconds to keep retrying a POST that got no answer
        (the API itself down during a fault); each failed try is counted."""
        deadline = time.monotonic() + retry_for
        while True:
            reply = self._call("POST", "/volumes", json={"volume": {"size": size, "name": name}})
            if reply is not None and reply.status_code == 202:
                return reply.json()["volume"]["id"]
            if time.monotonic() >= deadline:
                detail = "no answer" if reply is None else f"HTTP {reply.status_code}: {reply.text[:200]}"
                raise AssertionError(f"POST volumes failed: {detail}")
            time.sleep(0.5)

    def show(self, volume_id):
        reply = self._call("GET", f"/volumes/{volume_id}")
        if reply is None:
            return None
        if reply.status_code == 404:
            return {"status": "deleted"}
        return reply.json()["volume"] if reply.ok else None

    def status(self, volume_id):
        found = self.show(volume_id)
        return found["status"] if found else None

    def wait(self, volume_id, wanted=("available",), timeout=240):
        """The first of ``wanted`` or an end state the volume reaches (or its last status)."""
        deadline = time.monotonic() + timeout
        found = None
        while time.monotonic() < deadline:
            found = self.status(volume_id)
            if found in wanted or found in END_STATES:
                return found
            time.sleep(0.5)
        return found

    def extend(self, volume_id, size):
        reply = self._call("POST", f"/volumes/{volume_id}/action", json={"os-extend": {"new_size": size}})
        assert reply is not None and reply.status_code == 202, reply and reply.text
        return self.wait(volume_id)

    def delete(self, volume_id, timeout=180):
        """True once the volume is gone (404)."""
        self._call("DELETE", f"/volumes/{volume_id}")
        return self.wait(volume_id, wanted=("deleted",), timeout=timeout) == "deleted"

    def listing(self):
        """[(id, name, status)] of the project's volumes."""
        reply = self._call("GET", "/volumes/detail")
        assert reply is not None and reply.ok, reply and reply.text
        return [(v["id"], v["name"], v["status"]) for v in reply.json()["volumes"]]

    def set_quota(self, **limits):
        """The project's own quotas (admin), e.g. ``volumes=40``: cinder's default allows 10
        volumes, fewer than a burst of creates needs."""
        project = self.session.get_project_id()
        reply = self._call("PUT", f"/os-quota-sets/{project}", json={"quota_set": limits})
        assert reply is not None and reply.ok, reply and reply.text

    def reset_state(self, volume_id, state="error"):
        """os-reset_status (admin): what an operator does with a volume stuck by a dead service."""
        reply = self._call("POST", f"/volumes/{volume_id}/action", json={"os-reset_status": {"status": state}})
        return reply is not None and reply.status_code == 202


def rbd_images(conf, keyring=None, pool="volumes"):
    """Image names in the pool, read as Ceph's admin (``conf``: the cluster's admin ceph.conf;
    ``keyring``: default, the admin keyring the sandbox keeps beside it)."""
    keyring = keyring or os.path.join(os.path.dirname(conf), "ceph.client.admin.keyring")
    argv = ["rbd", "-c", conf, "--keyring", keyring, "ls", pool]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=True)
    return out.stdout.split()


def pid_of(rsc, pid_dir="/run/resource-agents"):
    """The pid in the agent's pid file of ``rsc`` on this node, or None."""
    try:
        with open(os.path.join(pid_dir, f"{rsc}.pid")) as handle:
            return int(handle.read().strip())
    except (OSError, ValueError):
        return None


def alive(pid):
    """A live, non-zombie process."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False
