"""cluster:mode cloned: the clone in the CIB model (normalize, render, parse, diff, the switch
between a primitive and a clone of it in one transaction), the pillar's mode and its invalid
combinations, the listen address, the formula's cloned objects, crm_mon's clone instances
and the alert agent's view of them. Pure logic: no cluster."""
import importlib.machinery
import importlib.util
import pathlib

import pytest
import yaml

from cinder_ha_lib import cib, conf, formula, pillar

PROJECT = pathlib.Path(__file__).resolve().parents[3]
DEFAULTS = PROJECT / "salt" / "cinder_ha" / "parameters" / "defaults.yaml"

EMPTY = ('<cib admin_epoch="0" epoch="7" num_updates="3"><configuration><crm_config/><nodes/>'
         '<resources/><constraints/></configuration><status/></cib>')


def api(**meta):
    return {"primitive": "p_api", "agent": "Dummy", "params": {"fake": "1"},
            "ops": {"monitor": {"interval": "5s"}}, "meta": meta}


def vip():
    return {"primitive": "p_ip", "agent": "IPaddr2", "params": {"ip": "198.18.0.100", "cidr_netmask": "24"}}


ACTIVE_PASSIVE = [vip(), api(), {"colocation": "c_api_with_ip", "resources": ["p_api", "p_ip"]},
                  {"order": "o_ip_before_api", "first": "p_ip", "then": "p_api"}]
CLONED = [vip(), api(**{"migration-threshold": 1, "failure-timeout": "60s"}),
          {"clone": "cl_api", "resource": "p_api", "meta": {"clone-node-max": 1, "interleave": True}},
          {"colocation": "c_ip_with_cl_api", "resources": ["p_ip", "cl_api"]},
          {"order": "o_cl_api_before_ip", "first": "cl_api", "then": "p_ip"}]


def applied(objects, text=EMPTY):
    """(normalized objects, the CIB text with them applied)."""
    desired = cib.normalize_objects(objects)
    parsed = cib.parse_cib(text)
    return desired, cib.to_xml(cib.apply_objects(parsed["root"], desired, parsed))


def steps(objects, text):
    return {(s["id"], s["action"]): s for s in cib.plan(cib.normalize_objects(objects), cib.parse_cib(text))}


# ---------------------------------------------------------------- the model

def test_clone_normalizes_with_text_meta():
    [obj] = cib.normalize_objects([{"clone": "cl_api", "resource": "p_api",
                                    "meta": {"clone-max": 3, "interleave": True}}])
    assert obj == {"tag": "clone", "id": "cl_api", "resource": "p_api",
                   "meta": {"clone-max": "3", "interleave": "true"}}


@pytest.mark.parametrize("raw,message", [
    ({"clone": "cl_api"}, "resource (the id of the primitive or group to clone) is required"),
    ({"clone": "cl_api", "resource": "cl_api"}, "need different ids"),
    ({"clone": "cl_api", "resource": "p_api", "meta": {"clone-max": "three"}}, "clone-max must be a non-negative"),
    ({"clone": "cl_api", "resource": "p_api", "meta": {"clone-max": 2, "clone-min": 3}}, "clone-min (3) is above"),
    ({"clone": "bad id", "resource": "p_api"}, "clone id 'bad id'"),
])
def test_invalid_clone_is_refused_with_its_reason(raw, message):
    with pytest.raises(cib.ModelError) as info:
        cib.normalize_objects([raw])
    assert message in str(info.value)


