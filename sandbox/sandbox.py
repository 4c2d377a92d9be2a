#!/usr/bin/env python3
"""Start, stop and describe the cinder-ha sandbox: real services, loopback only.

    sandbox.py up [mariadb|rabbitmq|ceph|etcd|cluster|keystone|cinder|salt ...]   start (idempotent)
    sandbox.py down [...]                              stop what this script started
    sandbox.py status                                  what runs where, and the logs

Components
    cluster   corosync + pacemakerd, one node "node1" on 127.0.0.1, CIB seeded so a DC
              is elected in seconds (no systemd needed)
    mariadb   MariaDB (Debian's) on 127.0.0.1:3306, its own datadir; database and user `cinder`
    rabbitmq  RabbitMQ (Debian's) on 127.0.0.1:5672, epmd and distribution on loopback too;
              vhost and user `cinder`
    ceph      Ceph 16 (Debian's): one mon (127.0.0.1:3300 v2, :6789 v1), one mgr, one OSD
              (BlueStore on a sparse file), data under $CINDER_HA_SANDBOX/ceph; pool `volumes`,
              user client.cinder (keyring /etc/ceph/ceph.client.cinder.keyring, 0640 root:cinder)
    etcd      etcd 3.4 (Debian's) on 127.0.0.1:2379 (peer :2380): tooz's etcd3+http backend
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


def recorded_pid(name, must_contain, run_dir=RUN):
    """The pid we recorded for `name`, if that process still runs and is what we started."""
    path = os.path.join(run_dir, f"{name}.pid")
    try:
        with open(path) as f:
            pid = int(f.read().strip())
    except (OSError, ValueError):
        return None
    if pid_alive(pid) and must_contain in cmdline(pid):
        return pid
    os.unlink(path)
    return None


def record_pid(name, pid, run_dir=RUN):
    os.makedirs(run_dir, exist_ok=True)
    with open(os.path.join(run_dir, f"{name}.pid"), "w") as f:
        f.write(str(pid))


def forget_pid(name, run_dir=RUN):
    try:
        os.unlink(os.path.join(run_dir, f"{name}.pid"))
    except FileNotFoundError:
        pass


def spawn(name, argv, logfile, env=None, cwd=None, run_dir=RUN):
    """Start a daemon in its own session, stdout/stderr to `logfile`, and record its pid."""
    os.makedirs(os.path.dirname(logfile), exist_ok=True)
    with open(logfile, "ab") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, env=env, cwd=cwd)
    record_pid(name, proc.pid, run_dir)
    return proc.pid


def stop_pid(name, pid, timeout=60, sig=signal.SIGTERM, run_dir=RUN):
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
    forget_pid(name, run_dir)


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


def write_file(path, text, mode=0o644, owner=None):
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(text)
    os.chmod(tmp, mode)
    if owner:
        os.chown(tmp, *owner)
    os.replace(tmp, path)


def write_if_changed(path, text, mode, owner):
    """write_file, unless `path` already holds `text` with that mode and owner (`up` twice
    changes nothing)."""
    try:
        st = os.stat(path)
        with open(path) as f:
            if f.read() == text and (st.st_mode & 0o7777, st.st_uid, st.st_gid) == (mode, *owner):
                return
    except OSError:
        pass
    write_file(path, text, mode, owner)


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



# ---------------------------------------------------------------- ceph (cinder's RBD backend)

CEPH_CLIENT_DIR = "/etc/ceph"  # what cinder reads: ceph.conf (mon host) and its keyring
RBD_POOL = "volumes"
RBD_USER = "cinder"
CEPH_MON_PORTS = (3300, 6789)  # msgr2, msgr1
CEPH_OSD_BLOCK_BYTES = 4 << 30  # BlueStore on a sparse file, as Ceph's vstart.sh does
CEPH_OSD_MEMORY_TARGET = 896 << 20  # the smallest the OSD accepts
# the caps the RBD driver's user usually gets: images in its pool, nothing else
CEPH_CINDER_CAPS = ("mon", "profile rbd", "osd", f"profile rbd pool={RBD_POOL}", "mgr", f"profile rbd pool={RBD_POOL}")
CEPH_DAEMONS = (("mon", "a"), ("mgr", "x"), ("osd", "0"))  # started in this order, stopped in the reverse


def ceph_env():
    return {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8", "HOME": "/root"}


class Ceph:
    """One Ceph cluster without systemd: a mon, a mgr and one OSD (BlueStore on a file), every
    daemon bound to `addr` only, every file under `base`, each daemon recorded by pid in
    `run_dir`. The sandbox's listens on 127.0.0.1; the three namespace nodes get a second one
    on the bridge's host address (sandbox/multinode.py): Ceph hands its clients the OSDs' own
    addresses, so a relay cannot stand in for it."""

    def __init__(self, base, addr, network, run_dir, log_dir):
        self.base, self.addr, self.network, self.run_dir, self.log_dir = base, addr, network, run_dir, log_dir
        self.conf = os.path.join(base, "ceph.conf")
        self.admin_keyring = os.path.join(base, "ceph.client.admin.keyring")
        self.mon_host = f"[v2:{addr}:{CEPH_MON_PORTS[0]},v1:{addr}:{CEPH_MON_PORTS[1]}]"

    def data_dir(self, kind, ident):
        return os.path.join(self.base, kind, f"ceph-{ident}")

    def config(self, fsid):
        return f"""{MARKER}
