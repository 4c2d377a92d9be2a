#!/usr/bin/env python3
"""A client that knows only Keystone: find Block Storage in the catalog and talk to it.

    catalog_client.py [--facts /srv/cinder-ha/sandbox.json] [--region RegionOne]

Authenticates with the sandbox's admin credentials (read from the facts file, never from
the command line), asks the token's catalog for `block-storage`, then calls the real
cinder-api at the URL the catalog names: the versions document, and the project's volume
list with the token. Exit status 0 only if both answer.
"""
import argparse
import json
import sys
from urllib.parse import urlsplit

from keystoneauth1 import session
from keystoneauth1.identity import v3


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--facts", default="/srv/cinder-ha/sandbox.json")
    parser.add_argument("--region", default=None)
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
    return 0 if latest and volumes.ok else 1


if __name__ == "__main__":
    sys.exit(main())
