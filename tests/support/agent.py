"""Helpers for the OCF agent tests and bench: a private cinder-api instance and agent runs.

Everything lives under /srv/cinder-ha/agent-instance (own cinder.conf, api-paste.ini, state_path, a COPY of
the sandbox's synced cinder.db) and listens on 127.0.0.113:18763, so it never touches the shared
/etc/cinder or the lead's 127.0.0.103:8776. ``prepare_instance`` makes other such instances too
(the reactor tests' t8r on 127.0.0.118:18768).
"""
import contextlib
import json
import os
import pathlib
import pwd
import re
import secrets
import shutil
import subprocess
import threading
import time
import urllib.error
import urllib.request

from cinder_ha_lib.events import ENGINE_HEARTBEAT

PROJECT = pathlib.Path(__file__).resolve().parents[2]
SANDBOX = pathlib.Path(os.environ.get("CINDER_HA_SANDBOX", "/srv/cinder-ha"))
AGENT_SOURCE = PROJECT / "salt" / "cinder_ha" / "files" / "ocf" / "cinder-api"
AGENT_PATH = pathlib.Path("/usr/lib/ocf/resource.d/openstack/cinder-api")
# the functions the agents share, installed beside them as a dot file (agent.sls)
FUNCTIONS_SOURCE = AGENT_SOURCE.with_name("cinder-ha-functions")
FUNCTIONS_PATH = AGENT_PATH.with_name(".cinder-ha-functions")
INSTANCE_DIR = SANDBOX / "agent-instance"
VIP = "127.0.0.113"
PORT = 18763
BINARY = str(SANDBOX / "venv" / "cinder" / "bin" / "cinder-api")
CONF_NOAUTH = INSTANCE_DIR / "cinder-noauth.conf"
CONF_KEYSTONE = INSTANCE_DIR / "cinder.conf"
CONF_BADAUTH = INSTANCE_DIR / "cinder-badauth.conf"  # keystone auth with a wrong service password
PID_FILE = "/run/resource-agents/agent_cinder-api.pid"
ANSI = re.compile(r"\x1b\[[0-9;]*m")
PACEMAKER_LOG = pathlib.Path("/var/log/pacemaker/pacemaker.log")


def env(**extra):
    result = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
    result.update(extra)
    return result


def facts():
    return json.loads((SANDBOX / "sandbox.json").read_text())


def install_agent():
    """Copy the project's agent and the functions it sources to their real location (0755 and
    0644), as the formula's state does: the functions first, as agent.sls orders them."""
    AGENT_PATH.parent.mkdir(parents=True, exist_ok=True)
    for source, path, mode in ((FUNCTIONS_SOURCE, FUNCTIONS_PATH, 0o644), (AGENT_SOURCE, AGENT_PATH, 0o755)):
        tmp = path.with_name(f".{path.name.lstrip('.')}.tmp")
        shutil.copyfile(source, tmp)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    return str(AGENT_PATH)


def conf_variant(name, replacements, source=CONF_KEYSTONE):
    """A copy of one of the private instance's configs (default: the keystone one) with each
    (old, new) text of ``replacements`` replaced (each must apply), as INSTANCE_DIR/cinder-<name>.conf."""
    text = pathlib.Path(source).read_text()
    for old, new in replacements:
        if old not in text:
            raise AssertionError(f"{old!r} is not in {source}")
        text = text.replace(old, new)
    path = INSTANCE_DIR / f"cinder-{name}.conf"
    _write(path, text, 0o640, 0, pwd.getpwnam("cinder").pw_gid)
    return path


def spool_entries(folder):
    """What a spool folder holds besides the engine's heartbeat: alerts, temp files, odd entries."""
    return sorted(name for name in os.listdir(folder) if name != ENGINE_HEARTBEAT)


