"""Pure CIB logic: normalization, comparison, rendering, tool output parsing."""
import xml.etree.ElementTree as ET

import pytest

from cinder_ha_lib import cib

EMPTY = ('<cib admin_epoch="0" epoch="7" num_updates="3"><configuration><crm_config/><nodes/>'
         '<resources/><constraints/></configuration><status/></cib>')

WRITTEN_BY_CRM = """<cib admin_epoch="0" epoch="9" num_updates="1"><configuration>
<crm_config><cluster_property_set id="cib-bootstrap-options">
<nvpair id="cib-bootstrap-options-stonith-enabled" name="stonith-enabled" value="false"/>
</cluster_property_set></crm_config><nodes/>
<resources>
<primitive id="p_ip" class="ocf" type="IPaddr2" provider="heartbeat">
  <operations><op id="p_ip-monitor-10" timeout="20" name="monitor" interval="10"/></operations>
  <instance_attributes id="p_ip-instance_attributes">
    <nvpair id="p_ip-instance_attributes-nic" name="nic" value="lo"/>
    <nvpair id="p_ip-instance_attributes-ip" name="ip" value="127.0.0.103"/>
  </instance_attributes>
  <meta_attributes id="p_ip-meta_attributes"/>
  <meta_attributes id="p_ip-meta2"><nvpair id="x" name="target-role" value="Stopped"/></meta_attributes>
</primitive>
</resources>
<constraints><rsc_colocation id="c" score="INFINITY" rsc="p_api" with-rsc="p_ip"/></constraints>
</configuration><status/></cib>"""


def desired_ip(**params):
    values = {"ip": "127.0.0.103", "nic": "lo"}
    values.update(params)
    return {"primitive": "p_ip", "agent": "IPaddr2", "params": values,
            "ops": {"monitor": {"interval": "10s", "timeout": "20000ms"}}}


@pytest.mark.parametrize("agent,expected", [
    ("IPaddr2", ("ocf", "heartbeat", "IPaddr2")),
    ("ocf:openstack:cinder-api", ("ocf", "openstack", "cinder-api")),
    ("lsb:apache2", ("lsb", None, "apache2")),
])
def test_parse_agent(agent, expected):
    assert cib.parse_agent(agent) == expected


@pytest.mark.parametrize("agent", ["", "ocf:heartbeat", "a:b:c:d", None])
def test_parse_agent_rejects(agent):
    with pytest.raises(cib.ModelError):
        cib.parse_agent(agent)


@pytest.mark.parametrize("text,ms", [("30s", 30000), ("10", 10000), ("1min", 60000), ("500ms", 500),
                                     ("P1D", None)])
def test_duration(text, ms):
    assert cib.duration_ms(text) == ms


def test_what_crm_wrote_matches_the_declaration():
    parsed = cib.parse_cib(WRITTEN_BY_CRM)
    assert cib.plan(cib.normalize_objects([desired_ip()]), parsed) == []
    assert cib.plan(cib.normalize_objects([{"colocation": "c", "resources": ["p_api", "p_ip"]}]), parsed) == []
    assert cib.plan(cib.normalize_objects([{"property": {"stonith-enabled": False}}]), parsed) == []


def test_changed_and_removed_parameters_and_ops():
    parsed = cib.parse_cib(WRITTEN_BY_CRM)
    objects = [desired_ip(ip="127.0.0.104")]
    objects[0]["params"].pop("nic")
    objects[0]["ops"]["monitor"]["timeout"] = "30s"
    [step] = cib.plan(cib.normalize_objects(objects), parsed)
    assert step["changes"] == {"params.ip": {"old": "127.0.0.103", "new": "127.0.0.104"},
                               "params.nic": {"old": "lo", "new": None},
                               "ops.monitor.timeout": {"old": "20s", "new": "30s"}}


def test_target_role_kept_unless_declared_and_rendered_back():
    parsed = cib.parse_cib(WRITTEN_BY_CRM)
    objects = cib.normalize_objects([desired_ip(ip="127.0.0.104")])
    root = cib.apply_objects(parsed["root"], objects, parsed)
    again = cib.parse_cib(cib.to_xml(root))
    assert again["objects"][("primitive", "p_ip")]["meta"] == {"target-role": "Stopped"}
    assert cib.plan(objects, again) == []
    assert again["version"] == (0, 10, 0)
    declared = desired_ip()
    declared["meta"] = {"target-role": "Started"}
    [step] = cib.plan(cib.normalize_objects([declared]), parsed)
    assert step["changes"] == {"meta.target-role": {"old": "Stopped", "new": "Started"}}


