"""`state.apply cinder_ha.consumers` through a real master and minion, on the live sandbox: a
nova.conf and a glance-api.conf (cinder store) that bypass the VIP, in a test folder (never
/etc/nova), are pointed at it, and keystoneauth, asked as nova and glance ask it, finds the VIP
in the sandbox's real Keystone catalog.

The tests run in file order on the same two files.
"""
import configparser
import json
import pathlib
import shutil

import pytest

from tests.conftest import SANDBOX, sandbox_script
from tests.support.formula import keystone_session, state_results
from tests.support.keystone import KeystoneAdmin, admin_auth

FOLDER = SANDBOX / "consumers-test"
PHYSICAL = "127.0.0.1"  # the controller's own address: cinder-api is reachable there too, bypassing the VIP
VIP = sandbox_script("sandbox").VIP
NOVA = f"""[DEFAULT]
# a compute node of the sandbox
my_ip = 127.0.0.1
cinder_catalog_info = volume:cinder:publicURL

[cinder]
# pointed at the first controller before the cluster existed
endpoint_template = http://{PHYSICAL}:8776/v3/%(project_id)s
auth_type = password
password = nova-s3cret:@
"""
GLANCE = f"""[DEFAULT]
bind_host = 127.0.0.1

[glance_store]
# the cinder store, on one controller
stores = file,cinder
default_store = cinder
cinder_endpoint_template = http://{PHYSICAL}:8776/v3/%(tenant)s
os_region_name = RegionOne
"""


def files():
    return {str(FOLDER / "nova.conf"): "nova", str(FOLDER / "glance-api.conf"): "glance"}


def consumers_pillar(**section):
    return "pillar=" + json.dumps({"cinder_ha": {"consumers": dict({"files": files()}, **section)}})


def apply(salt_cli, minion, *args):
    return state_results(salt_cli.run("state.apply", "cinder_ha.consumers", *args, minion_tgt=minion.id,
                                      _timeout=300))


def read(path):
    parser = configparser.RawConfigParser(strict=False, interpolation=None)
    parser.read_string(pathlib.Path(path).read_text())
    return parser


def consumer_lookup(facts, service_type, interface, region):
    """What nova (nova/volume/cinder.py) does with catalog_info: session.get_endpoint with its
    service type, interface and region, on a real keystoneauth session."""
    session = keystone_session(facts)
    return session.get_endpoint(session.auth, service_type=service_type, interface=interface, region_name=region)


@pytest.fixture(scope="module")
def consumer_files(sandbox_facts, salt_cli, salt_minion):
    # the formula's catalog on the VIP (a run of test_formula's slate may have removed it)
    if consumer_lookup(sandbox_facts, "block-storage", "internal", sandbox_facts["keystone_region"]) is None:
        results = state_results(salt_cli.run("state.apply", "cinder_ha", minion_tgt=salt_minion.id, _timeout=600))
        failed = {k: v["comment"] for k, v in results.items() if v["result"] is not True}
        assert not failed, failed
    shutil.rmtree(FOLDER, ignore_errors=True)
    FOLDER.mkdir(mode=0o750, parents=True)
    (FOLDER / "nova.conf").write_text(NOVA)
    (FOLDER / "glance-api.conf").write_text(GLANCE)
    for path in files():
        pathlib.Path(path).chmod(0o640)
    yield sandbox_facts
    shutil.rmtree(FOLDER, ignore_errors=True)


def test_the_sandbox_catalog_answers_volumev3_through_the_alias(consumer_files):
    """The sandbox registers block-storage only: keystoneauth matches volumev3 (nova's and
    glance's default service type) to it through os-service-types' aliases."""
    url = consumer_lookup(consumer_files, "volumev3", "internalURL", consumer_files["keystone_region"])
    assert url == f"http://{VIP}:8776/v3"


