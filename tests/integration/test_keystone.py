"""The catalog states through a real master and minion, credentials only from the sandbox pillar.

Own ``t6-`` region and service, deleted afterwards; the formula's RegionOne entries are untouched.
"""
import json
import secrets

import pytest

from tests.keystone_support import PROBE_HOST, PROBE_PORT, KeystoneAdmin, admin_auth, probe_server


@pytest.fixture
def ks(sandbox_facts):
    admin = KeystoneAdmin(admin_auth(sandbox_facts))
    try:
        yield admin
    finally:
        admin.cleanup()


def test_states_from_pillar_credentials_and_the_catalog_reaches_the_url(salt_cli, salt_minion, ks, sandbox_facts):
    region, name = ks.region(), "t6-" + secrets.token_hex(4)
    url = f"http://{PROBE_HOST}:{PROBE_PORT}/v3"
    try:
        service = salt_cli.run("state.single", "cinder_keystone.service_present", name, minion_tgt=salt_minion.id)
        endpoints = salt_cli.run("state.single", "cinder_keystone.endpoints_present", "block-storage",
                                 f"service_name={name}", f"region={region}", f"urls={json.dumps(url)}",
                                 minion_tgt=salt_minion.id)
    finally:
        ks.adopt_service("block-storage", name)
    for ret in (service, endpoints):
        (state,) = ret.data.values()
        assert state["result"] is True, state["comment"]
        assert sandbox_facts["keystone_admin_password"] not in ret.stdout
    (state,) = endpoints.data.values()
    assert sorted(c["interface"] for c in state["changes"]["created"]) == ["admin", "internal", "public"]

    with probe_server() as hits:
        found = salt_cli.run("cinder_keystone.catalog_lookup", "block-storage", "internal", f"region={region}",
                             "probe_url=True", minion_tgt=salt_minion.id)
    assert found.data["url"] == url and found.data["probe"]["status"] == 200, found.data
    assert hits == ["/v3"]
