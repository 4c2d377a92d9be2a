#!/usr/bin/env python3
"""Three (or N) cinder-ha controller nodes on one machine, each in its own namespaces.

    multinode.py up [--nodes 3] [--token MS] [--formula [--monitor 5s] [--stickiness 100]
                    [--mode active_passive|cloned]]
                    [--master-addr 198.18.0.254 --master-ret-port P --master-publish-port P]
    multinode.py apply                salt '*' state.apply cinder_ha through the multinode master
    multinode.py reconfigure [--mode M] [--option SECTION:KEY=VALUE]
                                      a new pillar (cluster:mode, a cinder.conf option), then apply
    multinode.py down                 stop everything; leaves no namespace, link, mount or process
    multinode.py status               nodes, links, crm_mon
    multinode.py exec NODE -- CMD...  run CMD inside all of NODE's namespaces (nsenter)
    multinode.py kill NODE            power cut: SIGKILL the node's PID 1, delete its netns
    multinode.py partition NODE       switch-side veth down (the node keeps running, alone)
    multinode.py heal NODE            switch-side veth up again
    multinode.py restart NODE         graceful stop if running, then start in a fresh netns

Network: a "switch" netns (cha-sw) holds bridge br0; node i is netns cha-n<i> with a veth
eth0 198.18.0.<i>/24 on it; the root namespace gets 198.18.0.254/24 (veth cha-host) so tests,
the Salt master and clients reach the nodes and the VIP 198.18.0.100. 198.18.0.0/15 is the
benchmarking range: nothing here routes anywhere else.

Each node's process tree runs under `unshare --mount --uts --ipc --pid --fork --kill-child
--propagation private --mount-proc sandbox/multinode/node-init.sh`: private /run and /dev/shm,
per-node /etc/corosync, /etc/hosts, /etc/hostname, /etc/cinder, /etc/ceph, /var/lib/pacemaker,
/var/lib/corosync and logs, all under /srv/cinder-ha/multinode/n<i>/. The sandbox's Keystone,
MariaDB, RabbitMQ and etcd (root netns, loopback) are reachable from the nodes at 198.18.0.254
(ports 5000, 3306, 5672, 2379) through a small TCP relay: every node uses the same database,
broker and lock service. Ceph cannot be relayed (its clients connect to the OSDs' own
addresses): `up` starts a second Ceph cluster (one mon, mgr and OSD) bound to 198.18.0.254
only, data under /srv/cinder-ha/multinode/ceph, and `down` stops it; storage_facts() says
what the nodes use.

Nothing here declares a cluster object or a catalog entry: with --formula, a salt-master in the
root namespace (198.18.0.254) and a salt-minion per node run `salt '*' state.apply cinder_ha`
with the pillar of formula_pillar(), and the formula builds the primitives, the constraints,
the alert, the lrm secrets and the Keystone catalog (region cinder-ha-multinode).
"""
import argparse
import grp
import json
import os
import pwd
import select
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
# the single-node sandbox's process helpers, and its Ceph (the nodes get a cluster of their own)
from sandbox import ETCD_CLIENT_PORT, RBD_POOL, RBD_USER, Ceph, SandboxError, cmdline, pid_alive  # noqa: E402

PROJECT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SANDBOX = os.environ.get("CINDER_HA_SANDBOX", "/srv/cinder-ha")
BASE = os.path.join(SANDBOX, "multinode")
STATE = os.path.join(BASE, "state.json")
INIT_SCRIPT = os.path.join(PROJECT, "sandbox", "multinode", "node-init.sh")
CINDER_VENV = os.path.join(SANDBOX, "venv", "cinder")

SWITCH_NS = "cha-sw"
BRIDGE = "br0"
HOST_VETH = "cha-host"
SUBNET = "198.18.0"
HOST_ADDR = f"{SUBNET}.254"
VIP = f"{SUBNET}.100"
CINDER_PORT = 8776
KEYSTONE_PORT = 5000
# Relayed from HOST_ADDR to the same port on 127.0.0.1: Keystone, MariaDB, RabbitMQ, etcd. etcd
# can be relayed (its clients use the one URL they are given); Ceph cannot (see CEPH_DIR).
RELAYED_PORTS = (5000, 3306, 5672, ETCD_CLIENT_PORT)
# The nodes' own Ceph cluster, bound to HOST_ADDR only: Ceph's clients connect to the addresses
# its maps give them (each OSD's own), so a relay of the sandbox's loopback cluster cannot serve
# the nodes. Each node sees NODE_CEPH_DIR (its own etc/ceph, bind-mounted): ceph.conf (mon host
# HOST_ADDR) and cinder's keyring, 0640 root:cinder.
CEPH_DIR = os.path.join(BASE, "ceph")
NODE_CEPH_DIR = "/etc/ceph"
REGION = "cinder-ha-multinode"  # the formula's catalog for the three nodes, apart from RegionOne
# Their Block Storage service too: a service's endpoints go with it in every region, and the
# single-node sandbox's clean removes its own service (name cinder) when its region is emptied.
SERVICE_NAME = "cinder-ha-multinode"
MAX_NODES = 9
CLUSTER_NAME = "cinder-ha-multinode"


class MultinodeError(Exception):
    pass


def log(msg):
    print(f"[multinode {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def clean_env(**extra):
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
    env.update(extra)
    return env


def run(argv, check=True, timeout=60, input_text=None):
    res = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=clean_env(), input=input_text)
    if check and res.returncode != 0:
        raise MultinodeError(f"{' '.join(argv)} failed (rc {res.returncode}): {res.stderr.strip()[-600:]}")
    return res


def write_file(path, text, mode=0o644, owner=None):
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.chmod(tmp, mode)
    if owner:
        os.chown(tmp, *owner)
    os.replace(tmp, path)


def node_names(count):
    return [f"n{i}" for i in range(1, count + 1)]


def node_index(name):
    if not (name.startswith("n") and name[1:].isdigit() and 1 <= int(name[1:]) <= MAX_NODES):
        raise MultinodeError(f"not a node name: {name!r} (n1..n{MAX_NODES})")
    return int(name[1:])


def netns_of(name):
    return f"cha-{name}"


def node_dir(name):
    return os.path.join(BASE, name)


def node_addr(name):
    return f"{SUBNET}.{node_index(name)}"


# ---------------------------------------------------------------- state


def load_state():
    try:
        with open(STATE) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def save_state(state):
    os.makedirs(BASE, exist_ok=True)
    write_file(STATE, json.dumps(state, indent=2, sort_keys=True) + "\n", 0o600)


def netns_list():
    res = run(["ip", "netns", "list"], check=False)
    return {line.split()[0] for line in res.stdout.splitlines() if line.strip()}


def netns_pids(ns):
    res = run(["ip", "netns", "pids", ns], check=False)
    return [int(p) for p in res.stdout.split() if p.isdigit()]


def init_pid(name, state=None):
    """The node's PID 1 (as seen from the root PID namespace), if it runs."""
    state = state if state is not None else load_state()
    pid = state.get("pids", {}).get(name)
    if pid and pid_alive(pid) and "node-init.sh" in cmdline(pid):
        return pid
    return None