def test_test_mode_shows_the_bypass_and_changes_nothing(consumer_files, salt_cli, salt_minion):
    before = {path: pathlib.Path(path).read_bytes() for path in files()}
    results = apply(salt_cli, salt_minion, "test=True", consumers_pillar())
    assert len(results) == 3, list(results)  # the validation and the two files
    states = {state["name"]: state for key, state in results.items() if "consumers" in key}
    for path, kind in files().items():
        state = states[path]
        assert state["result"] is None, state["comment"]
        assert f"names {PHYSICAL}, not a VIP ({VIP})" in state["comment"]
        assert "bypassing the HA endpoint" in state["comment"]
        assert f"-{'endpoint_template' if kind == 'nova' else 'cinder_endpoint_template'} = http://{PHYSICAL}:8776" \
            in state["changes"]["diff"]
        assert f"-> http://{VIP}:8776/v3 (on a VIP)" in state["comment"], "what the consumer would resolve after"
        assert pathlib.Path(path).read_bytes() == before[path]
    assert "nova-s3cret" not in json.dumps(results)


def test_apply_points_both_consumers_at_the_vip(consumer_files, salt_cli, salt_minion):
    results = apply(salt_cli, salt_minion, consumers_pillar())
    failed = {k: v["comment"] for k, v in results.items() if v["result"] is not True}
    assert not failed, failed
    assert "nova-s3cret" not in json.dumps(results)
    region = consumer_files["keystone_region"]

    nova = read(FOLDER / "nova.conf")
    assert not nova.has_option("cinder", "endpoint_template")
    assert not nova.has_option("DEFAULT", "cinder_catalog_info"), "ignored by nova today: removed"
    assert nova.get("cinder", "catalog_info") == "volumev3::internalURL"
    assert nova.get("cinder", "os_region_name") == region
    service_type, _name, interface = nova.get("cinder", "catalog_info").split(":")
    assert consumer_lookup(consumer_files, service_type, interface, region) == f"http://{VIP}:8776/v3"

    glance = read(FOLDER / "glance-api.conf")
    assert not glance.has_option("glance_store", "cinder_endpoint_template")
    assert not glance.has_option("glance_store", "os_region_name"), "the deprecated name: replaced"
    assert glance.get("glance_store", "cinder_os_region_name") == region
    service_type, _name, interface = glance.get("glance_store", "cinder_catalog_info").split(":")
    assert consumer_lookup(consumer_files, service_type, interface, region) == f"http://{VIP}:8776/v3"

    # the operators' comments and keys stay
    nova_text, glance_text = (FOLDER / "nova.conf").read_text(), (FOLDER / "glance-api.conf").read_text()
    for kept in ("# a compute node of the sandbox", "my_ip = 127.0.0.1", "# pointed at the first controller",
                 "auth_type = password", "password = nova-s3cret:@"):
        assert kept in nova_text
    for kept in ("bind_host = 127.0.0.1", "# the cinder store, on one controller", "stores = file,cinder",
                 "default_store = cinder"):
        assert kept in glance_text
    for path in files():
        assert pathlib.Path(path).stat().st_mode & 0o777 == 0o640


def test_second_apply_changes_nothing(consumer_files, salt_cli, salt_minion):
    before = {path: pathlib.Path(path).read_bytes() for path in files()}
    results = apply(salt_cli, salt_minion, consumers_pillar())
    changed = {k: v["changes"] for k, v in results.items() if v["changes"]}
    assert not changed, changed
    assert all(v["result"] is True for v in results.values())
    assert {path: pathlib.Path(path).read_bytes() for path in files()} == before


def test_a_catalog_that_leads_off_the_vip_fails_the_state(consumer_files, salt_cli, salt_minion):
    """The check can fail: in a region of its own whose block-storage endpoint is a controller's
    own address, the files are right and the state still says the consumer bypasses the VIP."""
    ks = KeystoneAdmin(admin_auth(consumer_files))
    try:
        region = ks.region()
        (service,) = ks.call("GET", "/services", type="block-storage", name="cinder")["services"]
        ks.endpoint(service["id"], "internal", f"http://{PHYSICAL}:8776/v3", region)
        results = apply(salt_cli, salt_minion, consumers_pillar(region=region))
        states = {state["name"]: state for key, state in results.items() if "consumers" in key}
        for path in files():
            assert states[path]["result"] is False, states[path]["comment"]
            assert f"-> http://{PHYSICAL}:8776/v3 (NOT on a VIP: {PHYSICAL} bypasses the HA endpoint)" \
                in states[path]["comment"]
        assert read(FOLDER / "nova.conf").get("cinder", "os_region_name") == region
    finally:
        ks.cleanup()
    # back in the formula's region: on the VIP again
    results = apply(salt_cli, salt_minion, consumers_pillar())
    assert all(v["result"] is True for v in results.values()), results
