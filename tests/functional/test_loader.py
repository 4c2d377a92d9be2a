"""The extension is found by Salt's loader in both install modes."""
import os
import subprocess

from tests.conftest import PROJECT, SANDBOX


def test_pip_mode_loads_modules_states_and_utils(loaders):
    # PYTHONPATH holds `pip install --target` of the project: found via the salt.loader entry point.
    assert "cinder_ha.validate" in loaders.modules
    assert "cinder_ha.pillar_valid" in loaders.states
    result = loaders.modules.cinder_ha.validate(pillar={"vip": {"address": "not-an-ip"}})
    assert result["valid"] is False
    assert "vip:address: not an IP address: 'not-an-ip'" in result["errors"]


def test_formula_mode_sync_all_without_the_package(tmp_path):
    """file_roots + saltutil.sync_all, in a Salt that has not got the package installed."""
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "minion").write_text(
        f"file_client: local\nroot_dir: {tmp_path}/root\n"
        f"file_roots:\n  base:\n    - {PROJECT}/salt\n    - {PROJECT}\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    salt_call = [str(SANDBOX / "venv" / "salt" / "bin" / "salt-call"), "--local", "-c", str(conf), "--out=json"]
    before = subprocess.run(salt_call + ["cinder_ha.validate"], env=env, capture_output=True, text=True, timeout=120)
    assert "'cinder_ha.validate' is not available" in before.stdout + before.stderr
    synced = subprocess.run(salt_call + ["saltutil.sync_all"], env=env, capture_output=True, text=True, timeout=120)
    assert synced.returncode == 0, synced.stderr
    assert "modules.cinder_ha" in synced.stdout and "utils.cinder_ha_lib.pillar" in synced.stdout
    after = subprocess.run(salt_call + ["cinder_ha.validate", "pillar={vip: {address: 127.0.0.103}}"],
                           env=env, capture_output=True, text=True, timeout=120)
    assert after.returncode == 0, after.stderr
    assert '"valid": false' in after.stdout and "keystone:auth_url: missing" in after.stdout


def test_settings_from_the_cli_masks_every_secret(loaders):
    pillar = {
        "vip": {"address": "127.0.0.103"},
        "database": {"connection": "mysql+pymysql://cinder:db-s3cret@127.0.0.1/cinder"},
        "rabbitmq": {"hosts": ["127.0.0.1"], "user": "openstack", "password": "rabbit-s3cret"},
        "keystone": {"auth_url": "http://127.0.0.1:5000/v3", "username": "admin", "password": "ks-s3cret",
                     "project_name": "admin"},
        "agent": {"os_password": "agent-s3cret"},
    }
    shown = repr(loaders.modules.cinder_ha.settings(pillar=pillar))
    for secret in ("db-s3cret", "rabbit-s3cret", "ks-s3cret", "agent-s3cret"):
        assert secret not in shown
    assert "mysql+pymysql://cinder:***@127.0.0.1" in shown
    # no public function returns a secret: reveal is ignored; numbers and [profiler] hmac_keys too
    pillar["keystone"]["password"] = 12345678
    pillar["cinder_conf"] = {"extra": {"profiler": {"hmac_keys": "hmac-s3cret"},
                                       "database": {"slave_connection": "mysql://u:p@ss@h/db"}}}
    shown = repr(loaders.modules.cinder_ha.settings(pillar=pillar, reveal=True))
    for secret in ("12345678", "hmac-s3cret", "p@ss", "ss@h/db"):
        assert secret not in shown, secret
    assert "mysql://u:***@h/db" in shown