def children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


# ---------------------------------------------------------------- per-node files


def corosync_conf(count, token):
    nodes = "".join(f"""    node {{
        name: {name}
        nodeid: {node_index(name)}
        ring0_addr: {node_addr(name)}
    }}
""" for name in node_names(count))
    token_line = f"    token: {token}\n" if token else ""
    return f"""# written by sandbox/multinode.py
totem {{
    version: 2
    cluster_name: {CLUSTER_NAME}
    transport: knet
    crypto_cipher: none
    crypto_hash: none
{token_line}}}
logging {{
    to_logfile: yes
    logfile: /var/log/corosync/corosync.log
    to_stderr: no
    to_syslog: no
    timestamp: on
}}
quorum {{
    provider: corosync_votequorum
}}
nodelist {{
{nodes}}}
"""


def seed_cib_xml():
    """An empty CIB with stonith off, quorum enforced (stop) and a 2 s dc-deadtime."""
    root = ET.fromstring(run(["cibadmin", "--empty"]).stdout)
    props = ET.SubElement(root.find("configuration/crm_config"), "cluster_property_set", id="cib-bootstrap-options")
    for key, value in (("stonith-enabled", "false"), ("no-quorum-policy", "stop"), ("dc-deadtime", "2s")):
        ET.SubElement(props, "nvpair", id=f"cib-bootstrap-options-{key}", name=key, value=value)
    return ET.tostring(root, encoding="unicode")


def cinder_conf(name):
    """The node's cinder.conf before the formula: the guide's legacy keys (which cinder ignores
    today) and the node's own paths. The formula writes the database, the broker, the listen
    address and Keystone's settings."""
    d = node_dir(name)
    return f"""# seeded by sandbox/multinode.py for node {name}; the cinder_ha formula manages it
[DEFAULT]
# From the OpenStack HA guide (2014): ignored by current cinder, migrated by the formula.
sql_connection = mysql://cinder:CINDER_DBPASS@{HOST_ADDR}/cinder
rabbit_host = {HOST_ADDR}
notifier_strategy = rabbit
osapi_volume_workers = 1
state_path = {d}/lib/cinder
log_dir = {d}/log/cinder
api_paste_config = /etc/cinder/api-paste.ini

[oslo_concurrency]
lock_path = {d}/lib/cinder/lock
"""


def minion_conf(name, master):
    d = node_dir(name)
    return f"""# written by sandbox/multinode.py
id: {name}
master: {master['addr']}
master_port: {master['ret_port']}
publish_port: {master['publish_port']}
root_dir: {d}/salt/root
user: root
log_file: {d}/log/salt-minion.log
acceptance_wait_time: 2
random_reauth_delay: 0
state_queue: True
minion_sign_messages: True
# the reactor path: cinder.conf drift and this node's cluster alerts become events
engines:
  - cinder_ha_watch:
      paths: [/etc/cinder/cinder.conf]
      alert_spool: {ALERT_SPOOL}
"""


def prepare_node(name, count, token, master, fresh=True):
    """Per-node state. fresh: a new CIB, no secrets, a seeded cinder.conf, new minion keys (a new
    machine). Not fresh: the node's disk as it was (a power-cut node reboots with its CIB, its
    lrm secrets, its cinder.conf and its minion's keys)."""
    d = node_dir(name)
    hacluster = pwd.getpwnam("hacluster").pw_uid
    haclient = grp.getgrnam("haclient").gr_gid
    cinder = (pwd.getpwnam("cinder").pw_uid, grp.getgrnam("cinder").gr_gid)
    for sub in ("lib/pacemaker", "lib/corosync", "lib/cinder", "share/pacemaker") if fresh else ():
        shutil.rmtree(os.path.join(d, sub), ignore_errors=True)
    for sub in ("etc/corosync", "etc/cinder", "etc/ceph", "etc/haproxy", "lib/corosync", "log", "salt",
                "share/pacemaker/alerts"):
        os.makedirs(os.path.join(d, sub), exist_ok=True)
    os.makedirs(os.path.join(d, "lib/pacemaker"), exist_ok=True)
    os.chown(os.path.join(d, "lib/pacemaker"), hacluster, haclient)
    for sub in ("cib", "pengine", "blackbox", "cores"):
        path = os.path.join(d, "lib/pacemaker", sub)
        os.makedirs(path, mode=0o750, exist_ok=True)
        os.chown(path, hacluster, haclient)
    for sub in ("log/pacemaker", "log/corosync"):
        os.makedirs(os.path.join(d, sub), exist_ok=True)
        os.chown(os.path.join(d, sub), hacluster, haclient)
    # each node's alert agent spools into its own folder (bind-mounted on ALERT_SPOOL's parent)
    os.makedirs(os.path.join(d, "lib/cinder-ha/alerts"), exist_ok=True)
    os.chown(os.path.join(d, "lib/cinder-ha/alerts"), hacluster, haclient)
    os.chmod(os.path.join(d, "lib/cinder-ha/alerts"), 0o750)
    for sub in ("lib/cinder", "lib/cinder/lock", "log/cinder"):
        os.makedirs(os.path.join(d, sub), exist_ok=True)
        os.chown(os.path.join(d, sub), *cinder)
    if fresh or not os.path.exists(os.path.join(d, "lib/pacemaker/cib/cib.xml")):
        write_file(os.path.join(d, "lib/pacemaker/cib/cib.xml"), seed_cib_xml(), 0o600, (hacluster, haclient))
    write_file(os.path.join(d, "etc/corosync/corosync.conf"), corosync_conf(count, token))
    hosts = "127.0.0.1 localhost\n" + "".join(f"{node_addr(n)} {n}\n" for n in node_names(count))
    write_file(os.path.join(d, "etc/hosts"), hosts)
    write_file(os.path.join(d, "etc/hostname"), name + "\n")
    if fresh or not os.path.exists(os.path.join(d, "etc/cinder/cinder.conf")):
        write_file(os.path.join(d, "etc/cinder/cinder.conf"), cinder_conf(name), 0o640, (0, cinder[1]))
    paste = os.path.join(d, "etc/cinder/api-paste.ini")
    for source in ("/etc/cinder/api-paste.ini", os.path.join(CINDER_VENV, "etc/cinder/api-paste.ini")):
        if os.path.exists(source):
            shutil.copy2(source, paste)
            break
    minion = os.path.join(d, "salt", "minion")
    if master:
        write_file(minion, minion_conf(name, master))
        if fresh:
            shutil.rmtree(os.path.join(d, "salt", "root"), ignore_errors=True)  # a new machine, new keys
    elif os.path.exists(minion):
        os.unlink(minion)


# ---------------------------------------------------------------- network