def test_clone_renders_around_its_primitive_and_reads_back_unchanged():
    desired, text = applied(CLONED)
    root = cib.parse_cib(text)["root"]
    clone = root.find("configuration/resources/clone")
    assert clone.get("id") == "cl_api"
    assert [c.tag for c in clone] == ["meta_attributes", "primitive"]
    assert clone.find("primitive").get("id") == "p_api"
    meta = {n.get("name"): n.get("value") for n in clone.findall("meta_attributes/nvpair")}
    assert meta == {"clone-node-max": "1", "interleave": "true"}
    parsed = cib.parse_cib(text)
    assert parsed["objects"][("clone", "cl_api")] == {"tag": "clone", "id": "cl_api", "resource": "p_api",
                                                      "meta": {"clone-node-max": "1", "interleave": "true"}}
    assert cib.plan(desired, parsed) == []  # second apply: nothing to do
    assert cib.clone_of(parsed, "p_api") == "cl_api" and cib.clone_of(parsed, "p_ip") is None


def test_clone_written_by_crm_with_other_ids_matches():
    text = EMPTY.replace("<resources/>", """<resources>
      <primitive id="p_ip" class="ocf" provider="heartbeat" type="IPaddr2"><instance_attributes id="ia">
        <nvpair id="a" name="ip" value="198.18.0.100"/><nvpair id="b" name="cidr_netmask" value="24"/>
      </instance_attributes></primitive>
      <clone id="cl_api"><meta_attributes id="cl_api-meta_attributes">
        <nvpair id="x1" name="interleave" value="true"/><nvpair id="x2" name="clone-node-max" value="1"/>
      </meta_attributes><meta_attributes id="empty"/>
      <primitive id="p_api" class="ocf" provider="heartbeat" type="Dummy">
        <instance_attributes id="ib"><nvpair id="c" name="fake" value="1"/></instance_attributes>
        <meta_attributes id="mb"><nvpair id="d" name="migration-threshold" value="1"/>
          <nvpair id="e" name="failure-timeout" value="60s"/></meta_attributes>
        <operations><op id="m" name="monitor" interval="5"/></operations></primitive></clone>
      </resources>""").replace("<constraints/>", """<constraints>
      <rsc_colocation id="c_ip_with_cl_api" score="INFINITY" rsc="p_ip" with-rsc="cl_api"/>
      <rsc_order id="o_cl_api_before_ip" kind="Mandatory" first="cl_api" then="p_ip" symmetrical="true"/>
      </constraints>""")
    assert steps(CLONED, text) == {}


def test_clone_meta_change_and_operator_target_role():
    _desired, text = applied(CLONED)
    text = text.replace('name="interleave" value="true" />',
                        'name="interleave" value="true" /><nvpair id="t" name="target-role" value="Stopped" />')
    assert "target-role" in text
    changed = [dict(c) for c in CLONED]
    changed[2] = dict(changed[2], meta={"clone-node-max": 1, "interleave": True, "clone-max": 2})
    found = steps(changed, text)
    assert list(found) == [("cl_api", "update")]
    assert found[("cl_api", "update")]["changes"] == {"meta.clone-max": {"old": None, "new": "2"}}
    desired, new_text = applied(changed, text)
    reread = cib.parse_cib(new_text)["objects"][("clone", "cl_api")]
    assert reread["meta"]["target-role"] == "Stopped"  # the operator's stop is kept
    assert reread["meta"]["clone-max"] == "2"


def test_clone_of_a_missing_resource_is_refused():
    desired = cib.normalize_objects([{"clone": "cl_x", "resource": "p_nothing"}])
    parsed = cib.parse_cib(EMPTY)
    with pytest.raises(cib.ModelError, match="p_nothing is not a primitive or group"):
        cib.apply_objects(parsed["root"], desired, parsed)


# ---------------------------------------------------------------- the switch, both directions

