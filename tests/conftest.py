"""Fixtures shared by all tiers.

The tier of a test is the folder it lives in (tests/unit, tests/functional,
tests/integration, tests/multinode); the marker is added automatically, so
``pytest -m unit`` runs one tier alone.
"""
import json
import os
import pathlib
import shutil
import subprocess

import pytest

PROJECT = pathlib.Path(__file__).resolve().parent.parent
SANDBOX = pathlib.Path(os.environ.get("CINDER_HA_SANDBOX", "/srv/cinder-ha"))
TIERS = ("unit", "functional", "integration", "multinode")



def pytest_collection_modifyitems(config, items):
    for item in items:
        parts = pathlib.Path(str(item.fspath)).relative_to(PROJECT / "tests").parts
        if parts and parts[0] in TIERS:
            item.add_marker(getattr(pytest.mark, parts[0]))


def pytest_configure(config):
    # Importing salt (the salt-factories plugin does, before any conftest) parks a temporary
    # handler on the root logger: it buffers every WARNING record of the run, the daemons'
    # forwarded by the log server included, and writes them at interpreter exit to the
    # sys.stderr of that import, closed by pytest by then: one "--- Logging error ---"
    # traceback per record. Salt removes it when it sets logging up, which a test process
    # never does: remove it here, so records go through pytest's log capture instead (shown
    # with the test that failed).
    try:
        import salt._logging
    except ImportError:
        return
    salt._logging.shutdown_temp_handler()


@pytest.hookimpl(hookwrapper=True)
def pytest_sessionstart(session):
    # pytest-salt-factories' log server binds 0.0.0.0 by default: loopback only here.
    log_server = session.config.pluginmanager.get_plugin("saltfactories-log-server")
    if log_server is not None:
        log_server.log_host = "127.0.0.1"
    yield


@pytest.fixture(scope="session")
def event_listener():
    """salt-factories' event listener, bound to loopback instead of 0.0.0.0."""
    from saltfactories.plugins.event_listener import EventListener

    listener = EventListener()
    listener.host = "127.0.0.1"  # attrs computes host/address at init; rebind before start()
    listener.address = f"tcp://{listener.host}:{listener.port}"
    with listener:
        yield listener


@pytest.fixture(scope="session")
def project_root():
    return PROJECT


@pytest.fixture(scope="session")
def sandbox_facts():
    """URLs, credentials and paths of the running sandbox (written by sandbox/sandbox.py)."""
    path = SANDBOX / "sandbox.json"
    if not path.exists():
        pytest.fail(f"{path} missing: start the sandbox (python3 sandbox/sandbox.py up)")
    return json.loads(path.read_text())


def sandbox_script(name):
    """sandbox/<name>.py loaded as a module (the scripts are not a package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"cinder_ha_{name}", PROJECT / "sandbox" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def cluster_env(**extra):
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
    env.update(extra)
    return env


@pytest.fixture
def cib_file(tmp_path):
    """An offline CIB (stonith off) for crm and the C tools: set CIB_file to use it."""
    if not shutil.which("cibadmin"):
        pytest.fail("pacemaker-cli-utils not installed: run sandbox/install.sh")
    path = tmp_path / "cib.xml"
    path.write_text(subprocess.run(["cibadmin", "--empty"], check=True, capture_output=True, text=True,
                                   env=cluster_env()).stdout)
    subprocess.run(["crm_attribute", "--type", "crm_config", "--name", "stonith-enabled", "--update", "false"],
                   check=True, capture_output=True, env=cluster_env(CIB_file=str(path)))
    return path


def minion_config(root_dir, **overrides):
    """A masterless minion config rooted in `root_dir` (short path: unix sockets)."""
    import salt.config

    opts = salt.config.minion_config(None)
    opts.update({
        "root_dir": str(root_dir),
        "cachedir": str(root_dir / "cache"),
        "pki_dir": str(root_dir / "pki"),
        "sock_dir": str(root_dir / "sock"),
        "extension_modules": str(root_dir / "extmods"),
        "file_client": "local",
        # Empty file_roots: salt-factories' Loaders syncs _modules from file_roots, which would
        # hide whether the pip-installed entry point (the mode under test) works.
        "file_roots": {"base": [str(root_dir / "file_roots")]},
        "pillar_roots": {"base": [str(root_dir / "pillar")]},
        "id": "functional-minion",
        "log_file": str(root_dir / "minion.log"),
    })
    opts.update(overrides)
    return opts


def _project_loaders(opts):
    """salt-factories' Loaders without the ``saltutil.sync_all`` it runs when created: with the
    empty file_roots of ``minion_config`` it copies nothing (the project comes through its
    entry point), and it cost ~2.5 s of each functional test (20 file clients, an event fired
    at a minion that does not exist)."""
    import types

    from saltfactories.utils.functional import Loaders

    class ProjectLoaders(Loaders):
        _creating = False

        def __init__(self, opts):
            self._creating = True
            try:
                super().__init__(opts)
            finally:
                self._creating = False

        @property
        def modules(self):
            if self._creating:  # only Loaders.__init__'s sync reads it then
                return types.SimpleNamespace(saltutil=types.SimpleNamespace(sync_all=dict))
            return super().modules

    return ProjectLoaders(opts)


@pytest.fixture
def loaders(tmp_path):
    """Salt's loaders (modules, states, utils) for this project, as a minion would load them."""
    root = tmp_path / "minion"
    root.mkdir()
    loaders = _project_loaders(minion_config(root))
    try:
        yield loaders
    finally:
        loaders.reset_state()
