"""The crm module and states through Salt's loader, against real crm/cibadmin on an offline CIB."""
import hashlib
import json
import os
import stat

import pytest

from tests.support import crm as cib

HOSTILE = "a \"b' $(touch {canary}) `touch {canary}` ; rm -rf /nonexistent  spaces\\"


@pytest.fixture
def offline(cib_file, monkeypatch):
    monkeypatch.setenv("CIB_file", str(cib_file))  # the module's subprocesses inherit it
    return cib_file


@pytest.fixture
def crm(loaders, offline):
    return loaders.modules.crm


@pytest.fixture
def states(loaders, offline):
    return loaders.states.crm


def guide_objects(fake="dummy", ip="127.0.0.114"):
    return [
        {"primitive": "crm_ip", "agent": "ocf:heartbeat:IPaddr2",
         "params": {"ip": ip, "cidr_netmask": 32, "nic": "lo"},
         "ops": {"monitor": {"interval": "10s", "timeout": "20s"}}},
        {"primitive": "crm_api", "agent": "ocf:heartbeat:Dummy", "params": {"fake": fake},
         "ops": {"monitor": {"interval": "30s", "timeout": "30s"}, "start": {"timeout": "60s"}}},
        {"colocation": "crm_c_api_with_ip", "score": "INFINITY", "resources": ["crm_api", "crm_ip"]},
        {"order": "crm_o_ip_before_api", "kind": "Mandatory", "first": "crm_ip", "then": "crm_api"},
    ]


GUIDE_AS_AN_OPERATOR_TYPES_IT = (
    'primitive crm_ip IPaddr2 params nic="lo" cidr_netmask=32 ip="127.0.0.114" '
    'op monitor timeout=20 interval=10000ms\n'
    'primitive crm_api ocf:heartbeat:Dummy params fake="dummy" '
    'op start timeout=1min interval=0 op monitor interval=30s timeout=30s\n'
    'colocation crm_c_api_with_ip inf: crm_api crm_ip\n'
    'order crm_o_ip_before_api Mandatory: crm_ip crm_api\n')


def test_create_then_noop_keeps_the_epoch(states):
    created = states.configured(name="crm", objects=guide_objects())
    assert created.result is True, created.comment
    assert set(created.changes["objects"]) == {"crm_ip", "crm_api", "crm_c_api_with_ip", "crm_o_ip_before_api"}
    assert cib.param("crm_ip", "ip") == "127.0.0.114"
    assert cib.element("crm_c_api_with_ip").get("with-rsc") == "crm_ip"
    epoch = cib.epoch()
    again = states.configured(name="crm", objects=guide_objects())
    assert again.result is True and again.changes == {}, again.comment
    assert cib.epoch() == epoch


def test_one_changed_parameter_is_exactly_what_is_reported_and_applied(states):
    assert states.configured(name="crm", objects=guide_objects()).result is True
    changed = states.configured(name="crm", objects=guide_objects(fake="other"))
    assert changed.result is True
    assert changed.changes["objects"] == {
        "crm_api": {"action": "update", "params.fake": {"old": "dummy", "new": "other"}}}
    assert cib.param("crm_api", "fake") == "other"


def test_changed_op_is_applied_and_removed_parameter_removed(states):
    assert states.configured(name="crm", objects=guide_objects()).result is True
    objects = guide_objects()
    objects[0]["params"].pop("nic")
    objects[0]["ops"]["monitor"]["timeout"] = "40s"
    changed = states.configured(name="crm", objects=objects)
    assert changed.changes["objects"] == {"crm_ip": {
        "action": "update", "params.nic": {"old": "lo", "new": None},
        "ops.monitor.timeout": {"old": "20s", "new": "40s"}}}
    assert cib.param("crm_ip", "nic") is None
    assert cib.element("crm_ip").find("operations/op[@name='monitor']").get("timeout") == "40s"


