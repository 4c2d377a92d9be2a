"""lrm secrets in the CIB, pure logic: the keyed digest, and the accepted set of the secrets rule
through a password rotation (who may add or drop a digest, and that nobody is banned by it)."""
import pytest

from cinder_ha_lib import cib

ATTR = "cinder_ha_secrets_p_api"
NODES = ("n1", "n2", "n3")


def a_cib(published, accepted=None):
    """A CIB with three nodes publishing `published` ({node: digest}) and, with `accepted`, the
    two secrets rules accepting those digests."""
    nodes = "".join(
        f'<node id="{i}" uname="{n}">'
        + (f'<instance_attributes id="na-{i}"><nvpair id="na-{i}-a" name="{ATTR}" value="{published[n]}"/>'
           "</instance_attributes>" if published.get(n) else "")
        + "</node>" for i, n in enumerate(NODES, 1))
    constraints = ""
    if accepted is not None:
        for lid, rsc in (("l_api", "p_api"), ("l_ip", "p_ip")):
            constraints += cib.to_xml(cib.render_location(
                {"id": lid, "rsc": rsc, "discovery": "always", "node": None, "score": None,
                 "rules": cib.secrets_rules(ATTR, accepted)}))
    return cib.parse_cib(f'<cib admin_epoch="0" epoch="1" num_updates="0"><configuration><crm_config/>'
                         f"<nodes>{nodes}</nodes><resources/><constraints>{constraints}</constraints>"
                         "</configuration><status/></cib>")


def eligible(parsed, objects=()):
    """Nodes no secrets rule bans, once `objects` (a patch) are applied."""
    after = cib.parse_cib(cib.to_xml(cib.apply_objects(parsed["root"], list(objects), parsed)))
    published = cib.published_digests(after, ATTR)
    rules = cib.secret_locations(after, ATTR)
    return sorted(n for n in NODES if published.get(n) and all(published[n] in cib.accepted_digests(r)
                                                               for r in rules))


def test_the_digest_is_keyed_and_the_memo_key_follows_the_key():
    secrets = {"os_password": "weak"}
    unkeyed = cib.secrets_digest("p_api", secrets)
    keyed = cib.secrets_digest("p_api", secrets, b"authkey one")
    assert len(keyed) == 64 and keyed != unkeyed
    assert keyed == cib.secrets_digest("p_api", dict(secrets), b"authkey one")  # same on every node
    assert keyed != cib.secrets_digest("p_api", secrets, b"authkey two")
    # without the key, a guess of the password does not give the published digest
    assert cib.secrets_digest("p_api", secrets) != keyed
    memo = {cib.digest_memo_key("p_api", secrets, key) for key in (None, b"authkey one", b"authkey two")}
    assert len(memo) == 3  # another key never reads back another key's digest
    assert all(m not in (keyed, unkeyed) for m in memo)


def test_rules_accept_a_sorted_set():
    rules = cib.secrets_rules(ATTR, ["b", "a", "b"])
    assert [cib.rule_text(r) for r in rules] == [f"-INFINITY: not_defined {ATTR}",
                                                 f"-INFINITY: {ATTR} ne a and {ATTR} ne b"]
    assert cib.accepted_digests({"rules": rules}) == ["a", "b"]
    assert cib.secrets_rule_attribute({"rules": rules}) == ATTR
    assert cib.secrets_rule_attribute({"rules": [{"expressions": [
        {"attribute": "#uname", "operation": "eq", "value": "n1"}]}]}) is None


def test_a_node_rotating_first_extends_the_rule_and_stays_eligible():
    parsed = a_cib({"n1": "old", "n2": "old", "n3": "old"}, ["old"])
    objects, stays = cib.node_publication(parsed, ATTR, "n1", "new")
    assert stays is True
    assert {o["id"]: cib.accepted_digests(o) for o in objects if o["tag"] == "location"} == {
        "l_api": ["new", "old"], "l_ip": ["new", "old"]}
    assert eligible(parsed, objects) == list(NODES)  # nobody banned, n1 included


def test_without_the_extension_the_first_node_would_ban_itself():
    """What earlier versions did: publish alone, the rule accepting the controller's digest only."""
    parsed = a_cib({"n1": "old", "n2": "old", "n3": "old"}, ["old"])
    assert eligible(parsed, [cib.node_attribute("n1", ATTR, "new")]) == ["n2", "n3"]


def test_the_last_node_to_publish_drops_the_old_digest():
    parsed = a_cib({"n1": "new", "n2": "new", "n3": "old"}, ["new", "old"])
    objects, stays = cib.node_publication(parsed, ATTR, "n3", "new")
    assert stays is True
    assert {cib.accepted_digests(o) and tuple(cib.accepted_digests(o))
            for o in objects if o["tag"] == "location"} == {("new",)}
    assert eligible(parsed, objects) == list(NODES)


def test_a_node_that_is_not_eligible_extends_nothing():
    parsed = a_cib({"n1": "old", "n2": "stale"}, ["old"])
    for node in ("n2", "n3"):  # a stale digest, or none yet
        objects, stays = cib.node_publication(parsed, ATTR, node, "mine")
        assert stays is False
        assert [o["tag"] for o in objects] == ["node_attr"], objects
    assert cib.node_publication(parsed, ATTR, "n3", "old")[1] is True  # the accepted digest: eligible


def test_without_a_rule_a_node_just_publishes():
    objects, stays = cib.node_publication(a_cib({}), ATTR, "n1", "d")
    assert stays is True and objects == [cib.node_attribute("n1", ATTR, "d")]


@pytest.mark.parametrize("holders,expected", [
    ([], ["new"]),                       # nothing runs on a node with another digest: the rotation ends
    (["n2"], ["new", "old"]),            # cinder-api runs on n2, which has not rotated: it stays
    (["n1", "n3"], ["new", "other"]),    # n1 published new already; n3's own digest is kept
])
def test_the_controller_keeps_the_digest_of_every_node_where_it_runs(holders, expected):
    published = {"n1": "new", "n2": "old", "n3": "other"}
    assert cib.controller_accepted("new", published, holders) == expected


def test_controller_asks_where_things_run_only_during_a_rotation():
    desired = cib.normalize_objects([
        {"primitive": "p_api", "agent": "Dummy", "params": {"pw": "x"}, "secret_params": ["pw"],
         "secret_mode": "lrm"},
        {"location": "l_api", "resource": "p_api", "secrets_of": "p_api", "resource_discovery": "never"},
        {"location": "l_ip", "resource": "p_ip", "secrets_of": "p_api"},
    ], digest=lambda rsc, values: "new")
    asked = []

    def holders(resources):
        asked.append(resources)
        return ["n2"]

    same = cib.with_accepted_digests(desired, a_cib({"n1": "new", "n2": "new"}), holders)
    assert asked == [] and [o.get("accepted") for o in same if o["tag"] == "location"] == [["new"], ["new"]]
    rotating = cib.with_accepted_digests(desired, a_cib({"n1": "new", "n2": "old"}), holders)
    assert asked and set(asked[0]) == {"p_api", "p_ip"}
    assert [o["accepted"] for o in rotating if o["tag"] == "location"] == [["new", "old"], ["new", "old"]]


def test_pillar_refs_are_resolved_and_a_missing_one_is_named():
    values = {"os_password": {"pillar": "a:b"}, "user": "u"}
    assert cib.resolve_pillar_refs(values, "p_api", {"a:b": "pw"}.get) == {"os_password": "pw", "user": "u"}
    with pytest.raises(cib.ModelError, match="p_api os_password: pillar key a:b is not set"):
        cib.resolve_pillar_refs(values, "p_api", {}.get)
