"""cinder-scheduler and cinder-volume (cinder_ha_lib.volume, and their objects in
cinder_ha_lib.formula): the cinder.conf options, the keys a mode must not leave behind, the
cluster objects per mode, and the pillar's HA rules from cinder's own HA document."""
import pytest

from cinder_ha_lib import conf, formula, pillar, volume
from tests.unit.cinder_ha_lib.test_formula import parameters, raw_pillar

RBD = {"driver": "cinder.volume.drivers.rbd.RBDDriver", "options": {"rbd_pool": "volumes", "rbd_user": "cinder"}}
ETCD = {"backend_url": "etcd3+http://192.0.2.10:2379"}


def normalized(**volume_pillar):
    raw = raw_pillar(volume={"backends": {"ceph": RBD}, **volume_pillar})
    settings, errors, warnings = pillar.normalize(raw)
    return settings, errors, warnings


def errors_of(**volume_pillar):
    return normalized(**volume_pillar)[1]


def test_active_passive_options_are_backend_host_in_every_backend_section():
    settings, errors, _ = normalized()
    assert errors == []
    options, absent = volume.options(settings["volume"])
    assert options["DEFAULT"] == {"enabled_backends": "ceph", "report_interval": 10, "service_down_time": 60}
    assert options["ceph"] == {"volume_driver": RBD["driver"], "rbd_pool": "volumes", "rbd_user": "cinder",
                               "volume_backend_name": "ceph", "backend_host": "cinder-ha-volume"}
    # a shared host (the old guide's) and an active_active cluster must not stay
    assert ("DEFAULT", "host") in absent and ("DEFAULT", "cluster") in absent
    assert volume.service_hosts(settings["volume"]) == {"ceph": "cinder-ha-volume@ceph"}


def test_active_active_options_are_cluster_and_coordination_without_backend_host():
    settings, errors, _ = normalized(mode="active_active", cluster="cinder-ha", coordination=ETCD)
    assert errors == []
    options, absent = volume.options(settings["volume"])
    assert options["DEFAULT"]["cluster"] == "cinder-ha"
    assert options["coordination"] == {"backend_url": ETCD["backend_url"]}
    assert "backend_host" not in options["ceph"]
    assert ("ceph", "backend_host") in absent
    assert volume.service_hosts(settings["volume"]) is None


def test_a_mode_switch_removes_what_the_other_mode_wrote():
    """cinder.conf from active_passive (backend_host) planned for active_active: the backend_host
    goes (every instance would otherwise run as the same host), and back."""
    aa, errors, _ = normalized(mode="active_active", cluster="cinder-ha", coordination=ETCD)
    assert errors == []
    old = "[DEFAULT]\nhost = shared-by-all\n[ceph]\nbackend_host = cinder-ha-volume\n"
    text = conf.plan(old, conf.desired_options(aa)).new_text
    assert "backend_host" not in text and "host = shared-by-all" not in text and "cluster = cinder-ha" in text
    ap, _, _ = normalized()
    back = conf.plan(text, conf.desired_options(ap)).new_text
    assert "cluster = cinder-ha" not in back and "backend_host = cinder-ha-volume" in back


def test_a_secret_backend_option_is_read_by_reference_and_never_rendered():
    settings, errors, _ = normalized(backends={"array": {"driver": "cinder.volume.drivers.x.XDriver",
                                                         "options": {"san_password": {"pillar": "secrets:array"}}}})
    assert errors == []
    options, _ = volume.options(settings["volume"])
    assert "san_password" not in options["array"]
    options, _ = volume.options(settings["volume"], resolve=lambda key: f"value-of-{key}")
    assert options["array"]["san_password"] == "value-of-secrets:array"


