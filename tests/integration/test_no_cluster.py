"""The formula with Pacemaker stopped on the node: the agent and cinder.conf still apply, and the
cluster part fails with a clear "cluster not running on this node" (never a render error, never
a silent green). The module stops the sandbox's cluster and starts it again afterwards."""
import hashlib
import pathlib
import subprocess
import sys

import pytest

from tests.conftest import PROJECT, cluster_env
from tests.support.formula import state_results


def sandbox(*args):
    res = subprocess.run([sys.executable, str(PROJECT / "sandbox" / "sandbox.py"), *args], capture_output=True,
                         text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr


@pytest.fixture(scope="module")
def cluster_stopped(salt_minion):
    sandbox("down", "cluster")
    assert subprocess.run(["crm_mon", "-1"], capture_output=True, env=cluster_env(), timeout=30).returncode != 0
    try:
        yield
    finally:
        sandbox("up", "cluster")


def test_config_applies_without_the_cluster(cluster_stopped, salt_cli, salt_minion, sandbox_facts):
    conf = pathlib.Path(sandbox_facts["cinder_conf"])
    vip = sandbox_facts["vip"]
    conf.write_text(conf.read_text().replace(f"osapi_volume_listen = {vip}", "osapi_volume_listen = 0.0.0.0"))
    drifted = hashlib.sha256(conf.read_bytes()).hexdigest()
    results = state_results(salt_cli.run("state.apply", "cinder_ha.config", minion_tgt=salt_minion.id, _timeout=300))
    failed = {k: v["comment"] for k, v in results.items() if v["result"] is not True}
    assert not failed, failed
    assert hashlib.sha256(conf.read_bytes()).hexdigest() != drifted
    assert "osapi_volume_listen = 0.0.0.0" not in conf.read_text()
    assert f"osapi_volume_listen = {vip}" in conf.read_text()


def test_the_whole_formula_says_the_cluster_is_not_running(cluster_stopped, salt_cli, salt_minion):
    results = state_results(salt_cli.run("state.apply", "cinder_ha", minion_tgt=salt_minion.id, _timeout=300))
    by_id = {key.split("_|-")[1]: value for key, value in results.items()}
    cluster = by_id["cinder_ha-cluster-not-running"]
    assert cluster["result"] is False
    assert "Cluster not running on this node" in cluster["comment"]
    for own_part in ("cinder_ha-validate-pillar-valid", "cinder_ha-agent-file-managed", "cinder_ha-config-cinder-conf-managed"):
        assert by_id[own_part]["result"] is True, (own_part, by_id[own_part]["comment"])
    assert not any("Traceback" in v["comment"] for v in results.values())