def test_objects_written_by_crm_with_other_ids_quoting_and_abbreviations_match(states, offline):
    # What an operator (or the guide) typed: abbreviated agent, quotes, units, crm's own ids,
    # an empty meta_attributes set, attributes in another order.
    loaded = cib.crm_load(GUIDE_AS_AN_OPERATOR_TYPES_IT)
    assert loaded.returncode == 0, loaded.stderr
    xml = offline.read_text().replace(
        '<primitive id="crm_api" class="ocf" provider="heartbeat" type="Dummy">',
        '<primitive id="crm_api" class="ocf" provider="heartbeat" type="Dummy">'
        '<meta_attributes id="crm_api-meta_attributes"/>')
    assert "crm_api-meta_attributes" in xml
    offline.write_text(xml)
    epoch = cib.epoch()
    result = states.configured(name="crm", objects=guide_objects())
    assert result.result is True and result.changes == {}, result.comment
    assert cib.epoch() == epoch


def test_operator_target_role_is_kept_unless_declared(states, crm):
    assert states.configured(name="crm", objects=guide_objects()).result is True
    assert crm.configure([{"primitive": "crm_api", "agent": "Dummy", "params": {"fake": "dummy"},
                           "ops": guide_objects()[1]["ops"], "meta": {"target-role": "Stopped"}}])["result"]
    # The formula's objects do not declare target-role: the operator's Stopped stays.
    result = states.configured(name="crm", objects=guide_objects())
    assert result.changes == {}, result.comment
    objects = guide_objects()
    objects[1]["meta"] = {"target-role": "Started"}
    declared = states.configured(name="crm", objects=objects)
    assert declared.changes["objects"]["crm_api"]["meta.target-role"] == {"old": "Stopped", "new": "Started"}


def test_hostile_password_plain_is_stored_exactly_and_never_run(states, tmp_path):
    canary = tmp_path / "executed"
    password = HOSTILE.format(canary=canary)
    obj = {"primitive": "crm_pw", "agent": "ocf:pacemaker:Dummy", "params": {"passwd": password},
           "secret_params": ["passwd"], "secret_mode": "plain"}
    result = states.configured(name="crm", objects=[obj])
    assert result.result is True, result.comment
    assert cib.param("crm_pw", "passwd") == password
    assert not canary.exists()
    cib.assert_no_secret(password, result.raw, "the state return")
    assert result.changes["objects"]["crm_pw"]["params.passwd"] == {"old": None, "new": "***"}
    assert states.configured(name="crm", objects=[obj]).changes == {}


def test_hostile_password_lrm_goes_to_a_0600_file_and_the_cib_gets_lrm(states, tmp_path):
    canary = tmp_path / "executed"
    password = HOSTILE.format(canary=canary) + "\ttab"
    secrets = tmp_path / "secrets"
    obj = {"primitive": "crm_pw", "agent": "ocf:pacemaker:Dummy", "params": {"passwd": password},
           "secret_params": ["passwd"], "secret_mode": "lrm"}
    result = states.configured(name="crm", objects=[obj], secrets_dir=str(secrets))
    assert result.result is True, result.comment
    cib.assert_no_secret(password, result.raw, "the state return")
    cib.assert_no_secret(password, cib.query(), "the CIB")
    assert cib.param("crm_pw", "passwd") == "lrm://"
    secret_file = secrets / "crm_pw" / "passwd"
    assert secret_file.read_bytes() == password.encode()
    assert (secrets / "crm_pw" / "passwd.sign").read_text() == hashlib.md5(password.encode()).hexdigest()
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    assert stat.S_IMODE((secrets / "crm_pw").stat().st_mode) == 0o700
    assert not canary.exists()
    # Same secret: nothing to do. Another secret: reported masked, file rewritten.
    epoch = cib.epoch()
    assert states.configured(name="crm", objects=[obj], secrets_dir=str(secrets)).changes == {}
    obj["params"]["passwd"] = "new-S3cr$t"
    changed = states.configured(name="crm", objects=[obj], secrets_dir=str(secrets))
    cib.assert_no_secret("new-S3cr$t", changed.raw, "the state return")
    assert changed.changes["objects"]["crm_pw"] == {
        "action": "update", "secret.passwd": {"old": "***", "new": "***"}}
    assert secret_file.read_text() == "new-S3cr$t"
    assert cib.epoch() == epoch  # only the file changed