@contextlib.contextmanager
def engine_heartbeat(folder, every=5.0):
    """Keep the engine's heartbeat in ``folder`` fresh while the block runs: the agents spool
    only into a folder an engine drains, and here the test is what reads the spool. A heartbeat
    the block created is removed after it."""
    path = pathlib.Path(folder) / ENGINE_HEARTBEAT
    created = not path.exists()
    done = threading.Event()

    def beat():
        while True:
            path.touch()
            if done.wait(every):
                return

    thread = threading.Thread(target=beat, daemon=True)
    thread.start()
    try:
        yield path
    finally:
        done.set()
        thread.join(10)
        if created:
            path.unlink(missing_ok=True)


def spooled(folder, kind=None):
    """The JSON alert files in a spool folder (name order), optionally only those of ``kind``."""
    found = []
    for name in sorted(os.listdir(folder)):
        if name.endswith(".json") and not name.startswith("."):
            data = json.loads((pathlib.Path(folder) / name).read_text())
            if kind is None or data.get("kind") == kind:
                found.append(data)
    return found


def _write(path, text, mode, uid=0, gid=0):
    tmp = path.with_name("." + path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.chown(tmp, uid, gid)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def _sync_private_db(db, state, cinder):
    """A private SQLite database with cinder's schema (cinder-api dies at start without its
    tables), made once per instance: `cinder-manage db sync`, ~5 s. Private, so these tests
    never depend on (or write to) the sandbox's own database."""
    sync_conf = state / "db-sync.conf"
    tmp = db.with_name(db.name + ".tmp")
    tmp.unlink(missing_ok=True)
    _write(sync_conf, f"[DEFAULT]\nstate_path = {state}\n[database]\nconnection = sqlite:///{tmp}\n", 0o600)
    try:
        result = subprocess.run([str(pathlib.Path(BINARY).with_name("cinder-manage")), "--config-file", str(sync_conf),
                                 "db", "sync"], capture_output=True, text=True, timeout=300, cwd="/",
                                env=env())
        if result.returncode != 0:
            raise AssertionError(f"cinder-manage db sync for {db}: {result.stderr[-2000:]}")
    finally:
        sync_conf.unlink(missing_ok=True)
    os.chown(tmp, cinder.pw_uid, cinder.pw_gid)
    os.replace(tmp, db)


def prepare_instance(base=INSTANCE_DIR, vip=VIP, port=PORT):
    """Create (idempotently) the cinder configs of an instance (default: the private instance): one noauth, one
    keystone, one with a wrong keystone password. Returns the paths."""
    sandbox = facts()
    cinder = pwd.getpwnam("cinder")
    base = pathlib.Path(base)
    state = base / "state"
    for folder in (base, state, state / "lock", base / "log"):
        folder.mkdir(parents=True, exist_ok=True)
        os.chown(folder, cinder.pw_uid, cinder.pw_gid)
    os.chmod(base, 0o750)
    for log in (base / "log").iterdir():  # cinder's own logs must stay writable by cinder
        if not log.name.endswith(".console.log"):
            os.chown(log, cinder.pw_uid, cinder.pw_gid)
    db = state / "cinder.db"
    if not db.exists():
        _sync_private_db(db, state, cinder)
    paste = pathlib.Path(sandbox["cinder_conf"]).with_name("api-paste.ini").read_text()
    paste = re.sub(r"(?m)^disable_by_file_path\s*=.*$", f"disable_by_file_path = {base}/healthcheck_disable", paste)
    _write(base / "api-paste.ini", paste, 0o644)
    common = (
        "[DEFAULT]\n"
        f"osapi_volume_listen = {vip}\n"
        f"osapi_volume_listen_port = {port}\n"
        "osapi_volume_workers = 1\n"
        "transport_url = fake://\n"
        f"state_path = {state}\n"
        f"log_dir = {base}/log\n"
        f"api_paste_config = {base}/api-paste.ini\n"
        "graceful_shutdown_timeout = 10\n"
        "{auth}"
        "[database]\n"
        f"connection = sqlite:///{db}\n"
        "[oslo_concurrency]\n"
        f"lock_path = {state}/lock\n"
    )
    paths = {"noauth": base / CONF_NOAUTH.name, "keystone": base / CONF_KEYSTONE.name,
             "badauth": base / CONF_BADAUTH.name}
    _write(paths["noauth"], common.replace("{auth}", "auth_strategy = noauth\n"), 0o640, 0, cinder.pw_gid)
    keystone = sandbox["keystone_url"].rsplit("/v3", 1)[0]
    auth = (
        "auth_strategy = keystone\n"
        "[keystone_authtoken]\n"
        f"www_authenticate_uri = {keystone}\n"
        f"auth_url = {keystone}\n"
        "auth_type = password\n"
        f"username = {sandbox['keystone_admin_user']}\n"
        f"password = {sandbox['keystone_admin_password']}\n"
        f"project_name = {sandbox['keystone_admin_project']}\n"
        "user_domain_name = Default\n"
        "project_domain_name = Default\n"
    )
    _write(paths["keystone"], common.replace("{auth}", auth), 0o640, 0, cinder.pw_gid)
    bad = auth.replace(f"password = {sandbox['keystone_admin_password']}\n", "password = not-the-password\n")
    _write(paths["badauth"], common.replace("{auth}", bad), 0o640, 0, cinder.pw_gid)
    return {name: str(path) for name, path in paths.items()}


def guide_params(sandbox, config=str(CONF_KEYSTONE)):
    """The HA guide's literal primitive parameters (v2.0 token URL), plus binary/config for this host."""
    host = sandbox["keystone_url"].rsplit("/v3", 1)[0]
    return {
        "config": config,
        "binary": BINARY,
        "os_password": sandbox["keystone_admin_password"],
        "os_username": sandbox["keystone_admin_user"],
        "os_tenant_name": sandbox["keystone_admin_project"],
        "keystone_get_token_url": f"{host}/v2.0/tokens",
        "pid": PID_FILE,
    }


def modern_params(sandbox, config=str(CONF_KEYSTONE), user="cinder"):
    return {
        "config": config,
        "binary": BINARY,
        "user": user,
        "pid": PID_FILE,
        "os_auth_url": sandbox["keystone_url"],
        "os_username": sandbox["keystone_admin_user"],
        "os_password": sandbox["keystone_admin_password"],
        "os_project_name": sandbox["keystone_admin_project"],
        "os_user_domain_name": "Default",
        "os_project_domain_name": "Default",
    }


def run_agent(action, params, instance="agent_cinder-api", timeout=120, agent=AGENT_PATH, **meta):
    """Run one agent action directly, parameters in the environment (as pacemaker-execd does).
    agent: the agent's file (its name is the resource type; cinder-api by default).
    meta: CRM_meta_interval=5000, CRM_meta_timeout=6000 (milliseconds, as Pacemaker passes them)."""
    agent_env = env(OCF_ROOT="/usr/lib/ocf", OCF_RESOURCE_INSTANCE=instance, OCF_RESOURCE_TYPE=pathlib.Path(agent).name,
                    OCF_RESOURCE_PROVIDER="openstack", __OCF_ACTION=action)
    for key, value in params.items():
        agent_env[f"OCF_RESKEY_{key}"] = str(value)
    for key, value in meta.items():
        if not key.startswith("CRM_meta_"):
            raise ValueError(f"{key}: meta attributes are named CRM_meta_*")
        agent_env[f"OCF_RESKEY_{key}"] = str(value)
    return subprocess.run([str(agent), action], env=agent_env, capture_output=True, text=True, timeout=timeout)


@contextlib.contextmanager
def network_namespace(name):
    """A network namespace of our own, standing in for a node: lo up, nothing else; every
    process left in it is killed when it is deleted."""
    subprocess.run(["ip", "netns", "add", name], check=True, timeout=10)
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True, timeout=10)
        yield name
    finally:
        for pid in subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True,
                                  timeout=10).stdout.split():
            subprocess.run(["kill", "-9", pid], timeout=10)
        subprocess.run(["ip", "netns", "delete", name], timeout=10)


