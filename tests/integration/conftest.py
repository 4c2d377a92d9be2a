"""A real salt-master and salt-minion (pytest-salt-factories) on loopback, driving the live sandbox.

The minion loads this project in pip mode (PYTHONPATH holds `pip install --target` of it,
found through the salt.loader entry point). Its pillar is the sandbox pillar
(sandbox/sandbox.py writes it), copied into the master's own pillar_roots.
"""
import pathlib

import pytest

from tests.conftest import sandbox_script

PROJECT = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def salt_factories_config():
    return {"log_server_host": "127.0.0.1"}


@pytest.fixture(scope="session")
def pillar_dir(tmp_path_factory, sandbox_facts):
    path = tmp_path_factory.mktemp("pillar")
    (path / "top.sls").write_text("base:\n  '*':\n    - cinder_ha\n")
    sandbox_script("sandbox").write_sandbox_pillar(str(path / "cinder_ha.sls"))
    return path


@pytest.fixture(scope="session")
def salt_master(salt_factories, pillar_dir):
    overrides = {
        "interface": "127.0.0.1",
        "file_roots": {"base": [str(PROJECT / "salt"), str(PROJECT)]},
        "pillar_roots": {"base": [str(pillar_dir)]},
        "auto_accept": True,
        "open_mode": True,
    }
    factory = salt_factories.salt_master_daemon("cinder-ha-master", overrides=overrides)
    with factory.started(start_timeout=120):
        yield factory


@pytest.fixture(scope="session")
def salt_minion(salt_master, sandbox_facts):
    # The Pacemaker node is node1; the minion id says which controller it is.
    factory = salt_master.salt_minion_daemon(sandbox_facts["node"], overrides={"state_queue": True})
    with factory.started(start_timeout=120):
        yield factory


@pytest.fixture(scope="session")
def salt_cli(salt_master):
    return salt_master.salt_cli(timeout=300)


@pytest.fixture(scope="session")
def salt_call_cli(salt_minion):
    return salt_minion.salt_call_cli(timeout=300)