def switch_up():
    if SWITCH_NS in netns_list():
        return
    run(["ip", "netns", "add", SWITCH_NS])
    run(["ip", "-n", SWITCH_NS, "link", "set", "lo", "up"])
    run(["ip", "-n", SWITCH_NS, "link", "add", BRIDGE, "type", "bridge", "stp_state", "0", "forward_delay", "0"])
    run(["ip", "-n", SWITCH_NS, "link", "set", BRIDGE, "up"])
    run(["ip", "link", "add", HOST_VETH, "type", "veth", "peer", "name", "host", "netns", SWITCH_NS])
    run(["ip", "-n", SWITCH_NS, "link", "set", "host", "master", BRIDGE, "up"])
    run(["ip", "addr", "add", f"{HOST_ADDR}/24", "dev", HOST_VETH])
    run(["ip", "link", "set", HOST_VETH, "up"])


def node_net_up(name):
    ns = netns_of(name)
    if ns in netns_list():
        run(["ip", "netns", "del", ns])
    switch_port_del(name)
    run(["ip", "netns", "add", ns])
    run(["ip", "-n", SWITCH_NS, "link", "add", name, "type", "veth", "peer", "name", "eth0", "netns", ns])
    run(["ip", "-n", SWITCH_NS, "link", "set", name, "master", BRIDGE, "up"])
    run(["ip", "-n", ns, "addr", "add", f"{node_addr(name)}/24", "dev", "eth0"])
    run(["ip", "-n", ns, "link", "set", "eth0", "up"])
    run(["ip", "-n", ns, "link", "set", "lo", "up"])


def delete_netns(ns):
    """Kill what still runs in the netns (by pid), then delete it (its veth goes with it)."""
    for pid in netns_pids(ns):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    if ns in netns_list():
        run(["ip", "netns", "del", ns], check=False)


def switch_port_del(name):
    """Delete the node's switch-side veth now. The kernel frees a deleted netns, and the veth
    in it, only once its last process has exited: on a loaded machine the old port can outlive
    `ip netns del` and a restarted node's `ip link add` then fails (File exists)."""
    if SWITCH_NS in netns_list():
        run(["ip", "-n", SWITCH_NS, "link", "del", name], check=False)


# ---------------------------------------------------------------- nodes


def launch_node(name, state):
    d = node_dir(name)
    node_net_up(name)
    with open(os.path.join(d, "log", "init.log"), "ab") as out:
        proc = subprocess.Popen(
            ["env", f"NODE_AGENT_DIR={NODE_AGENT_DIR}", f"OCF_PROVIDER_DIR={OCF_PROVIDER_DIR}",
             "ip", "netns", "exec", netns_of(name), "unshare", "--mount", "--uts", "--ipc", "--pid", "--fork",
             "--kill-child", "--propagation", "private", "--mount-proc", "/bin/bash", INIT_SCRIPT, name, d],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
            env=clean_env())
    # `ip netns exec` execs unshare (same pid); unshare forks the node's PID 1.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        kids = children(proc.pid)
        if kids and "node-init.sh" in cmdline(kids[0]):
            state.setdefault("pids", {})[name] = kids[0]
            save_state(state)
            return kids[0]
        if proc.poll() is not None:
            break
        time.sleep(0.02)
    raise MultinodeError(f"{name}: init did not start (see {d}/log/init.log)")


def nsenter_argv(pid, argv, env=None):
    base = ["nsenter", "-t", str(pid), "-m", "-u", "-i", "-n", "-p", "--", "env", "-i"]
    variables = clean_env(**(env or {}))
    return base + [f"{k}={v}" for k, v in variables.items()] + list(argv)


def node_exec(name, argv, timeout=60, check=False, input_text=None, env=None):
    pid = init_pid(name)
    if not pid:
        raise MultinodeError(f"{name} is not running")
    res = subprocess.run(nsenter_argv(pid, argv, env), capture_output=True, text=True, timeout=timeout,
                         input=input_text, env=clean_env())
    if check and res.returncode != 0:
        raise MultinodeError(f"{name}: {' '.join(argv)} failed (rc {res.returncode}): {res.stderr.strip()[-600:]}")
    return res


def cluster_view(name, timeout=15):
    """crm_mon as seen from `name`: {'dc': str|None, 'online': [...], 'quorum': bool} or None."""
    try:
        res = node_exec(name, ["crm_mon", "-1", "--output-as=xml"], timeout=timeout)
    except (MultinodeError, subprocess.TimeoutExpired):
        return None
    if res.returncode != 0:
        return None
    try:
        root = ET.fromstring(res.stdout)
    except ET.ParseError:
        return None
    dc = root.find("summary/current_dc")
    online = [n.get("name") for n in root.iter("node") if n.get("online") == "true" and n.get("name")]
    return {
        "dc": dc.get("name") if dc is not None and dc.get("present") == "true" else None,
        "quorum": dc is not None and dc.get("with_quorum") == "true",
        "online": sorted(online),
    }


def wait_online(expected, via, timeout=90):
    deadline = time.monotonic() + timeout
    view = None
    while time.monotonic() < deadline:
        view = cluster_view(via)
        if view and view["dc"] and view["quorum"] and set(expected) <= set(view["online"]):
            return view
        time.sleep(0.3)
    raise MultinodeError(f"timed out after {timeout}s waiting for {expected} online (last view from {via}: {view})")


def stop_node(name, state, graceful=True, timeout=60):
    pid = init_pid(name, state)
    if pid and graceful:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
    if pid and pid_alive(pid):
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
    delete_netns(netns_of(name))
    switch_port_del(name)
    state.get("pids", {}).pop(name, None)
    save_state(state)


# ---------------------------------------------------------------- the nodes' Ceph and etcd


def nodes_ceph():
    return Ceph(CEPH_DIR, HOST_ADDR, f"{HOST_ADDR}/32", os.path.join(CEPH_DIR, "run"), os.path.join(CEPH_DIR, "log"))


def storage_facts():
    """What cinder on the nodes uses (paths as a node sees them): the Ceph client files in its
    own /etc/ceph, the pool and user, and etcd (the sandbox's, through the relay) as tooz's URL."""
    cluster = nodes_ceph()
    return {
        "ceph_conf": os.path.join(NODE_CEPH_DIR, "ceph.conf"),
        "ceph_keyring": os.path.join(NODE_CEPH_DIR, f"ceph.client.{RBD_USER}.keyring"),
        "rbd_pool": RBD_POOL,
        "rbd_user": RBD_USER,
        "ceph_mon_host": cluster.mon_host,
        "ceph_admin_conf": cluster.conf,  # on the host, root only: `ceph -c ...` for tests
        "coordination_backend_url": f"etcd3+http://{HOST_ADDR}:{ETCD_CLIENT_PORT}",
    }


def storage_up(names):
    """The nodes' Ceph cluster (new the first time, its data kept under CEPH_DIR), then ceph.conf
    and cinder's keyring in every node's etc/ceph. Returns storage_facts()."""
    cluster = nodes_ceph()
    try:
        took = cluster.up()
        cinder_gid = grp.getgrnam("cinder").gr_gid
        for name in names:
            cluster.install_client(os.path.join(node_dir(name), "etc", "ceph"), cinder_gid)
    except SandboxError as exc:
        raise MultinodeError(f"the nodes' Ceph: {exc}") from None
    log(f"Ceph for the nodes on {HOST_ADDR} (pool {RBD_POOL}, client.{RBD_USER}) ready after {took:.1f}s")
    return storage_facts()