def cinder_pids(base=INSTANCE_DIR):
    """PIDs of every cinder-api process of the private instance, or the one in `base` (parent and workers)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = pathlib.Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        text = [part.decode(errors="replace") for part in cmdline]
        if any(part.endswith("cinder-api") for part in text) and any(f"{base}/" in part for part in text):
            found.append(int(entry))
    return sorted(found)


def all_cmdlines():
    """Every process's command line and (readable) environment-free argv, joined, from /proc."""
    lines = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                lines.append(pathlib.Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(
                    errors="replace"))
            except OSError:
                pass
    return lines


def healthcheck(timeout=2, vip=VIP, port=PORT):
    """HTTP status of the private instance's /healthcheck (or vip:port's), or None when nothing answers."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(f"http://{vip}:{port}/healthcheck", timeout=timeout) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return None


def wait_for(predicate, timeout, step=0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    return predicate()


def kill_instance(base=INSTANCE_DIR, pid_file=PID_FILE):
    """Last-resort cleanup: SIGKILL every cinder-api process of the instance, remove the pid file
    and the agent's start record."""
    for pid in cinder_pids(base):
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass
    wait_for(lambda: not cinder_pids(base), 10)
    for path in (pid_file, pid_file + ".start", pid_file + ".conf", pid_file + ".identity"):
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