def test_secrets_are_masked_and_lrm_compared_by_signature():
    obj = {"primitive": "p_api", "agent": "Dummy", "params": {"fake": "s3cret"},
           "secret_params": ["fake"], "secret_mode": "lrm"}
    [desired] = cib.normalize_objects([obj])
    parsed = cib.parse_cib(EMPTY)
    [create] = cib.plan([desired], parsed)
    assert "s3cret" not in repr(create)
    root = cib.apply_objects(parsed["root"], [desired], parsed)
    assert "s3cret" not in cib.to_xml(root) and 'value="lrm://"' in cib.to_xml(root)
    after = cib.parse_cib(cib.to_xml(root))
    assert cib.plan([desired], after, {("p_api", "fake"): cib.md5_hex("s3cret")}) == []
    [file_only] = cib.plan([desired], after, {("p_api", "fake"): cib.md5_hex("old")})
    assert file_only["cib"] is False and file_only["changes"] == {"secret.fake": {"old": "***", "new": "***"}}
    plain = dict(obj, secret_mode="plain", params={"fake": "other"})
    [to_plain] = cib.plan(cib.normalize_objects([plain]), after)
    assert to_plain["changes"]["params.fake"] == {"old": "***", "new": "***"}


def test_model_errors_are_listed_together():
    with pytest.raises(cib.ModelError) as raised:
        cib.normalize_objects([{"primitive": "p", "agent": "Dummy", "params": {"a": "x\ny"}},
                               {"colocation": "c", "resources": ["one"]},
                               {"order": "o", "first": "a"},
                               {"primitive": "p", "agent": "Dummy"}])
    message = str(raised.value)
    for part in ("newline", "exactly two", "first and then", "declared twice"):
        assert part in message


def test_group_adopts_primitives_and_remove_drops_references():
    objects = cib.normalize_objects([desired_ip(), {"primitive": "p_api", "agent": "Dummy"},
                                     {"group": "g", "resources": ["p_ip", "p_api"]},
                                     {"order": "o", "first": "p_ip", "then": "p_api"}])
    parsed = cib.parse_cib(EMPTY)
    root = cib.apply_objects(parsed["root"], objects, parsed)
    group = root.find("configuration/resources/group")
    assert [child.get("id") for child in group if child.tag == "primitive"] == ["p_ip", "p_api"]
    assert cib.plan(objects, cib.parse_cib(cib.to_xml(root))) == []
    removed = cib.remove_objects(root, ["p_api"])
    text = cib.to_xml(removed)
    assert 'id="p_api"' not in text and 'id="o"' not in text and 'id="p_ip"' in text


def test_transition_summary_sentences():
    output = """Current cluster status:
  * Node List:
    * Online: [ node1 ]

Transition Summary:
  * Restart    p_cinder-api        ( node1 )  due to resource definition change
  * Start      p_ip_cinder-api     ( node1 )
  * Move       p_x                 ( node1 -> node2 )

Executing Cluster Transition:
  * Resource action: p_cinder-api    stop on node1
"""
    assert cib.transition_summary(output) == [
        "restart p_cinder-api on node1 (due to resource definition change)",
        "start p_ip_cinder-api on node1",
        "move p_x from node1 to node2"]


def test_verify_messages_split_and_clean():
    text = ("\x1b[31m(unpack_config) \twarning: Blind faith: not fencing unseen nodes\x1b[0m\n"
            "/tmp/x/new.xml:30: element rsc_order: validity error : IDREF attribute first references an unknown ID \"nope\"\n"
            "(main) \terror: CIB did not pass schema validation\n"
            "crm_verify: Errors found during check: config not valid\n")
    errors, warnings = cib.verify_messages(text, "/tmp/x/new.xml")
    assert warnings == ["warning: Blind faith: not fencing unseen nodes"]
    assert errors[0].startswith("candidate CIB:30: element rsc_order: validity error")
    assert errors[1] == "error: CIB did not pass schema validation"


def test_mask_and_strip_ansi():
    assert cib.mask("pw=abc abcd", ["abc", "abcd"]) == "pw=*** ***"
    assert cib.strip_ansi("\x1b[33mWARNING\x1b[0m: x") == "WARNING: x"


