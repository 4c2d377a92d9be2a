"""Failover of the real cinder-api under ocf:openstack:cinder-api on three namespace nodes.

Each test finds the active node, injects one fault, and asserts (polling the VIP every
100 ms from the root namespace) that the API answers again, from where it should, and
repairs what it broke so the next test starts from three healthy nodes.
"""
import keystoneauth1.session
from keystoneauth1.identity import v3


def answers_through_catalog(facts, endpoint):
    """A keystoneauth1 client: the Block Storage endpoint from the Keystone catalog, then GET it."""
    auth = v3.Password(auth_url=facts["keystone_url"], username=facts["keystone_admin_user"],
                       password=facts["keystone_admin_password"], project_name=facts["keystone_admin_project"],
                       user_domain_name="Default", project_domain_name="Default")
    session = keystoneauth1.session.Session(auth=auth)
    url = session.get_endpoint(service_type="block-storage", service_name=endpoint["service_name"],
                               region_name=endpoint["region"], interface="public")
    assert url == "http://198.18.0.100:8776/v3"
    resp = session.get(url + "/", authenticated=False, raise_exc=False, timeout=5)
    return resp.status_code


def other_nodes(active):
    return [n for n in ("n1", "n2", "n3") if n != active]


def test_cinder_api_killed_comes_back_on_the_vip(failover_cluster):
    mn = failover_cluster
    active = mn.locate()
    assert active in ("n1", "n2", "n3")
    with mn.OutageProbe() as probe:
        mn.time.sleep(0.5)
        since = mn.time.monotonic()
        killed = mn.kill_cinder_api(active)
        # monitor interval (5 s) + start (~2 s) + a margin for a loaded 2-core machine
        assert probe.wait_recovered(since, timeout=40), "cinder-api did not answer again on the VIP"
    assert probe.outage(since) > 0
    mn.wait_settled(via=active)
    now = mn.locate(via=active)
    assert now in ("n1", "n2", "n3")
    new_pid = mn.node_exec(now, ["cat", "/run/resource-agents/p_cinder-api.pid"]).stdout.strip()
    assert new_pid.isdigit() and (now != active or int(new_pid) != killed)  # a new cinder-api


def test_power_cut_of_active_node_moves_vip_and_api(failover_cluster, sandbox_facts, catalog_endpoint):
    mn = failover_cluster
    active = mn.locate()
    assert answers_through_catalog(sandbox_facts, catalog_endpoint) < 500
    with mn.OutageProbe() as probe:
        mn.time.sleep(0.5)
        since = mn.time.monotonic()
        mn.power_cut(active)
        assert active not in mn.netns_list() and f"cha-{active}" not in mn.netns_list()
        assert probe.wait_recovered(since, timeout=60), "no answer on the VIP after the power cut"
    survivor = other_nodes(active)[0]
    new_active = mn.locate(via=survivor)
    assert new_active in other_nodes(active)
    assert mn.locate(resource=mn.VIP_ID, via=survivor) == new_active
    assert answers_through_catalog(sandbox_facts, catalog_endpoint) < 500
    mn.restart_node(active)
    mn.wait_settled(via=survivor)
    assert mn.locate(via=survivor) == new_active  # stickiness: no move back


def test_partitioned_active_node_loses_the_service_to_the_others(failover_cluster, sandbox_facts, catalog_endpoint):
    mn = failover_cluster
    active = mn.locate()
    with mn.OutageProbe() as probe:
        mn.time.sleep(0.5)
        since = mn.time.monotonic()
        mn.set_partitioned(active, True)
        try:
            assert probe.wait_recovered(since, timeout=60), "no answer on the VIP after the partition"
            survivor = other_nodes(active)[0]
            new_active = mn.locate(via=survivor)
            assert new_active in other_nodes(active)
            assert answers_through_catalog(sandbox_facts, catalog_endpoint) < 500
            # the cut-off node has no quorum: no-quorum-policy=stop takes its copy down
            deadline = mn.time.monotonic() + 60
            while mn.time.monotonic() < deadline and mn.locate(via=active) is not None:
                mn.time.sleep(0.5)
            view = mn.cluster_view(active)
            assert view is not None and not view["quorum"]
            assert "198.18.0.100" not in mn.node_exec(active, ["ip", "-br", "addr", "show", "eth0"]).stdout
        finally:
            mn.set_partitioned(active, False)
    mn.wait_online(["n1", "n2", "n3"], via=survivor)
    mn.wait_settled(via=survivor)
    assert mn.locate(via=survivor) == new_active
    mn.wait_answering(timeout=30)


def test_standby_moves_cleanly_and_back(failover_cluster):
    mn = failover_cluster
    active = mn.locate()
    mn.node_exec(active, ["crm_resource", "--cleanup"], check=True)  # forget earlier tests' failures
    mn.wait_settled(via=active)
    with mn.OutageProbe() as probe:
        mn.time.sleep(0.5)
        since = mn.time.monotonic()
        mn.set_standby(active, True)
        try:
            mn.wait_settled(via=active)
            new_active = mn.locate(via=active)
            assert new_active in other_nodes(active)
            assert mn.locate(resource=mn.VIP_ID, via=active) == new_active
            mn.wait_answering(timeout=30)
        finally:
            mn.set_standby(active, False)
    mn.wait_settled(via=active)
    assert mn.locate(via=active) == new_active
    # a clean move: no failed operations anywhere
    status = mn.node_exec(active, ["crm_mon", "-1", "--output-as=xml"]).stdout
    assert "<failure " not in status