def running_pid(pid_file=PID_FILE):
    """The pid in the agent's pid file, or None."""
    try:
        return int(pathlib.Path(pid_file).read_text().strip())
    except (OSError, ValueError):
        return None


def log_offset():
    return PACEMAKER_LOG.stat().st_size


def resource_ops_since(offset, rsc):
    """start/stop operations of `rsc` that pacemaker-controld logged after byte `offset` of
    pacemaker.log, in order (one entry per operation result)."""
    with PACEMAKER_LOG.open("rb") as log:
        log.seek(offset)
        text = log.read().decode(errors="replace")
    return re.findall(rf"Result of (start|stop) operation for {re.escape(rsc)} on ", text)


# ---- live cluster (crm / C tools) ----

def crm(*args, timeout=60, check=True):
    result = subprocess.run(["crm", *args], env=env(), capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"crm {' '.join(args[:2])} rc={result.returncode}: "
                             f"{ANSI.sub('', result.stdout + result.stderr)}")
    return result


def primitive_text(rsc_id, params, monitor_interval="5s", monitor_timeout="30s"):
    """crm text of a cinder-api primitive, created stopped (target-role=Stopped)."""
    quoted = []
    for key, value in params.items():
        value = str(value)
        if '"' in value or "\\" in value or "\n" in value:
            raise ValueError(f"parameter {key}: crm text cannot carry this value")
        quoted.append(f'{key}="{value}"')
    return (f"primitive {rsc_id} ocf:openstack:cinder-api params {' '.join(quoted)} "
            f"op start timeout=60s interval=0s op stop timeout=90s interval=0s "
            f"op monitor interval={monitor_interval} timeout={monitor_timeout} "
            f"meta target-role=Stopped\n")


def create_primitive(rsc_id, params, **kwargs):
    """Load the primitive with `crm configure load update -` (stdin: no secret on a command line).
    crm checks every parameter name against the agent's meta-data."""
    result = subprocess.run(["crm", "configure", "load", "update", "-"], input=primitive_text(rsc_id, params, **kwargs),
                            env=env(), capture_output=True, text=True, timeout=60)
    shown = ANSI.sub("", result.stdout + result.stderr)
    for value in params.values():
        shown = shown.replace(str(value), "***") if len(str(value)) > 5 else shown
    if result.returncode != 0 or "ERROR" in shown:
        raise AssertionError(f"crm configure load update {rsc_id}: rc={result.returncode} {shown}")


def resource_running_on(rsc_id):
    result = subprocess.run(["crm_resource", "--locate", "-r", rsc_id, "-Q"], env=env(), capture_output=True,
                            text=True, timeout=30)
    return result.stdout.strip() if result.returncode == 0 else ""


def primitive_exists(rsc_id):
    return subprocess.run(["cibadmin", "-Q", "--xpath", f"//primitive[@id='{rsc_id}']"], env=env(),
                          capture_output=True, text=True, timeout=30).returncode == 0