[global]
fsid = {fsid}
mon host = {self.mon_host}
mon initial members = a
# one address: every daemon binds there and nowhere else (public addr pins it: a VIP added
# to lo later is inside 127.0.0.0/8 too)
public network = {self.network}
public addr = {self.addr}
auth cluster required = cephx
auth service required = cephx
auth client required = cephx
run dir = {self.base}/run
admin socket = $run_dir/$cluster-$name.asok
log file = {self.log_dir}/$cluster-$name.log
# one host, one OSD: pools of one replica, placed on OSDs rather than hosts
osd pool default size = 1
osd pool default min size = 1
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
mon data avail warn = 10
osd crush chooseleaf type = 0

[mon]
mon data = {self.base}/mon/$cluster-$id
keyring = $mon_data/keyring
# every client here is current (the warning Ceph gives otherwise: CVE-2021-20288)
auth allow insecure global id reclaim = false

[mgr]
mgr data = {self.base}/mgr/$cluster-$id
keyring = $mgr_data/keyring

[osd]
osd data = {self.base}/osd/$cluster-$id
keyring = $osd_data/keyring
osd objectstore = bluestore
bluestore block create = true
bluestore block size = {CEPH_OSD_BLOCK_BYTES}
osd memory target = {CEPH_OSD_MEMORY_TARGET}
# a full shutdown at SIGTERM: after the default fast one the OSD was once found unable to load
# its store at the next start ("Missing map in load_pgs")
osd fast shutdown = false