def test_newline_in_a_plain_value_is_refused_before_touching_the_cib(states):
    epoch = cib.epoch()
    obj = {"primitive": "crm_pw", "agent": "ocf:pacemaker:Dummy", "params": {"passwd": "one\ntwo"},
           "secret_params": ["passwd"], "secret_mode": "plain"}
    result = states.configured(name="crm", objects=[obj])
    assert result.result is False
    assert "newline" in result.comment and "secret_mode: lrm" in result.comment
    cib.assert_no_secret("one\ntwo", result.raw, "the state return")
    assert cib.epoch() == epoch


def test_invalid_object_leaves_the_whole_batch_unwritten(states):
    epoch = cib.epoch()
    objects = guide_objects() + [{"primitive": "crm_missing", "agent": "ocf:nosuchprovider:nosuchagent"}]
    result = states.configured(name="crm", objects=objects)
    assert result.result is False
    assert "/usr/lib/ocf/resource.d/nosuchprovider/nosuchagent" in result.comment
    assert cib.epoch() == epoch and cib.element("crm_ip") is None

    objects = guide_objects()
    objects[1]["params"]["no_such_param"] = "1"
    result = states.configured(name="crm", objects=objects)
    assert result.result is False and "no_such_param" in result.comment
    assert cib.epoch() == epoch


def test_crm_verify_errors_fail_with_readable_text(states):
    epoch = cib.epoch()
    objects = guide_objects()
    objects[3]["first"] = "crm_nothing_here"
    result = states.configured(name="crm", objects=objects)
    assert result.result is False
    assert "crm_verify" in result.comment and "crm_nothing_here" in result.comment
    assert "\x1b[" not in result.comment
    assert cib.epoch() == epoch


def test_test_mode_shows_the_diff_and_writes_nothing(loaders, offline):
    states = loaders.states.crm
    assert states.configured(name="crm", objects=guide_objects()).result is True
    epoch = cib.epoch()
    dry = states.configured(name="crm", objects=guide_objects(fake="other"), test=True)
    assert dry.result is None
    assert "params.fake: 'dummy' -> 'other'" in dry.comment
    assert dry.changes["objects"]["crm_api"]["params.fake"] == {"old": "dummy", "new": "other"}
    assert cib.epoch() == epoch


def test_concurrent_write_between_read_and_commit_is_retried(crm):
    # Prime the per-run cache, then another writer changes the CIB: our patch is rejected as
    # "older than existing", re-read and re-planned.
    crm.show("cib-bootstrap-options", cache_token="run-1")  # reads the CIB once for run-1
    assert cib.crm_load("primitive crm_other Dummy\n").returncode == 0
    result = crm.configure(guide_objects(), cache_token="run-1")
    assert result["result"] is True, result["comment"]
    assert result["attempts"] == 2
    assert cib.count_ids("crm_api") == 1 and cib.element("crm_other") is not None


def test_same_objects_created_by_someone_else_meanwhile_is_a_noop(crm):
    crm.show("cib-bootstrap-options", cache_token="run-2")
    assert cib.crm_load(GUIDE_AS_AN_OPERATOR_TYPES_IT).returncode == 0  # the "other minion"
    result = crm.configure(guide_objects(), cache_token="run-2")
    assert result["result"] is True and result["changes"] == {}
    assert "concurrent" in result["comment"]
    assert cib.count_ids("crm_api") == 1


