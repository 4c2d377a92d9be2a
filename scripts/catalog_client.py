#!/usr/bin/env python3
"""A client that knows only Keystone: find Block Storage in the catalog and talk to it.

    catalog_client.py [--facts /srv/cinder-ha/sandbox.json] [--region RegionOne] [--no-volume]

Authenticates with the sandbox's admin credentials (read from the facts file, never from
the command line), asks the token's catalog for `block-storage`, then calls the real
cinder-api at the URL the catalog names: the versions document, and the project's volume
list with the token. Then Block Storage end to end: a 1 GiB volume and a snapshot of it,
created through the catalog URL, waited for until `available` (cinder-api -> RabbitMQ ->
cinder-scheduler -> cinder-volume -> Ceph), the volume's RBD image and its snapshot shown with `rbd snap ls`,
then both deleted. Exit status 0 only if all of it works.
"""
import argparse
import json
import subprocess
import sys
import time
from urllib.parse import urlsplit

from keystoneauth1 import session
from keystoneauth1.identity import v3


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--facts", default="/srv/cinder-ha/sandbox.json")
    parser.add_argument("--region", default=None)
    parser.add_argument("--no-volume", action="store_true", help="only the catalog, versions and volume list")
    args = parser.parse_args()
    with open(args.facts) as f:
        facts = json.load(f)
    auth = v3.Password(auth_url=facts["keystone_url"], username=facts["keystone_admin_user"],
                       password=facts["keystone_admin_password"], project_name=facts["keystone_admin_project"],
                       user_domain_name="Default", project_domain_name="Default")
    sess = session.Session(auth=auth, timeout=10)
    region = args.region or facts.get("keystone_region")
    url = sess.get_endpoint(service_type="block-storage", interface="public", region_name=region)
    if not url:
        print(f"FAIL: no public block-storage endpoint in the catalog (region {region})")
        return 1
    print(f"catalog: block-storage public endpoint in {region} is {url}")
    # The versions document lives at the API's root and needs no token.
    parts = urlsplit(url)
    root = f"{parts.scheme}://{parts.netloc}/"
    versions = sess.get(root, authenticated=False, raise_exc=False)
    latest = max((v for v in versions.json().get("versions", [])), key=lambda v: v["id"], default=None) \
        if versions.status_code in (200, 300) else None
    print(f"GET {root} -> HTTP {versions.status_code}"
          + (f", {latest['id']} up to microversion {latest['version']}" if latest else ""))
    # The token's catalog has substituted %(project_id)s already; a plain /v3 URL needs it added.
    project_id = sess.get_project_id()
    base = url.rstrip("/")
    volumes_url = f"{base}/volumes" if base.endswith(project_id) else f"{base}/{project_id}/volumes"
    volumes = sess.get(volumes_url, raise_exc=False)
    print(f"GET volumes (with a token) -> HTTP {volumes.status_code}"
          + (f", {len(volumes.json().get('volumes', []))} volumes" if volumes.ok else f": {volumes.text[:200]}"))
    if not (latest and volumes.ok):
        return 1
    if args.no_volume:
        return 0
    return 0 if volume_round_trip(sess, volumes_url.rsplit("/", 1)[0], facts) else 1


def wait_for(sess, url, key, wanted="available", timeout=180):
    """Poll a volume or snapshot until its status is `wanted` (True) or an end state (False)."""
    deadline = time.monotonic() + timeout
    status = None
    while time.monotonic() < deadline:
        reply = sess.get(url, raise_exc=False)
        if reply.status_code == 404 and wanted == "deleted":
            return True, "deleted"
        status = reply.json()[key]["status"] if reply.ok else f"HTTP {reply.status_code}"
        if status == wanted:
            return True, status
        if status in ("error", "error_deleting"):
            return False, status
        time.sleep(1)
    return False, status


def rbd_snapshots(facts, volume_id):
    """The snapshots of this volume's RBD image, read as the sandbox's Ceph admin: None without
    Ceph facts, else (True, names) or (False, why). Only this client's image is opened: another
    image in the pool may be half-made (a cinder-volume killed inside ``rbd create`` leaves a
    directory entry without a header, which ``rbd ls -l`` fails on)."""
    conf, keyring = facts.get("ceph_admin_conf"), facts.get("ceph_admin_keyring")
    if not conf:
        return None
    image = f"{facts.get('rbd_pool', 'volumes')}/volume-{volume_id}"
    out = subprocess.run(["rbd", "-c", conf, "--keyring", keyring, "snap", "ls", "--format", "json", image],
                         capture_output=True, text=True, timeout=30)
    if out.returncode != 0:
        return False, f"rbd snap ls {image} failed: {out.stderr.strip()[-200:]}"
    return True, [snap["name"] for snap in json.loads(out.stdout or "[]")]


def volume_round_trip(sess, base, facts):
    """Create a volume and a snapshot through the API, wait for both, show the RBD images, delete."""
    started = time.monotonic()
    reply = sess.post(f"{base}/volumes", json={"volume": {"size": 1, "name": "cinder-ha-demo"}}, raise_exc=False)
    if not reply.ok:
        print(f"FAIL: POST volumes -> HTTP {reply.status_code}: {reply.text[:200]}")
        return False
    volume_id = reply.json()["volume"]["id"]
    ok, status = wait_for(sess, f"{base}/volumes/{volume_id}", "volume")
    print(f"volume {volume_id} (1 GiB) -> {status} after {time.monotonic() - started:.1f} s")
    if not ok:
        return False
    started = time.monotonic()
    reply = sess.post(f"{base}/snapshots", json={"snapshot": {"volume_id": volume_id, "name": "cinder-ha-demo"}},
                      raise_exc=False)
    snapshot_id = reply.json()["snapshot"]["id"] if reply.ok else None
    ok, status = wait_for(sess, f"{base}/snapshots/{snapshot_id}", "snapshot") if snapshot_id else (False, reply.text)
    print(f"snapshot {snapshot_id} -> {status} after {time.monotonic() - started:.1f} s")
    # while both exist: the volume's image in the pool, with the snapshot's RBD snapshot on it
    seen = rbd_snapshots(facts, volume_id)
    on_ceph = seen is None  # no Ceph facts: nothing to look at
    if seen is not None:
        found, detail = seen
        print(f"RBD image volume-{volume_id}: " + (f"in the pool, snapshots {detail}" if found else detail))
        on_ceph = found and f"snapshot-{snapshot_id}" in detail
    if snapshot_id:
        sess.delete(f"{base}/snapshots/{snapshot_id}", raise_exc=False)
        gone, _ = wait_for(sess, f"{base}/snapshots/{snapshot_id}", "snapshot", wanted="deleted")
        ok = ok and gone
    sess.delete(f"{base}/volumes/{volume_id}", raise_exc=False)
    gone, status = wait_for(sess, f"{base}/volumes/{volume_id}", "volume", wanted="deleted")
    print(f"snapshot and volume deleted: {'yes' if gone else status}")
    return ok and gone and on_ceph


if __name__ == "__main__":
    sys.exit(main())