[client.admin]
keyring = {self.admin_keyring}
"""

    def client_conf(self):
        """/etc/ceph/ceph.conf for cinder: where the mons are; the keyring is found by name
        (/etc/ceph/ceph.client.cinder.keyring)."""
        return f"{MARKER}\n[global]\nmon host = {self.mon_host}\n"

    def cli(self, *args, timeout=30, check=True, stdin=None):
        """The `ceph` CLI as client.admin of this cluster; a mon that does not answer fails in 10 s."""
        res = subprocess.run(["ceph", "-c", self.conf, "--connect-timeout", "10", *args], input=stdin,
                             env=ceph_env(), capture_output=True, text=True, timeout=timeout)
        if check and res.returncode != 0:
            raise SandboxError(f"ceph {' '.join(args[:3])}: {(res.stderr or res.stdout).strip()[-600:]}")
        return res

    def answers(self):
        try:
            return self.cli("health", timeout=20, check=False).returncode == 0
        except subprocess.TimeoutExpired:
            return False

    def osd_up(self):
        res = self.cli("osd", "stat", "--format=json", check=False)
        return res.returncode == 0 and json.loads(res.stdout).get("num_up_osds", 0) >= 1

    def osd_alive_and_up(self):
        """osd_up, or an error at once when the OSD exited: a store it cannot load (seen after a
        `ceph osd pause`, `unpause` and a stop: "Missing map in load_pgs") never comes up."""
        if self.osd_up():
            return True
        if not self.pid("osd"):
            log_file = os.path.join(self.log_dir, "ceph-osd.stdout")
            try:
                with open(log_file, errors="replace") as handle:
                    aborts = [line.strip() for line in handle if "abort_msg" in line or "FAILED ceph_assert" in line][-1:]
            except OSError:
                aborts = []
            raise SandboxError(f"ceph-osd exited at start ({'; '.join(aborts) or 'see ' + log_file}). The sandbox's "
                               f"Ceph holds test data only: `{sys.argv[0]} down ceph`, remove {self.base}, and "
                               "the next start makes a new cluster")
        return False

    def pid(self, kind):
        # the conf path in the command line tells this cluster's daemons from the other's
        return recorded_pid(f"ceph-{kind}", self.conf, run_dir=self.run_dir)

    def running(self):
        return {kind: self.pid(kind) for kind, _ in CEPH_DAEMONS}

    def daemon_argv(self, kind, ident, *extra):
        return [f"ceph-{kind}", "-c", self.conf, "-i", ident, "--setuser", "ceph", "--setgroup", "ceph", *extra]

    def start(self, kind, ident):
        spawn(f"ceph-{kind}", self.daemon_argv(kind, ident, "-f"), os.path.join(self.log_dir, f"ceph-{kind}.stdout"),
              env=ceph_env(), run_dir=self.run_dir)

    def bootstrap_mon(self, ceph):
        """Keyrings (mon., client.admin), the monmap, and the mon's store: a new cluster."""
        tmp = os.path.join(self.base, "bootstrap")
        os.makedirs(tmp, mode=0o700, exist_ok=True)
        mon_keyring, monmap = os.path.join(tmp, "mon.keyring"), os.path.join(tmp, "monmap")
        fsid = self.fsid()
        run(["ceph-authtool", "--create-keyring", mon_keyring, "--gen-key", "-n", "mon.", "--cap", "mon", "allow *"],
            env=ceph_env())
        if not os.path.exists(self.admin_keyring):
            run(["ceph-authtool", "--create-keyring", self.admin_keyring, "--gen-key", "-n", "client.admin",
                 "--cap", "mon", "allow *", "--cap", "osd", "allow *", "--cap", "mgr", "allow *",
                 "--cap", "mds", "allow *"], env=ceph_env())
            os.chmod(self.admin_keyring, 0o600)
        run(["ceph-authtool", mon_keyring, "--import-keyring", self.admin_keyring], env=ceph_env())
        run(["monmaptool", "--create", "--clobber", "--fsid", fsid, "--addv", "a", self.mon_host, monmap], env=ceph_env())
        mon_data = self.data_dir("mon", "a")
        os.makedirs(mon_data, exist_ok=True)
        os.chown(mon_data, ceph.pw_uid, ceph.pw_gid)
        os.chmod(mon_data, 0o750)
        os.chmod(tmp, 0o755)  # the mon reads its keyring as user ceph during mkfs
        for path in (mon_keyring, monmap):
            os.chown(path, ceph.pw_uid, ceph.pw_gid)
        run(self.daemon_argv("mon", "a", "--mkfs", "--monmap", monmap, "--keyring", mon_keyring), env=ceph_env())
        shutil.rmtree(tmp)

    def fsid(self):
        path = os.path.join(self.base, "fsid")
        if not os.path.exists(path):
            import uuid
            write_file(path, str(uuid.uuid4()) + "\n")
        with open(path) as f:
            return f.read().strip()

    def bootstrap_osd(self, ceph):
        """A new OSD: registered with the mon, its key, BlueStore made on a sparse file."""
        import uuid
        osd_uuid = str(uuid.uuid4())
        ident = self.cli("osd", "new", osd_uuid).stdout.strip()
        if ident != "0":
            raise SandboxError(f"ceph osd new gave id {ident!r}, expected 0 (a stale OSD in {self.base}?)")
        data = self.data_dir("osd", ident)
        os.makedirs(data, exist_ok=True)
        key = self.cli("auth", "get-or-create", "osd.0", "mon", "allow profile osd", "mgr", "allow profile osd",
                       "osd", "allow *").stdout
        write_file(os.path.join(data, "keyring"), key, 0o600, (ceph.pw_uid, ceph.pw_gid))
        os.chown(data, ceph.pw_uid, ceph.pw_gid)
        run(self.daemon_argv("osd", ident, "--mkfs", "--osd-uuid", osd_uuid), env=ceph_env(), timeout=300)

    def up(self):
        """Start what does not run (a new cluster the first time), then the pool and cinder's
        user; returns the seconds it took. A mon port busy and not ours is refused. An OSD that
        cannot load its store is not repaired: this Ceph holds test data only, so it is made anew,
        once, and said."""
        try:
            return self._up()
        except SandboxError as exc:
            if "ceph-osd exited at start" not in str(exc):
                raise
            log(f"ceph: {exc}: making a new cluster in {self.base} (test data only)")
            self.down()
            shutil.rmtree(self.base)
            return self._up()

    def _up(self):
        for tool in ("ceph-mon", "ceph-mgr", "ceph-osd", "ceph", "rbd"):
            if not shutil.which(tool, path=ceph_env()["PATH"]):
                raise SandboxError(f"{tool} not installed: run sandbox/install.sh first")
        started = time.monotonic()
        ceph = pwd.getpwnam("ceph")
        pids = self.running()
        if not pids["mon"]:
            for port in CEPH_MON_PORTS:
                if port_busy(self.addr, port):
                    raise SandboxError(f"{self.addr}:{port} is in use by a process this sandbox did not start")
        for path in (self.base, os.path.join(self.base, "run"), self.log_dir, *(os.path.join(self.base, k) for k, _ in CEPH_DAEMONS)):
            os.makedirs(path, exist_ok=True)
            os.chown(path, ceph.pw_uid, ceph.pw_gid)
        os.chmod(self.base, 0o755)
        write_if_changed(self.conf, self.config(self.fsid()), 0o644, (0, 0))
        if not pids["mon"]:
            if not os.path.exists(os.path.join(self.data_dir("mon", "a"), "store.db")):
                log(f"ceph: new cluster in {self.base} (mon on {self.addr})")
                self.bootstrap_mon(ceph)
            self.start("mon", "a")
        wait_for(f"ceph-mon on {self.addr}", self.answers, 60)
        if not pids["mgr"]:
            data = self.data_dir("mgr", "x")
            if not os.path.exists(os.path.join(data, "keyring")):
                os.makedirs(data, exist_ok=True)
                key = self.cli("auth", "get-or-create", "mgr.x", "mon", "allow profile mgr", "osd", "allow *",
                               "mds", "allow *").stdout
                write_file(os.path.join(data, "keyring"), key, 0o600, (ceph.pw_uid, ceph.pw_gid))
                os.chown(data, ceph.pw_uid, ceph.pw_gid)
            self.start("mgr", "x")
        if not pids["osd"]:
            if not os.path.exists(os.path.join(self.data_dir("osd", "0"), "ready")):
                self.bootstrap_osd(ceph)
            self.start("osd", "0")
        wait_for("the OSD up", self.osd_alive_and_up, 90)
        pools = self.cli("osd", "pool", "ls").stdout.split()
        if RBD_POOL not in pools:
            self.cli("osd", "pool", "create", RBD_POOL, "32")
            self.cli("osd", "pool", "application", "enable", RBD_POOL, "rbd")
            res = subprocess.run(["rbd", "-c", self.conf, "pool", "init", RBD_POOL], env=ceph_env(),
                                 capture_output=True, text=True, timeout=120)
            if res.returncode != 0:
                raise SandboxError(f"rbd pool init {RBD_POOL}: {res.stderr.strip()[-600:]}")
        user = self.cli("auth", "get", f"client.{RBD_USER}", "--format=json", check=False)
        if user.returncode != 0:
            self.cli("auth", "get-or-create", f"client.{RBD_USER}", *CEPH_CINDER_CAPS)
        elif json.loads(user.stdout)[0]["caps"] != dict(zip(CEPH_CINDER_CAPS[::2], CEPH_CINDER_CAPS[1::2])):
            self.cli("auth", "caps", f"client.{RBD_USER}", *CEPH_CINDER_CAPS)  # the caps of today, not older ones
        wait_for("a mgr available", lambda: json.loads(self.cli("mgr", "stat", "--format=json").stdout).get("available"),
                 60)
        return time.monotonic() - started

    def cinder_keyring(self):
        """client.cinder's keyring (key and caps), for the files cinder reads."""
        return self.cli("auth", "get", f"client.{RBD_USER}").stdout

    def install_client(self, etc_dir, cinder_gid):
        """ceph.conf (0644) and cinder's keyring (0640 root:cinder) in `etc_dir`; unchanged files
        are not rewritten. Returns the two paths."""
        os.makedirs(etc_dir, exist_ok=True)
        conf, keyring = os.path.join(etc_dir, "ceph.conf"), os.path.join(etc_dir, f"ceph.client.{RBD_USER}.keyring")
        write_if_changed(conf, self.client_conf(), 0o644, (0, 0))
        write_if_changed(keyring, self.cinder_keyring(), 0o640, (0, cinder_gid))
        return conf, keyring

    def down(self):
        for kind, _ in reversed(CEPH_DAEMONS):
            pid = self.pid(kind)
            if pid:
                stop_pid(f"ceph-{kind}", pid, timeout=60, run_dir=self.run_dir)

    def status(self):
        pids = self.running()
        if not any(pids.values()):
            return "not running"
        return ", ".join(f"{kind} pid {pid or 'down'}" for kind, pid in pids.items()) + f", mon {self.mon_host}"


