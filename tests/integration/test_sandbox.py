"""A real master and minion, the live cluster, Keystone and the cinder-api install."""
import json
import subprocess
import urllib.request


def test_minion_sees_valid_sandbox_pillar_and_live_cluster(salt_cli, salt_minion):
    ret = salt_cli.run("cinder_ha.validate", minion_tgt=salt_minion.id)
    assert ret.returncode == 0, ret
    assert ret.data["valid"] is True, ret.data["errors"]
    ret = salt_cli.run("cmd.run_all", "crmadmin -D -t 5s", minion_tgt=salt_minion.id)
    assert ret.data["retcode"] == 0 and "Designated Controller is: node1" in ret.data["stdout"]


def test_pillar_validation_state_fails_on_bad_pillar_with_every_error(salt_cli, salt_minion):
    bad = json.dumps({"vip": {"address": "127.0.0.999"}, "cinder_api_port": "eighty"})
    ret = salt_cli.run("state.single", "cinder_ha.pillar_valid", "check", f"pillar={bad}", minion_tgt=salt_minion.id)
    (state,) = ret.data.values()
    assert state["result"] is False
    assert "127.0.0.999" in state["comment"] and "port must be an integer" in state["comment"]


def test_keystone_answers_and_cinder_is_installed(sandbox_facts):
    with urllib.request.urlopen(sandbox_facts["keystone_url"], timeout=5) as resp:
        assert json.load(resp)["version"]["id"] == "v3.14"
    res = subprocess.run([sandbox_facts["cinder_api"], "--version"], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0 and res.stdout.strip().startswith("29.")
