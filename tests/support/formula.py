"""Helpers for the formula's integration tests: a clean slate on the live sandbox."""
import os
import pathlib
import shutil
import subprocess
import time
import xml.etree.ElementTree as ET

from keystoneauth1 import session as ks_session
from keystoneauth1.identity import v3

from tests.conftest import cluster_env, sandbox_script

CLUSTER_IDS = ("p_cinder-api", "p_ip_cinder-api")
CONSTRAINT_IDS = ("c_p_cinder-api_with_ip", "o_ip_before_p_cinder-api")
CATALOG_TYPES = ("block-storage", "volumev3", "volumev2", "volume")
# cinder-scheduler and cinder-volume (pillar volume/scheduler), clones before their primitives
SERVICE_IDS = ("cl_p_cinder-scheduler", "cl_p_cinder-volume", "p_cinder-scheduler", "p_cinder-volume")


def cib_epoch():
    """(admin_epoch, epoch) of the live CIB: unchanged means nothing was committed."""
    head = subprocess.run(["cibadmin", "-Q"], capture_output=True, text=True, env=cluster_env(), timeout=30,
                          check=True).stdout
    root = ET.fromstring(head)
    return int(root.get("admin_epoch")), int(root.get("epoch"))


def keystone_session(facts):
    auth = v3.Password(auth_url=facts["keystone_url"], username=facts["keystone_admin_user"],
                       password=facts["keystone_admin_password"], project_name=facts["keystone_admin_project"],
                       user_domain_name="Default", project_domain_name="Default")
    return ks_session.Session(auth=auth, timeout=10)


def keystone_get(facts, path):
    return keystone_session(facts).get(facts["keystone_url"] + path).json()


def state_results(ret):
    """The state results of a single-minion `salt ... state.apply`, or a clear failure."""
    data = ret.data
    assert isinstance(data, dict), f"state.apply did not return results (render error?): {data!r}\n{ret.stderr}"
    return data


def remove_cluster_objects():
    env = cluster_env()
    cib = ET.fromstring(subprocess.run(["cibadmin", "-Q", "-o", "constraints"], capture_output=True, text=True,
                                       env=env, timeout=30).stdout or "<constraints/>")
    # the formula's lrm secret rules (rsc_location on either resource). Constraints go first:
    # the schema refuses to delete a resource a constraint still names (IDREF), and the wait
    # below would then time out with the resource running and its secret about to be removed.
    locations = [c.get("id") for c in cib.iter("rsc_location") if c.get("rsc") in CLUSTER_IDS]
    for obj_id in tuple(locations) + CONSTRAINT_IDS + CLUSTER_IDS + SERVICE_IDS:
        for tag in ("rsc_colocation", "rsc_order", "rsc_location", "clone", "primitive"):
            subprocess.run(["cibadmin", "--delete", "--xml-text", f'<{tag} id="{obj_id}"/>'], capture_output=True,
                           env=env, timeout=30)
    # orphaned resources are stopped by the cluster: wait for it to settle. The stop of an
    # orphan still needs its lrm:// secret, so the secret files go only after it is gone.
    subprocess.run(["crm_resource", "--wait", "--timeout", "120s"], capture_output=True, env=env, timeout=150)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and (
            pgrep_here("bin/cinder-api --config-file /etc/cinder").returncode == 0
            or "is running on" in subprocess.run(["crm_resource", "--locate", "--resource", CLUSTER_IDS[0]],
                                                 capture_output=True, text=True, env=env, timeout=30).stdout):
        time.sleep(0.5)
    subprocess.run(["crm_resource", "--cleanup"], capture_output=True, env=env, timeout=60)
    leftover = subprocess.run(["cibadmin", "-Q", "-o", "resources"], capture_output=True, text=True, env=env,
                              timeout=30).stdout
    assert f'id="{CLUSTER_IDS[0]}"' not in leftover, f"{CLUSTER_IDS[0]} could not be removed from the CIB"
    shutil.rmtree(f"/var/lib/pacemaker/lrm/secrets/{CLUSTER_IDS[0]}", ignore_errors=True)


def pgrep_here(pattern, *options):
    """``pgrep -f pattern`` in this pid namespace only: the three-node tier's nodes, each in a
    pid namespace of its own, run their own cinder services beside the other tiers."""
    return subprocess.run(["pgrep", *options, "--ns", str(os.getpid()), "--nslist", "pid", "-f", pattern],
                          capture_output=True, text=True)


def services_but_the_three_nodes(facts, query=""):
    """Keystone's services (``/services`` + ``query``) but the three-node tier's: its own Block
    Storage services (multinode.SERVICE_NAME), registered in its own region while it runs
    beside the other tiers."""
    theirs = sandbox_script("multinode").SERVICE_NAME
    return [s for s in keystone_get(facts, f"/services{query}")["services"] if s.get("name") != theirs]


def reset_slate(facts):
    """No cinder-ha objects in the CIB, the guide's cinder.conf, no Block Storage in Keystone."""
    remove_cluster_objects()
    sandbox = sandbox_script("sandbox")
    conf = pathlib.Path(facts["cinder_conf"])
    conf.write_text(sandbox.cinder_seed_conf(facts["cinder_state_path"], facts))
    # oslo.db's fallback, left by a cinder-api started on the guide's file (its sql_connection
    # is ignored): the formula's test checks that none appears
    pathlib.Path(facts["cinder_state_path"], "cinder.sqlite").unlink(missing_ok=True)
    os.chmod(conf, 0o640)
    shutil.chown(conf, "root", "cinder")
    session = keystone_session(facts)
    url, region = facts["keystone_url"], facts["keystone_region"]
    for stype in CATALOG_TYPES:
        for service in session.get(f"{url}/services?type={stype}").json()["services"]:
            endpoints = session.get(f"{url}/endpoints?service_id={service['id']}").json()["endpoints"]
            if all(e["region_id"] == region for e in endpoints):
                session.delete(f"{url}/services/{service['id']}")
            else:  # another region's (the three-node tier's, running beside): only ours go
                for endpoint in endpoints:
                    if endpoint["region_id"] == region:
                        session.delete(f"{url}/endpoints/{endpoint['id']}")
