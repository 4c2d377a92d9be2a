"""The formula's cluster objects (cinder_ha_lib.formula): what cinder_ha.cluster keeps in the CIB; the
formula's parameters and lookup; the module's answers computed once per run (loader mocked)."""
import json
import pathlib
from unittest.mock import MagicMock

import pytest
import yaml

from _modules import cinder_ha
from cinder_ha_lib import formula, pillar, secret_rule

PROJECT = pathlib.Path(__file__).resolve().parents[3]
DEFAULTS = PROJECT / "salt" / "cinder_ha" / "parameters" / "defaults.yaml"
PASSWORD = "s3cr3t-Agent-pw"
DB_PASSWORD = "db-Pw-42"


def parameters(**lookup):
    values = dict(yaml.safe_load(DEFAULTS.read_text())["values"])
    values.update(lookup)
    return values


def raw_pillar(**overrides):
    raw = {
        "vip": {"address": "127.0.0.103", "netmask": 32, "nic": "lo"},
        "database": {"host": "127.0.0.1", "user": "cinder", "password": DB_PASSWORD},
        "rabbitmq": {"hosts": ["127.0.0.1"], "password": "rabbit-Pw"},
        "keystone": {"auth_url": "http://127.0.0.1:5000/v3", "username": "admin", "password": "ks-Pw",
                     "project_name": "admin"},
        "agent": {"binary": "/opt/cinder/bin/cinder-api", "monitor_interval": "5s", "os_username": "admin",
                  "os_password": PASSWORD, "os_project_name": "admin",
                  "os_auth_url": "http://127.0.0.1:5000/v3"},
    }
    for section, values in overrides.items():
        if isinstance(values, dict):
            raw.setdefault(section, {}).update(values)
        else:
            raw[section] = values
    return raw


def settings(masked=True, **overrides):
    result, errors, _warnings = pillar.normalize(raw_pillar(**overrides))
    assert not errors, errors
    return secret_rule.masked(result) if masked else result


# What cluster.sls rendered before the object list moved into cinder_ha_lib.formula, for the
# sandbox-like pillar above (lrm secrets): the function must keep producing exactly this.
EXPECTED = [
    {"primitive": "p_ip_cinder-api", "agent": "ocf:heartbeat:IPaddr2",
     "params": {"ip": "127.0.0.103", "cidr_netmask": "32", "nic": "lo"},
     "ops": {"monitor": {"interval": "10s", "timeout": "20s"}}},
    {"primitive": "p_cinder-api", "agent": "ocf:openstack:cinder-api",
     "params": {"binary": "/opt/cinder/bin/cinder-api", "user": "cinder", "config": "/etc/cinder/cinder.conf",
                "os_username": "admin", "os_password": {"pillar": "cinder_ha:agent:os_password"},
                "os_auth_url": "http://127.0.0.1:5000/v3", "os_project_name": "admin", "vip": "127.0.0.103"},
     "secret_params": ["os_password"], "secret_mode": "lrm",
     "ops": {"monitor": {"interval": "5s", "timeout": "30s"}, "start": {"timeout": "60s"},
             "stop": {"timeout": "90s"}}},
    {"colocation": "c_p_cinder-api_with_ip", "score": "INFINITY", "resources": ["p_cinder-api", "p_ip_cinder-api"]},
    {"order": "o_ip_before_p_cinder-api", "kind": "Mandatory", "first": "p_ip_cinder-api", "then": "p_cinder-api"},
    {"alert": "cinder_ha_salt", "path": "/usr/share/pacemaker/alerts/cinder_ha_alert", "select": ["resources"],
     "attributes": {"cinder_ha_resources": "p_cinder-api p_ip_cinder-api"}, "recipient": "/var/lib/cinder-ha/alerts"},
    {"location": "l_p_cinder-api_secrets", "resource": "p_cinder-api", "secrets_of": "p_cinder-api",
     "resource_discovery": "never"},
    {"location": "l_p_ip_cinder-api_secrets", "resource": "p_ip_cinder-api", "secrets_of": "p_cinder-api"},
]


