"""Every hostile pillar value of the corpus (tests/unit/test_pillar_hostile.py), applied through
a real master and minion to the live sandbox: a problem naming the key, no traceback, and
nothing changed (CIB epoch, cinder.conf's bytes, Keystone's endpoints, the lrm secrets)."""
import hashlib
import json
import os
import pathlib

import pytest

from tests.support.formula import cib_epoch, keystone_get, state_results
from tests.unit.cinder_ha_lib.test_pillar_hostile import CORPUS

SECRETS = pathlib.Path("/var/lib/pacemaker/lrm/secrets")
SLS = ("cinder_ha", "cinder_ha.config", "cinder_ha.cluster", "cinder_ha.catalog", "cinder_ha.agent")


def override(path, value):
    """The pillar override for one value (merged by Salt into the minion's pillar)."""
    node = value
    for part in reversed(path):
        node = {part: node}
    # YAML (Salt's parser for CLI kwargs) refuses raw DEL in its stream: escape it as YAML does
    return json.dumps({"cinder_ha": node}).replace("\x7f", "\\x7f")


def secrets_listing():
    if not SECRETS.exists():
        return []
    return sorted((str(p.relative_to(SECRETS)), p.stat().st_mtime_ns) for p in SECRETS.rglob("*"))


def snapshot(facts):
    conf = pathlib.Path(facts["cinder_conf"])
    # this region's: the three-node tier, running beside, registers its own in its region
    endpoints = keystone_get(facts, f"/endpoints?region_id={facts['keystone_region']}")["endpoints"]
    return {"epoch": cib_epoch(), "conf": hashlib.sha256(conf.read_bytes()).hexdigest() if conf.exists() else None,
            "endpoints": sorted((e["id"], e["url"]) for e in endpoints), "secrets": secrets_listing()}


@pytest.fixture(scope="module")
def before(sandbox_facts):
    return snapshot(sandbox_facts)


@pytest.mark.parametrize("path,value,key", CORPUS, ids=[f"{i}-{':'.join(c[0])}" for i, c in enumerate(CORPUS)])
def test_hostile_value_changes_nothing(path, value, key, salt_cli, salt_minion, sandbox_facts, before):
    ret = salt_cli.run("state.apply", "cinder_ha", f"pillar={override(path, value)}", minion_tgt=salt_minion.id,
                       _timeout=300)
    results = state_results(ret)
    assert list(results) == ["cinder_ha_|-cinder_ha-validate-pillar-valid_|-cinder_ha-validate-pillar-valid_|-pillar_valid"], \
        f"only the validation state may run: {list(results)}"
    (state,) = results.values()
    assert state["result"] is False
    assert key in state["comment"], state["comment"]
    assert "Traceback" not in state["comment"]
    assert snapshot(sandbox_facts) == before


@pytest.mark.parametrize("sls", SLS)
def test_every_sls_alone_shows_the_problem_list(sls, salt_cli, salt_minion, sandbox_facts, before):
    bad = json.dumps({"cinder_ha": {"vip": "127.0.0.103", "cluster": {"primitive_id": 'p"<x/>'}}})
    results = state_results(salt_cli.run("state.apply", sls, f"pillar={bad}", minion_tgt=salt_minion.id,
                                         _timeout=300))
    assert len(results) == 1, f"{sls}: {list(results)}"
    (state,) = results.values()
    assert state["result"] is False
    assert "vip: got a string, expected a mapping" in state["comment"]
    assert "cluster:primitive_id: not a Pacemaker id" in state["comment"]
    assert snapshot(sandbox_facts) == before
    # the sandbox keeps the monitor's password as an lrm secret (secret_mode lrm): the folder a
    # hostile primitive id would have written to is there to look in
    assert SECRETS.is_dir(), f"{SECRETS} missing: the sandbox's formula run (secret_mode lrm) creates it"
    assert not any('"<x' in name for name in os.listdir(SECRETS))
