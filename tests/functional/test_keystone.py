"""cinder_keystone module and states against the real (shared) Keystone of the sandbox.

Every test works in its own ``t6-<random>`` region with its own ``t6-...`` block-storage
service and deletes both afterwards, so the formula's RegionOne entries are never touched.
"""
import io
import json
import logging
import secrets

import pytest

from tests.support.keystone import PROBE_HOST, PROBE_PORT, KeystoneAdmin, admin_auth, closed_port, count_requests, probe_server

INTERNAL_VIP = "127.0.0.117"  # only ever in URLs stored in Keystone; nothing connects to it


@pytest.fixture
def auth(sandbox_facts):
    return admin_auth(sandbox_facts)


@pytest.fixture
def ks(auth):
    admin = KeystoneAdmin(auth)
    try:
        yield admin
    finally:
        admin.cleanup()


@pytest.fixture
def region(ks):
    return ks.region()


@pytest.fixture
def svc_name(ks):
    name = "t6-" + secrets.token_hex(4)
    yield name
    ks.adopt_service("block-storage", name)  # created by the state under test: clean it up too
    ks.adopt_service("volumev3", name)


def urls(public=PROBE_HOST, internal=INTERNAL_VIP, path="/v3"):
    return {"public": f"http://{public}:{PROBE_PORT}{path}", "internal": f"http://{internal}:{PROBE_PORT}{path}",
            "admin": f"http://{internal}:{PROBE_PORT}{path}"}


def sls(svc_name, region, auth, endpoint_urls, legacy=False):
    """The formula's catalog states (auth inline: in the formula it comes from pillar). JSON is YAML."""
    data = {
        "block storage service": {"cinder_keystone.service_present": [
            {"name": svc_name}, {"service_type": "block-storage"}, {"description": "OpenStack Block Storage"},
            {"auth": auth}]},
        "block storage endpoints": {"cinder_keystone.endpoints_present": [
            {"name": "block-storage"}, {"service_name": svc_name}, {"urls": endpoint_urls}, {"region": region},
            {"auth": auth}, {"require": [{"cinder_keystone": "block storage service"}]}]},
    }
    if legacy:
        data["legacy block storage retired"] = {"cinder_keystone.legacy_absent": [
            {"name": "block-storage"}, {"region": region}, {"auth": auth},
            {"require": [{"cinder_keystone": "block storage endpoints"}]}]}
    return json.dumps(data)


def run(loaders, text, **kwargs):
    result = loaders.modules.state.template_str(text, **kwargs)
    return {r.name if hasattr(r, "name") else key: r for key, r in _items(result)}


def _items(result):
    raw = result.raw if hasattr(result, "raw") else result
    assert isinstance(raw, dict), raw
    return [(value["__id__"], value) for value in raw.values()]


def by_interface(endpoints):
    found = {}
    for endpoint in endpoints:
        found.setdefault(endpoint["interface"], []).append(endpoint)
    return found


def test_fresh_create_then_no_op_costs_one_token_and_one_list_per_service(loaders, ks, region, svc_name, auth):
    first = run(loaders, sls(svc_name, region, auth, urls(), legacy=True))
    assert all(r["result"] is True for r in first.values()), first
    assert first["block storage service"]["changes"]["name"] == svc_name
    created = first["block storage endpoints"]["changes"]["created"]
    assert sorted(c["interface"] for c in created) == ["admin", "internal", "public"]
    service = [s for s in ks.call("GET", "/services", type="block-storage", name=svc_name)["services"]]
    assert len(service) == 1
    stored = by_interface(ks.endpoints(service[0]["id"], region))
    assert {iface: [e["url"] for e in eps] for iface, eps in stored.items()} == {
        iface: [url] for iface, url in urls().items()}

    with count_requests() as seen:
        again = run(loaders, sls(svc_name, region, auth, urls(), legacy=True))
    assert all(r["result"] is True and r["changes"] == {} for r in again.values()), again
    assert "nothing to do" in again["block storage endpoints"]["comment"]
    methods = [m for m, _url in seen]
    tokens = [u for m, u in seen if u.endswith("/auth/tokens")]
    lists = [u for m, u in seen if m == "GET" and "/endpoints?" in u]
    assert tokens and len(tokens) == 1, seen
    assert methods.count("POST") == 1 and "PATCH" not in methods and "DELETE" not in methods, seen
    assert [u for m, u in seen if m == "GET" and u.endswith("/services")] == [ks.url + "/services"], seen
    # one endpoint list per Block Storage service known to Keystone (ours, plus any the formula made),
    # filtered by Keystone: endpoints_present and legacy_absent share ours (this region's)
    family = [s for s in ks.call("GET", "/services")["services"]
              if s["type"] in ("block-storage", "volumev3", "volume", "volumev2")]
    assert len(lists) == len(family), seen
    sid = service[0]["id"]
    assert lists.count(f"{ks.url}/endpoints?region_id={region}&service_id={sid}") == 1, seen
    assert len(seen) == 2 + len(family)