def test_crm_mon_status():
    xml = """<pacemaker-result><summary><current_dc present="true" name="node1"/></summary>
<nodes><node name="node1" online="true" standby="false" is_dc="true" resources_running="1"/></nodes>
<resources><resource id="p" resource_agent="ocf:heartbeat:Dummy" role="Started" active="true"
 failed="false" managed="true"><node name="node1" id="1"/></resource></resources></pacemaker-result>"""
    status = cib.crm_mon_status(xml)
    assert status["dc"] == "node1"
    assert status["resources"]["p"]["nodes"] == ["node1"] and status["resources"]["p"]["active"]


def test_alert_round_trips_through_cib_xml():

    from cinder_ha_lib import cib as model

    desired = model.normalize_objects([{"alert": "a1", "path": "/usr/share/pacemaker/alerts/x",
                                        "select": ["resources"], "attributes": {"k": "v w"},
                                        "recipient": "/var/spool/x"}])
    empty = ET.fromstring('<cib epoch="1" admin_epoch="0" num_updates="0"><configuration><crm_config/>'
                          '<nodes/><resources/><constraints/></configuration><status/></cib>')
    parsed = model.parse_cib(ET.tostring(empty, encoding="unicode"))
    assert [step["action"] for step in model.plan(desired, parsed)] == ["create"]
    written = model.apply_objects(parsed["root"], desired, parsed)
    reread = model.parse_cib(ET.tostring(written, encoding="unicode"))
    assert model.plan(desired, reread) == []
    assert reread["objects"][("alert", "a1")]["select"] == ["resources"]
    with pytest.raises(model.ModelError, match="select"):
        model.normalize_objects([{"alert": "a2", "path": "/x", "select": ["everything"]}])


# ---------------------------------------------------------------- lrm secrets: digest, rules, refusal

def secret_objects(password="S3cr$t 'x'", discovery="never"):
    return [
        {"primitive": "p_api", "agent": "ocf:openstack:cinder-api", "params": {"os_password": password},
         "secret_params": ["os_password"], "secret_mode": "lrm"},
        {"primitive": "p_ip", "agent": "IPaddr2", "params": {"ip": "127.0.0.103"}},
        {"location": "l_api", "resource": "p_api", "secrets_of": "p_api", "resource_discovery": discovery},
        {"location": "l_ip", "resource": "p_ip", "secrets_of": "p_api"},
    ]


def test_secrets_digest_is_stable_order_free_and_separates_resources_and_names():
    one = cib.secrets_digest("p_api", {"a": "1", "b": "2"})
    assert one == cib.secrets_digest("p_api", {"b": "2", "a": "1"})
    assert len(one) == 64 and int(one, 16) >= 0
    assert one != cib.secrets_digest("p_api2", {"a": "1", "b": "2"})
    # domain separation: moving text between name and value or between pairs changes the digest
    assert cib.secrets_digest("p", {"a": "b=c"}) != cib.secrets_digest("p", {"a=b": "c"})
    assert cib.secrets_digest("p", {"a": "1,b"}) != cib.secrets_digest("p", {"a": "1", "b": ""})
    # not the md5 .sign of the password, nor its plain sha256
    import hashlib
    assert cib.secrets_digest("p", {"a": "pw"}) not in (hashlib.md5(b"pw").hexdigest(),
                                                        hashlib.sha256(b"pw").hexdigest())


def test_secrets_of_expands_to_a_rule_on_the_declared_values():
    objects = cib.normalize_objects(secret_objects())
    location = next(o for o in objects if o["id"] == "l_api")
    digest = cib.secrets_digest("p_api", {"os_password": "S3cr$t 'x'"})
    assert location["rsc"] == "p_api" and location["discovery"] == "never"
    assert location["rules"] == cib.secrets_rules("cinder_ha_secrets_p_api", [digest])
    assert [cib.rule_text(rule) for rule in location["rules"]] == [
        "-INFINITY: not_defined cinder_ha_secrets_p_api", f"-INFINITY: cinder_ha_secrets_p_api ne {digest}"]
    other = cib.normalize_objects(secret_objects(password="another"))
    assert next(o for o in other if o["id"] == "l_api")["rules"] != location["rules"]