class StorageStarter:
    """storage_up() in a thread: the nodes boot meanwhile. wait() returns its result or raises
    its error."""

    def __init__(self, names):
        self.result, self.error = None, None
        self.thread = threading.Thread(target=self._run, args=(names,))
        self.thread.start()

    def _run(self, names):
        try:
            self.result = storage_up(names)
        except Exception as exc:  # noqa: BLE001 - handed to wait()
            self.error = exc

    def wait(self):
        self.thread.join()
        if self.error:
            raise self.error
        return self.result


# ---------------------------------------------------------------- keystone forwarder


def forward_main(listen_addr, ports, target_addr):
    """Relay TCP from listen_addr:PORT to target_addr:PORT for each port (the sandbox's Keystone,
    MariaDB and RabbitMQ on loopback) until SIGTERM."""
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    servers = []
    for port in ports:
        server = socket.socket()
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind((listen_addr, port))
        server.listen(128)
        servers.append((server, port))

    def pump(client, target_port):
        try:
            upstream = socket.create_connection((target_addr, target_port), timeout=10)
        except OSError:
            client.close()
            return
        upstream.settimeout(None)
        pair = {client: upstream, upstream: client}
        try:
            while True:
                # no idle limit: AMQP and database pool connections stay open between uses
                ready, _, _ = select.select(list(pair), [], [])
                for sock in ready:
                    data = sock.recv(65536)
                    if not data:
                        return
                    pair[sock].sendall(data)
        except OSError:
            pass
        finally:
            client.close()
            upstream.close()

    def accept(server, port):
        while True:
            client, _ = server.accept()
            threading.Thread(target=pump, args=(client, port), daemon=True).start()

    for server, port in servers[1:]:
        threading.Thread(target=accept, args=(server, port), daemon=True).start()
    accept(*servers[0])


def forwarder_up(state):
    pid = state.get("forwarder")
    if pid and pid_alive(pid) and "_forward" in cmdline(pid):
        return
    with open(os.path.join(BASE, "forwarder.log"), "ab") as out:
        proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "_forward", HOST_ADDR,
                                 ",".join(map(str, RELAYED_PORTS)), "127.0.0.1"], stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True, env=clean_env())
    state["forwarder"] = proc.pid
    save_state(state)


def terminate(pid, marker, timeout):
    """SIGTERM `pid` if it is still ours (its command line holds `marker`), SIGKILL after `timeout` s."""
    if not (pid and pid_alive(pid) and marker in cmdline(pid)):
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if pid_alive(pid):
        os.kill(pid, signal.SIGKILL)


def forwarder_down(state):
    terminate(state.pop("forwarder", None), "_forward", timeout=5)


# ---------------------------------------------------------------- resources and probes (tests, bench)

PRIMITIVE_ID = "p_cinder-api"
VIP_ID = "p_ip_cinder-api"
OCF_PROVIDER_DIR = "/usr/lib/ocf/resource.d/openstack"
ALERT_SPOOL = "/var/lib/cinder-ha/alerts"
# The nodes bind-mount this folder on OCF_PROVIDER_DIR: the formula's agent state installs
# ocf:openstack:cinder-api into it, and other work on the machine's own copy cannot take it
# away from a running node.
NODE_AGENT_DIR = os.path.join(BASE, "ocf", "openstack")
# The cinder venv's interpreter lives under /root (mode 0700) on these machines: the user
# `cinder` cannot execute it, so the three nodes run cinder-api as root (pillar agent:user).
CINDER_USER = "root"
MASTER_DIR = os.path.join(BASE, "master")


def load_sandbox():
    """sandbox/sandbox.py as a module (its facts and the pillar both setups share)."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("cinder_ha_sandbox", os.path.join(PROJECT, "sandbox", "sandbox.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


MODES = ("active_passive", "cloned")


def formula_pillar(facts, monitor="5s", stickiness=100, mode="active_passive", options=None, nodes=3,
                   volume=False, **overrides):
    """The cinder_ha pillar of the three nodes: the single-node sandbox's pillar (real MariaDB,
    RabbitMQ and Keystone, the authenticated monitor with an lrm secret) with the nodes' VIP on
    eth0 and every service reached through the relay on 198.18.0.254. `mode`: pillar
    cluster:mode (cloned: an instance per node, the stickiness goes to the VIP; balanced: the
    same, each on its node's address, and HAProxy on every node). `options`:
    more cinder.conf options, {section: {key: value}} (the bench's "config change"). `volume`:
    pillar cinder_ha:volume (False: no scheduler or volume service; a dict from
    sandbox.volume_pillar for the nodes' Ceph)."""
    keystone_url = f"http://{HOST_ADDR}:{KEYSTONE_PORT}/v3"
    extra_conf = {"keystone_authtoken": {"region_name": REGION}}
    for section, keys in (options or {}).items():
        extra_conf.setdefault(section, {}).update(keys)
    if mode == "cloned":
        cluster = {"mode": "cloned", "vip_stickiness": stickiness, "nodes": node_names(nodes)}
    elif mode == "balanced":  # every node's cinder-api on its own address, HAProxy on the VIP
        cluster = {"mode": "balanced", "vip_stickiness": stickiness,
                   "nodes": {name: node_addr(name) for name in node_names(nodes)}}
    else:
        cluster = {"stickiness": stickiness}
    pillar = load_sandbox().sandbox_pillar(
        facts, vip=VIP, netmask=24, nic="eth0", keystone_url=keystone_url, db_host=HOST_ADDR,
        rabbit_host=HOST_ADDR, db_name=DEPLOYMENT, rabbit_vhost=DEPLOYMENT,
        # cinder-api validates tokens at the identity endpoint of its region's catalog:
        # RegionOne's is on loopback, out of the nodes' reach
        extra_conf=extra_conf, volume=volume,
        keystone={"region": REGION},
        agent={"user": CINDER_USER, "monitor_interval": monitor},
        endpoints={"service_types": ["block-storage"], "service_name": SERVICE_NAME},
        # the failover tests and the bench measure moves away from a failed node, not back
        cluster=cluster,
        **overrides)
    return pillar


def master_config(ret_port, publish_port, pillar_dir, root_dir=None):
    """The salt-master of the three nodes (root namespace, bridge address only)."""
    config = {
        "interface": HOST_ADDR, "ret_port": ret_port, "publish_port": publish_port,
        "file_roots": {"base": [os.path.join(PROJECT, "salt"), PROJECT]},
        "pillar_roots": {"base": [pillar_dir]},
        "auto_accept": True, "open_mode": True,
        "reactor": [{"cinder_ha/*": ["salt://cinder_ha/reactor/dispatch.sls"]}],
        # the reactor trusts signed events only (3008.4 masters need the algorithm set)
        "signing_algorithm": "PKCS1v15-SHA1",
    }
    if root_dir:
        config.update({"root_dir": root_dir, "user": "root"})
    return config


def write_pillar(pillar_dir, pillar):
    os.makedirs(pillar_dir, mode=0o700, exist_ok=True)
    os.chmod(pillar_dir, 0o700)
    write_file(os.path.join(pillar_dir, "top.sls"), "base:\n  '*':\n    - cinder_ha\n", 0o600)
    write_file(os.path.join(pillar_dir, "cinder_ha.sls"), json.dumps(pillar, indent=2) + "\n", 0o600)


def keystone_request(facts, method, path, body=None, token=None):
    """One Keystone v3 call from the root namespace (stdlib only: this script runs on the
    system Python)."""
    import urllib.request
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(facts["keystone_url"].rstrip("/") + path, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    if token:
        req.add_header("X-Auth-Token", token)
    with urllib.request.urlopen(req, timeout=20) as resp:
        raw = resp.read()
        return resp.headers, (json.loads(raw) if raw else None)


def keystone_token(facts):
    body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": facts["keystone_admin_user"], "domain": {"name": "Default"},
        "password": facts["keystone_admin_password"]}}},
        "scope": {"project": {"name": facts["keystone_admin_project"], "domain": {"name": "Default"}}}}}
    headers, _ = keystone_request(facts, "POST", "/auth/tokens", body)
    return headers["X-Subject-Token"]