@pytest.mark.parametrize("volume_pillar, problem", [
    ({"mode": "active_active", "coordination": ETCD}, "volume:cluster: required with volume:mode active_active"),
    ({"mode": "active_active", "cluster": "c"}, "volume:coordination:backend_url: required"),
    ({"mode": "active_active", "cluster": "c", "backend_host": "h", "coordination": ETCD},
     "volume:backend_host: only with volume:mode active_passive"),
    ({"cluster": "c"}, "volume:cluster: only with volume:mode active_active"),
    ({"report_interval": 40}, "volume:service_down_time: 60s must be at least twice report_interval"),
    ({"mode": "active_active", "cluster": "c", "coordination": {"backend_url": "etcd3://192.0.2.10:2379"}},
     "hangs under cinder's eventlet"),
    ({"mode": "active_active", "cluster": "c", "coordination": {"backend_url": "file:///var/lib/cinder"}},
     "volume:coordination:backend_url"),
])
def test_the_ha_rules_are_pillar_errors_naming_the_key(volume_pillar, problem):
    errors = errors_of(**volume_pillar)
    assert any(problem in e for e in errors), errors


def test_a_cluster_or_backend_host_equal_to_a_controller_is_refused():
    raw = raw_pillar(cluster={"nodes": ["ctrl1", "ctrl2"]},
                     volume={"backends": {"ceph": RBD}, "backend_host": "ctrl1"})
    assert any("volume:backend_host" in e for e in pillar.normalize(raw)[1])
    raw = raw_pillar(cluster={"nodes": ["ctrl1", "ctrl2"]},
                     volume={"backends": {"ceph": RBD}, "mode": "active_active", "cluster": "ctrl2",
                             "coordination": ETCD})
    assert any("volume:cluster" in e for e in pillar.normalize(raw)[1])


def test_a_shared_host_in_cinder_conf_extra_is_refused_with_a_volume_service():
    raw = raw_pillar(volume={"backends": {"ceph": RBD}}, cinder_conf={"extra": {"DEFAULT": {"host": "shared"}}})
    assert any("cinder_conf:extra:DEFAULT:host" in e and "highly discouraged" in e for e in pillar.normalize(raw)[1])


def test_scheduler_is_on_with_a_volume_service_and_off_without():
    settings, _, _ = normalized()
    assert settings["scheduler"]["primitive_id"] == "p_cinder-scheduler"
    plain, errors, _ = pillar.normalize(raw_pillar())
    assert errors == [] and plain["scheduler"] is None and plain["volume"] is None
    raw = raw_pillar(volume={"backends": {"ceph": RBD}}, scheduler=False)
    assert pillar.normalize(raw)[0]["scheduler"] is None


def objects_by_id(settings):
    return {obj.get("primitive") or obj.get("clone") or obj.get("colocation") or obj.get("order")
            or obj.get("location") or obj.get("alert"): obj for obj in formula.cluster_objects(settings, parameters())}


def test_active_passive_objects_are_a_scheduler_clone_and_one_sticky_volume_primitive():
    settings, _, _ = normalized()
    objects = objects_by_id(settings)
    assert objects["cl_p_cinder-scheduler"] == {"clone": "cl_p_cinder-scheduler", "resource": "p_cinder-scheduler",
                                               "meta": {"clone-node-max": "1", "interleave": "true"}}
    vol = objects["p_cinder-volume"]
    assert vol["agent"] == "ocf:openstack:cinder-volume" and vol["meta"] == {"resource-stickiness": "100"}
    # beside the agent's cinder-api: the same install
    assert vol["params"]["binary"] == "/opt/cinder/bin/cinder-volume"
    assert "cl_p_cinder-volume" not in objects
    ids = formula.object_ids(settings, parameters())
    assert ids[-4:] == ["cl_p_cinder-scheduler", "p_cinder-scheduler", "cl_p_cinder-volume", "p_cinder-volume"]


def test_active_active_objects_clone_cinder_volume_once_per_controller():
    raw = raw_pillar(cluster={"nodes": ["a", "b", "c"]},
                     volume={"backends": {"ceph": RBD}, "mode": "active_active", "cluster": "cinder-ha",
                             "coordination": ETCD})
    settings, errors, _ = pillar.normalize(raw)
    assert errors == []
    objects = objects_by_id(settings)
    assert objects["cl_p_cinder-volume"]["meta"] == {"clone-node-max": "1", "interleave": "true", "clone-max": "3"}
    assert "meta" not in objects["p_cinder-volume"]


def test_no_volume_pillar_no_service_objects():
    settings, _, _ = pillar.normalize(raw_pillar())
    assert not [oid for oid in objects_by_id(settings) if "scheduler" in oid or "volume" in oid]