def test_primitive_to_clone_is_one_plan_that_drops_the_old_constraints():
    _desired, active_passive = applied(ACTIVE_PASSIVE)
    found = steps(CLONED, active_passive)
    assert found[("cl_api", "create")]["changes"]["resource"] == {"old": None, "new": "p_api"}
    assert found[("c_api_with_ip", "delete")]["changes"] == {
        "removed": {"old": "names p_api, now inside clone cl_api", "new": None}}
    assert ("o_ip_before_api", "delete") in found
    assert ("p_api", "update") in found  # its meta: migration-threshold, failure-timeout
    desired, cloned = applied(CLONED, active_passive)
    objects = cib.parse_cib(cloned)["objects"]
    assert ("colocation", "c_api_with_ip") not in objects and ("order", "o_ip_before_api") not in objects
    assert objects[("clone", "cl_api")]["resource"] == "p_api"
    assert cib.plan(desired, cib.parse_cib(cloned)) == []
    root = cib.parse_cib(cloned)["root"]
    assert int(root.get("epoch")) == 9  # 7, +1 per apply: each switch is one new CIB version


def test_clone_to_primitive_is_one_plan_that_unwraps_and_drops_the_clone():
    _desired, cloned = applied(CLONED)
    found = steps(ACTIVE_PASSIVE, cloned)
    assert found[("cl_api", "delete")]["changes"]["removed"]["old"] == "p_api taken out of clone cl_api"
    assert found[("c_ip_with_cl_api", "delete")]["changes"]["removed"]["old"] == \
        "names clone cl_api, which is removed"
    assert ("o_cl_api_before_ip", "delete") in found
    assert ("c_api_with_ip", "create") in found
    desired, back = applied(ACTIVE_PASSIVE, cloned)
    parsed = cib.parse_cib(back)
    assert not [key for key in parsed["objects"] if key[0] == "clone"]
    primitive = parsed["root"].find("configuration/resources/primitive[@id='p_api']")
    assert primitive is not None  # top level again, not lost with its clone
    assert cib.plan(desired, parsed) == []


def test_multi_active_instances_of_an_unwrapped_or_removed_clone_are_expected():
    """crm_verify on a switch back (the clone unwrapped) or a purge (the clone and its primitive
    removed, crm.purge marks the clone the same way): the instances are "active on N nodes" on
    purpose; any other error still rejects the change."""
    errors = ["error: ocf resource p_api might be active on 3 nodes (attempting recovery)",
              "error: ocf resource p_other might be active on 2 nodes (attempting recovery)",
              "error: something else"]
    steps = [{"id": "cl_api", "tag": "clone", "action": "delete", "unwraps": "p_api"},
             {"id": "p_api", "tag": "primitive", "action": "delete"}]
    left, warnings = cib.expected_verify_errors(steps, errors, ["warning: w"])
    assert left == errors[1:]
    assert warnings == ["warning: w", errors[0] + " (expected: its clone is unwrapped or removed in this change)"]
    assert cib.expected_verify_errors(steps[1:], errors, []) == (errors, [])


def test_deleting_a_clone_says_which_resource_goes_with_it():
    """crm.delete and crm.purge plan their steps with cib.deletion_steps: the constraints naming
    a deleted object go too, and a deleted clone's step names its resource (its instances'
    "active on N nodes" is then expected, as for an unwrap)."""
    _desired, cloned = applied(CLONED)
    parsed = cib.parse_cib(cloned)
    found = cib.deletion_steps(parsed, ["cl_api"])
    assert [(step["id"], step["tag"]) for step in found] == [
        ("c_ip_with_cl_api", "colocation"), ("cl_api", "clone"), ("o_cl_api_before_ip", "order")]
    assert found[1]["unwraps"] == "p_api" and "unwraps" not in found[0]
    errors = ["error: ocf resource p_api might be active on 3 nodes (attempting recovery)"]
    assert cib.expected_verify_errors(found, errors, [])[0] == []


def test_a_declared_constraint_on_the_primitive_is_kept_when_it_is_cloned():
    """Only constraints the list does not declare go: a declared one is the user's choice."""
    objects = CLONED + [{"location": "l_api_n1", "resource": "p_api", "node": "n1", "score": 50}]
    _desired, active_passive = applied(ACTIVE_PASSIVE + [objects[-1]])
    removed = [oid for oid, action in steps(objects, active_passive) if action == "delete"]
    assert sorted(removed) == ["c_api_with_ip", "o_ip_before_api"]