def seed(ks, names, endpoint_urls, region):
    """Services (type: name) with one endpoint per interface in ``region``, made by the admin."""
    ids = {}
    for stype, name in names.items():
        service = ks.service(stype, name, description="OpenStack Block Storage")
        for iface, url in endpoint_urls.items():
            ks.endpoint(service["id"], iface, url, region)
        ids[stype] = service["id"]
    return ids


def test_noop_check_and_catalog_probe_cost_one_token_and_one_list_per_service_type(loaders, ks, region, svc_name,
                                                                                     auth):
    """The catalog part of a no-op formula run, both Block Storage types: service_present's and
    endpoints_present's reads, then the catalog lookup and probe (api_answers) on the run's own token."""
    names = {"block-storage": svc_name, "volumev3": svc_name + "v3"}
    ids = seed(ks, names, urls(), region)
    module = loaders.modules.cinder_keystone
    with count_requests() as seen, probe_server() as hits:
        for stype, name in names.items():
            ensured = module.service_ensure(stype, name, description="OpenStack Block Storage", auth=auth)
            assert ensured["action"] is None and ensured["service"]["id"] == ids[stype]
            planned = module.plan(stype, urls(), region=region, service_name=name, auth=auth)
            assert planned["actions"] == [], planned
        found = module.catalog_lookup("block-storage", "public", region=region, probe_url=True, auth=auth)
    assert found["found"] and found["url"] == urls()["public"] and found["fresh_token"] is False
    assert found["probe"]["answers"] and hits == ["/v3"]
    # (the token request is sent from within the first GET: order is not the point)
    assert sorted(seen) == sorted([("POST", f"{ks.url}/auth/tokens"), ("GET", f"{ks.url}/services")] + [
        ("GET", f"{ks.url}/endpoints?region_id={region}&service_id={ids[stype]}") for stype in names]), seen


def early_read_done(loaders):
    """Wait for the background read cinder_keystone.prefetch started (as the states would)."""
    for run in loaders.context["cinder_keystone"].values():
        if isinstance(run.get("early"), tuple):
            run["early"][0].join(timeout=60)


def test_the_early_read_is_the_noop_runs_reads_and_nothing_more(loaders, ks, region, svc_name, auth):
    """What init.sls starts while the formula renders: the very requests of a no-op catalog
    check, sent once, in the background; the states then read nothing themselves."""
    names = {"block-storage": svc_name, "volumev3": svc_name + "v3"}
    ids = seed(ks, names, urls(), region)
    module = loaders.modules.cinder_keystone
    with count_requests() as seen, probe_server() as hits:
        assert module.prefetch(names, region, auth=auth) is True
        assert module.prefetch(names, region, auth=auth) is False  # catalog.sls asks again: one read
        # ... without waiting for it: the read stays the background's until a state needs it
        assert all(isinstance(run["early"], tuple) for run in loaders.context["cinder_keystone"].values())
        for stype, name in names.items():
            assert module.service_ensure(stype, name, description="OpenStack Block Storage", auth=auth)["action"] is None
            assert module.plan(stype, urls(), region=region, service_name=name, auth=auth)["actions"] == []
        found = module.catalog_lookup("block-storage", "public", region=region, probe_url=True, auth=auth)
    assert found["url"] == urls()["public"] and found["fresh_token"] is False and hits == ["/v3"]
    assert sorted(seen) == sorted([("POST", f"{ks.url}/auth/tokens"), ("GET", f"{ks.url}/services")] + [
        ("GET", f"{ks.url}/endpoints?region_id={region}&service_id={ids[stype]}") for stype in names]), seen
    assert module.request_count()["POST /v3/auth/tokens"] == 1  # counted from the background thread too