@pytest.mark.parametrize("text, expected", [
    # the formula's active_passive: backend_host in the backend section
    ("[DEFAULT]\nenabled_backends = ceph\n[ceph]\nbackend_host = ap\n", {"ceph": ("host", "ap@ceph")}),
    # a cluster wins over any host: every instance files its rows under it
    ("[DEFAULT]\nenabled_backends = ceph, lvm\ncluster = c1\nhost = n1\n", {"ceph": ("cluster", "c1@ceph"),
                                                                            "lvm": ("cluster", "c1@lvm")}),
    # the old guide's shared host; a [DEFAULT] backend_host comes before it
    ("[DEFAULT]\nenabled_backends = ceph\nhost = shared\n", {"ceph": ("host", "shared@ceph")}),
    ("[DEFAULT]\nenabled_backends = ceph\nhost = shared\nbackend_host = bh\n", {"ceph": ("host", "bh@ceph")}),
    # the node's own name is not a placement of the HA setup; no backends, nothing
    ("[DEFAULT]\nenabled_backends = ceph\n", {}),
    ("[DEFAULT]\ncluster = c1\n", {}),
])
def test_placements_from_conf(text, expected):
    assert volume.placements_from_conf(conf.parse(text).effective()) == expected


def test_a_mode_switch_is_a_placement_change_and_a_second_run_is_not():
    ap, _, _ = normalized()
    aa, errors, _ = normalized(mode="active_active", cluster="cinder-ha", coordination=ETCD)
    assert errors == []
    ap_text = conf.plan("", conf.desired_options(ap)).new_text
    aa_text = conf.plan(ap_text, conf.desired_options(aa)).new_text
    ap_placed = volume.placements_from_conf(conf.parse(ap_text).effective())
    aa_placed = volume.placements_from_conf(conf.parse(aa_text).effective())
    assert ap_placed == volume.placements_from_pillar(ap["volume"]) == {"ceph": ("host", "cinder-ha-volume@ceph")}
    assert aa_placed == volume.placements_from_pillar(aa["volume"]) == {"ceph": ("cluster", "cinder-ha@ceph")}
    assert volume.placement_changes(ap_placed, volume.placements_from_pillar(aa["volume"])) == {
        "ceph": {"from": ["host", "cinder-ha-volume@ceph"], "to": ["cluster", "cinder-ha@ceph"]}}
    assert volume.placement_changes(aa_placed, volume.placements_from_pillar(aa["volume"])) == {}
    # a backend that is added or dropped has nothing to move
    assert volume.placement_changes({"old": ("host", "x@old")}, {"new": ("host", "x@new")}) == {}


def row(binary, host, cluster=None, up=True, disabled=False):
    return {"binary": binary, "host": host, "cluster": cluster, "up": up, "disabled": disabled, "heartbeat_age": 3}


def test_active_passive_ready_needs_an_up_scheduler_and_the_backend_host_row():
    settings, errors, _ = normalized()
    assert errors == []
    vol, sched = settings["volume"], settings["scheduler"]
    assert volume.services_missing([], vol, sched) == ["no cinder-scheduler is up",
                                                      "no cinder-volume of cinder-ha-volume@ceph (backend ceph) is up"]
    ready = [row("cinder-scheduler", "n1"), row("cinder-volume", "cinder-ha-volume@ceph")]
    assert volume.services_missing(ready, vol, sched) == []
    # a node's own name is not the placement; a row past service_down_time or disabled is not serving
    for stale in ([row("cinder-scheduler", "n1"), row("cinder-volume", "n1@ceph")],
                  [row("cinder-scheduler", "n1"), row("cinder-volume", "cinder-ha-volume@ceph", up=False)],
                  [row("cinder-scheduler", "n1"), row("cinder-volume", "cinder-ha-volume@ceph", disabled=True)]):
        assert volume.services_missing(stale, vol, sched) == [
            "no cinder-volume of cinder-ha-volume@ceph (backend ceph) is up"]
    assert volume.services_missing(ready[1:], vol, sched) == ["no cinder-scheduler is up"]


