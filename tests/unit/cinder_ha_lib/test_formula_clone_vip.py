"""Issue 23 item 6: the cinder-api primitive carries the VIP (parameter vip), the one address
its agent may put on a node's lo in cluster:mode cloned; active_passive declares it too, so a
switch between the modes changes no parameter (a changed one would restart cinder-api)."""
from cinder_ha_lib import formula
from tests.unit.cinder_ha_lib.test_formula import parameters, settings


def api_params(**overrides):
    objects = formula.cluster_objects(settings(**overrides), parameters())
    return next(obj for obj in objects if obj.get("primitive") == "p_cinder-api")["params"]


def test_a_cloned_primitive_names_its_vip():
    params = api_params(vip={"address": "198.18.0.100", "netmask": 24, "nic": "eth0"},
                        cluster={"mode": "cloned", "nodes": ["n1", "n2", "n3"]})
    assert params["vip"] == "198.18.0.100"


def test_an_ipv6_vip_is_passed_as_written():
    params = api_params(vip={"address": "2001:db8::10", "netmask": 64, "nic": "eth0"},
                        cluster={"mode": "cloned", "nodes": ["n1", "n2"]})
    assert params["vip"] == "2001:db8::10"


def test_both_modes_declare_the_same_vip_parameter():
    vip = {"address": "198.18.0.100", "netmask": 24, "nic": "eth0"}
    cloned = api_params(vip=vip, cluster={"mode": "cloned", "nodes": ["n1", "n2", "n3"]})
    assert api_params(vip=vip)["vip"] == cloned["vip"] == "198.18.0.100"