def test_unrelated_objects_are_left_alone():
    extra = [{"primitive": "p_other", "agent": "Dummy"},
             {"colocation": "c_other", "resources": ["p_other", "p_ip"]}]
    _desired, text = applied(ACTIVE_PASSIVE + extra)
    removed = [oid for oid, action in steps(CLONED, text) if action == "delete"]
    assert "c_other" not in removed and "p_other" not in removed


def test_switch_in_the_candidate_cib_passes_the_schema_shape():
    """The clone element holds meta_attributes then the primitive, as Pacemaker's schema wants."""
    _desired, text = applied(CLONED, applied(ACTIVE_PASSIVE)[1])
    clone = cib.parse_cib(text)["root"].find("configuration/resources/clone")
    assert [child.tag for child in clone] == ["meta_attributes", "primitive"]


# ---------------------------------------------------------------- crm_mon

CRM_MON = """<pacemaker-result api-version="2.25" request="crm_mon --output-as=xml">
  <summary><current_dc present="true" name="n2" with_quorum="true"/></summary>
  <nodes><node name="n1" online="true"/><node name="n2" online="true"/><node name="n3" online="true"/></nodes>
  <resources>
    <resource id="p_ip" resource_agent="ocf:heartbeat:IPaddr2" role="Started" active="true" failed="false"
              managed="true"><node name="n2" id="2" cached="true"/></resource>
    <clone id="cl_api" multi_state="false" unique="false" managed="true" failed="false">
      <resource id="p_api" resource_agent="ocf:openstack:cinder-api" role="Started" active="true" failed="false"
                managed="true"><node name="n1" id="1" cached="true"/></resource>
      <resource id="p_api" resource_agent="ocf:openstack:cinder-api" role="Started" active="true" failed="false"
                managed="true"><node name="n2" id="2" cached="true"/></resource>
      <resource id="p_api" resource_agent="ocf:openstack:cinder-api" role="Stopped" active="false" failed="false"
                managed="true"/>
    </clone>
  </resources>
</pacemaker-result>"""


def test_crm_mon_clone_instances_add_up_under_the_primitive_and_the_clone():
    status = cib.crm_mon_status(CRM_MON)["resources"]
    assert status["p_api"]["nodes"] == ["n1", "n2"] and status["p_api"]["active"]
    assert status["p_api"]["role"] == "Started"
    clone = status["cl_api"]
    assert clone["clone"] is True and clone["nodes"] == ["n1", "n2"]
    assert [(i["nodes"], i["role"]) for i in clone["instances"]] == [
        (["n1"], "Started"), (["n2"], "Started"), ([], "Stopped")]
    assert status["p_ip"]["nodes"] == ["n2"] and "instances" not in status["p_ip"]


# ---------------------------------------------------------------- the pillar

GOOD = {
    "vip": {"address": "198.18.0.100", "netmask": 24, "nic": "eth0"},
    "database": {"host": "198.18.0.254", "user": "cinder", "password": "db"},
    "rabbitmq": {"hosts": ["198.18.0.254"], "password": "rabbit"},
    "keystone": {"auth_url": "http://198.18.0.254:5000/v3", "username": "admin", "password": "ks",
                 "project_name": "admin"},
}


def normalized(**cluster):
    raw = dict(GOOD, cluster=cluster) if cluster else dict(GOOD)
    return pillar.normalize(raw)


def test_mode_defaults_to_active_passive():
    settings, errors, _ = normalized()
    assert errors == []
    assert settings["cluster"]["mode"] == "active_passive"