def test_listings_read_early_are_read_again_before_any_write(loaders, ks, region, svc_name, auth):
    """Another controller creates the service and its endpoints after the early read: this run
    must not plan its own copy from the older listing."""
    module = loaders.modules.cinder_keystone
    assert module.prefetch({"block-storage": svc_name}, region, auth=auth) is True
    early_read_done(loaders)
    ids = seed(ks, {"block-storage": svc_name}, urls(), region)  # the other controller, meanwhile
    with count_requests() as seen:
        ensured = module.service_ensure("block-storage", svc_name, description="OpenStack Block Storage", auth=auth)
        planned = module.plan("block-storage", urls(), region=region, service_name=svc_name, auth=auth)
    assert ensured["action"] is None and ensured["service"]["id"] == ids["block-storage"], ensured
    assert planned["actions"] == [], planned
    assert [m for m, _u in seen].count("POST") == 0, seen  # no create, and the early token serves
    assert len(ks.call("GET", "/services", type="block-storage", name=svc_name)["services"]) == 1
    assert module.prefetch({"block-storage": svc_name}, region, auth=auth) is False  # this run has read already
    # the early token's catalog predates the other controller's endpoints: the lookup asks again
    with count_requests() as seen:
        found = module.catalog_lookup("block-storage", "public", region=region, auth=auth)
    assert found["url"] == urls()["public"] and found["fresh_token"] is True, found
    assert seen == [("POST", f"{ks.url}/auth/tokens")], seen
    assert module.catalog_lookup("block-storage", "internal", region=region, auth=auth)["fresh_token"] is False


def test_a_failed_early_read_is_dropped_and_the_state_reports_its_own(loaders, ks, region, svc_name, auth):
    module = loaders.modules.cinder_keystone
    wrong = dict(auth, password="not-" + auth["password"])
    assert module.prefetch({"block-storage": svc_name}, region, auth=wrong) is True
    early_read_done(loaders)
    with pytest.raises(Exception) as failed:
        module.service_ensure("block-storage", svc_name, auth=wrong)
    assert "refused the credentials" in str(failed.value) and wrong["password"] not in str(failed.value)
    assert module.prefetch({"block-storage": svc_name}, region, auth={"auth_url": auth["auth_url"]}) is False  # incomplete


def test_a_run_that_changed_the_catalog_probes_on_a_fresh_token_and_finds_the_new_url(loaders, ks, region,
                                                                                        svc_name, auth):
    old, new = urls(path="/v3/%(project_id)s"), urls()
    seed(ks, {"block-storage": svc_name}, old, region)
    module = loaders.modules.cinder_keystone
    with count_requests() as seen:
        planned = module.plan("block-storage", new, region=region, service_name=svc_name, auth=auth)
        assert sorted(a["action"] for a in planned["actions"]) == ["update"] * 3
        run = next(iter(loaders.context["cinder_keystone"].values()))
        # the run's token was issued before the change: its catalog still names the old URL
        before = run["session"].get_endpoint(service_type="block-storage", interface="public", region_name=region)
        assert before.startswith(f"http://{PROBE_HOST}:{PROBE_PORT}/v3/") and before != new["public"]
        applied = module.apply_plan(planned["actions"], auth=auth)
        assert applied["failed"] is None and applied["error"] is None, applied
        with probe_server() as hits:
            found = module.catalog_lookup("block-storage", "public", region=region, probe_url=True, auth=auth)
        again = module.catalog_lookup("block-storage", "internal", region=region, auth=auth)
    assert found["fresh_token"] is True and found["url"] == new["public"], found
    assert found["probe"]["answers"] and hits == ["/v3"]
    assert again["fresh_token"] is False and again["url"] == new["internal"]  # the fresh token serves the rest
    assert [u for _m, u in seen if u.endswith("/auth/tokens")] == [f"{ks.url}/auth/tokens"] * 2, seen
    assert [m for m, _u in seen].count("PATCH") == 3