# The three nodes are a cinder deployment of their own on the sandbox's servers: their own
# database and RabbitMQ vhost on the same MariaDB and broker (the guide's shared services).
# Otherwise the single-node sandbox's cinder-scheduler and cinder-volume, under the same
# backend_host, would take the nodes' work from the shared queues (and write to the other Ceph).
DEPLOYMENT = "cinder_mn"


def deployment_present(facts):
    """The nodes' database (cinder's schema synced) and vhost, for the sandbox's cinder user."""
    sandbox = load_sandbox()
    sandbox.mariadb_sql(f"CREATE DATABASE IF NOT EXISTS {DEPLOYMENT} CHARACTER SET utf8mb4;\n"
                        f"GRANT ALL PRIVILEGES ON {DEPLOYMENT}.* TO {sandbox.sql_string(facts['db_user'])}@'127.0.0.1';")
    if DEPLOYMENT not in sandbox.rabbitmqctl("list_vhosts", "--quiet", "--no-table-headers").stdout.split():
        sandbox.rabbitmqctl("add_vhost", DEPLOYMENT)
    sandbox.rabbitmqctl("set_permissions", "-p", DEPLOYMENT, facts["rabbit_user"], ".*", ".*", ".*")
    ours = dict(facts, db_name=DEPLOYMENT)
    if not sandbox.cinder_db_synced(ours):
        sync_conf = os.path.join(BASE, "db-sync.conf")
        os.makedirs(BASE, exist_ok=True)
        write_file(sync_conf, f"[database]\nconnection = {sandbox.database_url(ours).replace('$', '$$')}\n", 0o600)
        log(f"cinder-manage db sync into MariaDB's {DEPLOYMENT} (~20 s)")
        try:
            run([facts["cinder_manage"], "--config-file", sync_conf, "db", "sync"], timeout=600)
        finally:
            os.unlink(sync_conf)


def region_present(facts):
    """The catalog region of the three nodes (the formula refuses an unknown region), with an
    identity endpoint the nodes can reach (198.18.0.254): cinder-api's keystonemiddleware looks
    Keystone up in its region's catalog. Also the nodes' own database and vhost."""
    deployment_present(facts)
    import urllib.error
    token = keystone_token(facts)
    try:
        keystone_request(facts, "POST", "/regions", {"region": {"id": REGION}}, token)
    except urllib.error.HTTPError as exc:
        if exc.code != 409:
            raise
    _, body = keystone_request(facts, "GET", "/services?type=identity", token=token)
    identity = body["services"][0]["id"]
    _, body = keystone_request(facts, "GET", f"/endpoints?service_id={identity}&region_id={REGION}", token=token)
    have = {e["interface"] for e in body["endpoints"]}
    for interface in ("public", "internal", "admin"):
        if interface not in have:
            keystone_request(facts, "POST", "/endpoints", {"endpoint": {
                "service_id": identity, "interface": interface, "region_id": REGION,
                "url": f"http://{HOST_ADDR}:{KEYSTONE_PORT}/v3"}}, token)


def deployment_absent():
    """The nodes' database and vhost dropped (called with the nodes down): a new tier starts
    without an earlier run's volumes, service rows or quotas."""
    sandbox = load_sandbox()
    sandbox.mariadb_sql(f"DROP DATABASE IF EXISTS {DEPLOYMENT};")
    if DEPLOYMENT in sandbox.rabbitmqctl("list_vhosts", "--quiet", "--no-table-headers").stdout.split():
        sandbox.rabbitmqctl("delete_vhost", DEPLOYMENT)


def region_absent(facts):
    """Remove what the formula registered for the three nodes (their endpoints and region) and
    their cinder state (database, vhost)."""
    import urllib.error
    deployment_absent()
    token = keystone_token(facts)

    def delete(path):  # gone already (an earlier, interrupted down) is what we want
        try:
            keystone_request(facts, "DELETE", path, token=token)
        except urllib.error.HTTPError as exc:
            if exc.code != 404:
                raise

    _, body = keystone_request(facts, "GET", f"/endpoints?region_id={REGION}", token=token)
    for endpoint in body["endpoints"]:
        delete(f"/endpoints/{endpoint['id']}")
    delete(f"/regions/{REGION}")
    _, body = keystone_request(facts, "GET", "/services", token=token)
    for service in body["services"]:
        if service.get("name") == SERVICE_NAME:  # the nodes' pillar registers block-storage only
            delete(f"/services/{service['id']}")


MINION_ARGV = ["env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8", "HOME=/root",
               f"PYTHONPATH={SANDBOX}/site", f"{SANDBOX}/venv/salt/bin/salt-minion"]


def minion_stop(name, timeout=30):
    """Stop the node's salt-minion (the node and its cluster keep running)."""
    node_exec(name, ["pkill", "-TERM", "-f", "bin/salt-minion"], timeout=15)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if node_exec(name, ["pgrep", "-f", "bin/salt-minion"], timeout=15).returncode != 0:
            return
        time.sleep(0.2)
    node_exec(name, ["pkill", "-KILL", "-f", "bin/salt-minion"], timeout=15)


def minion_start(name):
    """Start the node's salt-minion again (daemonized: the node's PID 1 adopts and reaps it)."""
    d = node_dir(name)
    node_exec(name, MINION_ARGV + ["-c", os.path.join(d, "salt"), "--log-level=quiet", "-d"], timeout=60, check=True)


def running_node(state=None):
    """A node whose init runs (first one), for cluster CLI calls."""
    state = state if state is not None else load_state()
    for name in node_names(state.get("nodes", 0)):
        if init_pid(name, state):
            return name
    raise MultinodeError("no node is running")


def locate(resource=PRIMITIVE_ID, via=None):
    """The node where `resource` runs (by crm_resource --locate), or None."""
    via = via or running_node()
    res = node_exec(via, ["crm_resource", "--locate", "-r", resource], timeout=15)
    for line in res.stdout.splitlines():
        if "is running on:" in line:
            return line.rsplit(":", 1)[1].strip()
    return None