def test_cloned_mode_names_the_clone_and_listens_on_the_vip_like_active_passive():
    """Every node keeps the VIP on its loopback in cloned mode (cluster.sls): each instance binds
    the VIP itself, so cinder.conf is the same in both modes and a switch restarts nothing."""
    settings, errors, _ = normalized(mode="cloned", nodes=["n1", "n2", "n3"], clone_max=3, vip_stickiness=100)
    assert errors == []
    cluster = settings["cluster"]
    assert (cluster["clone_id"], cluster["clone_max"], cluster["vip_stickiness"], cluster["failure_timeout"]) == \
        ("cl_p_cinder-api", 3, "100", "60s")
    passive, _, _ = normalized()
    assert conf.desired_options(settings) == conf.desired_options(passive)
    assert conf.desired_options(settings)["DEFAULT"]["osapi_volume_listen"] == "198.18.0.100"


@pytest.mark.parametrize("cluster,message", [
    ({"mode": "clone"}, "cluster:mode: one of active_passive, cloned, balanced, got 'clone' (did you mean 'cloned'?)"),
    ({"mode": "cloned", "stickiness": 100}, "cluster:stickiness: with cluster:mode cloned"),
    ({"mode": "cloned", "clone_max": 4, "nodes": ["n1", "n2", "n3"]},
     "cluster:clone_max: 4 instances but cluster:nodes names 3 controllers"),
    ({"mode": "cloned", "clone_max": 1}, "a cloned cinder-api needs at least two instances"),
    ({"mode": "cloned", "clone_max": "many"}, "cluster:clone_max: a whole number"),
    ({"mode": "cloned", "nodes": ["n1"]}, "cluster:mode cloned needs at least two controllers"),
    ({"mode": "cloned", "vip_stickiness": "sticky"}, "cluster:vip_stickiness: a score"),
    ({"mode": "cloned", "failure_timeout": "soon"}, "cluster:failure_timeout: a duration"),
    ({"clone_max": 3}, "cluster:clone_max: only with cluster:mode cloned"),
    ({"vip_stickiness": 100}, "cluster:vip_stickiness: only with cluster:mode cloned"),
    ({"mode": "cloned", "clone_id": "p_cinder-api"}, "cluster:clone_id: must differ"),
])
def test_invalid_combinations_are_pillar_errors_naming_their_keys(cluster, message):
    settings, errors, _ = normalized(**cluster)
    assert settings is None
    assert any(message in error for error in errors), errors


def test_cloned_mode_refuses_a_monitor_url_on_the_vip():
    raw = dict(GOOD, cluster={"mode": "cloned"}, agent={"url": "http://198.18.0.100:8776/v3"})
    _settings, errors, _ = pillar.normalize(raw)
    assert any(e.startswith("agent:url: points at the VIP") for e in errors), errors


# ---------------------------------------------------------------- the formula's objects

def parameters():
    return dict(yaml.safe_load(DEFAULTS.read_text())["values"])


def formula_objects(**cluster):
    raw = dict(GOOD, agent={"os_username": "admin", "os_password": "pw", "os_project_name": "admin",
                            "os_auth_url": "http://198.18.0.254:5000/v3"})
    if cluster:
        raw["cluster"] = cluster
    settings, errors, _ = pillar.normalize(raw)
    assert errors == []
    return settings, formula.cluster_objects(settings, parameters())


