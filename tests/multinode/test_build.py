"""The three controllers as `salt '*' state.apply cinder_ha` builds them, from new machines.

Runs first in the tier (file order): a partial rollout (one node's minion stopped), then the
late node joining, then a run that changes nothing; what the formula built (cluster objects,
lrm secrets, cinder.conf, catalog); and that cinder-api really uses MariaDB and RabbitMQ.
"""
import json
import pathlib
import xml.etree.ElementTree as ET

from tests.multinode.conftest import NODES

VIP_URL = "http://198.18.0.100:8776/v3"


def test_partial_rollout_never_probes_a_node_without_its_secret(formula_cluster):
    """One node's minion is down during the first apply: that node has no lrm secret yet, so
    the cluster must neither probe nor run cinder-api there, and show no failed action. When
    its minion is back and the formula runs again, the node becomes eligible."""
    c, mn = formula_cluster, formula_cluster.mn
    assert not c.built, "test_build.py must run first in the tier (it applies the formula to new machines)"
    dc = mn.cluster_view("n1")["dc"]
    late = next(n for n in NODES if n != dc)  # the controller (the DC) applies the shared objects
    first = [n for n in NODES if n != late]
    mn.minion_stop(late)
    runs = c.apply(*first)
    assert set(runs) == set(first)
    writers = [m for m, states in runs.items() for k, v in states.items() if "cinder_ha-cluster-objects-configured" in k and v["changes"]]
    assert writers == [dc], writers  # one controller writes the cluster objects
    mn.wait_answering(timeout=120)
    mn.wait_settled(via=dc)

    active = mn.locate(via=dc)
    assert active in first
    assert not c.secret_file(late).exists()
    assert c.secret_file(active).exists()
    assert c.operations(late, via=dc) == [], "cinder-api was probed or run on a node without its secret"
    # the VIP decides where cinder-api goes (cinder-api is colocated with it): its score
    # carries the secret rule
    assert c.score(late, via=dc, rsc=mn.VIP_ID) == "-INFINITY"
    assert c.failures(dc) == []

    mn.minion_start(late)
    c.wait_minions([late])
    c.apply()
    mn.wait_settled(via=dc)
    assert c.secret_file(late).exists()
    assert c.score(late, via=dc, rsc=mn.VIP_ID) != "-INFINITY"
    probes = c.operations(late, via=dc)
    assert probes and all("rc=7" in line for line in probes), probes  # probed once eligible: not running
    assert c.failures(dc) == []
    assert mn.locate(via=dc) == active  # the late node's arrival moved nothing
    c.built = True


def test_a_second_run_changes_nothing(built_cluster):
    c = built_cluster
    runs = c.apply()
    assert set(runs) == set(NODES)
    for minion, states in runs.items():
        changed = {k: v["changes"] for k, v in states.items() if v["changes"]}
        assert not changed, f"{minion}: the run after convergence changed {changed}"


def test_what_the_formula_built(built_cluster):
    c, mn = built_cluster, built_cluster.mn
    via = mn.running_node()
    cib = mn.node_exec(via, ["cibadmin", "-Q"], check=True).stdout
    for xpath in (f"//primitive[@id='{mn.PRIMITIVE_ID}']", f"//primitive[@id='{mn.VIP_ID}']",
                  f"//rsc_colocation[@rsc='{mn.PRIMITIVE_ID}']", f"//rsc_order[@then='{mn.PRIMITIVE_ID}']",
                  "//alert[@id='cinder_ha_salt']"):
        out = mn.node_exec(via, ["cibadmin", "-Q", "--xpath", xpath], check=True).stdout
        assert out.count("id=") >= 1, xpath
    assert 'name="os_password" value="lrm://"' in cib
    assert c.facts["keystone_admin_password"] not in cib
    assert 'name="resource-stickiness" value="100"' in cib  # the pillar's value
    # the two secret rules: cinder-api's (never probed where it bans) and the VIP's, each banning
    # a node without the digest attribute or with one it does not accept; every node publishes
    # the accepted digest
    digests = {node: mn.node_exec(via, ["crm_attribute", "--node", node, "--name",
                                        f"cinder_ha_secrets_{mn.PRIMITIVE_ID}", "--lifetime", "forever",
                                        "--query", "--quiet"], check=True).stdout.strip() for node in NODES}
    assert len(set(digests.values())) == 1 and len(digests["n1"]) == 64, digests
    root = ET.fromstring(cib)
    for rule_id, rsc, discovery in ((f"l_{mn.PRIMITIVE_ID}_secrets", mn.PRIMITIVE_ID, "never"),
                                    (f"l_{mn.VIP_ID}_secrets", mn.VIP_ID, None)):
        location = root.find(f".//constraints/rsc_location[@id='{rule_id}']")
        assert location is not None, rule_id
        assert (location.get("rsc"), location.get("resource-discovery")) == (rsc, discovery)
        assert [(r.get("score"), [(e.get("attribute"), e.get("operation"), e.get("value"))
                                  for e in r.findall("expression")]) for r in location.findall("rule")] == [
            ("-INFINITY", [(f"cinder_ha_secrets_{mn.PRIMITIVE_ID}", "not_defined", None)]),
            ("-INFINITY", [(f"cinder_ha_secrets_{mn.PRIMITIVE_ID}", "ne", digests["n1"])])], rule_id

    for node in NODES:
        conf = (pathlib.Path(mn.node_dir(node)) / "etc/cinder/cinder.conf").read_text()
        assert "connection = mysql+pymysql://cinder:" in conf and "@198.18.0.254:3306/cinder" in conf
        assert "transport_url = rabbit://cinder:" in conf and "@198.18.0.254:5672/cinder" in conf
        assert "osapi_volume_listen = 198.18.0.100" in conf
        assert "sql_connection" not in conf and "sqlite" not in conf
        assert c.secret_file(node).exists()

    admin_token = mn.keystone_token(c.facts)
    _, services = mn.keystone_request(c.facts, "GET", "/services?type=block-storage", token=admin_token)
    block_storage = {s["id"] for s in services["services"]}
    _, body = mn.keystone_request(c.facts, "GET", f"/endpoints?region_id={mn.REGION}", token=admin_token)
    assert sorted((e["interface"], e["url"]) for e in body["endpoints"] if e["service_id"] in block_storage) == [
        ("admin", VIP_URL), ("internal", VIP_URL), ("public", VIP_URL)]


def test_cinder_api_uses_the_real_database_and_broker(built_cluster):
    c, mn = built_cluster, built_cluster.mn
    client = c.client()
    assert client.url == VIP_URL
    before = c.notifications()
    created = client.create_type("build")
    # the data is in MariaDB, the one database every node uses (the nodes' own, mn.DEPLOYMENT)
    db = mn.DEPLOYMENT
    assert c.db_scalar(f"SELECT name FROM {db}.volume_types WHERE id = '{created['id']}';") == created["name"]
    assert int(c.db_scalar(f"SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = '{db}';")) > 30
    # the notification is on the real broker, and cinder-api holds a connection to it
    c.wait_notifications_above(before)
    connections = c.sandbox.rabbitmqctl("list_connections", "user", "vhost", "client_properties",
                                        "--quiet", "--no-table-headers").stdout
    assert any("cinder-api" in line and f"\t{db}\t" in line for line in connections.splitlines()), connections
    # no node fell back to SQLite (oslo.db's default when [database] connection is missing)
    found = [str(p) for p in pathlib.Path(mn.BASE).rglob("cinder.sqlite")]
    assert found == []
    assert json.loads(json.dumps(client.get_type(created["id"])))["name"] == created["name"]