@pytest.mark.parametrize("masked", [True, False], ids=["masked", "revealed"])
def test_objects_are_exactly_the_formulas(masked):
    assert formula.cluster_objects(settings(masked=masked), parameters()) == EXPECTED


@pytest.mark.parametrize("masked", [True, False], ids=["masked", "revealed"])
def test_no_secret_value_in_the_objects(masked):
    """Secrets are named by pillar key: neither the value nor its mask reaches the list."""
    text = json.dumps(formula.cluster_objects(settings(masked=masked), parameters()))
    for secret in (PASSWORD, DB_PASSWORD, "rabbit-Pw", "ks-Pw", secret_rule.MASK):
        assert secret not in text


def test_plain_mode_has_no_secret_rules_and_keeps_the_pillar_reference():
    objects = formula.cluster_objects(settings(agent={"secret_mode": "plain"}), parameters())
    assert not [o for o in objects if "location" in o]
    (api,) = [o for o in objects if o.get("primitive") == "p_cinder-api"]
    assert api["secret_mode"] == "plain" and api["secret_params"] == ["os_password"]
    assert api["params"]["os_password"] == {"pillar": "cinder_ha:agent:os_password"}
    assert PASSWORD not in json.dumps(objects)


def test_no_password_no_secret_params_no_rules():
    objects = formula.cluster_objects(settings(agent={"os_password": None}), parameters())
    (api,) = [o for o in objects if o.get("primitive") == "p_cinder-api"]
    assert api["secret_params"] == [] and "os_password" not in api["params"]
    assert not [o for o in objects if "location" in o]
    assert not formula.lrm_secrets(settings(agent={"os_password": None}), parameters())


def test_stickiness_ids_and_vip_without_nic():
    conf = settings(cluster={"primitive_id": "p_api", "vip_id": "p_vip", "stickiness": 0},
                    vip={"address": "10.0.0.5", "netmask": 24, "nic": None})
    objects = {next(iter(o.values())): o for o in formula.cluster_objects(conf, parameters())}
    assert objects["p_api"]["meta"] == {"resource-stickiness": "0"}
    assert objects["p_vip"]["params"] == {"ip": "10.0.0.5", "cidr_netmask": "24"}
    assert objects["c_p_api_with_ip"]["resources"] == ["p_api", "p_vip"]
    assert objects["o_ip_before_p_api"]["first"] == "p_vip"
    assert objects["l_p_vip_secrets"]["resource"] == "p_vip"
    assert objects["cinder_ha_salt"]["attributes"] == {"cinder_ha_resources": "p_api p_vip"}


def test_lookup_parameters_reach_the_objects():
    params = parameters(vip_monitor_interval="7s", vip_monitor_timeout="9s", alert_id="a_x",
                        alert_agent="/opt/alerts/x", alert_spool="/srv/spool", cinder_user="svc",
                        cinder_api_binary="/opt/bin/api")
    objects = {next(iter(o.values())): o for o in formula.cluster_objects(settings(agent={"binary": None}), params)}
    assert objects["p_ip_cinder-api"]["ops"]["monitor"] == {"interval": "7s", "timeout": "9s"}
    assert objects["a_x"]["path"] == "/opt/alerts/x" and objects["a_x"]["recipient"] == "/srv/spool"
    assert objects["p_cinder-api"]["params"]["user"] == "svc"
    assert objects["p_cinder-api"]["params"]["binary"] == "/opt/bin/api"


