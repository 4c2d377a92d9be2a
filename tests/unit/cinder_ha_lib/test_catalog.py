"""The endpoint plan (pure logic) on hand-made service and endpoint lists."""
from cinder_ha_lib import catalog as cat

URL = "http://192.0.2.10:8776/v3"
PUB = "http://203.0.113.10:8776/v3"


def ep(eid, iface, url, region="R1", service="S", enabled=True):
    return {"id": eid, "service_id": service, "interface": iface, "region_id": region, "url": url, "enabled": enabled}


def desired(urls, region="R1", stype="block-storage"):
    return {(stype, iface, region): url for iface, url in urls.items()}


def test_fresh_create_one_per_interface():
    actions = cat.plan_endpoints(desired({"public": PUB, "internal": URL, "admin": URL}), {"block-storage": "S"}, [])
    assert [(a["action"], a["interface"], a["url"]) for a in actions] == [
        ("create", "admin", URL), ("create", "internal", URL), ("create", "public", PUB)]


def test_no_op_when_everything_matches():
    current = [ep("a", "public", PUB), ep("b", "internal", URL), ep("c", "admin", URL)]
    assert cat.plan_endpoints(desired({"public": PUB, "internal": URL, "admin": URL}), {"block-storage": "S"},
                              current) == []


def test_changed_url_is_a_patch_of_the_same_endpoint():
    actions = cat.plan_endpoints(desired({"public": PUB}), {"block-storage": "S"}, [ep("a", "public", URL)])
    assert actions == [{"action": "update", "service_type": "block-storage", "service_id": "S",
                        "interface": "public", "region": "R1", "endpoint_id": "a", "old_url": URL, "url": PUB,
                        "patch": {"url": PUB}, "reason": "URL changed"}]


def test_duplicates_keep_the_right_one_and_deletes_come_last():
    current = [ep("a", "public", URL), ep("b", "public", PUB), ep("c", "public", PUB), ep("d", "internal", PUB)]
    actions = cat.plan_endpoints(desired({"public": PUB, "internal": URL}), {"block-storage": "S"}, current)
    assert [(a["action"], a.get("endpoint_id")) for a in actions] == [("update", "d"), ("delete", "a"),
                                                                        ("delete", "c")]


def test_disabled_endpoint_is_enabled():
    actions = cat.plan_endpoints(desired({"public": PUB}), {"block-storage": "S"},
                                 [ep("a", "public", PUB, enabled=False)])
    assert actions[0]["patch"] == {"enabled": True}


def test_other_regions_services_and_interfaces_untouched():
    current = [ep("x", "public", "http://other:8776/v3", region="R2"),
               ep("y", "public", "http://other:8776/v3", service="OTHER"),
               ep("z", "admin", "http://other:8776/v3")]
    actions = cat.plan_endpoints(desired({"public": PUB}), {"block-storage": "S"}, current)
    assert [a["action"] for a in actions] == ["create"]


def test_check_url():
    assert cat.check_url(URL) == ([], [])
    assert cat.check_url(URL + "/%(project_id)s") == ([], [])
    errors, warnings = cat.check_url("http://192.0.2.10:8776/v1/%(tenant_id)s")
    assert errors == [] and any("v1 API was removed" in w for w in warnings)
    assert any("tenant_id" in w for w in warnings)
    assert "malformed template" in cat.check_url(URL + "/%(project_id)")[0][0]
    assert "unknown template variable" in cat.check_url(URL + "/%(user)s")[0][0]
    assert "not an http(s) URL" in cat.check_url("ftp://x/v3")[0][0]
    assert "not a URL" in cat.check_url("http://x:99999999/v3")[0][0]


def test_desired_urls():
    assert cat.desired_urls(URL)[0] == {"public": URL, "internal": URL, "admin": URL}
    _urls, errors, _warnings = cat.desired_urls({"pubic": URL})
    assert errors == ["urls: 'pubic' is not an interface (public, internal, admin)"]


def test_legacy_version():
    assert cat.legacy_version("http://h:8776/v2/%(project_id)s") == "v2"
    assert cat.legacy_version("http://h:8776/v1") == "v1"
    assert cat.legacy_version("http://h/volume/v2.0/x") == "v2"
    assert cat.legacy_version("http://h:8776/v3") is None
    assert cat.legacy_version("http://v1.example:8776/v3") is None


def test_resolve_service():
    services = [{"id": "2", "type": "block-storage", "name": "cinder"},
                {"id": "1", "type": "block-storage", "name": "other"}]
    assert cat.resolve_service(services, "block-storage", "cinder") == (services[0], None)
    service, error = cat.resolve_service(services, "block-storage")
    assert service is None and "2 Keystone services" in error and "pass service_name" in error
    assert "run service_present first" in cat.resolve_service(services, "volumev3")[1]


def test_plan_legacy():
    services = [{"id": "v2", "type": "volumev2", "name": "cinderv2"},
                {"id": "v2b", "type": "volumev2", "name": "shared"},
                {"id": "bs", "type": "block-storage", "name": "cinder"},
                {"id": "id", "type": "identity", "name": "keystone"}]
    endpoints = [ep("e1", "public", "http://h:8776/v2/%(project_id)s", service="v2"),
                 ep("e2", "public", "http://h:8776/v2", service="v2b"),
                 ep("e3", "public", "http://h:8776/v2", region="R2", service="v2b"),
                 ep("e4", "internal", "http://h:8776/v1/%(tenant_id)s", service="bs"),
                 ep("e5", "public", URL, service="bs"),
                 ep("e6", "public", "http://h:8776/v2", region="R2", service="bs")]
    actions = cat.plan_legacy(services, endpoints, "R1")
    assert [(a["action"], a.get("endpoint_id") or a["service_id"]) for a in actions] == [
        ("delete", "e4"), ("delete", "e2"), ("delete_service", "v2")]
    assert actions[2]["endpoints"] == ["e1"]
    assert "removed" not in cat.describe(actions[2]) and "cinderv2" in cat.describe(actions[2])


def test_describe_and_changes():
    create = {"action": "create", "service_type": "block-storage", "service_id": "S", "interface": "public",
              "region": "R1", "url": PUB, "endpoint_id": "n"}
    assert cat.describe(create) == f"create block-storage public endpoint in R1: {PUB}"
    assert cat.changes_of([create])["created"][0]["endpoint_id"] == "n"