def sandbox_ceph():
    return Ceph(os.path.join(SANDBOX, "ceph"), "127.0.0.1", "127.0.0.0/8", RUN, os.path.join(LOG, "ceph"))


def ceph_up():
    cluster = sandbox_ceph()
    if all(cluster.running().values()):
        log(f"ceph: already running ({cluster.status()})")
    client_conf = os.path.join(CEPH_CLIENT_DIR, "ceph.conf")
    if os.path.exists(client_conf):
        with open(client_conf) as f:
            if MARKER not in f.read():
                backup = client_conf + ".cinder-ha-sandbox.orig"
                if not os.path.exists(backup):
                    shutil.copy2(client_conf, backup)
                log(f"ceph: writing {client_conf} (the original is kept at {backup})")
    took = cluster.up()
    _, gid = ensure_cinder_user()
    conf, keyring = cluster.install_client(CEPH_CLIENT_DIR, gid)
    save_facts({"ceph_conf": conf, "ceph_keyring": keyring, "rbd_pool": RBD_POOL, "rbd_user": RBD_USER,
                "ceph_mon_host": cluster.mon_host, "ceph_admin_conf": cluster.conf,
                "ceph_admin_keyring": cluster.admin_keyring})
    log(f"ceph: pool {RBD_POOL}, user client.{RBD_USER}, {cluster.mon_host}, ready after {took:.1f}s")