def test_object_ids_cover_every_object_constraints_first():
    conf = settings()
    ids = formula.object_ids(conf, parameters())
    haproxy = {"c_p_ip_cinder-api_with_cl_p_haproxy-cinder-api", "o_cl_p_haproxy-cinder-api_before_p_ip_cinder-api",
               "o_cl_p_cinder-api_before_cl_p_haproxy-cinder-api", "cl_p_haproxy-cinder-api",
               "p_haproxy-cinder-api"}  # listed in every mode (balanced's)
    assert {next(iter(o.values())) for o in formula.cluster_objects(conf, parameters())} == set(ids) - haproxy
    assert ids.index("c_p_cinder-api_with_ip") < ids.index("p_cinder-api")
    assert ids.index("l_p_ip_cinder-api_secrets") < ids.index("p_ip_cinder-api")
    # the secret rules are listed in plain mode too (an earlier lrm setup may have left them)
    assert "l_p_cinder-api_secrets" in formula.object_ids(settings(agent={"secret_mode": "plain"}), parameters())


def test_every_parameter_may_be_looked_up_and_no_other():
    """pillar cinder_ha:lookup accepts exactly the keys of parameters/defaults.yaml."""
    assert set(pillar.TYPES["lookup"]) == set(parameters())


@pytest.mark.parametrize("lookup, problem", [
    ({"settle_timeout": "soon"}, "lookup:settle_timeout: got a string, expected a number"),
    ({"settle_timeout": 0}, "lookup:settle_timeout: seconds between 0 and 3600"),
    ({"vip_monitor_interval": "often"}, "lookup:vip_monitor_interval: a duration like 10s"),
    ({"agent_dir": "relative/dir"}, "lookup:agent_dir: must be an absolute path"),
    ({"alert_id": "1 bad"}, "lookup:alert_id: not a Pacemaker id"),
    ({"agent_name": "../x"}, "lookup:agent_name: a file name"),
    ({"setle_timeout": 5}, "lookup:setle_timeout: unknown key (did you mean 'settle_timeout'?)"),
    ({"alert_spool": ["/a"]}, "lookup:alert_spool: got a list, expected a string"),
])
def test_bad_lookup_is_a_pillar_error(lookup, problem):
    _settings, errors, _warnings = pillar.normalize(raw_pillar(lookup=lookup))
    assert any(problem in error for error in errors), errors


def test_lookup_and_clean_in_the_settings():
    conf = settings(lookup={"settle_timeout": 30, "vip_monitor_interval": 15}, clean={"catalog": True})
    assert conf["lookup"] == {"settle_timeout": 30, "vip_monitor_interval": "15s"}
    assert conf["clean"] == {"catalog": True}
    assert settings()["clean"] == {"catalog": False} and settings()["lookup"] == {}


# ---------------------------------------------------------------- the module: computed once per run


@pytest.fixture
def loader():
    role = MagicMock(return_value={"running": True, "node": "node1", "dc": "node1", "is_dc": True, "error": None})
    pillar_get = MagicMock(return_value=raw_pillar())
    return {"pillar.get": pillar_get, "crm.role": role}


@pytest.fixture
def configure_loader_modules(loader):
    return {cinder_ha: {"__salt__": loader, "__opts__": {"test": False, "id": "node1"}, "__context__": {},
                        "__grains__": {"os_family": "Debian"}}}


def test_validation_and_settings_are_computed_once_per_pillar(monkeypatch):
    calls = []
    normalize = pillar.normalize
    monkeypatch.setattr(cinder_ha.pillar_rules, "normalize", lambda raw: calls.append(raw) or normalize(raw))
    for _ in range(3):  # as every SLS of a run does
        assert cinder_ha.validate()["valid"] is True
        cinder_ha.settings()
    assert len(calls) == 1
    # another pillar is another answer, never the cached one
    other = raw_pillar(vip={"address": "not-an-ip"})
    assert cinder_ha.validate(pillar=other)["valid"] is False
    assert len(calls) == 2
    assert cinder_ha.validate()["valid"] is True and len(calls) == 2


def test_cached_settings_cannot_be_changed_by_a_caller():
    first = cinder_ha.settings()
    first["vip"]["address"] = "changed"
    assert cinder_ha.settings()["vip"]["address"] == "127.0.0.103"


