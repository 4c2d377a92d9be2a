#!/usr/bin/env python3
"""Start, stop and describe the cinder-ha sandbox: real services, loopback only.

    sandbox.py up [cluster|keystone|cinder|salt ...]   start (idempotent)
    sandbox.py down [...]                              stop what this script started
    sandbox.py status                                  what runs where, and the logs

Components
    cluster   corosync + pacemakerd, one node "node1" on 127.0.0.1, CIB seeded so a DC
              is elected in seconds (no systemd needed)
    mariadb   MariaDB (Debian's) on 127.0.0.1:3306, its own datadir; database and user `cinder`
    rabbitmq  RabbitMQ (Debian's) on 127.0.0.1:5672, epmd and distribution on loopback too;
              vhost and user `cinder`
    keystone  Keystone 30 under gunicorn on 127.0.0.1:5000 (its own SQLite), fernet tokens
    cinder    cinder-api's configuration, schema synced into MariaDB; the cluster starts it
    salt      salt-master + salt-minion "node1" on 127.0.0.1:14505/14506

Every process is recorded by pid under $CINDER_HA_SANDBOX/run. A port or daemon that is
busy but not ours is refused, never taken over; `down` stops only recorded pids.
Facts the tests need (URLs, credentials, paths) are written to sandbox.json (mode 0600).
"""
import argparse
import grp
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import xml.etree.ElementTree as ET

PROJECT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SANDBOX = os.environ.get("CINDER_HA_SANDBOX", "/srv/cinder-ha")
RUN = os.path.join(SANDBOX, "run")
LOG = os.path.join(SANDBOX, "log")
VENV = os.path.join(SANDBOX, "venv")
SITE = os.path.join(SANDBOX, "site")  # `pip install --target` of this project (pip mode)
FACTS = os.path.join(SANDBOX, "sandbox.json")

NODE = "node1"
VIP = "127.0.0.103"
CINDER_PORT = 8776
KEYSTONE_PORT = 5000
MARIADB_PORT = 3306
RABBIT_PORT = 5672
EPMD_PORT = 4369
RABBIT_DIST_PORT = 25672
SALT_PUBLISH_PORT = 14505
SALT_RET_PORT = 14506
CINDER_CONF_DIR = "/etc/cinder"
COROSYNC_CONF = "/etc/corosync/corosync.conf"
CIB_XML = "/var/lib/pacemaker/cib/cib.xml"
MARKER = "# managed by the cinder-ha sandbox"
ALERT_SPOOL = "/var/lib/cinder-ha/alerts"  # the alert agent writes here, the engine forwards


class SandboxError(Exception):
    pass


def log(msg):
    print(f"[sandbox {time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ---------------------------------------------------------------- processes


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie is not alive for our purposes
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def pids_named(name):
    """
    Pids whose executable name is `name` (like pgrep -x), in this pid namespace only: the
    three-node cluster's daemons (sandbox/multinode.py) run in namespaces of their own, with
    their own network and files, and are no other cluster on this host.
    """
    here = os.readlink("/proc/self/ns/pid")
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/comm") as f:
                    # a zombie (a daemon just stopped, not yet reaped) is not running
                    if f.read().strip() == name and os.readlink(f"/proc/{entry}/ns/pid") == here \
                            and pid_alive(int(entry)):
                        found.append(int(entry))
            except OSError:
                pass
    return found


def recorded_pid(name, must_contain):
    """The pid we recorded for `name`, if that process still runs and is what we started."""
    path = os.path.join(RUN, f"{name}.pid")
    try:
        with open(path) as f:
            pid = int(f.read().strip())
    except (OSError, ValueError):
        return None
    if pid_alive(pid) and must_contain in cmdline(pid):
        return pid
    os.unlink(path)
    return None


def record_pid(name, pid):
    os.makedirs(RUN, exist_ok=True)
    with open(os.path.join(RUN, f"{name}.pid"), "w") as f:
        f.write(str(pid))


def forget_pid(name):
    try:
        os.unlink(os.path.join(RUN, f"{name}.pid"))
    except FileNotFoundError:
        pass


def spawn(name, argv, logfile, env=None, cwd=None):
    """Start a daemon in its own session, stdout/stderr to `logfile`, and record its pid."""
    os.makedirs(os.path.dirname(logfile), exist_ok=True)
    with open(logfile, "ab") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, env=env, cwd=cwd)
    record_pid(name, proc.pid)
    return proc.pid


def stop_pid(name, pid, timeout=60, sig=signal.SIGTERM):
    log(f"stopping {name} (pid {pid})")
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + timeout
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if pid_alive(pid):
        log(f"{name} ignored SIGTERM for {timeout}s: SIGKILL")
        os.kill(pid, signal.SIGKILL)
    forget_pid(name)