def ceph_down():
    sandbox_ceph().down()


# ---------------------------------------------------------------- etcd (tooz coordination for active/active)

ETCD_CLIENT_PORT = 2379
ETCD_PEER_PORT = 2380


def etcd_argv(data_dir, addr, name="cinder-ha"):
    """Debian's etcd 3.4, one member, client and peer URLs on `addr` only."""
    client, peer = f"http://{addr}:{ETCD_CLIENT_PORT}", f"http://{addr}:{ETCD_PEER_PORT}"
    return ["etcd", "--name", name, "--data-dir", data_dir,
            "--listen-client-urls", client, "--advertise-client-urls", client,
            "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
            "--initial-cluster", f"{name}={peer}", "--initial-cluster-state", "new",
            "--auto-compaction-mode", "periodic", "--auto-compaction-retention", "1h",
            "--logger", "zap", "--log-outputs", "stderr"]


def etcd_healthy(addr="127.0.0.1"):
    import urllib.request
    try:
        with urllib.request.urlopen(f"http://{addr}:{ETCD_CLIENT_PORT}/health", timeout=2) as resp:
            return json.load(resp).get("health") == "true"
    except (OSError, ValueError):
        return False


def etcd_up():
    if not shutil.which("etcd", path=ceph_env()["PATH"]):
        raise SandboxError("etcd-server not installed: run sandbox/install.sh first")
    data = os.path.join(SANDBOX, "etcd")
    pid = recorded_pid("etcd", data)
    if pid:
        log(f"etcd: already running (pid {pid})")
    else:
        for port in (ETCD_CLIENT_PORT, ETCD_PEER_PORT):
            if port_busy("127.0.0.1", port):
                raise SandboxError(f"127.0.0.1:{port} is in use by a process this sandbox did not start")
        etcd = pwd.getpwnam("etcd")
        os.makedirs(data, exist_ok=True)
        os.chown(data, etcd.pw_uid, etcd.pw_gid)
        os.chmod(data, 0o700)
        started = time.monotonic()
        spawn("etcd", ["setpriv", "--reuid", "etcd", "--regid", "etcd", "--init-groups", "--"]
              + etcd_argv(data, "127.0.0.1"), os.path.join(LOG, "etcd.log"), env=ceph_env())
        wait_for("etcd on :2379", etcd_healthy, 60)
        log(f"etcd: healthy on 127.0.0.1:{ETCD_CLIENT_PORT} after {time.monotonic() - started:.1f}s")
    save_facts({"etcd_url": f"http://127.0.0.1:{ETCD_CLIENT_PORT}",
                "coordination_backend_url": f"etcd3+http://127.0.0.1:{ETCD_CLIENT_PORT}"})