def test_group_property_show_and_absent(states, crm):
    objects = guide_objects()[:2] + [{"group": "crm_g", "resources": ["crm_ip", "crm_api"]},
                                     {"property": {"cluster-recheck-interval": "5min"}}]
    assert states.configured(name="crm", objects=objects).result is True
    assert [c.get("id") for c in cib.element("crm_g") if c.tag == "primitive"] == ["crm_ip", "crm_api"]
    assert states.configured(name="crm", objects=objects).changes == {}
    assert states.property_present(name="cluster-recheck-interval", value="5min").changes == {}
    shown = crm.show("crm_api")
    assert shown["agent"] == "ocf:heartbeat:Dummy" and shown["params"] == {"fake": "dummy"}
    gone = states.absent(name="crm_g")
    assert gone.result is True and "crm_g" in gone.changes["objects"]
    assert cib.element("crm_g") is None and cib.element("crm_api") is not None
    assert states.absent(name="crm_g").changes == {}


def test_individual_states_share_the_machinery(states):
    assert states.primitive_present(name="crm_ip", agent="IPaddr2",
                                    params={"ip": "127.0.0.114", "cidr_netmask": "32", "nic": "lo"}).result
    assert states.primitive_present(name="crm_api", agent="Dummy").result
    assert states.colocation_present(name="crm_c", resources=["crm_api", "crm_ip"]).result
    assert states.order_present(name="crm_o", first="crm_ip", then="crm_api").result
    assert states.order_present(name="crm_o", first="crm_ip", then="crm_api").changes == {}
    removed = states.absent(name="crm_ip")
    assert set(removed.changes["objects"]) == {"crm_ip", "crm_c", "crm_o"}


def test_verify_and_status_offline(crm):
    assert crm.configure(guide_objects())["result"] is True
    assert crm.verify()["valid"] is True
    status = crm.status()
    assert status["resources"]["crm_api"]["active"] is False


def test_alert_object_is_created_compared_and_changed_in_place(states, offline):
    alert = {"alert": "crm_alert", "path": "/usr/share/pacemaker/alerts/cinder_ha_alert", "select": ["resources"],
             "attributes": {"cinder_ha_resources": "crm_api crm_ip"}, "recipient": "/var/lib/cinder-ha/alerts"}
    created = states.configured(name="crm", objects=guide_objects() + [alert])
    assert created.result is True, created.comment
    element = cib.element("crm_alert")
    assert element.get("path") == alert["path"]
    assert element.find("select/select_resources") is not None
    assert element.find("recipient").get("value") == "/var/lib/cinder-ha/alerts"
    epoch = cib.epoch()
    assert states.configured(name="crm", objects=guide_objects() + [alert]).changes == {}
    assert cib.epoch() == epoch
    changed = states.configured(name="crm", objects=guide_objects() + [dict(alert, attributes={"cinder_ha_resources": "crm_api"})])
    assert list(changed.changes["objects"]) == ["crm_alert"]
    assert cib.element("crm_alert").find("instance_attributes/nvpair").get("value") == "crm_api"
    assert cib.count_ids("crm_alert") == 1


def test_a_secret_named_by_its_pillar_key_is_read_in_the_module(loaders, offline, tmp_path):
    """The formula passes {pillar: key}: the value never enters the rendered SLS."""
    password = "pillar-only 'S3cr$t' `x`"
    roots = loaders.opts["pillar_roots"]["base"][0]
    os.makedirs(roots, exist_ok=True)
    with open(os.path.join(roots, "top.sls"), "w") as handle:
        handle.write("base:\n  '*':\n    - crm_test\n")
    with open(os.path.join(roots, "crm_test.sls"), "w") as handle:
        json.dump({"cinder_ha": {"agent": {"os_password": password}}}, handle)
    loaders.refresh_pillar()
    loaders.reload_all()
    secrets = tmp_path / "secrets"
    ref = {"pillar": "cinder_ha:agent:os_password"}
    obj = {"primitive": "crm_pw", "agent": "ocf:pacemaker:Dummy", "params": {"passwd": ref},
           "secret_params": ["passwd"], "secret_mode": "lrm"}
    result = loaders.states.crm.configured(name="crm", objects=[obj], secrets_dir=str(secrets))
    assert result.result is True, result.comment
    assert (secrets / "crm_pw" / "passwd").read_text() == password
    assert cib.param("crm_pw", "passwd") == "lrm://"
    cib.assert_no_secret(password, result.raw, "the state return")
    on_other_node = loaders.states.crm_secrets.present(name="crm_pw", secrets={"passwd": ref},
                                                       secrets_dir=str(tmp_path / "other"), publish=False)
    assert (tmp_path / "other" / "crm_pw" / "passwd").read_text() == password
    cib.assert_no_secret(password, on_other_node.raw, "the state return")
    missing = loaders.states.crm.configured(name="crm", objects=[dict(obj, params={"passwd": {"pillar": "no:such:key"}})])
    assert missing.result is False and "no:such:key is not set" in missing.comment