def start_resource(rsc_id, timeout=90):
    """Started, answering, and the start operation recorded (a test's log offset taken after
    this sees none of it)."""
    crm("resource", "start", rsc_id)
    return wait_for(lambda: resource_running_on(rsc_id) and healthcheck() == 200, timeout, step=0.5) and \
        subprocess.run(["crm_resource", "--wait", f"--timeout={timeout}s"], env=env(), capture_output=True,
                       timeout=timeout + 15).returncode == 0


def delete_primitive(rsc_id):
    """crm resource stop, wait until stopped, crm configure delete, clean its history; safe when absent."""
    if primitive_exists(rsc_id):
        crm("resource", "stop", rsc_id, check=False)
        wait_for(lambda: not resource_running_on(rsc_id), 100, step=0.5)
        # crm refuses to delete while the cluster still reports the resource active: retry
        wait_for(lambda: crm("configure", "delete", rsc_id, check=False) and not primitive_exists(rsc_id), 60,
                 step=1)
        if primitive_exists(rsc_id):
            raise AssertionError(f"could not delete {rsc_id}")
        subprocess.run(["crm_resource", "--cleanup", "-r", rsc_id], env=env(), capture_output=True, text=True,
                       timeout=30)


@contextlib.contextmanager
def throwaway_keystone_user(sandbox):
    """A Keystone user made for these tests (admin role on the admin project, random password),
    deleted afterwards. The guide's primitive keeps os_password in the CIB, which Pacemaker
    logs; with this user what lands in pacemaker.log is a dead password, not the sandbox's."""
    from keystoneauth1 import session as ks_session
    from keystoneauth1.identity import v3

    admin = ks_session.Session(auth=v3.Password(
        auth_url=sandbox["keystone_url"], username=sandbox["keystone_admin_user"],
        password=sandbox["keystone_admin_password"], project_name=sandbox["keystone_admin_project"],
        user_domain_name="Default", project_domain_name="Default"), timeout=10)
    url = sandbox["keystone_url"]
    name, password = f"agent-monitor-{secrets.token_hex(4)}", secrets.token_urlsafe(18)
    user = admin.post(f"{url}/users", json={"user": {"name": name, "password": password,
                                                     "domain_id": "default"}}).json()["user"]
    try:
        project = admin.get(f"{url}/projects?name={sandbox['keystone_admin_project']}").json()["projects"][0]
        role = admin.get(f"{url}/roles?name=admin").json()["roles"][0]
        admin.put(f"{url}/projects/{project['id']}/users/{user['id']}/roles/{role['id']}")
        yield dict(sandbox, keystone_admin_user=name, keystone_admin_password=password)
    finally:
        admin.delete(f"{url}/users/{user['id']}")


def _set_maintenance(on):
    changed = subprocess.run(["crm_attribute", "--type", "crm_config", "--name", "maintenance-mode",
                              "--update", "true" if on else "false"], capture_output=True, text=True,
                             env=env(), timeout=30).returncode == 0
    if changed:
        # the controller cancels (or restarts) recurring monitors in a transition of its own:
        # only once that is done is the agent file safe to touch
        subprocess.run(["crm_resource", "--wait", "--timeout", "60s"], capture_output=True, env=env(), timeout=90)
    return changed


@contextlib.contextmanager
def cluster_maintenance():
    """The live cluster in maintenance mode for the block (nothing monitored, started or stopped),
    then out of it again."""
    assert _set_maintenance(True), "could not put the cluster in maintenance mode"
    try:
        yield
    finally:
        _set_maintenance(False)


@contextlib.contextmanager
def agent_file_removed():
    """The real agent path emptied for an install test, then restored. A live cluster may run a
    resource with this agent: it is held in maintenance mode meanwhile, so Pacemaker neither
    monitors nor stops anything while the file is missing."""
    held = _set_maintenance(True)  # False when no cluster runs: nothing to protect then
    AGENT_PATH.unlink(missing_ok=True)
    try:
        yield
    finally:
        install_agent()
        if held:
            _set_maintenance(False)