def probe(url=f"http://{VIP}:{CINDER_PORT}/healthcheck", timeout=1.0):
    """True when the URL answers 200 (one HTTP GET, no proxy)."""
    return probe_why(url, timeout)[0]


def probe_why(url=f"http://{VIP}:{CINDER_PORT}/healthcheck", timeout=1.0):
    """(ok, what happened): ok when the URL answers 200; else the status or the error, so a
    failed poll says whether it was refused, reset, timed out or answered with an error."""
    import http.client
    from urllib.parse import urlsplit
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        conn.request("GET", parts.path or "/")
        status = conn.getresponse().status
        return status == 200, f"HTTP {status}"
    except (OSError, http.client.HTTPException) as exc:
        return False, f"{type(exc).__name__}: {exc}"
    finally:
        conn.close()


def wait_answering(timeout=60, url=f"http://{VIP}:{CINDER_PORT}/healthcheck"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if probe(url):
            return True
        time.sleep(0.1)
    raise MultinodeError(f"{url} not answering after {timeout}s")


class OutageProbe:
    """Polls the VIP every `period` s in the background (each probe in its own thread, so a
    hanging connect never stretches the cadence). outage() = last good answer before the
    first failure to the first good answer after it."""

    def __init__(self, url=f"http://{VIP}:{CINDER_PORT}/healthcheck", period=0.1, timeout=1.0):
        self.url, self.period, self.timeout = url, period, timeout
        self.results = []  # (sent, answered, ok, what happened)
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def _one(self):
        sent = time.monotonic()
        ok, why = probe_why(self.url, self.timeout)
        with self.lock:
            self.results.append((sent, time.monotonic(), ok, why))

    def _loop(self):
        tick = time.monotonic()
        while not self.stopping.is_set():
            threading.Thread(target=self._one, daemon=True).start()
            tick += self.period
            time.sleep(max(0.0, tick - time.monotonic()))

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stopping.set()
        self.thread.join()
        time.sleep(self.timeout)

    def wait_recovered(self, since, timeout):
        """Block until a good answer to a probe sent after the first failure after `since`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.outage(since) is not None:
                return True
            time.sleep(0.1)
        return False

    def outage(self, since=0.0):
        """Seconds without an answer after `since`, or None if the outage has not ended (or begun)."""
        with self.lock:
            results = sorted(r for r in self.results if r[0] >= since)
        first_bad = next((r for r in results if not r[2]), None)
        if first_bad is None:
            return None
        good_before = [r[1] for r in results if r[2] and r[0] < first_bad[0]]
        good_after = [r[1] for r in results if r[2] and r[0] > first_bad[0]]
        if not good_after:
            return None
        last_good = max(good_before) if good_before else since
        return min(good_after) - last_good


def kill_cinder_api(node):
    """kill -9 of the cinder-api parent on `node` (its pid file, inside the node)."""
    res = node_exec(node, ["cat", f"/run/resource-agents/{PRIMITIVE_ID}.pid"], check=True)
    pid = res.stdout.strip()
    if not pid.isdigit():
        raise MultinodeError(f"{node}: no cinder-api pid file")
    node_exec(node, ["kill", "-9", pid], check=True)
    return int(pid)


def power_cut(node):
    stop_node(node, load_state(), graceful=False)


def set_partitioned(node, partitioned):
    """Cut `node` off the switch (its port down), or heal it. Healing starts the node's
    salt-minion afresh if one runs: it keeps its dead connection to the master until TCP
    keepalive gives up (over 5 min seen), and misses every job meanwhile."""
    run(["ip", "-n", SWITCH_NS, "link", "set", node, "down" if partitioned else "up"])
    if not partitioned and node_exec(node, ["pgrep", "-f", "bin/salt-minion"], timeout=15).returncode == 0:
        minion_stop(node)
        minion_start(node)


def set_standby(node, standby, via=None):
    via = via or node
    node_exec(via, ["crm_attribute", "--node", node, "--name", "standby", "--update", "on" if standby else "off"],
              check=True, timeout=20)


FAULTS = ("kill", "powercut", "partition", "standby")


def inject_fault(kind, node):
    """One fault on `node` (tests, bench): kill -9 of its cinder-api, a power cut, a partition
    (its switch port down) or `crm node standby`."""
    if kind == "kill":
        kill_cinder_api(node)
    elif kind == "powercut":
        power_cut(node)
    elif kind == "partition":
        set_partitioned(node, True)
    elif kind == "standby":
        set_standby(node, True)
    else:
        raise MultinodeError(f"not a fault: {kind!r} (one of {', '.join(FAULTS)})")


def restart_node(node, timeout=90, attempts=2):
    """Stop `node` if it runs (gracefully), start it again with its disk, wait until it is online.

    The start waits until the other nodes have seen it leave: a node that comes back while
    they still count its last life in the membership can form a ring of its own and stay
    there (measured here: one restart in three, started at once after a power cut). A start
    that fails, or does not reach the cluster within `timeout`, is cut and tried again
    (`attempts`)."""
    state = load_state()
    stop_node(node, state, graceful=True)
    wait_left(node, state)
    for attempt in range(1, attempts + 1):
        try:
            start_node(node, state)
            return wait_online([node], node, timeout=timeout)
        except MultinodeError as exc:
            if attempt == attempts:
                raise
            log(f"{node}: {exc}; starting it again")
            stop_node(node, state, graceful=False)
            wait_left(node, state)


def start_node(node, state):
    """Start a stopped node with its disk as it was (a reboot: CIB, lrm secrets, cinder.conf,
    minion keys); returns its PID 1."""
    prepare_node(node, state["nodes"], state.get("token"), state.get("master"), fresh=False)
    return launch_node(node, state)


def wait_left(node, state, timeout=30):
    """Until a running peer no longer lists `node` online (or none runs, or `timeout`)."""
    peers = [n for n in node_names(state.get("nodes", 0)) if n != node and init_pid(n, state)]
    deadline = time.monotonic() + timeout
    while peers and time.monotonic() < deadline:
        view = cluster_view(peers[0])
        if view is not None and node not in view["online"]:
            return
        time.sleep(0.3)


def ensure_running(names, timeout=90):
    """Start again any of `names` that does not run (a test that failed before its repair must
    not leave the next ones a node short); returns the nodes it started."""
    state = load_state()
    down = [n for n in names if not init_pid(n, state)]
    for node in down:
        log(f"{node} is not running: starting it again")
        restart_node(node, timeout=timeout)
    return down


def wait_settled(via=None, timeout=60):
    """crm_resource --wait: no pending actions in the cluster."""
    via = via or running_node()
    node_exec(via, ["crm_resource", "--wait", f"--timeout={int(timeout)}s"], timeout=timeout + 10)


# ---------------------------------------------------------------- commands


def cmd_up(args):
    if os.geteuid() != 0:
        raise MultinodeError("run as root")
    if not 2 <= args.nodes <= MAX_NODES:
        raise MultinodeError(f"--nodes must be 2..{MAX_NODES}")
    state = load_state()
    running = [n for n in node_names(state.get("nodes", 0)) if init_pid(n, state)]
    if running:
        if state.get("nodes") != args.nodes or state.get("token") != args.token:
            raise MultinodeError(f"already up with {state.get('nodes')} nodes, token {state.get('token')}: "
                                 "run `down` first")
        log(f"already up: {', '.join(running)}")
        return 0
    started = time.monotonic()
    master = None
    if args.formula and not args.master_ret_port:
        args.master_ret_port, args.master_publish_port = FORMULA_MASTER_PORTS
    if args.master_ret_port:
        master = {"addr": args.master_addr, "ret_port": args.master_ret_port,
                  "publish_port": args.master_publish_port or args.master_ret_port - 1}
    os.makedirs(BASE, exist_ok=True)
    os.makedirs(OCF_PROVIDER_DIR, exist_ok=True)  # mount point for the nodes' agent folder
    os.makedirs(os.path.dirname(ALERT_SPOOL), exist_ok=True)  # mount point for the nodes' spools
    os.makedirs(NODE_CEPH_DIR, exist_ok=True)  # mount point for the nodes' Ceph client files
    # new machines: no agent until the formula installs it
    shutil.rmtree(NODE_AGENT_DIR, ignore_errors=True)
    os.makedirs(NODE_AGENT_DIR)
    names = node_names(args.nodes)
    for name in names:
        prepare_node(name, args.nodes, args.token, master)
    state = {"nodes": args.nodes, "token": args.token, "master": master, "pids": {}}
    save_state(state)
    switch_up()
    forwarder_up(state)
    storage = StorageStarter(names)  # Ceph starts while the nodes boot; they need it only later
    for name in names:
        launch_node(name, state)
    view = wait_online(names, names[0], timeout=args.timeout)
    log(f"{len(names)} nodes online, DC {view['dc']}, after {time.monotonic() - started:.1f}s")
    state["storage"] = storage.wait()
    save_state(state)
    if args.formula:
        formula_up(state, names, monitor=args.monitor, stickiness=args.stickiness, mode=args.mode)
        log(f"formula applied, API answering on the VIP, {time.monotonic() - started:.1f}s after start")
    return 0


# ---------------------------------------------------------------- the formula's own master (CLI, bench)

FORMULA_MASTER_PORTS = (14526, 14525)  # ret, publish (the single-node sandbox uses 14506/14505)


def salt_master_argv(*args):
    return [os.path.join(SANDBOX, "venv", "salt", "bin", args[0]), "-c", os.path.join(MASTER_DIR, "etc"), *args[1:]]


def formula_up(state, names, monitor="5s", stickiness=100, mode="active_passive"):
    """salt-master on 198.18.0.254, the pillar, the region, then salt '*' state.apply cinder_ha."""
    sandbox = load_sandbox()
    facts = sandbox.facts()
    if "db_password" not in facts or "cinder_api" not in facts:
        raise MultinodeError("start the sandbox's services first: sandbox/sandbox.py up mariadb rabbitmq keystone cinder")
    ret_port, publish_port = state["master"]["ret_port"], state["master"]["publish_port"]
    shutil.rmtree(MASTER_DIR, ignore_errors=True)
    pillar_dir = os.path.join(MASTER_DIR, "pillar")
    state["formula_pillar"] = {"monitor": monitor, "stickiness": stickiness, "mode": mode, "options": {},
                               "nodes": len(names)}
    write_pillar(pillar_dir, formula_pillar(facts, **state["formula_pillar"]))
    os.makedirs(os.path.join(MASTER_DIR, "etc"))
    config = master_config(ret_port, publish_port, pillar_dir, root_dir=os.path.join(MASTER_DIR, "root"))
    write_file(os.path.join(MASTER_DIR, "etc", "master"), json.dumps(config, indent=2) + "\n")
    region_present(facts)
    with open(os.path.join(BASE, "salt-master.log"), "ab") as out:
        proc = subprocess.Popen(salt_master_argv("salt-master", "--log-level=quiet"), stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
                                env=clean_env(PYTHONPATH=os.path.join(SANDBOX, "site")))
    state["salt_master"] = proc.pid
    state["formula"] = True
    save_state(state)
    deadline = time.monotonic() + 180
    answered = set()
    while time.monotonic() < deadline and answered != set(names):
        res = subprocess.run(salt_master_argv("salt", "--out=json", "--static", "--timeout=10", "*", "test.ping"),
                             capture_output=True, text=True, timeout=60, env=clean_env())
        try:
            answered = {k for k, v in json.loads(res.stdout or "{}").items() if v is True}
        except ValueError:
            answered = set()
        time.sleep(1)
    if answered != set(names):
        raise MultinodeError(f"minions answering: {sorted(answered)} of {names}")
    formula_apply()
    wait_answering(timeout=120)


def formula_apply(target="*"):
    """salt TARGET state.apply cinder_ha through the multinode master; raises on any failed state."""
    res = subprocess.run(salt_master_argv("salt", "--out=json", "--static", "--timeout=600", target,
                                          "state.apply", "cinder_ha"),
                         capture_output=True, text=True, timeout=900, env=clean_env())
    try:
        runs = json.loads(res.stdout)
    except ValueError:
        raise MultinodeError(f"state.apply gave no JSON (rc {res.returncode}): {res.stderr[-800:]}") from None
    failed = {minion: [v.get("comment") for v in states.values() if v.get("result") is not True]
              if isinstance(states, dict) else states for minion, states in runs.items()}
    failed = {k: v for k, v in failed.items() if v}
    if failed:
        raise MultinodeError(f"state.apply cinder_ha failed: {json.dumps(failed)[:2000]}")
    return runs


def formula_down(state):
    pid = state.pop("salt_master", None)
    terminate(pid, "salt-master", timeout=20)
    # the master's worker processes are in its session
    if pid:
        for entry in os.listdir("/proc"):
            if entry.isdigit() and "salt-master" in cmdline(int(entry)) and MASTER_DIR in cmdline(int(entry)):
                try:
                    os.kill(int(entry), signal.SIGKILL)
                except ProcessLookupError:
                    pass
    if state.pop("formula", False):
        try:
            region_absent(load_sandbox().facts())
        except OSError as exc:
            log(f"could not remove the catalog region {REGION}: {exc}")


def reconfigure(mode=None, options=None, target="*", volume=None):
    """A new pillar for the formula's master (cluster:mode, more cinder.conf options, the
    volume service: "active_passive"/"active_active" on the nodes' Ceph, or False), then
    state.apply cinder_ha (the master renders the pillar on each run). Returns the runs."""
    state = load_state()
    if not state.get("salt_master"):
        raise MultinodeError("not up with --formula")
    settings = dict(state["formula_pillar"])
    if mode:
        settings["mode"] = mode
    if options is not None:
        settings["options"] = options
    if volume is not None:
        storage = storage_facts()
        settings["volume"] = volume and load_sandbox().volume_pillar(
            storage, ceph_conf=storage["ceph_conf"], mode=volume,
            coordination_url=storage["coordination_backend_url"])
    write_pillar(os.path.join(MASTER_DIR, "pillar"), formula_pillar(load_sandbox().facts(), **settings))
    state["formula_pillar"] = settings
    save_state(state)
    subprocess.run(salt_master_argv("salt", "--out=quiet", "--timeout=60", target, "saltutil.refresh_pillar", "wait=True"),
                   capture_output=True, text=True, timeout=120, env=clean_env())
    return formula_apply(target)


def cmd_reconfigure(args):
    options = {}
    for item in args.option or []:
        where, _, value = item.partition("=")
        section, _, key = where.partition(":")
        if not (section and key and value):
            raise MultinodeError(f"--option SECTION:KEY=VALUE, got {item!r}")
        options.setdefault(section, {})[key] = value
    reconfigure(mode=args.mode, options=options if args.option else None)
    log("reconfigured and applied: no failed state")
    return 0


def cmd_apply(args):
    state = load_state()
    if not state.get("salt_master"):
        raise MultinodeError("not up with --formula")
    formula_apply(args.target)
    log("state.apply cinder_ha: no failed state")
    return 0


def cmd_down(args):
    state = load_state()
    count = max(state.get("nodes", 0), MAX_NODES)
    names = [n for n in node_names(count) if init_pid(n, state)]
    # All nodes shut down together: SIGTERM every PID 1, then wait (graceful, 2-4 s).
    for name in names:
        os.kill(init_pid(name, state), signal.SIGTERM)
    deadline = time.monotonic() + args.timeout
    while any(init_pid(n, state) for n in names) and time.monotonic() < deadline:
        time.sleep(0.1)
    for name in node_names(count):
        stop_node(name, state, graceful=False)
    formula_down(state)
    forwarder_down(state)
    nodes_ceph().down()  # before its address goes: nothing of ours is left listening on it
    existing = netns_list()
    for ns in sorted(existing):
        if ns.startswith("cha-n") and ns != SWITCH_NS:
            delete_netns(ns)
    if SWITCH_NS in existing:
        delete_netns(SWITCH_NS)  # takes the bridge and the peer of cha-host with it
    if run(["ip", "link", "show", HOST_VETH], check=False).returncode == 0:
        run(["ip", "link", "del", HOST_VETH], check=False)
    try:
        os.unlink(STATE)
    except FileNotFoundError:
        pass
    log("down")
    return 0


def cmd_status(args):
    state = load_state()
    if not state:
        print("multinode: not up")
        return 3
    print(f"multinode: {state['nodes']} nodes, corosync token {state.get('token') or 'default'}")
    links = run(["ip", "-n", SWITCH_NS, "-br", "link"], check=False).stdout
    for name in node_names(state["nodes"]):
        pid = init_pid(name, state)
        link = next((line.split()[1] for line in links.splitlines() if line.split()[0].split("@")[0] == name), "absent")
        print(f"  {name}: {'pid ' + str(pid) if pid else 'down'}, switch port {link}, {node_addr(name)}")
    print(f"  Ceph for the nodes: {nodes_ceph().status()}; tooz {storage_facts()['coordination_backend_url']}")
    for name in node_names(state["nodes"]):
        if init_pid(name, state):
            res = node_exec(name, ["crm_mon", "-1"], timeout=20)
            print("\n".join("    " + line for line in res.stdout.splitlines()))
            break
    return 0


def cmd_exec(args):
    argv = args.argv[1:] if args.argv[:1] == ["--"] else args.argv
    if not argv:
        raise MultinodeError("exec NODE -- CMD...")
    pid = init_pid(args.node)
    if not pid:
        raise MultinodeError(f"{args.node} is not running")
    return subprocess.run(nsenter_argv(pid, argv), env=clean_env()).returncode


def cmd_kill(args):
    state = load_state()
    node_index(args.node)
    stop_node(args.node, state, graceful=False)
    log(f"{args.node}: power cut")
    return 0


def cmd_partition(args, up=False):
    node_index(args.node)
    run(["ip", "-n", SWITCH_NS, "link", "set", args.node, "up" if up else "down"])
    log(f"{args.node}: {'healed' if up else 'partitioned'}")
    return 0


def cmd_restart(args):
    state = load_state()
    if not state:
        raise MultinodeError("not up")
    node_index(args.node)
    started = time.monotonic()
    if not args.wait:
        stop_node(args.node, state, graceful=True)
        start_node(args.node, state)
        return 0
    restart_node(args.node, timeout=args.timeout)
    log(f"{args.node}: online after {time.monotonic() - started:.1f}s")
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("up")
    p.add_argument("--nodes", type=int, default=3)
    p.add_argument("--token", type=int, default=None, help="corosync totem token in ms (default: corosync's)")
    p.add_argument("--master-addr", default=HOST_ADDR)
    p.add_argument("--master-ret-port", type=int, default=None)
    p.add_argument("--master-publish-port", type=int, default=None)
    p.add_argument("--timeout", type=float, default=120)
    p.add_argument("--formula", action="store_true",
                   help="a salt-master on 198.18.0.254 and salt '*' state.apply cinder_ha (the formula builds it all)")
    p.add_argument("--monitor", default="5s", help="with --formula: pillar agent:monitor_interval")
    p.add_argument("--stickiness", type=int, default=100,
                   help="with --formula: pillar cluster:stickiness (cloned: cluster:vip_stickiness)")
    p.add_argument("--mode", choices=MODES, default="active_passive", help="with --formula: pillar cluster:mode")
    p.set_defaults(func=cmd_up)
    p = sub.add_parser("reconfigure")
    p.add_argument("--mode", choices=MODES)
    p.add_argument("--option", action="append", help="a cinder.conf option SECTION:KEY=VALUE (repeatable)")
    p.set_defaults(func=cmd_reconfigure)
    p = sub.add_parser("apply")
    p.add_argument("target", nargs="?", default="*")
    p.set_defaults(func=cmd_apply)
    p = sub.add_parser("down")
    p.add_argument("--timeout", type=float, default=30)
    p.set_defaults(func=cmd_down)
    sub.add_parser("status").set_defaults(func=cmd_status)
    p = sub.add_parser("exec")
    p.add_argument("node")
    p.add_argument("argv", nargs=argparse.REMAINDER)
    p.set_defaults(func=cmd_exec)
    for name, func in (("kill", cmd_kill), ("partition", cmd_partition),
                       ("heal", lambda a: cmd_partition(a, up=True))):
        p = sub.add_parser(name)
        p.add_argument("node")
        p.set_defaults(func=func)
    p = sub.add_parser("restart")
    p.add_argument("node")
    p.add_argument("--no-wait", dest="wait", action="store_false")
    p.add_argument("--timeout", type=float, default=90)
    p.set_defaults(func=cmd_restart)
    p = sub.add_parser("_forward")  # internal: the relay to Keystone, MariaDB, RabbitMQ
    p.add_argument("listen_addr")
    p.add_argument("ports")
    p.add_argument("target_addr")
    p.set_defaults(func=lambda a: forward_main(a.listen_addr, [int(x) for x in a.ports.split(",")], a.target_addr))
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except MultinodeError as exc:
        log(f"error: {exc}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