def test_controller_is_chosen_once_per_pillar(loader):
    for _ in range(3):
        assert cinder_ha.controller()["is_controller"] is True
    assert loader["crm.role"].call_count == 1
    named = cinder_ha.controller(pillar=raw_pillar(controller="node2"))
    assert named["is_controller"] is False and "node2" in named["reason"]
    assert cinder_ha.controller()["is_controller"] is True and loader["crm.role"].call_count == 2


def test_module_objects_hold_no_secret_value():
    objects = cinder_ha.cluster_objects(parameters())
    assert objects == EXPECTED
    assert PASSWORD not in json.dumps(objects) and secret_rule.MASK not in json.dumps(objects)
    assert cinder_ha.cluster_object_ids(parameters(), secret_rules=True) == ["l_p_cinder-api_secrets",
                                                                           "l_p_ip_cinder-api_secrets"]


def test_module_parameters_are_the_defaults_then_the_os_file_then_lookup(loader):
    os_file = "values:\n  cinder_api_binary: /usr/libexec/cinder-api\n  settle_timeout: 60\n"
    files = {"salt://cinder_ha/parameters/defaults.yaml": DEFAULTS.read_text(),
             "salt://cinder_ha/parameters/os_family/Debian.yaml": os_file}
    loader["cp.get_file_str"] = MagicMock(side_effect=lambda url, saltenv: files.get(url, False))
    loader["cp.list_master"] = MagicMock(return_value=["cinder_ha/parameters/defaults.yaml",
                                                       "cinder_ha/parameters/os_family/Debian.yaml"])
    loader["pillar.get"].return_value = raw_pillar(lookup={"settle_timeout": 30})
    merged = cinder_ha.parameters()
    assert merged == dict(parameters(), cinder_api_binary="/usr/libexec/cinder-api", settle_timeout=30)
    # no OS file: never asked for (a missing file is an error in Salt's log)
    loader["cp.list_master"].return_value = ["cinder_ha/parameters/defaults.yaml"]
    loader["cp.get_file_str"].reset_mock()
    assert cinder_ha.parameters()["cinder_api_binary"] == "/usr/bin/cinder-api"
    loader["cp.get_file_str"].assert_called_once_with("salt://cinder_ha/parameters/defaults.yaml", saltenv="base")


@pytest.fixture
def file_server(loader):
    loader["cp.get_file_str"] = MagicMock(side_effect=lambda url, saltenv: DEFAULTS.read_text())
    loader["cp.list_master"] = MagicMock(return_value=["cinder_ha/parameters/defaults.yaml"])
    loader["config.get"] = MagicMock(return_value="/srv/salt-etc/minion")
    return loader


def test_map_data_layers_and_derived_values():
    conf = settings(endpoints={"service_types": ["block-storage", "volumev3"]})
    data = formula.map_data(parameters(settle_timeout=30), conf, "/etc/salt/minion")
    assert data["settle_timeout"] == 30 and data["vip"] == conf["vip"]
    assert data["catalog_services"] == {"block-storage": "cinder", "volumev3": "cinderv3"}
    assert data["engine_conf_path"] == "/etc/salt/minion.d/cinder_ha_watch.conf"
    assert data["clone_id"] == "cl_p_cinder-api" and data["vip_is_loopback"] is True


@pytest.mark.parametrize(("vip", "cluster", "clone_id", "is_loopback"), [
    ({"address": "198.18.0.10", "nic": "eth0"}, {}, "cl_p_cinder-api", False),
    ({"address": "198.18.0.10", "nic": "lo"}, {}, "cl_p_cinder-api", True),  # on lo: IPaddr2's alone
    ({"address": "127.0.0.103", "nic": None}, {"mode": "cloned", "clone_id": "cl_api"}, "cl_api", True),
    ({"address": "::1", "nic": None, "netmask": 128}, {}, "cl_p_cinder-api", True),
    ({"address": "2001:db8::10", "nic": "eth0", "netmask": 64}, {}, "cl_p_cinder-api", False),
])
def test_map_data_says_which_vip_the_loopback_setup_concerns(vip, cluster, clone_id, is_loopback):
    conf = settings(vip=dict({"netmask": 32}, **vip), cluster=cluster)
    data = formula.map_data(parameters(), conf, "/etc/salt/minion")
    assert data["clone_id"] == clone_id and data["vip_is_loopback"] is is_loopback


