"""nova and glance pointed at the VIP (cinder_ha_lib.consumers): the pillar section, the options
planned from a consumer's file, and how the consumer will find cinder-api from it."""
import ipaddress

import pytest

from cinder_ha_lib import conf, consumers, pillar

VIP, PUBLIC_VIP, PHYSICAL = "127.0.0.103", "127.0.0.104", "127.0.0.1"
VIPS = {ipaddress.ip_address(VIP), ipaddress.ip_address(PUBLIC_VIP)}
SECTION = {"interface": "internal", "region": "RegionOne", "service_type": "volumev3", "cafile": None}
HTTP, HTTPS = f"http://{VIP}:8776/v3", f"https://{VIP}:8776/v3"
BASE = {
    "vip": {"address": VIP}, "public_vip": {"address": PUBLIC_VIP},
    "database": {"host": "127.0.0.1", "user": "cinder", "password": "pw"},
    "rabbitmq": {"hosts": ["127.0.0.1:5672"], "password": "pw"},
    "keystone": {"auth_url": "http://127.0.0.1:5000/v3", "username": "admin", "password": "pw",
                 "project_name": "admin", "region": "RegionTwo", "cacert": "/etc/ssl/keystone-ca.pem"},
}
NOVA = f"""[DEFAULT]
# a compute node
my_ip = 10.0.0.31
cinder_catalog_info = volume:cinder:publicURL

[cinder]
# the controller itself, from before the cluster
endpoint_template = http://{PHYSICAL}:8776/v3/%(project_id)s
os_region_name = RegionOld
auth_type = password
password = s3cr:et@
"""


def settings_of(**section):
    settings, errors, _ = pillar.normalize(dict(BASE, consumers=section))
    assert errors == [], errors
    return settings["consumers"]


def planned(kind, text, section=SECTION, endpoint=HTTP, resolve=None):
    wanted = consumers.desired(kind, text, section, endpoint, VIPS, resolve=resolve)
    plan = conf.plan(text, wanted.options)
    assert plan.errors == []
    return wanted, plan


# ---------------------------------------------------------------- the pillar section

def test_defaults_are_the_internal_interface_volumev3_and_keystones_region_and_ca():
    section = settings_of(files={"/etc/nova/nova.conf": "nova", "/etc/glance/glance-api.conf": "glance"})
    assert section["files"] == [
        {"path": "/etc/glance/glance-api.conf", "kind": "glance", "id": "etc-glance-glance-api-conf"},
        {"path": "/etc/nova/nova.conf", "kind": "nova", "id": "etc-nova-nova-conf"}]
    assert (section["interface"], section["service_type"], section["region"], section["cafile"]) == (
        "internal", "volumev3", "RegionTwo", "/etc/ssl/keystone-ca.pem")


def test_no_consumers_section_means_no_file():
    settings, errors, _ = pillar.normalize(BASE)
    assert errors == [] and settings["consumers"]["files"] == []


def test_an_interface_the_formula_does_not_register_is_refused_naming_the_key():
    raw = dict(BASE, endpoints={"interfaces": ["public"]}, consumers={"interface": "internal"})
    errors = pillar.normalize(raw)[1]
    assert any(e.startswith("consumers:interface: internal is not among endpoints:interfaces") for e in errors)
    # not given: the first registered one of internal, public, admin
    raw["consumers"] = {}
    assert pillar.normalize(raw)[0]["consumers"]["interface"] == "public"


@pytest.mark.parametrize("files,problem", [
    ({"etc/nova/nova.conf": "nova"}, "consumers:files:etc/nova/nova.conf: not an absolute path"),
    ({"/etc/nova/nova.conf": "cinder"}, "consumers:files:/etc/nova/nova.conf: one of nova, glance"),
    ({}, "consumers:files: an empty mapping means nothing here"),
    (["/etc/nova/nova.conf"], "consumers:files: got a list, expected a mapping"),
])
def test_bad_files_are_refused_naming_the_key(files, problem):
    settings, errors, _ = pillar.normalize(dict(BASE, consumers={"files": files}))
    assert settings is None and any(e.startswith(problem) for e in errors), errors


def test_two_paths_with_one_slug_get_two_state_ids():
    section = settings_of(files={"/etc/a/b.conf": "nova", "/etc/a/b-conf": "glance"})
    assert len({f["id"] for f in section["files"]}) == 2


# ---------------------------------------------------------------- nova

def test_a_template_on_a_controllers_address_is_removed_and_the_catalog_set():
    wanted, plan = planned("nova", NOVA)
    assert wanted.bypasses == [{"section": "cinder", "key": "endpoint_template",
                                "url": f"http://{PHYSICAL}:8776/v3/%(project_id)s", "host": PHYSICAL}]
    assert any(f"names {PHYSICAL}, not a VIP" in note for note in wanted.notes)
    effective = conf.parse(plan.new_text).effective()
    assert effective["cinder"]["catalog_info"] == ["volumev3::internalURL"]
    assert effective["cinder"]["os_region_name"] == ["RegionOne"]
    assert "endpoint_template" not in effective["cinder"]
    assert "cinder_catalog_info" not in effective["DEFAULT"], "nova ignores it today: removed"
    # the operator's comments and keys stay, the password is masked in the diff
    for kept in ("# a compute node", "my_ip = 10.0.0.31", "# the controller itself", "auth_type = password",
                 "password = s3cr:et@"):
        assert kept in plan.new_text
    diff = conf.masked_diff(NOVA, plan.new_text, "nova.conf")
    assert f"-endpoint_template = http://{PHYSICAL}:8776" in diff and "s3cr:et@" not in diff