@pytest.mark.parametrize("objects,message", [
    ([{"location": "l", "resource": "p", "secrets_of": "p_missing"}], "must be declared in the same list"),
    ([{"primitive": "p", "agent": "Dummy", "params": {"pw": "x"}, "secret_params": ["pw"], "secret_mode": "plain"},
      {"location": "l", "resource": "p", "secrets_of": "p"}], "no rule is needed"),
    ([{"location": "l", "resource": "p", "node": "node1"}], "node needs a score"),
    ([{"location": "l", "resource": "p"}], "exactly one of node"),
    ([{"location": "l", "resource": "p", "node": "n", "score": 1, "resource_discovery": "sometimes"}],
     "resource_discovery"),
    ([{"location": "l", "resource": "p", "rules": [{"expressions": [{"attribute": "a", "operation": "eq"}]}]}],
     "eq needs a value"),
    ([{"location": "l", "resource": "p", "rules": [{"expressions": [{"attribute": "a", "operation": "like"}]}]}],
     "operation 'like'"),
])
def test_invalid_locations_are_refused(objects, message):
    with pytest.raises(cib.ModelError, match=message):
        cib.normalize_objects(objects)


def test_location_render_parse_round_trip_has_no_diff():
    objects = cib.normalize_objects(secret_objects() + [
        {"location": "l_pref", "resource": "p_ip", "node": "node1", "score": "inf"},
        {"location": "l_rules", "resource": "p_ip", "rules": [
            {"score": 50, "expressions": [{"attribute": "#uname", "operation": "eq", "value": "node1",
                                           "type": "string"}]},
            {"score": "-inf", "boolean_op": "or", "expressions": [{"attribute": "rack", "operation": "defined"}]}]},
    ])
    parsed = cib.parse_cib(EMPTY)
    steps = {step["id"]: step for step in cib.plan(objects, parsed)}
    assert set(steps) == {"p_api", "p_ip", "l_api", "l_ip", "l_pref", "l_rules"}
    assert steps["l_api"]["changes"]["resource-discovery"] == {"old": None, "new": "never"}
    root = cib.apply_objects(parsed["root"], objects, parsed)
    xml = cib.to_xml(root)
    assert 'resource-discovery="never"' in xml and xml.count("resource-discovery") == 1
    again = cib.parse_cib(xml)
    assert [s for s in cib.plan(objects, again) if s["cib"]] == []
    element = root.find("configuration/constraints/rsc_location[@id='l_api']")
    assert [(rule.get("score"), [(e.get("operation"), e.get("value")) for e in rule.findall("expression")])
            for rule in element.findall("rule")] == [
        ("-INFINITY", [("not_defined", None)]),
        ("-INFINITY", [("ne", cib.secrets_digest("p_api", {"os_password": "S3cr$t 'x'"}))])]
    assert "S3cr$t" not in xml.replace('value="lrm://"', "")


def test_a_rule_of_the_one_rule_form_is_read_as_its_set_and_a_new_digest_is_one_rule_change():
    digest = cib.secrets_digest("p_api", {"os_password": "old"})
    by_crm = EMPTY.replace("<constraints/>", f"""<constraints>
      <rsc_location id="l_api" rsc="p_api" resource-discovery="never">
        <rule id="l_api-rule" score="-inf" boolean-op="or">
          <expression id="x1" attribute="cinder_ha_secrets_p_api" operation="not_defined"/>
          <expression id="x2" operation="ne" value="{digest}" attribute="cinder_ha_secrets_p_api"/>
        </rule></rsc_location>
      <rsc_location id="l_ip" rsc="p_ip" resource-discovery="always">
        <rule id="l_ip-rule" score="-INFINITY" boolean-op="or">
          <expression id="y1" attribute="cinder_ha_secrets_p_api" operation="not_defined"/>
          <expression id="y2" attribute="cinder_ha_secrets_p_api" operation="ne" value="{digest}"/>
        </rule></rsc_location></constraints>""")
    parsed = cib.parse_cib(by_crm)
    assert [cib.accepted_digests(parsed["objects"][("location", lid)]) for lid in ("l_api", "l_ip")] == [
        [digest], [digest]]  # the one-rule form of earlier versions is read as a set of one
    same = [o for o in cib.normalize_objects(secret_objects(password="old")) if o["tag"] == "location"]
    assert [s["changes"] for s in cib.plan(same, parsed)][0]["rules"]["new"] == [
        "-INFINITY: not_defined cinder_ha_secrets_p_api", f"-INFINITY: cinder_ha_secrets_p_api ne {digest}"]
    changed = [o for o in cib.normalize_objects(secret_objects(password="new")) if o["tag"] == "location"]
    steps = cib.plan(changed, parsed)
    assert [s["id"] for s in steps] == ["l_api", "l_ip"]
    assert list(steps[0]["changes"]) == ["rules"]
    assert "new" not in str(steps[0]["changes"]).replace("'new':", "")  # the password is not shown


