"""Pure CIB logic: normalization, comparison, rendering, tool output parsing."""
import xml.etree.ElementTree as ET

import pytest

import cinder_ha_cib as cib

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
    import xml.etree.ElementTree as ET

    import cinder_ha_cib as model

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