def test_active_active_ready_needs_an_instance_filed_under_the_cluster():
    settings, errors, _ = normalized(mode="active_active", cluster="cinder-cluster", coordination=ETCD)
    assert errors == []
    vol, sched = settings["volume"], settings["scheduler"]
    other_cluster = [row("cinder-scheduler", "n1"), row("cinder-volume", "n1@ceph", "old-cluster@ceph")]
    assert volume.services_missing(other_cluster, vol, sched) == [
        "no cinder-volume of cinder-cluster@ceph (backend ceph) is up"]
    one_instance = [row("cinder-scheduler", "n2"), row("cinder-volume", "n1@ceph", "cinder-cluster@ceph", up=False),
                    row("cinder-volume", "n2@ceph", "cinder-cluster@ceph")]
    assert volume.services_missing(one_instance, vol, sched) == []


def test_without_the_scheduler_in_the_pillar_only_the_volume_rows_count():
    settings, errors, _ = normalized()
    assert errors == []
    assert volume.services_missing([row("cinder-volume", "cinder-ha-volume@ceph")], settings["volume"], None) == []


def crm_mon(*resources):
    """crm_mon --output-as=xml (Pacemaker 2.1's shape) holding ``resources`` (XML strings)."""
    from cinder_ha_lib import cib

    return cib.crm_mon_status('<pacemaker-result api-version="2.25" request="crm_mon --output-as=xml">'
                              '<summary><current_dc present="true" name="n1"/></summary><nodes/>'
                              f'<resources>{"".join(resources)}</resources></pacemaker-result>')


def primitive(rsc, role="Started", active="true", failed="false", node="n1"):
    where = f'<node name="{node}" id="1" cached="true"/>' if active == "true" else ""
    return (f'<resource id="{rsc}" resource_agent="ocf:openstack:cinder-service" role="{role}" active="{active}" '
            f'orphaned="false" blocked="false" managed="true" failed="{failed}" failure_ignored="false" '
            f'nodes_running_on="{1 if active == "true" else 0}">{where}</resource>')


def test_the_cluster_must_have_started_both_resources_not_only_the_table():
    settings, errors, _ = normalized()
    assert errors == []
    vol, sched = settings["volume"], settings["scheduler"]
    scheduler_clone = f'<clone id="cl_p_cinder-scheduler" multi_state="false" unique="false" failed="false">' \
                      f'{primitive("p_cinder-scheduler", node="n1")}' \
                      f'{primitive("p_cinder-scheduler", role="Stopped", active="false")}</clone>'
    assert volume.resources_not_started(crm_mon(scheduler_clone, primitive("p_cinder-volume")), vol, sched) == []
    # right after cinder_ha.clean: neither is declared yet, while their rows still look up
    assert volume.resources_not_started(crm_mon(), vol, sched) == [
        "p_cinder-scheduler is not in the cluster yet", "p_cinder-volume is not in the cluster yet"]
    # declared, its start under way (a pending start shows as Starting) or not begun
    for role, active in (("Starting", "true"), ("Stopped", "false")):
        assert volume.resources_not_started(crm_mon(scheduler_clone, primitive("p_cinder-volume", role, active)),
                                            vol, sched) == [f"the cluster has not started p_cinder-volume yet ({role})"]
    # a failed instance does not serve
    assert volume.resources_not_started(crm_mon(scheduler_clone, primitive("p_cinder-volume", failed="true")),
                                        vol, sched) == ["the cluster has not started p_cinder-volume yet (Started)"]
    # without the scheduler in the pillar only the volume resource counts
    assert volume.resources_not_started(crm_mon(primitive("p_cinder-volume")), vol, None) == []


def test_active_active_needs_one_started_instance_of_the_volume_clone():
    settings, errors, _ = normalized(mode="active_active", cluster="cinder-cluster", coordination=ETCD)
    assert errors == []
    clone = ('<clone id="cl_p_cinder-volume" multi_state="false" unique="false" failed="true">'
             f'{primitive("p_cinder-volume", failed="true", node="n1")}{primitive("p_cinder-volume", node="n2")}'
             '</clone>')
    assert volume.resources_not_started(crm_mon(clone), settings["volume"], None) == []
    all_failed = clone.replace('failed="false"', 'failed="true"')
    assert volume.resources_not_started(crm_mon(all_failed), settings["volume"], None) == [
        "the cluster has not started p_cinder-volume yet (Started)"]