def tool_calls(monkeypatch):
    """The cluster tools run in this process from now on, as "tool first-argument" strings."""
    import subprocess

    calls = []
    real = subprocess.Popen.__init__

    def start(self, args, *more, **kwargs):  # subprocess.run and the tools run side by side alike
        if isinstance(args, (list, tuple)) and os.path.basename(str(args[0])).startswith(("crm", "cib")):
            calls.append(" ".join(str(a) for a in args[:2]))
        return real(self, args, *more, **kwargs)

    monkeypatch.setattr(subprocess.Popen, "__init__", start)
    return calls


RUN_SLS = """\
{%- set role = salt["crm.role"](for_state_run=True) %}
crm objects:
  crm.configured:
    - objects: OBJECTS
crm restart check:
  cinder_ha.restarted_through_cluster:
    - name: crm_api
    - require:
      - crm: crm objects
"""


def test_a_state_run_reads_the_cluster_once_and_again_only_after_its_own_change(loaders, offline, monkeypatch):
    """What the formula's render (crm.role, read ahead) and the formula's crm states cost in one run: one
    crm_node, one crm_mon, one cibadmin --query for a no-op; a run that commits re-reads."""
    calls = tool_calls(monkeypatch)
    text = RUN_SLS.replace("OBJECTS", json.dumps(guide_objects()))

    first = loaders.modules.state.template_str(text)
    assert all(r["result"] is True for r in first.raw.values()), first.raw
    assert calls.count("crm_mon --one-shot") == 2, calls  # render, then after the commit
    assert calls.count("crm_node --name") == 1 and calls.count("cibadmin --query") == 1, calls
    assert "cibadmin --patch" in calls

    calls.clear()
    again = loaders.modules.state.template_str(text)
    assert all(r["result"] is True and not r["changes"] for r in again.raw.values()), again.raw
    assert sorted(calls) == ["cibadmin --query", "crm_mon --one-shot", "crm_node --name"], calls


def test_direct_calls_read_afresh_and_reuse_is_bounded(crm, loaders, monkeypatch):
    calls = tool_calls(monkeypatch)
    assert crm.configure(guide_objects())["result"] is True
    calls.clear()
    crm.status()
    crm.locate("crm_api")
    assert calls == ["crm_mon --one-shot"] * 2  # outside a state run nothing is reused by default
    assert crm.locate("crm_api", reuse=True) == [] and len(calls) == 2
    assert crm.node_name() == crm.node_name(reuse=True) and calls.count("crm_node --name") == 1
    assert crm.configure(guide_objects(fake="changed"))["changes"]  # a change drops what was read
    crm.locate("crm_api", reuse=True)
    assert calls[-1] == "crm_mon --one-shot", calls
    key = next(k for k in loaders.context if k.startswith("crm.status:"))
    taken, parsed = loaders.context[key]
    loaders.context[key] = (taken - 60, parsed)  # older than RUN_REUSE: read again
    before = len(calls)
    crm.locate("crm_api", reuse=True)
    assert calls[before:] == ["crm_mon --one-shot"], calls
    counted = crm.subprocess_count(by_tool=True)
    assert counted["crm_mon --one-shot"] == 4 and counted["crm_node --name"] == 1, counted