def test_url_change_is_a_patch_of_the_same_endpoint(loaders, ks, region, svc_name, auth):
    run(loaders, sls(svc_name, region, auth, urls()))
    sid = ks.call("GET", "/services", type="block-storage", name=svc_name)["services"][0]["id"]
    before = {e["interface"]: e["id"] for e in ks.endpoints(sid, region)}
    moved = urls(public="127.0.0.118")
    result = loaders.states.cinder_keystone.endpoints_present(name="block-storage", service_name=svc_name,
                                                              urls=moved, region=region, auth=auth)
    assert result.result is True, result.comment
    assert [(u["endpoint_id"], u["url"]) for u in result.changes["updated"]] == [(before["public"], moved["public"])]
    assert set(result.changes) == {"updated"}
    after = ks.endpoints(sid, region)
    assert {e["interface"]: e["id"] for e in after} == before
    assert {e["interface"]: e["url"] for e in after} == moved


def test_duplicates_collapse_to_one_and_a_second_region_is_untouched(loaders, ks, region, svc_name, auth):
    other_region = ks.region()
    svc = ks.service("block-storage", svc_name)
    for _ in range(3):
        ks.endpoint(svc["id"], "public", urls()["public"], region)
    ks.endpoint(svc["id"], "internal", "http://127.0.0.119:8776/v3", region)
    ks.endpoint(svc["id"], "internal", urls()["internal"], region)
    elsewhere = [ks.endpoint(svc["id"], iface, "http://127.0.0.120:8776/v3", other_region)
                 for iface in ("public", "public", "internal")]  # a duplicate there too: not ours to fix

    planned = loaders.states.cinder_keystone.endpoints_present(name="block-storage", service_name=svc_name,
                                                               urls=urls(), region=region, auth=auth, test=True)
    assert planned.result is None
    assert len([p for p in planned.changes["planned"] if p.startswith("delete")]) == 3, planned.changes
    assert len(ks.endpoints(svc["id"], region)) == 5  # test=True wrote nothing

    result = loaders.states.cinder_keystone.endpoints_present(name="block-storage", service_name=svc_name,
                                                              urls=urls(), region=region, auth=auth)
    assert result.result is True, result.comment
    assert len(result.changes["deleted"]) == 3 and len(result.changes["created"]) == 1
    assert "updated" not in result.changes  # the internal duplicate with the right URL was kept
    here = by_interface(ks.endpoints(svc["id"], region))
    assert {iface: [e["url"] for e in eps] for iface, eps in here.items()} == {
        iface: [url] for iface, url in urls().items()}
    assert sorted((e["id"], e["url"]) for e in ks.endpoints(svc["id"], other_region)) == sorted(
        (e["id"], e["url"]) for e in elsewhere)


def test_two_vips_on_the_right_interfaces_and_a_client_finds_and_reaches_the_catalog(
        loaders, ks, region, svc_name, auth):
    from cinder_ha_lib import urls

    layout = {iface: urls.endpoint_url(PROBE_HOST if iface == "public" else INTERNAL_VIP, port=PROBE_PORT)
              for iface in ("public", "internal", "admin")}
    result = run(loaders, sls(svc_name, region, auth, layout))
    assert all(r["result"] is True for r in result.values()), result
    sid = ks.call("GET", "/services", type="block-storage", name=svc_name)["services"][0]["id"]
    stored = {e["interface"]: e["url"] for e in ks.endpoints(sid, region)}
    assert stored == {"public": f"http://{PROBE_HOST}:{PROBE_PORT}/v3",
                      "internal": f"http://{INTERNAL_VIP}:{PROBE_PORT}/v3",
                      "admin": f"http://{INTERNAL_VIP}:{PROBE_PORT}/v3"}

    # A client that knows only Keystone: fresh token, catalog lookup, then GET the URL it names.
    from keystoneauth1 import session as ks_session
    from keystoneauth1.identity import v3 as ks_v3

    client = ks_session.Session(auth=ks_v3.Password(
        auth_url=auth["auth_url"], username=auth["username"], password=auth["password"],
        project_name=auth["project_name"], user_domain_name="Default", project_domain_name="Default"))
    public = client.get_endpoint(service_type="block-storage", interface="public", region_name=region)
    internal = client.get_endpoint(service_type="block-storage", interface="internal", region_name=region)
    assert (public, internal) == (stored["public"], stored["internal"])
    with probe_server() as hits:
        assert client.get(public, authenticated=False).json()["path"] == "/v3"
        found = loaders.modules.cinder_keystone.catalog_lookup("block-storage", "public", region=region,
                                                               probe_url=True, auth=auth)
    assert found["found"] and found["url"] == public
    assert found["probe"]["answers"] and found["probe"]["status"] == 200
    assert hits == ["/v3", "/v3"]
    missing = loaders.modules.cinder_keystone.catalog_lookup("block-storage", "public", region=ks.region(),
                                                             auth=auth)
    assert missing["found"] is False


