"""The catalog states through a real master and minion, credentials only from the sandbox pillar.

Own ``t6-`` region and service, deleted afterwards; the formula's RegionOne entries are untouched.
"""
import json
import secrets

import pytest

from tests.support.keystone import PROBE_HOST, PROBE_PORT, KeystoneAdmin, admin_auth, probe_server


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


RUN_SLS = """\
t6 service:
  cinder_keystone.service_present:
    - name: NAME
t6 endpoints:
  cinder_keystone.endpoints_present:
    - name: block-storage
    - service_name: NAME
    - region: REGION
    - urls: URL
    - require:
      - cinder_keystone: t6 service
t6 catalog lookup:
  module.run:
    - cinder_keystone.catalog_lookup:
      - service_type: block-storage
      - interface: public
      - region: REGION
      - probe_url: true
    - require:
      - cinder_keystone: t6 endpoints
t6 keystone requests:
  module.run:
    - cinder_keystone.request_count: []
    - require:
      - module: t6 catalog lookup
"""


def test_a_noop_run_costs_one_token_and_one_list_and_its_probe_reuses_the_token(salt_call_cli, ks, tmp_path,
                                                                                 sandbox_facts):
    """A real minion, credentials from its pillar: the run that creates probes on a fresh token
    (its first token predates the creates); the no-op run after it costs one token, the service
    list and one filtered endpoint list, and its probe reuses that token."""
    region, name = ks.region(), "t6-" + secrets.token_hex(4)
    url = f"http://{PROBE_HOST}:{PROBE_PORT}/v3"
    path = tmp_path / "t6.sls"
    path.write_text(RUN_SLS.replace("NAME", name).replace("REGION", region).replace("URL", json.dumps(url)))
    runs = []
    try:
        for _ in range(2):
            with probe_server() as hits:
                ret = salt_call_cli.run("state.template", str(path))
            states = {s["__id__"]: s for s in ret.data.values()}
            assert all(s["result"] is True for s in states.values()), states
            assert sandbox_facts["keystone_admin_password"] not in ret.stdout
            runs.append((states, hits))
    finally:
        ks.adopt_service("block-storage", name)
    (created, created_hits), (noop, noop_hits) = runs

    def returned(states, state_id, function):  # module.run keeps a function's return under its name
        return states[state_id]["changes"][function]

    lookup = returned(created, "t6 catalog lookup", "cinder_keystone.catalog_lookup")
    assert lookup["url"] == url and lookup["fresh_token"] is True and created_hits == ["/v3"], lookup
    assert returned(created, "t6 keystone requests", "cinder_keystone.request_count")["POST /v3/auth/tokens"] == 2
    assert noop["t6 endpoints"]["changes"] == {} and "nothing to do" in noop["t6 endpoints"]["comment"]
    lookup = returned(noop, "t6 catalog lookup", "cinder_keystone.catalog_lookup")
    assert lookup["url"] == url and lookup["fresh_token"] is False and noop_hits == ["/v3"], lookup
    assert returned(noop, "t6 keystone requests", "cinder_keystone.request_count") == {
        "POST /v3/auth/tokens": 1, "GET /v3/services": 1, "GET /v3/endpoints": 1}