def test_a_second_plan_changes_nothing():
    wanted, plan = planned("nova", NOVA)
    again = consumers.desired("nova", plan.new_text, SECTION, HTTP, VIPS)
    assert not conf.plan(plan.new_text, again.options).changed and again.bypasses == []


@pytest.mark.parametrize("template", [f"http://{VIP}:8776/v3/%(project_id)s", f"https://{PUBLIC_VIP}/v3",
                                      "http://cinder.example:8776/v3"])
def test_a_template_on_a_vip_stays(template):
    text = NOVA.replace(f"http://{PHYSICAL}:8776/v3/%(project_id)s", template)
    wanted, plan = planned("nova", text, resolve=lambda host: [VIP, PUBLIC_VIP])
    assert wanted.bypasses == []
    assert conf.parse(plan.new_text).effective()["cinder"]["endpoint_template"] == [template]
    assert consumers.lookup_of("nova", plan.new_text)["template"] == template


@pytest.mark.parametrize("addresses", [[], ["10.0.0.11"], [VIP, "10.0.0.11"]])
def test_a_name_that_resolves_elsewhere_or_not_at_all_is_a_bypass(addresses):
    text = NOVA.replace(PHYSICAL, "controller1")
    wanted, _plan = planned("nova", text, resolve=lambda host: addresses)
    assert [b["host"] for b in wanted.bypasses] == ["controller1"]


def test_the_ca_is_written_only_for_an_https_endpoint():
    section = dict(SECTION, cafile="/etc/ssl/openstack-ca.pem")
    assert "cafile" not in planned("nova", NOVA, section)[0].options["cinder"]
    wanted, plan = planned("nova", NOVA, section, endpoint=HTTPS)
    assert conf.parse(plan.new_text).effective()["cinder"]["cafile"] == ["/etc/ssl/openstack-ca.pem"]
    without = planned("nova", NOVA, endpoint=HTTPS)[0]
    assert any("gives no CA" in note for note in without.notes)


def test_a_missing_section_is_created():
    _wanted, plan = planned("nova", "[DEFAULT]\nmy_ip = 10.0.0.31\n")
    assert plan.new_text.startswith("[DEFAULT]\nmy_ip = 10.0.0.31\n")
    assert "[cinder]\ncatalog_info = volumev3::internalURL\nos_region_name = RegionOne\n" in plan.new_text


# ---------------------------------------------------------------- glance_store

GLANCE = f"""[DEFAULT]
bind_host = 0.0.0.0

[glance_store]
stores = file,http,cinder
default_store = cinder
cinder_endpoint_template = http://{PHYSICAL}:8776/v3/%(tenant)s
os_region_name = RegionOne
cinder_store_password = hidden
"""


def test_glance_single_store_gets_the_same_treatment():
    wanted, plan = planned("glance", GLANCE)
    assert [b["key"] for b in wanted.bypasses] == ["cinder_endpoint_template"]
    effective = conf.parse(plan.new_text).effective()["glance_store"]
    assert effective["cinder_catalog_info"] == ["volumev3::internalURL"]
    assert effective["cinder_os_region_name"] == ["RegionOne"]
    assert "os_region_name" not in effective and "cinder_endpoint_template" not in effective
    assert effective["stores"] == ["file,http,cinder"] and effective["cinder_store_password"] == ["hidden"]


def test_glance_multi_store_manages_each_cinder_store_section():
    text = "[DEFAULT]\nenabled_backends = fast:rbd, cheap:cinder, slow:cinder\n\n[cheap]\n\n[slow]\n"
    assert consumers.sections("glance", text) == ["cheap", "slow"]
    _wanted, plan = planned("glance", text)
    effective = conf.parse(plan.new_text).effective()
    assert effective["cheap"]["cinder_catalog_info"] == effective["slow"]["cinder_catalog_info"]
    assert "fast" not in effective and "glance_store" not in effective


def test_glance_with_its_own_credentials_looks_up_public_volumev3():
    text = GLANCE + "".join(f"{key} = x\n" for key in consumers.GLANCE_OWN_CREDENTIALS)
    found = consumers.lookup_of("glance", text)
    assert (found["template"], found["service_type"], found["interface"]) == (None, "volumev3", "publicURL")
    assert "ignores" in found["note"]


def test_lookup_defaults_are_the_consumers_own():
    found = consumers.lookup_of("nova", "[cinder]\n")
    assert (found["service_type"], found["service_name"], found["interface"], found["region"]) == (
        "volumev3", None, "publicURL", None)
    assert consumers.lookup_of("glance", GLANCE)["region"] == "RegionOne", "the deprecated name is still read"


# ---------------------------------------------------------------- addresses

@pytest.mark.parametrize("url,on_vip", [
    (f"http://{VIP}:8776/v3", True), (f"https://{PUBLIC_VIP}/v3/%(project_id)s", True),
    (f"http://{PHYSICAL}:8776/v3", False), ("http://[::1]:8776/v3", False), ("not a url", False), ("", False)])
def test_url_on_vip(url, on_vip):
    assert consumers.url_on_vip(url, VIPS)[0] is on_vip


def test_an_ipv6_vip_in_brackets():
    assert consumers.url_on_vip("http://[fd00::103]:8776/v3", {ipaddress.ip_address("fd00::103")})[0]


def test_an_unknown_kind_is_refused():
    with pytest.raises(ValueError, match="kind: 'cinder'"):
        consumers.desired("cinder", "", SECTION, HTTP, VIPS)