def test_project_template_is_filled_by_probe(loaders, auth):
    with probe_server() as hits:
        answer = loaders.modules.cinder_keystone.probe(f"http://{PROBE_HOST}:{PROBE_PORT}/v3/%(project_id)s",
                                                       auth=auth)
    assert answer["answers"] and answer["status"] == 200
    assert len(hits) == 1 and hits[0].startswith("/v3/") and "%" not in hits[0]
    down = loaders.modules.cinder_keystone.probe(f"http://127.0.0.1:{closed_port()}/v3")
    assert down["answers"] is False and "refused" in down["error"]


def test_retire_volumev2_on_request_only_in_its_region(loaders, ks, region, svc_name, auth):
    other_region = ks.region()
    current = ks.service("block-storage", svc_name)
    dead_url = f"http://{INTERNAL_VIP}:8776/v2/%(project_id)s"
    v2 = ks.service("volumev2", svc_name + "v2")
    ks.endpoint(v2["id"], "public", dead_url, region)
    shared_v2 = ks.service("volumev2", svc_name + "v2shared")
    here = ks.endpoint(shared_v2["id"], "public", dead_url, region)
    there = ks.endpoint(shared_v2["id"], "public", dead_url, other_region)
    old_v1 = ks.endpoint(current["id"], "admin", f"http://{INTERNAL_VIP}:8776/v1/%(tenant_id)s", region)
    kept = ks.endpoint(current["id"], "public", urls()["public"], region)

    # endpoints_present alone never retires anything
    loaders.states.cinder_keystone.endpoints_present(name="block-storage", service_name=svc_name,
                                                     urls={"public": urls()["public"]}, region=region, auth=auth)
    assert ks.service_exists(v2["id"])

    planned = loaders.states.cinder_keystone.legacy_absent(name="block-storage", region=region, auth=auth, test=True)
    assert planned.result is None and ks.service_exists(v2["id"])
    text = "\n".join(planned.changes["planned"])
    assert v2["id"] in text and here["id"] in text and old_v1["id"] in text and there["id"] not in text

    result = loaders.states.cinder_keystone.legacy_absent(name="block-storage", region=region, auth=auth)
    assert result.result is True, result.comment
    assert not ks.service_exists(v2["id"])
    assert ks.service_exists(shared_v2["id"])  # it still serves another region
    assert [e["id"] for e in ks.endpoints(shared_v2["id"])] == [there["id"]]
    assert [e["id"] for e in ks.endpoints(current["id"])] == [kept["id"]]
    again = loaders.states.cinder_keystone.legacy_absent(name="block-storage", region=region, auth=auth)
    assert again.result is True and again.changes == {}


def test_wrong_password_closed_port_bad_template_unknown_region(loaders, ks, region, svc_name, auth):
    ks.service("block-storage", svc_name)
    states = loaders.states.cinder_keystone
    wrong = dict(auth, password="not-the-" + secrets.token_hex(4))
    refused = states.endpoints_present(name="block-storage", service_name=svc_name, urls=urls(), region=region,
                                       auth=wrong)
    assert refused.result is False
    assert "refused the credentials of user 'admin'" in refused.comment and "HTTP 401" in refused.comment
    assert wrong["password"] not in json.dumps(refused.raw if hasattr(refused, "raw") else refused.__dict__,
                                               default=str)

    port = closed_port()
    unreachable = states.service_present(name=svc_name, auth=dict(auth, auth_url=f"http://127.0.0.1:{port}/v3"))
    assert unreachable.result is False
    assert f"Keystone unreachable at http://127.0.0.1:{port}/v3" in unreachable.comment

    bad = states.endpoints_present(name="block-storage", service_name=svc_name, region=region, auth=auth,
                                   urls={"public": f"http://{PROBE_HOST}:{PROBE_PORT}/v3/%(project_id"})
    assert bad.result is False and "malformed template" in bad.comment and "nothing changed" in bad.comment

    nowhere = states.endpoints_present(name="block-storage", service_name=svc_name, urls=urls(),
                                       region="t6-no-such-region", auth=auth)
    assert nowhere.result is False and "region 't6-no-such-region' is unknown to Keystone" in nowhere.comment
    assert ks.endpoints(region=region) == []

    legacy = states.endpoints_present(name="block-storage", service_name=svc_name, region=region, auth=auth,
                                      urls=f"http://{INTERNAL_VIP}:8776/v1/%(tenant_id)s")
    assert legacy.result is True and "v1 API was removed in Queens" in legacy.comment