def etcd_status():
    pid = recorded_pid("etcd", os.path.join(SANDBOX, "etcd"))
    return (f"etcd: {f'pid {pid}' if pid else 'not running'}, http://127.0.0.1:{ETCD_CLIENT_PORT} "
            f"(tooz: etcd3+http://127.0.0.1:{ETCD_CLIENT_PORT})")


def etcd_down():
    pid = recorded_pid("etcd", os.path.join(SANDBOX, "etcd"))
    if pid:
        stop_pid("etcd", pid, timeout=30)


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
    let_cinder_reach_its_interpreter()
    return pwd.getpwnam("cinder").pw_uid, grp.getgrnam("cinder").gr_gid


def let_cinder_reach_its_interpreter():
    """The cinder venv's interpreter may sit where the user cinder cannot reach it (pyenv's
    under /root, mode 0700, on these machines): an ACL lets cinder pass through (x: no listing,
    no reading) each folder on the way that others cannot pass, so cinder's services and RBD
    client can run as cinder."""
    real = os.path.realpath(os.path.join(VENV, "cinder", "bin", "python"))
    if not os.path.exists(real):
        return
    folder, blocked = os.path.dirname(real), []
    while folder != "/":
        if not os.stat(folder).st_mode & 0o001:
            blocked.append(folder)
        folder = os.path.dirname(folder)
    for folder in blocked:
        run(["setfacl", "-m", "u:cinder:x", folder])


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