def test_node_attribute_is_compared_and_written_into_the_nodes_section():
    with_node = EMPTY.replace("<nodes/>", '<nodes><node id="1" uname="node1"/></nodes>')
    parsed = cib.parse_cib(with_node)
    attr = cib.node_attribute("node1", "cinder_ha_secrets_p_api", "abc")
    [step] = cib.plan([attr], parsed)
    assert step["changes"] == {"value": {"old": None, "new": "abc"}} and step["cib"]
    root = cib.apply_objects(parsed["root"], [attr], parsed)
    nvpair = root.find("configuration/nodes/node/instance_attributes/nvpair")
    assert (nvpair.get("name"), nvpair.get("value")) == ("cinder_ha_secrets_p_api", "abc")
    assert cib.plan([attr], cib.parse_cib(cib.to_xml(root))) == []
    with pytest.raises(cib.ModelError, match="node2 is not in the CIB"):
        cib.apply_objects(parsed["root"], [cib.node_attribute("node2", "a", "b")], parsed)


def test_deleting_a_primitive_takes_its_locations_along():
    objects = cib.normalize_objects(secret_objects())
    parsed = cib.parse_cib(EMPTY)
    parsed = cib.parse_cib(cib.to_xml(cib.apply_objects(parsed["root"], objects, parsed)))
    assert cib.references(parsed, "p_api") == ["l_api"]
    root = cib.remove_objects(parsed["root"], ["p_ip"])
    assert root.find("configuration/constraints/rsc_location[@id='l_ip']") is None
    assert root.find("configuration/constraints/rsc_location[@id='l_api']") is not None


@pytest.mark.parametrize("value,why", [
    ("", "is empty"),
    ("two\nlines", "line break"),
    ("carriage\rreturn", "line break"),
    ("trailing ", "ends with whitespace"),
    ("trailing\t", "ends with whitespace"),
    ("x" * 255, "255 bytes long"),
    ("é" * 128, "256 bytes long"),
])
def test_secret_values_pacemaker_cannot_read_back_are_refused(value, why):
    problem = cib.secret_value_problem("p_api", "os_password", value)
    assert problem and why in problem and "os_password" in problem and "p_api" in problem
    if value.strip():
        assert value.strip() not in problem
    objects = secret_objects(password=value)
    with pytest.raises(cib.ModelError, match=why):
        cib.normalize_objects(objects)


@pytest.mark.parametrize("value", ["x" * 254, " leading space", "é" * 127, "in ner\tspace", "a"])
def test_secret_values_pacemaker_reads_back_are_accepted(value):
    assert cib.secret_value_problem("p_api", "os_password", value) is None


def test_a_password_named_param_is_masked_whatever_the_mode():
    """Removing a plain-mode password, or a param named like a secret but not declared one,
    never shows its value in the diff."""
    current = {"id": "p_api", "tag": "primitive", "agent": "ocf:openstack:cinder-api",
               "params": {"os_password": "old-s3cret", "admin_token": "tok-s3cret", "config": "/etc/c"},
               "ops": {}, "meta": {}}
    desired = {"id": "p_api", "tag": "primitive", "agent": "ocf:openstack:cinder-api",
               "params": {"config": "/etc/c", "admin_token": "tok-new"}, "ops": {}, "meta": {},
               "secret_params": [], "secret_mode": "plain"}
    changes = cib._param_changes(desired, current, {})
    assert changes["params.os_password"] == {"old": "***", "new": None}
    assert changes["params.admin_token"] == {"old": "***", "new": "***"}
    assert "s3cret" not in repr(changes)


def test_current_dc_is_the_dc_uuid_named_among_the_nodes():
    nodes = '<configuration><nodes><node id="1" uname="node1"/><node id="2" uname="node2"/></nodes></configuration>'
    assert cib.current_dc(f'<cib dc-uuid="2">{nodes}</cib>') == "node2"
    assert cib.current_dc(f"<cib>{nodes}</cib>") is None  # an election: no DC yet
    assert cib.current_dc(f'<cib dc-uuid="9">{nodes}</cib>') is None  # not a configured node


def test_digest_memo_key_follows_the_values_and_is_not_the_digest():
    key = cib.digest_memo_key("p_api", {"a": "1", "b": "2"})
    assert key == cib.digest_memo_key("p_api", {"b": "2", "a": "1"})
    assert key != cib.digest_memo_key("p_api", {"a": "1", "b": "3"})
    assert key != cib.digest_memo_key("p_api2", {"a": "1", "b": "2"})
    assert key != cib.secrets_digest("p_api", {"a": "1", "b": "2"})