def test_credentials_from_pillar_and_never_in_output_or_debug_log(loaders, ks, region, svc_name, auth):
    capture = io.StringIO()
    handler = logging.StreamHandler(capture)
    handler.setLevel(logging.DEBUG)
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        pillar = {"cinder_ha": {"keystone": auth}}  # the rest of cinder_ha is absent: the keystone part suffices
        high = {  # no auth anywhere in the state data: it comes from pillar
            "service": {"cinder_keystone": ["service_present", {"name": svc_name}], "__sls__": "t6",
                        "__env__": "base"},
            "endpoints": {"cinder_keystone": ["endpoints_present", {"name": "block-storage"},
                                              {"service_name": svc_name}, {"region": region}, {"probe": True},
                                              {"urls": urls(path="/v3/%(project_id)s")},
                                              {"require": [{"cinder_keystone": "service"}]}],
                          "__sls__": "t6", "__env__": "base"},
        }
        with probe_server():
            ran = loaders.modules.state.high(high, pillar=pillar)
        ran = {r["__id__"]: r for r in (ran.raw if hasattr(ran, "raw") else ran).values()}
        created, done = ran["service"], ran["endpoints"]
        module = loaders.modules.cinder_keystone
        plan = module.plan("block-storage", urls(), region=region, service_name=svc_name, auth=auth)
        module.apply_plan(plan["actions"], auth=auth)
        with probe_server():
            module.catalog_lookup("block-storage", "public", region=region, probe_url=True, auth=auth)
        token = next(iter(loaders.context["cinder_keystone"].values()))["session"].get_token()
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
    assert created["result"] is True and done["result"] is True, (created["comment"], done["comment"])
    assert "Probe:" in done["comment"] and "HTTP 200" in done["comment"]
    logged = capture.getvalue()
    assert "REQ: curl" in logged, "DEBUG capture saw no keystoneauth1 request lines"
    outputs = json.dumps([created, done], default=str)
    for secret in (auth["password"], token):
        assert secret not in logged
        assert secret not in outputs
        assert secret not in json.dumps(plan, default=str)



def test_racing_creates_from_two_controllers_end_with_one_copy(loaders, ks, region, svc_name, auth):
    """Two controllers that both saw an empty catalog create at the same moment: each re-lists
    after its create and keeps the lowest id, so one service and one endpoint per interface stay."""
    import threading

    mod = loaders.modules.cinder_keystone
    wanted = {"public": urls()["public"], "internal": urls()["internal"]}
    barrier = threading.Barrier(2)
    errors = []

    def controller():
        try:
            barrier.wait(30)
            mod.service_ensure("block-storage", svc_name, auth=auth)
            plan = mod.plan("block-storage", urls=wanted, region=region, service_name=svc_name, auth=auth)
            outcome = mod.apply_plan(plan["actions"], auth=auth)
            assert outcome["error"] is None, outcome
        except Exception as exc:  # pylint: disable=broad-except
            errors.append(repr(exc))

    threads = [threading.Thread(target=controller) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    ks.adopt_service("block-storage", svc_name)
    left = ks.call("GET", "/services", type="block-storage", name=svc_name)["services"]
    assert len(left) == 1, (left, errors)
    here = ks.endpoints(left[0]["id"], region)
    assert sorted(e["interface"] for e in here) == ["internal", "public"], (here, errors)
    # a run that lost the race may have planned against the copy that was removed: the next
    # run converges (that is all a racing controller may rely on)
    again = mod.plan("block-storage", urls=wanted, region=region, service_name=svc_name, auth=auth)
    assert again["actions"] == []