def volume_pillar(f, ceph_conf=None, mode="active_passive", coordination_url=None, cluster=None):
    """cinder_ha:volume for the sandbox's real Ceph: one RBD backend `ceph` on pool `volumes`
    as cephx user `cinder` (active_passive by default; active_active with a cluster name and
    the etcd lock manager)."""
    backend = {"driver": "cinder.volume.drivers.rbd.RBDDriver",
               "options": {"rbd_pool": f.get("rbd_pool", "volumes"), "rbd_user": f.get("rbd_user", "cinder"),
                           "rbd_ceph_conf": ceph_conf or f.get("ceph_conf", "/etc/ceph/ceph.conf"),
                           "rados_connect_timeout": 5}}
    volume = {"mode": mode, "backends": {"ceph": backend}}
    if mode == "active_active":
        volume["cluster"] = cluster or "cinder-ha-cluster"
        volume["coordination"] = {"backend_url": coordination_url or f.get("coordination_backend_url")}
    return volume


def sandbox_pillar(f, vip=VIP, netmask=32, nic="lo", keystone_url=None, db_host=None, rabbit_host=None,
                   extra_conf=None, volume=True, db_name=None, rabbit_vhost=None, **overrides):
    """The cinder_ha pillar of the sandbox: the real MariaDB and RabbitMQ (structured, so the
    formula builds and encodes the URLs), the real Keystone, the authenticated monitor with its
    password as a Pacemaker secret, and cinder-scheduler + cinder-volume on the real Ceph
    (``volume``: True for the sandbox's own, a dict for another, False for none). The three
    namespace nodes use the same with their own VIP and addresses (sandbox/multinode.py)."""
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
                     "password": f["db_password"], "name": db_name or f["db_name"]},
        "rabbitmq": {"hosts": [f"{rabbit_host or f['rabbit_host']}:{f['rabbit_port']}"], "user": f["rabbit_user"],
                     "password": f["rabbit_password"], "virtual_host": rabbit_vhost or f["rabbit_vhost"]},
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
    if volume:
        pillar["volume"] = volume_pillar(f) if volume is True else volume
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

# Up in this order, down in the reverse: the database, the broker, the storage and the lock
# service are there before the cluster may start cinder's services (they use them at start),
# and stop after them.
COMPONENTS = {
    "mariadb": (mariadb_up, mariadb_down),
    "rabbitmq": (rabbitmq_up, rabbitmq_down),
    "ceph": (ceph_up, ceph_down),
    "etcd": (etcd_up, etcd_down),
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
        f"ceph: {sandbox_ceph().status()}; pool {RBD_POOL}, user client.{RBD_USER}, client config "
        f"{CEPH_CLIENT_DIR}/ceph.conf, admin config {sandbox_ceph().conf}",
        etcd_status(),
        f"keystone: {'pid %s, ' % recorded_pid('keystone', 'gunicorn') if recorded_pid('keystone', 'gunicorn') else 'not running, '}"
        f"http://127.0.0.1:{KEYSTONE_PORT}/v3 (admin / see {FACTS})",
        f"cinder-api: VIP {VIP}:{CINDER_PORT} (started by the cluster), config {f.get('cinder_conf', CINDER_CONF_DIR + '/cinder.conf')}",
        f"salt: master {recorded_pid('salt-master', 'salt-master') or 'not running'}, minion {NODE} "
        f"{recorded_pid('salt-minion', 'salt-minion') or 'not running'}; config {salt_paths()[1]}",
        "logs:",
        "    /var/log/pacemaker/pacemaker.log, /var/log/corosync/corosync.log, "
        f"{LOG}/mariadb.log, {LOG}/rabbitmq/, {LOG}/ceph/, {LOG}/etcd.log",
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