def test_formula_cloned_objects():
    settings, objects = formula_objects(mode="cloned", clone_max=3, vip_stickiness=100)
    by_id = {next(v for k, v in o.items() if k in cib.KINDS): o for o in objects}
    assert by_id["cl_p_cinder-api"] == {"clone": "cl_p_cinder-api", "resource": "p_cinder-api",
                                         "meta": {"clone-node-max": "1", "interleave": "true", "clone-max": "3"}}
    assert by_id["p_cinder-api"]["meta"] == {"migration-threshold": "1", "failure-timeout": "60s",
                                              "multiple-active": "stop_unexpected"}
    assert by_id["p_ip_cinder-api"]["meta"] == {"resource-stickiness": "100"}
    assert by_id["c_p_ip_cinder-api_with_cl_p_cinder-api"]["resources"] == ["p_ip_cinder-api", "cl_p_cinder-api"]
    order = by_id["o_cl_p_cinder-api_before_p_ip_cinder-api"]
    assert (order["first"], order["then"]) == ("cl_p_cinder-api", "p_ip_cinder-api")
    assert by_id["l_p_cinder-api_secrets"]["resource"] == "cl_p_cinder-api"
    assert by_id["l_p_ip_cinder-api_secrets"]["resource"] == "p_ip_cinder-api"
    alert = next(o for o in objects if "alert" in o)
    assert alert["attributes"]["cinder_ha_resources"].split() == ["p_cinder-api", "p_ip_cinder-api",
                                                                  "cl_p_cinder-api"]
    assert "c_p_cinder-api_with_ip" not in by_id
    ids = formula.object_ids(settings, parameters())
    assert ids.index("cl_p_cinder-api") < ids.index("p_cinder-api")
    cib.normalize_objects([o for o in objects if "location" not in o])  # a valid model


def test_formula_modes_share_the_primitives_so_a_switch_is_one_plan():
    _settings, passive = formula_objects()
    _settings, cloned = formula_objects(mode="cloned")
    assert not [o for o in passive if "clone" in o]
    strip = lambda objs: [o for o in objs if "location" not in o]  # noqa: E731 (secrets_of needs values)
    _desired, text = applied(strip(passive))
    found = steps(strip(cloned), text)
    assert {oid for oid, action in found if action == "delete"} == {"c_p_cinder-api_with_ip",
                                                                   "o_ip_before_p_cinder-api"}
    _desired, cloned_text = applied(strip(cloned), text)
    back = steps(strip(passive), cloned_text)
    assert {oid for oid, action in back if action == "delete"} == {
        "cl_p_cinder-api", "c_p_ip_cinder-api_with_cl_p_cinder-api", "o_cl_p_cinder-api_before_p_ip_cinder-api"}


# ---------------------------------------------------------------- the alert agent

def alert_agent():
    path = PROJECT / "salt" / "cinder_ha" / "files" / "alert" / "cinder_ha_alert"
    loader = importlib.machinery.SourceFileLoader("cinder_ha_alert_under_test", str(path))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


@pytest.mark.parametrize("rsc,wanted", [("p_cinder-api", True), ("p_cinder-api:2", True),
                                        ("cl_p_cinder-api", True), ("p_other:0", False)])
def test_alert_agent_reports_clone_instances_of_its_primitive(rsc, wanted):
    env = {"CRM_alert_kind": "resource", "CRM_alert_rsc": rsc, "CRM_alert_task": "start", "CRM_alert_rc": "0",
           "CRM_alert_target_rc": "0", "cinder_ha_resources": "p_cinder-api p_ip_cinder-api cl_p_cinder-api"}
    assert alert_agent().wanted(env) is wanted


# ---------------------------------------------------------------- cinder_ha.status

def test_status_says_where_each_instance_runs_and_which_one_holds_the_vip():
    from unittest.mock import MagicMock

    from _modules import cinder_ha

    mon = cib.crm_mon_status(CRM_MON.replace("p_api", "p_cinder-api").replace("cl_api", "cl_p_cinder-api")
                             .replace('id="p_ip"', 'id="p_ip_cinder-api"'))
    cinder_ha.__salt__ = {"crm.status": MagicMock(return_value=mon)}
    try:
        settings, _errors, _ = normalized(mode="cloned")
        found = cinder_ha._clone_status(settings["cluster"])
    finally:
        del cinder_ha.__salt__
    assert found["id"] == "cl_p_cinder-api"
    assert found["running_on"] == ["n1", "n2"] and found["vip_on"] == "n2"
    assert [(i["node"], i["role"], i["holds_vip"]) for i in found["instances"]] == [
        ("n1", "Started", False), ("n2", "Started", True), (None, "Stopped", False)]