def port_busy(host, port):
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def wait_for(what, check, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise SandboxError(f"timed out after {timeout}s waiting for {what}")


def run(argv, env=None, timeout=120, check=True):
    res = subprocess.run(argv, env=env, timeout=timeout, capture_output=True, text=True)
    if check and res.returncode != 0:
        raise SandboxError(f"{' '.join(argv[:3])} ... failed (rc {res.returncode}): {res.stderr.strip()[-800:]}")
    return res


def write_file(path, text, mode=0o644):
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(text)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def facts():
    try:
        with open(FACTS) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def save_facts(update):
    data = facts()
    data.update(update)
    os.makedirs(SANDBOX, exist_ok=True)
    write_file(FACTS, json.dumps(data, indent=2, sort_keys=True) + "\n", 0o600)


def need_venv(name):
    path = os.path.join(VENV, name, "bin", "python")
    if not os.path.exists(path):
        raise SandboxError(f"venv {name} missing: run sandbox/install.sh first")
    return os.path.join(VENV, name, "bin")


# ---------------------------------------------------------------- cluster

COROSYNC_TEMPLATE = MARKER + """
totem {
    version: 2
    cluster_name: cinder-ha-sandbox
    transport: knet
    crypto_cipher: none
    crypto_hash: none
}
logging {
    to_logfile: yes
    logfile: /var/log/corosync/corosync.log
    to_stderr: no
    to_syslog: no
    timestamp: on
}
quorum {
    provider: corosync_votequorum
}
nodelist {
    node {
        name: %(node)s
        nodeid: 1
        ring0_addr: 127.0.0.1
    }
}
"""


def cluster_env():
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
    return env


def seed_cib():
    """A CIB with stonith off, quorum ignored and a 2 s dc-deadtime: a DC in seconds."""
    empty = run(["cibadmin", "--empty"], env=cluster_env()).stdout
    root = ET.fromstring(empty)
    crm_config = root.find("configuration/crm_config")
    props = ET.SubElement(crm_config, "cluster_property_set", id="cib-bootstrap-options")
    for name, value in (("stonith-enabled", "false"), ("no-quorum-policy", "ignore"), ("dc-deadtime", "2s")):
        ET.SubElement(props, "nvpair", id=f"cib-bootstrap-options-{name}", name=name, value=value)
    os.makedirs(os.path.dirname(CIB_XML), exist_ok=True)
    write_file(CIB_XML, ET.tostring(root, encoding="unicode"), 0o600)
    uid, gid = pwd.getpwnam("hacluster").pw_uid, grp.getgrnam("haclient").gr_gid
    os.chown(CIB_XML, uid, gid)
    os.chown(os.path.dirname(CIB_XML), uid, gid)


def prepare_cluster_dirs():
    hacluster = pwd.getpwnam("hacluster").pw_uid
    haclient = grp.getgrnam("haclient").gr_gid
    for path in ("/var/log/corosync", "/var/log/pacemaker"):
        os.makedirs(path, exist_ok=True)
        os.chown(path, hacluster, haclient)
    os.makedirs(ALERT_SPOOL, exist_ok=True)
    os.chown(ALERT_SPOOL, hacluster, haclient)
    os.chmod(ALERT_SPOOL, 0o750)
    os.makedirs("/run/resource-agents", exist_ok=True)
    os.chmod("/run/resource-agents", 0o1755)
    os.makedirs("/run/crm", exist_ok=True)
    os.chown("/run/crm", hacluster, haclient)
    os.chmod("/run/crm", 0o750)


def dc_elected():
    res = subprocess.run(["crmadmin", "-D", "-t", "1s"], env=cluster_env(), capture_output=True, text=True, timeout=10)
    return res.returncode == 0 and "Designated Controller" in res.stdout


def cluster_up():
    if not shutil.which("corosync") or not shutil.which("pacemakerd") or not shutil.which("crm"):
        raise SandboxError("pacemaker/corosync/crmsh not installed: run sandbox/install.sh first")
    corosync = recorded_pid("corosync", "corosync")
    pacemakerd = recorded_pid("pacemakerd", "pacemakerd")
    foreign = [p for p in pids_named("corosync") if p != corosync] + [p for p in pids_named("pacemakerd") if p != pacemakerd]
    if foreign:
        raise SandboxError(f"a corosync/pacemakerd this sandbox did not start is running (pids {foreign}); "
                           "stop it yourself or use that cluster, refusing to touch it")
    if corosync and pacemakerd:
        log(f"cluster: already running (corosync {corosync}, pacemakerd {pacemakerd})")
        return
    if os.path.exists(COROSYNC_CONF):
        with open(COROSYNC_CONF) as f:
            current = f.read()
        if MARKER not in current:
            backup = COROSYNC_CONF + ".cinder-ha-sandbox.orig"
            if not os.path.exists(backup):
                shutil.copy2(COROSYNC_CONF, backup)
            log(f"cluster: writing {COROSYNC_CONF} (the original is kept at {backup})")
    os.makedirs(os.path.dirname(COROSYNC_CONF), exist_ok=True)
    write_file(COROSYNC_CONF, COROSYNC_TEMPLATE % {"node": NODE})
    prepare_cluster_dirs()
    if not os.path.exists(CIB_XML):
        seed_cib()
    started = time.monotonic()
    if not corosync:
        spawn("corosync", ["corosync", "-f"], os.path.join(LOG, "corosync.stdout"), env=cluster_env())
        wait_for("corosync", lambda: run(["corosync-cfgtool", "-s"], env=cluster_env(), check=False).returncode == 0, 30)
    if not pacemakerd:
        spawn("pacemakerd", ["pacemakerd"], os.path.join(LOG, "pacemakerd.stdout"), env=cluster_env())
    wait_for("a Pacemaker DC", dc_elected, 90)
    log(f"cluster: node {NODE} online, DC elected in {time.monotonic() - started:.1f}s")


def children_of(pid):
    """Pids whose parent is `pid` (from /proc)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        found.append(int(entry))
            except (OSError, ValueError, IndexError):
                pass
    return found


def cluster_down():
    pacemakerd = recorded_pid("pacemakerd", "pacemakerd")
    if pacemakerd:
        # SIGTERM makes pacemakerd stop every resource first, then its children. If it has to
        # be killed (a resource whose stop failed blocks the shutdown), its daemons are ours too.
        daemons = children_of(pacemakerd)
        stop_pid("pacemakerd", pacemakerd, timeout=120)
        for pid in daemons:
            if pid_alive(pid) and "pacemaker" in cmdline(pid):
                stop_pid(f"pacemaker daemon {pid}", pid, timeout=10)
    corosync = recorded_pid("corosync", "corosync")
    if corosync:
        stop_pid("corosync", corosync, timeout=30)


def cluster_status():
    ours = recorded_pid("pacemakerd", "pacemakerd")
    if not ours:
        return "cluster: not running"
    res = run(["crm_mon", "-1", "--output-as=text"], env=cluster_env(), check=False, timeout=20)
    return f"cluster: pacemakerd pid {ours}\n" + "\n".join("    " + line for line in res.stdout.splitlines())


# ---------------------------------------------------------------- mariadb (the guide's MySQL)


def mariadb_paths():
    base = os.path.join(SANDBOX, "mariadb")
    return {"base": base, "data": os.path.join(base, "data"), "run": os.path.join(base, "run"),
            "socket": os.path.join(base, "run", "mysqld.sock"), "log": os.path.join(LOG, "mariadb.log")}


def mariadb_sql(sql, timeout=60):
    """Run SQL as MariaDB's root over the socket (unix_socket auth); the SQL goes on stdin,
    so passwords in it are on no command line."""
    res = subprocess.run(["mariadb", "--no-defaults", f"--socket={mariadb_paths()['socket']}", "--batch",
                          "--skip-column-names"], input=sql, capture_output=True, text=True, timeout=timeout)
    if res.returncode != 0:
        raise SandboxError(f"mariadb: {res.stderr.strip()[-500:]}")
    return res.stdout


def sql_string(value):
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def mariadb_up():
    if not shutil.which("mariadbd"):
        raise SandboxError("mariadb-server not installed: run sandbox/install.sh first")
    paths = mariadb_paths()
    pid = recorded_pid("mariadb", "mariadbd")
    if pid:
        log(f"mariadb: already running (pid {pid})")
    else:
        if port_busy("127.0.0.1", MARIADB_PORT):
            raise SandboxError(f"127.0.0.1:{MARIADB_PORT} is in use by a process this sandbox did not start")
        mysql = pwd.getpwnam("mysql")
        for path in (paths["base"], paths["data"], paths["run"]):
            os.makedirs(path, exist_ok=True)
            os.chown(path, mysql.pw_uid, mysql.pw_gid)
        os.chmod(paths["data"], 0o700)
        if not os.path.isdir(os.path.join(paths["data"], "mysql")):
            log("mariadb: initializing its data directory")
            run(["mariadb-install-db", "--no-defaults", "--user=mysql", f"--datadir={paths['data']}",
                 "--auth-root-authentication-method=socket", "--skip-test-db"], timeout=180)
        started = time.monotonic()
        # --no-defaults: nothing from /etc/mysql; loopback only, our own socket and datadir.
        spawn("mariadb", ["mariadbd", "--no-defaults", "--user=mysql", f"--datadir={paths['data']}",
                          "--bind-address=127.0.0.1", f"--port={MARIADB_PORT}", f"--socket={paths['socket']}",
                          f"--pid-file={os.path.join(paths['run'], 'mariadbd.pid')}", "--skip-name-resolve",
                          f"--log-error={paths['log']}", "--max-connections=500"],
              os.path.join(LOG, "mariadb.stdout"))
        wait_for("mariadb", lambda: run(["mariadb-admin", "--no-defaults", f"--socket={paths['socket']}", "ping"],
                                        check=False, timeout=10).returncode == 0, 60)
        log(f"mariadb: answering on 127.0.0.1:{MARIADB_PORT} after {time.monotonic() - started:.1f}s")
    f = facts()
    # URL-special characters the whole stack accepts (SQLAlchemy decodes the percent-encoded URL)
    password = f.get("db_password") or "c1nd@r:p/w%#?" + secrets.token_urlsafe(9)
    # 127.0.0.1: the single node connects directly, the namespace nodes through the bridge relay
    mariadb_sql(f"""CREATE DATABASE IF NOT EXISTS cinder CHARACTER SET utf8mb4;
CREATE USER IF NOT EXISTS 'cinder'@'127.0.0.1' IDENTIFIED BY {sql_string(password)};
ALTER USER 'cinder'@'127.0.0.1' IDENTIFIED BY {sql_string(password)};
GRANT ALL PRIVILEGES ON cinder.* TO 'cinder'@'127.0.0.1';
FLUSH PRIVILEGES;
""")
    save_facts({"db_host": "127.0.0.1", "db_port": MARIADB_PORT, "db_user": "cinder", "db_password": password,
                "db_name": "cinder", "db_socket": paths["socket"]})


def mariadb_down():
    pid = recorded_pid("mariadb", "mariadbd")
    if pid:
        stop_pid("mariadb", pid, timeout=60)


def daemon_status(name, marker, port):
    pid = recorded_pid(name, marker)
    return f"{name}: {'pid %s, 127.0.0.1:%s' % (pid, port) if pid else 'not running'}"


# ---------------------------------------------------------------- rabbitmq (notifications, RPC)

RABBIT_NODENAME = "cinderha@localhost"


def rabbit_paths():
    base = os.path.join(SANDBOX, "rabbitmq")
    return {"base": base, "home": os.path.join(base, "home"), "mnesia": os.path.join(base, "mnesia"),
            "log": os.path.join(LOG, "rabbitmq")}


def rabbit_env():
    paths = rabbit_paths()
    return {
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8", "HOME": paths["home"],
        "RABBITMQ_NODENAME": RABBIT_NODENAME, "RABBITMQ_MNESIA_BASE": paths["mnesia"],
        "RABBITMQ_LOG_BASE": paths["log"], "RABBITMQ_ENABLED_PLUGINS_FILE": os.path.join(paths["home"], "plugins"),
        "RABBITMQ_CONFIG_FILE": os.path.join(paths["home"], "rabbitmq"),
        # Loopback only: AMQP, epmd and the Erlang distribution port open on every address otherwise.
        "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1", "RABBITMQ_NODE_PORT": str(RABBIT_PORT),
        "RABBITMQ_DIST_PORT": str(RABBIT_DIST_PORT), "ERL_EPMD_ADDRESS": "127.0.0.1",
        "ERL_EPMD_PORT": str(EPMD_PORT),
        "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
    }


def as_rabbitmq(argv):
    return ["setpriv", "--reuid", "rabbitmq", "--regid", "rabbitmq", "--init-groups", "--"] + argv


def rabbitmqctl(*args, stdin=None, check=True, timeout=60):
    res = subprocess.run(as_rabbitmq(["/usr/lib/rabbitmq/bin/rabbitmqctl", *args]), env=rabbit_env(), input=stdin,
                         capture_output=True, text=True, timeout=timeout)
    if check and res.returncode != 0:
        raise SandboxError(f"rabbitmqctl {args[0]}: {(res.stderr or res.stdout).strip()[-500:]}")
    return res


def rabbitmq_up():
    if not os.path.exists("/usr/lib/rabbitmq/bin/rabbitmq-server"):
        raise SandboxError("rabbitmq-server not installed: run sandbox/install.sh first")
    paths = rabbit_paths()
    rabbit = pwd.getpwnam("rabbitmq")
    for path in paths.values():
        os.makedirs(path, exist_ok=True)
        os.chown(path, rabbit.pw_uid, rabbit.pw_gid)
    os.chmod(paths["home"], 0o700)  # the Erlang cookie lives here
    if not recorded_pid("epmd", "epmd"):
        if port_busy("127.0.0.1", EPMD_PORT):
            raise SandboxError(f"127.0.0.1:{EPMD_PORT} (epmd) is in use by a process this sandbox did not start")
        spawn("epmd", as_rabbitmq(["epmd", "-address", "127.0.0.1", "-port", str(EPMD_PORT)]),
              os.path.join(LOG, "epmd.stdout"), env=rabbit_env())
        wait_for("epmd", lambda: port_busy("127.0.0.1", EPMD_PORT), 10)
    pid = recorded_pid("rabbitmq", "rabbitmq-server")
    if pid:
        log(f"rabbitmq: already running (pid {pid})")
    else:
        if port_busy("127.0.0.1", RABBIT_PORT):
            raise SandboxError(f"127.0.0.1:{RABBIT_PORT} is in use by a process this sandbox did not start")
        started = time.monotonic()
        spawn("rabbitmq", as_rabbitmq(["/usr/lib/rabbitmq/bin/rabbitmq-server"]),
              os.path.join(LOG, "rabbitmq.stdout"), env=rabbit_env(), cwd=paths["home"])
        # await_startup right after launch fails (the node is not registered yet): poll the port first
        wait_for("rabbitmq on :5672", lambda: port_busy("127.0.0.1", RABBIT_PORT), 90)
        wait_for("rabbitmq startup", lambda: rabbitmqctl("await_startup", check=False, timeout=30).returncode == 0, 60)
        log(f"rabbitmq: answering on 127.0.0.1:{RABBIT_PORT} after {time.monotonic() - started:.1f}s")
    f = facts()
    # URL-special characters kombu accepts ('/' is the one it cannot take: see the notes)
    password = f.get("rabbit_password") or "r@bb:it%#?" + secrets.token_urlsafe(9)
    vhost, user = "cinder", "cinder"
    if vhost not in rabbitmqctl("list_vhosts", "--quiet", "--no-table-headers").stdout.split():
        rabbitmqctl("add_vhost", vhost)
    users = [line.split()[0] for line in rabbitmqctl("list_users", "--quiet", "--no-table-headers").stdout.splitlines()
             if line.strip()]
    # the password goes on stdin: rabbitmqctl reads it from there when it is not an argument
    if user in users:
        rabbitmqctl("change_password", user, stdin=password)
    else:
        rabbitmqctl("add_user", user, stdin=password)
    if "guest" in users:
        rabbitmqctl("delete_user", "guest")
    rabbitmqctl("set_permissions", "-p", vhost, user, ".*", ".*", ".*")
    save_facts({"rabbit_host": "127.0.0.1", "rabbit_port": RABBIT_PORT, "rabbit_user": user,
                "rabbit_password": password, "rabbit_vhost": vhost})


def rabbitmq_down():
    pid = recorded_pid("rabbitmq", "rabbitmq-server")
    if pid:
        log(f"stopping rabbitmq (pid {pid})")
        rabbitmqctl("stop", check=False, timeout=60)
        stop_pid("rabbitmq", pid, timeout=30)
    pid = recorded_pid("epmd", "epmd")
    if pid:
        stop_pid("epmd", pid, timeout=10)



# ---------------------------------------------------------------- keystone


def keystone_paths():
    base = os.path.join(SANDBOX, "keystone")
    return base, os.path.join(base, "keystone.conf")


def keystone_conf(base):
    return f"""{MARKER}
[DEFAULT]
log_file = {LOG}/keystone.log
[database]
connection = sqlite:///{base}/keystone.db
[token]
provider = fernet
[fernet_tokens]
key_repository = {base}/fernet-keys
[fernet_receipts]
key_repository = {base}/fernet-keys
[credential]
key_repository = {base}/credential-keys
[identity]
# fast hashes: this is a test sandbox
password_hash_rounds = 4
[cache]
enabled = true
backend = dogpile.cache.memory
"""


def keystone_up():
    bindir = need_venv("keystone")
    base, conf = keystone_paths()
    pid = recorded_pid("keystone", "gunicorn")
    if pid:
        log(f"keystone: already running (pid {pid})")
        return
    if port_busy("127.0.0.1", KEYSTONE_PORT):
        raise SandboxError(f"127.0.0.1:{KEYSTONE_PORT} is in use by a process this sandbox did not start")
    os.makedirs(base, exist_ok=True)
    f = facts()
    password = f.get("keystone_admin_password") or secrets.token_urlsafe(18)
    write_file(conf, keystone_conf(base), 0o600)
    write_file(os.path.join(base, "gunicorn.conf.py"), (
        f'{MARKER}\nwsgi_app = "keystone.wsgi.api:application"\nbind = "127.0.0.1:{KEYSTONE_PORT}"\n'
        'workers = 1\ntimeout = 60\ncontrol_socket_disable = True\n'
        f'accesslog = "{LOG}/keystone-access.log"\n'), 0o644)
    manage = [os.path.join(bindir, "keystone-manage"), "--config-file", conf]
    if not os.path.exists(os.path.join(base, "bootstrapped")):
        log("keystone: fernet keys, db_sync, bootstrap (~10 s)")
        for sub in (["fernet_setup"], ["credential_setup"]):
            run(manage + sub + ["--keystone-user", "root", "--keystone-group", "root"])
        run(manage + ["db_sync"], timeout=300)
        url = f"http://127.0.0.1:{KEYSTONE_PORT}/v3/"
        # The password travels in the environment, not on the command line.
        env = dict(os.environ, OS_BOOTSTRAP_PASSWORD=password)
        run(manage + ["bootstrap", "--bootstrap-admin-url", url, "--bootstrap-internal-url", url,
                      "--bootstrap-public-url", url, "--bootstrap-region-id", "RegionOne"], env=env, timeout=300)
        open(os.path.join(base, "bootstrapped"), "w").close()
    save_facts({
        "keystone_url": f"http://127.0.0.1:{KEYSTONE_PORT}/v3",
        "keystone_admin_user": "admin",
        "keystone_admin_password": password,
        "keystone_admin_project": "admin",
        "keystone_region": "RegionOne",
        "keystone_conf": conf,
    })
    env = dict(os.environ, OS_KEYSTONE_CONFIG_FILES=conf)
    started = time.monotonic()
    spawn("keystone", [os.path.join(bindir, "gunicorn")], os.path.join(LOG, "keystone-gunicorn.log"), env=env, cwd=base)
    wait_for("keystone on :5000", lambda: http_status(f"http://127.0.0.1:{KEYSTONE_PORT}/v3") == 200, 60)
    log(f"keystone: answering on http://127.0.0.1:{KEYSTONE_PORT}/v3 after {time.monotonic() - started:.1f}s")


def http_status(url):
    import urllib.error
    import urllib.request
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return None


def keystone_down():
    pid = recorded_pid("keystone", "gunicorn")
    if pid:
        stop_pid("keystone", pid, timeout=30)


# ---------------------------------------------------------------- cinder


def database_url(f):
    """The MariaDB URL the sandbox's cinder uses (the same one the formula builds from the pillar)."""
    from urllib.parse import quote
    return (f"mysql+pymysql://{quote(f['db_user'], safe='')}:{quote(f['db_password'], safe='')}"
            f"@{f['db_host']}:{f['db_port']}/{f['db_name']}")


def cinder_seed_conf(state, f):
    """The guide's cinder.conf as an operator would have it: its legacy keys, which cinder
    ignores today (sql_connection, rabbit_host, notifier_strategy), plus what this sandbox
    needs to run. The formula migrates it."""
    return f"""# cinder.conf seeded by the cinder-ha sandbox; the cinder_ha formula manages its keys.
[DEFAULT]
# From the OpenStack HA guide (2014): these names are ignored by current cinder.
sql_connection = mysql://{f['db_user']}:CINDER_DBPASS@{f['db_host']}/{f['db_name']}
notifier_strategy = rabbit
rabbit_host = {f['rabbit_host']}
osapi_volume_listen_port = {CINDER_PORT}
osapi_volume_workers = 1
auth_strategy = keystone
state_path = {state}
log_dir = {LOG}/cinder
api_paste_config = {CINDER_CONF_DIR}/api-paste.ini
debug = false

[oslo_concurrency]
lock_path = {state}/lock
"""


def ensure_cinder_user():
    try:
        pwd.getpwnam("cinder")
    except KeyError:
        run(["useradd", "--system", "--user-group", "--home-dir", "/var/lib/cinder", "--shell", "/usr/sbin/nologin", "cinder"])
    return pwd.getpwnam("cinder").pw_uid, grp.getgrnam("cinder").gr_gid


def cinder_db_synced(f):
    """Is cinder's schema in MariaDB? (the services table is what cinder-api dies without)"""
    out = mariadb_sql(f"SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = "
                      f"{sql_string(f['db_name'])} AND table_name = 'services';")
    return out.strip() == "1"


def cinder_up():
    bindir = need_venv("cinder")
    f = facts()
    if "db_password" not in f or "rabbit_password" not in f:
        raise SandboxError("start mariadb and rabbitmq before cinder (sandbox.py up mariadb rabbitmq)")
    uid, gid = ensure_cinder_user()
    state = os.path.join(SANDBOX, "cinder")
    for path in (state, os.path.join(state, "lock"), os.path.join(LOG, "cinder")):
        os.makedirs(path, exist_ok=True)
        os.chown(path, uid, gid)
    os.makedirs(CINDER_CONF_DIR, exist_ok=True)
    conf = os.path.join(CINDER_CONF_DIR, "cinder.conf")
    if not os.path.exists(conf):
        write_file(conf, cinder_seed_conf(state, f), 0o640)
        os.chown(conf, 0, gid)
        log(f"cinder: seeded {conf} with the guide's legacy keys")
    paste = os.path.join(CINDER_CONF_DIR, "api-paste.ini")
    if not os.path.exists(paste):
        shutil.copy2(os.path.join(VENV, "cinder", "etc", "cinder", "api-paste.ini"), paste)
    if not cinder_db_synced(f):
        # A throwaway config (0600, removed) names the database: the seeded file's legacy
        # sql_connection would be ignored by cinder-manage too.
        sync_conf = os.path.join(state, "db-sync.conf")
        write_file(sync_conf, f"[DEFAULT]\nstate_path = {state}\n[database]\nconnection = "
                              f"{database_url(f).replace('$', '$$')}\n", 0o600)
        log("cinder: cinder-manage db sync into MariaDB (~20 s)")
        try:
            run([os.path.join(bindir, "cinder-manage"), "--config-file", sync_conf, "db", "sync"], timeout=600)
        finally:
            os.unlink(sync_conf)
    save_facts({
        "cinder_conf": conf,
        "cinder_api": os.path.join(bindir, "cinder-api"),
        "cinder_manage": os.path.join(bindir, "cinder-manage"),
        "cinder_state_path": state,
        "cinder_db_url": database_url(f),
        "vip": VIP,
        "cinder_port": CINDER_PORT,
        "node": NODE,
    })
    log(f"cinder: {conf} ready, schema in MariaDB; cinder-api is started by the cluster on {VIP}:{CINDER_PORT}")


def cinder_down():
    # cinder-api is the cluster's: it stops with the cluster.
    pass


# ---------------------------------------------------------------- salt


def salt_paths():
    base = os.path.join(SANDBOX, "salt")
    return base, os.path.join(base, "etc")


def salt_env():
    env = dict(os.environ)
    # pip mode: the project as `pip install --target` puts it, found through salt.loader entry points
    env["PYTHONPATH"] = SITE
    return env


def write_salt_config():
    base, etc = salt_paths()
    os.makedirs(etc, exist_ok=True)
    pillar = os.path.join(base, "pillar")
    os.makedirs(pillar, exist_ok=True)
    write_file(os.path.join(etc, "master"), f"""{MARKER}
interface: 127.0.0.1
publish_port: {SALT_PUBLISH_PORT}
ret_port: {SALT_RET_PORT}
root_dir: {base}/master
user: root
auto_accept: True
file_roots:
  base:
    - {PROJECT}/salt
    - {PROJECT}
pillar_roots:
  base:
    - {pillar}
reactor:
  - 'cinder_ha/*':
    - salt://cinder_ha/reactor/dispatch.sls
# the reactor trusts a minion's event only with its signature (README: reactor trust model);
# Salt 3008.4 masters have no default for this and fail on signed returns without it
signing_algorithm: PKCS1v15-SHA1
""")
    write_file(os.path.join(etc, "minion"), f"""{MARKER}
id: {NODE}
master: 127.0.0.1
master_port: {SALT_RET_PORT}
publish_port: {SALT_PUBLISH_PORT}
root_dir: {base}/minion
user: root
# Two jobs never refuse each other: a reactor-triggered run waits for the running one.
state_queue: True
# events signed with this minion's key: the reactor acts only on signed events
minion_sign_messages: True
# cinder.conf drift and cluster alerts -> events -> reactor (see README, "Drift and moves")
engines:
  - cinder_ha_watch:
      paths: [{CINDER_CONF_DIR}/cinder.conf]
      alert_spool: {ALERT_SPOOL}
""")
    top = os.path.join(pillar, "top.sls")
    if not os.path.exists(top):
        write_file(top, "base:\n  '*':\n    - cinder_ha\n")
    return base, etc


def salt_up():
    bindir = need_venv("salt")
    base, etc = write_salt_config()
    write_sandbox_pillar(os.path.join(base, "pillar", "cinder_ha.sls"))
    for daemon, port in (("salt-master", SALT_RET_PORT), ("salt-minion", None)):
        if recorded_pid(daemon, daemon):
            log(f"salt: {daemon} already running")
            continue
        if port and port_busy("127.0.0.1", port):
            raise SandboxError(f"127.0.0.1:{port} is in use by a process this sandbox did not start")
        spawn(daemon, [os.path.join(bindir, daemon), "-c", etc, "--log-level=quiet"],
              os.path.join(LOG, f"{daemon}.stdout"), env=salt_env())
    started = time.monotonic()

    def pinged():
        res = subprocess.run([os.path.join(bindir, "salt"), "-c", etc, "--out=json", "--timeout=5", NODE, "test.ping"],
                             capture_output=True, text=True, env=salt_env(), timeout=60)
        return res.returncode == 0 and "true" in res.stdout
    wait_for("the minion to answer test.ping", pinged, 90)
    save_facts({"salt_config_dir": etc, "salt_bin": bindir, "salt_site": SITE, "minion_id": NODE})
    log(f"salt: master and minion {NODE} answering after {time.monotonic() - started:.1f}s")


def sandbox_pillar(f, vip=VIP, netmask=32, nic="lo", keystone_url=None, db_host=None, rabbit_host=None,
                   extra_conf=None, **overrides):
    """The cinder_ha pillar of the sandbox: the real MariaDB and RabbitMQ (structured, so the
    formula builds and encodes the URLs), the real Keystone, the authenticated monitor with its
    password as a Pacemaker secret. The three namespace nodes use the same with their own VIP
    and addresses (sandbox/multinode.py)."""
    keystone_url = keystone_url or f["keystone_url"]
    conf_extra = {
        "DEFAULT": {"auth_strategy": "keystone"},
        "keystone_authtoken": {
            "www_authenticate_uri": keystone_url, "auth_url": keystone_url,
            "auth_type": "password", "username": f["keystone_admin_user"],
            "password": f["keystone_admin_password"], "project_name": f["keystone_admin_project"],
            "user_domain_name": "Default", "project_domain_name": "Default",
        },
    }
    for section, keys in (extra_conf or {}).items():
        conf_extra.setdefault(section, {}).update(keys)
    pillar = {
        "vip": {"address": vip, "netmask": netmask, "nic": nic},
        "cinder_api_port": CINDER_PORT,
        "database": {"host": db_host or f["db_host"], "port": f["db_port"], "user": f["db_user"],
                     "password": f["db_password"], "name": f["db_name"]},
        "rabbitmq": {"hosts": [f"{rabbit_host or f['rabbit_host']}:{f['rabbit_port']}"], "user": f["rabbit_user"],
                     "password": f["rabbit_password"], "virtual_host": f["rabbit_vhost"]},
        "keystone": {
            "auth_url": keystone_url, "username": f["keystone_admin_user"],
            "password": f["keystone_admin_password"], "project_name": f["keystone_admin_project"],
            "region": f["keystone_region"],
        },
        # the authenticated monitor (a Keystone v3 token, then GET /v3/); its password is
        # kept out of the CIB as a Pacemaker secret (secret_mode lrm, the default)
        "agent": {"binary": f["cinder_api"], "monitor_interval": "5s",
                  "os_auth_url": keystone_url, "os_username": f["keystone_admin_user"],
                  "os_password": f["keystone_admin_password"], "os_project_name": f["keystone_admin_project"]},
        "cinder_conf": {"extra": conf_extra},
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(pillar.get(key), dict):
            pillar[key] = {**pillar[key], **value}
        else:
            pillar[key] = value
    return {"cinder_ha": pillar}


def write_sandbox_pillar(path):
    """The sandbox pillar file (operator edits, marked by removing the first line, are kept)."""
    f = facts()
    missing = [k for k in ("keystone_admin_password", "cinder_api", "db_password", "rabbit_password") if k not in f]
    if missing:
        raise SandboxError("start mariadb, rabbitmq, keystone and cinder before salt (their facts go into the pillar)")
    pillar = sandbox_pillar(f)
    if os.path.exists(path):
        with open(path) as fh:
            if MARKER not in fh.readline():
                log(f"salt: keeping the operator-edited pillar {path}")
                return
    write_file(path, MARKER + "\n" + json.dumps(pillar, indent=2) + "\n", 0o600)


def group_alive(pgid):
    """Does a live (non-zombie) process of process group `pgid` remain?"""
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if fields[0] != "Z" and int(fields[2]) == pgid:
                return True
    return False


def salt_down():
    for daemon in ("salt-minion", "salt-master"):
        pid = recorded_pid(daemon, daemon)
        if pid:
            stop_pid(daemon, pid, timeout=30)
            # spawned in its own session: an engine or worker that outlived its parent goes too
            if group_alive(pid):
                log(f"{daemon}: processes of its group outlived it: SIGKILL")
                try:
                    os.killpg(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass


# ---------------------------------------------------------------- main

# Up in this order, down in the reverse: the database and the broker are there before the
# cluster may start cinder-api (it reads the database at start), and stop after it.
COMPONENTS = {
    "mariadb": (mariadb_up, mariadb_down),
    "rabbitmq": (rabbitmq_up, rabbitmq_down),
    "cluster": (cluster_up, cluster_down),
    "keystone": (keystone_up, keystone_down),
    "cinder": (cinder_up, cinder_down),
    "salt": (salt_up, salt_down),
}


def status():
    f = facts()
    lines = [
        f"sandbox dir: {SANDBOX}   facts (credentials, paths): {FACTS}",
        cluster_status(),
        daemon_status("mariadb", "mariadbd", MARIADB_PORT),
        daemon_status("rabbitmq", "rabbitmq-server", RABBIT_PORT),
        f"keystone: {'pid %s, ' % recorded_pid('keystone', 'gunicorn') if recorded_pid('keystone', 'gunicorn') else 'not running, '}"
        f"http://127.0.0.1:{KEYSTONE_PORT}/v3 (admin / see {FACTS})",
        f"cinder-api: VIP {VIP}:{CINDER_PORT} (started by the cluster), config {f.get('cinder_conf', CINDER_CONF_DIR + '/cinder.conf')}",
        f"salt: master {recorded_pid('salt-master', 'salt-master') or 'not running'}, minion {NODE} "
        f"{recorded_pid('salt-minion', 'salt-minion') or 'not running'}; config {salt_paths()[1]}",
        "logs:",
        "    /var/log/pacemaker/pacemaker.log, /var/log/corosync/corosync.log, "
        f"{LOG}/mariadb.log, {LOG}/rabbitmq/",
        f"    {LOG}/keystone.log, {LOG}/cinder/, {SANDBOX}/salt/master/var/log/salt/, {LOG}/*.stdout",
    ]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=["up", "down", "status"])
    parser.add_argument("components", nargs="*", choices=[[]] + list(COMPONENTS), default=[])
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        sys.exit("the sandbox runs real cluster daemons: run it as root")
    names = [name for name in COMPONENTS if name in (args.components or COMPONENTS)]
    try:
        if args.action == "up":
            for name in names:
                COMPONENTS[name][0]()
            print(status())
        elif args.action == "down":
            for name in reversed(names):
                COMPONENTS[name][1]()
            log("stopped")
        else:
            print(status())
    except SandboxError as exc:
        sys.exit(f"sandbox: {exc}")


if __name__ == "__main__":
    main()