def test_formula_map_is_what_every_sls_reads_once_per_run(file_server):
    first = cinder_ha.formula_map()
    assert first["check"]["valid"] is True and first["role"]["is_controller"] is True
    assert first["cinder_ha"]["engine_conf_path"] == "/srv/salt-etc/minion.d/cinder_ha_watch.conf"
    assert first["cinder_ha"]["settle_timeout"] == parameters()["settle_timeout"]
    assert PASSWORD not in json.dumps(first)
    first["cinder_ha"]["vip"]["address"] = "changed"  # a caller's edit does not reach the next SLS
    for _ in range(5):  # as the other SLS files of the run do
        assert cinder_ha.formula_map() == dict(first, cinder_ha=dict(first["cinder_ha"], vip=cinder_ha.settings()["vip"]))
    assert file_server["cp.get_file_str"].call_count == 1 and file_server["crm.role"].call_count == 1
    file_server["crm.role"].assert_called_once_with(for_state_run=True)


def test_formula_map_of_an_invalid_pillar_is_the_check_alone(file_server):
    file_server["pillar.get"].return_value = raw_pillar(vip={"address": "not-an-ip"})
    answer = cinder_ha.formula_map()
    assert answer["check"]["valid"] is False and answer["check"]["errors"]
    assert answer["cinder_ha"] == {} and answer["role"]["is_controller"] is False
    assert not file_server["crm.role"].called and not file_server["cp.get_file_str"].called


def test_an_old_controller_answer_is_asked_again(loader, monkeypatch):
    """A minion without multiprocessing keeps __context__ between jobs: the DC may have moved."""
    now = [1000.0]
    monkeypatch.setattr(cinder_ha.time, "monotonic", lambda: now[0])
    cinder_ha.controller()
    now[0] += cinder_ha.CONTROLLER_TTL - 1
    cinder_ha.controller()
    assert loader["crm.role"].call_count == 1
    now[0] += 2
    loader["crm.role"].return_value = {"running": True, "node": "node1", "dc": "node2", "is_dc": False,
                                       "error": None}
    assert cinder_ha.controller()["is_controller"] is False and loader["crm.role"].call_count == 2


# ---------------------------------------------------------------- cluster:mode balanced

BALANCED_NODES = {"n1": "192.168.42.11", "n2": "192.168.42.12", "n3": "192.168.42.13"}


def balanced_settings(**cluster):
    return settings(cluster=dict({"mode": "balanced", "nodes": BALANCED_NODES}, **cluster))


def test_balanced_places_the_vip_with_haproxy_not_with_cinder_api():
    objects = {next(iter(o.values())): o for o in formula.cluster_objects(balanced_settings(), parameters())}
    assert objects["cl_p_cinder-api"]["resource"] == "p_cinder-api"
    assert objects["cl_p_haproxy-cinder-api"]["resource"] == "p_haproxy-cinder-api"
    assert objects["p_haproxy-cinder-api"]["agent"] == "ocf:openstack:haproxy"
    assert objects["c_p_ip_cinder-api_with_cl_p_haproxy-cinder-api"]["resources"] == [
        "p_ip_cinder-api", "cl_p_haproxy-cinder-api"]
    assert objects["o_cl_p_haproxy-cinder-api_before_p_ip_cinder-api"]["first"] == "cl_p_haproxy-cinder-api"
    # finite: with HAProxy nowhere (a switch to balanced) the VIP stays instead of stopping
    assert objects["c_p_ip_cinder-api_with_cl_p_haproxy-cinder-api"]["score"] == "100000"
    # Optional orders: HAProxy starting where the VIP runs restarts nothing
    assert objects["o_cl_p_haproxy-cinder-api_before_p_ip_cinder-api"]["kind"] == "Optional"
    assert objects["o_cl_p_cinder-api_before_cl_p_haproxy-cinder-api"]["kind"] == "Optional"
    # nothing ties the VIP to a cinder-api instance any more
    for obj in objects.values():
        if obj.get("order") == "o_cl_p_cinder-api_before_cl_p_haproxy-cinder-api":
            continue
        if "colocation" in obj or "order" in obj:
            named = set(obj.get("resources", [])) | {obj.get("first"), obj.get("then")}
            assert not named & {"cl_p_cinder-api", "p_cinder-api"}, obj
    # the VIP needs no secret: only cinder-api's rule
    assert "l_p_ip_cinder-api_secrets" not in objects
    assert objects["l_p_cinder-api_secrets"]["resource"] == "cl_p_cinder-api"
    # the formula's own reload finds the master Pacemaker started: named pid file and master socket
    params = objects["p_haproxy-cinder-api"]["params"]
    assert params["pid"] == "/run/resource-agents/p_haproxy-cinder-api.pid"
    assert params["master_socket"] == "/run/resource-agents/p_haproxy-cinder-api.master.sock"


def test_other_mode_ids_drop_what_only_another_mode_made():
    cloned_constraints = ["c_p_ip_cinder-api_with_cl_p_cinder-api", "o_cl_p_cinder-api_before_p_ip_cinder-api"]
    haproxy_constraints = ["c_p_ip_cinder-api_with_cl_p_haproxy-cinder-api",
                           "o_cl_p_haproxy-cinder-api_before_p_ip_cinder-api",
                           "o_cl_p_cinder-api_before_cl_p_haproxy-cinder-api"]
    haproxy = ["cl_p_haproxy-cinder-api", "p_haproxy-cinder-api"]
    assert formula.other_mode_ids(balanced_settings(), parameters()) == (
        cloned_constraints + ["l_p_ip_cinder-api_secrets"], [])
    assert formula.other_mode_ids(settings(cluster={"mode": "cloned"}), parameters()) == (haproxy_constraints, haproxy)
    assert formula.other_mode_ids(settings(), parameters()) == (cloned_constraints + haproxy_constraints, haproxy)
    # nothing a mode declares is in its own removal lists
    for conf in (balanced_settings(), settings(cluster={"mode": "cloned"}), settings()):
        declared = {next(iter(o.values())) for o in formula.cluster_objects(conf, parameters())}
        constraints, resources = formula.other_mode_ids(conf, parameters())
        assert not declared & (set(constraints) | set(resources))


@pytest.mark.parametrize("stickiness", ["INFINITY", "+INFINITY", 100000, 500000])
def test_balanced_refuses_a_vip_stickiness_that_would_keep_it_without_haproxy(stickiness):
    _, errors, _ = pillar.normalize(raw_pillar(cluster={"mode": "balanced", "nodes": BALANCED_NODES,
                                                        "vip_stickiness": stickiness}))
    assert any(e.startswith("cluster:vip_stickiness:") and "below it" in e for e in errors), errors
    _, errors, _ = pillar.normalize(raw_pillar(cluster={"mode": "balanced", "nodes": BALANCED_NODES,
                                                        "vip_stickiness": 99999}))
    assert errors == []


def test_haproxy_config_has_a_server_per_node_and_binds_the_vips_transparent():
    text = formula.haproxy_config(balanced_settings(), parameters())
    for node, address in BALANCED_NODES.items():
        assert f"    server {node} {address}:8776 check" in text
    assert "    bind 127.0.0.103:8776 transparent" in text
    assert "frontend cinder_api_public" not in text  # the public VIP is the VIP: one frontend
    assert "stats socket /run/resource-agents/haproxy-cinder-api.sock" in text
