"""ocf:openstack:haproxy run directly (as pacemaker-execd would) against the real HAProxy
(/usr/sbin/haproxy, Debian's 2.6), with the config cinder_ha_lib.haproxy renders, and the
cinder_haproxy module on its runtime API: ocf-tester; start and monitor; a kill -9 of the master
(7) and a runtime API that does not answer while the master lives (1); a start while another
process holds the frontend's address (launched again until it is free, or failed at the start
timeout); a reload with a request under way, and one refused; the config written by
cinder_haproxy.install_config and the state config_managed, then reloaded; a drain; a soft stop
that leaves no process.

Everything is private: HAProxy on 127.0.0.131:18871 (and 18872 for a frontend a reload adds,
18873 and 18883 for the start tests, 18879 held by a test),
two small HTTP servers standing for two nodes' cinder-api on 127.0.0.131:18881 and 18882
(/healthcheck, and /slow answering after SLOW seconds), the agent, its functions, the config,
pid file and sockets in a folder of /run of their own. The module is imported plainly (Salt's
loader would find the project through the sandbox's pip-installed copy, not this tree).
"""
import contextlib
import http.server
import os
import pathlib
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET

import pytest
from salt.exceptions import CommandExecutionError

from _modules import cinder_haproxy
from cinder_ha_lib import haproxy
from tests.conftest import PROJECT
from tests.support import agent as support

VIP = "127.0.0.131"
PORT = 18871
EXTRA_PORT = 18872  # a frontend the reload test adds
BUSY_PORT = 18879  # held by the test: a config that binds it passes haproxy -c but cannot load
RETRY_PORT = 18873  # the frontend of the start tests, held by the test (+10: with SO_REUSEPORT)
NODES = {"node1": 18881, "node2": 18882}
SLOW = 3.0
AGENT_SOURCE = PROJECT / "salt" / "cinder_ha" / "files" / "ocf" / "haproxy"
INSTANCE = "cinder_ha_test_haproxy"
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class Node(http.server.BaseHTTPRequestHandler):
    """A node's cinder-api as HAProxy sees it: /healthcheck, /slow after SLOW seconds, anything
    else at once; each request but the health checks is recorded (node, path, headers in lower
    case, as HAProxy sends them)."""

    protocol_version = "HTTP/1.1"

    def do_GET(self):  # noqa: N802 (http.server's name)
        if self.path != "/healthcheck":
            self.server.seen.append((self.server.name, self.path, {k.lower(): v for k, v in self.headers.items()}))
        if self.path == "/slow":
            time.sleep(SLOW)
        body = f"{self.server.name} {self.path}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class NodeServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def handle_error(self, request, client_address):
        # HAProxy ends each health check's connection with a reset (its checks do not linger)
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


@pytest.fixture(scope="module")
def nodes():
    seen = []
    servers = []
    for name, port in NODES.items():
        server = NodeServer((VIP, port), Node)
        server.name, server.seen = name, seen
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
    yield seen
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def place():
    """The agent (its functions beside it as the formula installs them) and HAProxy's files, in a
    folder of root's alone (the start record needs one) that nobody may read into (ocf-tester
    runs meta-data as nobody: 0755)."""
    folder = pathlib.Path(tempfile.mkdtemp(prefix="cinder-ha-haproxy-", dir="/run"))
    folder.chmod(0o755)
    agent = folder / "haproxy"
    shutil.copyfile(AGENT_SOURCE, agent)
    agent.chmod(0o755)
    functions = folder / ".cinder-ha-functions"
    shutil.copyfile(AGENT_SOURCE.with_name("cinder-ha-functions"), functions)
    functions.chmod(0o644)
    yield folder
    kill_haproxy(folder)
    shutil.rmtree(folder)


def render(folder, **extra):
    return haproxy.render_config([(name, VIP, port) for name, port in NODES.items()], VIP, str(folder / "rt.sock"),
                                 port=PORT, user="haproxy", state_file=str(folder / "servers.state"), **extra)


def render_on(folder, port, **extra):
    """The config with its frontend on ``port``."""
    return haproxy.render_config([(name, VIP, node_port) for name, node_port in NODES.items()], VIP,
                                 str(folder / "rt.sock"), port=port, user="haproxy",
                                 state_file=str(folder / "servers.state"), **extra)


def console_log(folder):
    path = folder / f"{INSTANCE}.console.log"
    return path.read_text(errors="replace") if path.exists() else ""


def params(folder):
    return {"config": str(folder / "cinder-ha.cfg"), "pid": str(folder / "haproxy.pid"),
            "master_socket": str(folder / "master.sock")}


def run_agent(folder, action, timeout=90, **extra):
    """One action of this folder's agent (support.run_agent); extra: OCF_RESKEY_ names without
    the prefix, parameters and CRM_meta_* alike (CRM_meta_timeout=6000: milliseconds)."""
    meta = {key: value for key, value in extra.items() if key.startswith("CRM_meta_")}
    given = {key: value for key, value in extra.items() if key not in meta}
    return support.run_agent(action, {**params(folder), **given}, instance=INSTANCE, timeout=timeout,
                             agent=folder / "haproxy", **meta)


def processes(folder):
    """Live HAProxy processes of this folder's config: {pid: (pgid, uid)}."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            argv = pathlib.Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
            stat = pathlib.Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            uid = int(next(line for line in pathlib.Path(f"/proc/{entry}/status").read_text().splitlines()
                           if line.startswith("Uid:")).split()[1])
        except (OSError, StopIteration):
            continue
        if argv[0].endswith(b"haproxy") and str(folder / "cinder-ha.cfg").encode() in argv and stat[0] != "Z":
            found[int(entry)] = (int(stat[2]), uid)
    return found


def kill_haproxy(folder):
    """Last resort: SIGKILL every HAProxy of this folder, by pid."""
    for pid in processes(folder):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not processes(folder), 10)


def wait_for(predicate, timeout):
    return support.wait_for(predicate, timeout, step=0.05)


def get(path, port=PORT, timeout=15):
    """(status, body) of a GET through HAProxy, or (None, the error)."""
    try:
        with OPENER.open(f"http://{VIP}:{port}{path}", timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(errors="replace")
    except OSError as error:
        return None, str(error)


class InFlight(threading.Thread):
    """A GET of /slow under way in the background; ``result`` once it ends."""

    def __init__(self, port=PORT):
        super().__init__(daemon=True)
        self.port, self.result, self.took = port, None, None
        self.start()

    def run(self):
        started = time.monotonic()
        self.result = get("/slow", self.port, timeout=30)
        self.took = time.monotonic() - started


def slow_requests_at(seen, node):
    return [entry for entry in seen if entry[0] == node and entry[1] == "/slow"]


def master(folder):
    return int((folder / "haproxy.pid").read_text())


def worker_pid(folder):
    """The worker that answers the runtime API now."""
    return int(haproxy.parse_info(cinder_haproxy._ask(str(folder / "rt.sock"), "show info", 5))["Pid"])


@pytest.fixture
def folder(place, nodes):
    """Each test starts with HAProxy stopped and its config as rendered, and ends with no HAProxy
    left, whatever happened."""
    (place / "cinder-ha.cfg").write_text(render(place))
    kill_haproxy(place)
    nodes.clear()
    yield place
    run_agent(place, "stop", CRM_meta_timeout=10000)
    kill_haproxy(place)


@pytest.fixture
def running(folder):
    started = run_agent(folder, "start")
    assert started.returncode == 0, started.stderr
    return folder


# ---------------------------------------------------------------- meta-data, ocf-tester

def test_meta_data_declares_its_parameters_and_reload(folder):
    result = run_agent(folder, "meta-data")
    assert result.returncode == 0
    root = ET.fromstring(result.stdout)
    assert root.get("name") == "haproxy"
    assert {p.get("name") for p in root.iter("parameter")} == {
        "binary", "config", "pid", "master_socket", "runtime_socket", "console_log_max"}
    actions = {a.get("name"): a.get("timeout") for a in root.iter("action")}
    assert actions == {"start": "20s", "stop": "60s", "reload": "30s", "status": "20s", "monitor": "20s",
                       "validate-all": "20s", "meta-data": "5s"}


def test_ocf_tester(folder):
    args = ["ocf-tester", "-n", INSTANCE]
    for key, value in params(folder).items():
        args += ["-o", f"{key}={value}"]
    result = subprocess.run(args + [str(folder / "haproxy")], capture_output=True, text=True, timeout=120,
                            env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "passed all tests" in result.stdout
    assert not processes(folder)


def test_validate_all_is_haproxy_c(folder):
    assert run_agent(folder, "validate-all").returncode == 0
    (folder / "cinder-ha.cfg").write_text(render(folder) + "    bogus_keyword\n")
    refused = run_agent(folder, "validate-all")
    assert refused.returncode == 6  # OCF_ERR_CONFIGURED
    assert "unknown keyword 'bogus_keyword'" in refused.stderr
    (folder / "cinder-ha.cfg").write_text(render(folder).replace(f"    stats socket {folder}/rt.sock", "    #"))
    assert run_agent(folder, "validate-all").returncode == 6  # the monitor needs a runtime API
    assert run_agent(folder, "validate-all", config=folder / "none.cfg").returncode == 5


# ---------------------------------------------------------------- start, monitor

def test_start_then_monitor_and_both_nodes_serve(folder, nodes):
    assert run_agent(folder, "monitor", CRM_meta_interval=0).returncode == 7
    started = run_agent(folder, "start")
    assert started.returncode == 0, started.stderr
    assert run_agent(folder, "monitor", CRM_meta_interval=10000).returncode == 0
    assert run_agent(folder, "start").returncode == 0  # started already
    leader = master(folder)
    found = processes(folder)
    # the master (root) and its worker (the config's user) in the master's process group
    assert found[leader] == (leader, 0) and len(found) == 2
    (worker,) = set(found) - {leader}
    assert found[worker] == (leader, int(subprocess.run(["id", "-u", "haproxy"], capture_output=True,
                                                        text=True).stdout))
    record = (folder / "haproxy.pid.start").read_text()
    assert f"runtime_socket={folder}/rt.sock\n" in record and f"pid={leader}\n" in record
    answers = [get(f"/v3/{index}") for index in range(6)]
    assert all(status == 200 for status, _body in answers), answers
    assert {node for node, _path, _headers in nodes} == {"node1", "node2"}
    headers = nodes[0][2]
    assert headers["x-forwarded-proto"] == "http" and headers["x-forwarded-for"] == "127.0.0.1"


def test_a_kill_9_of_the_master_is_not_running(running):
    leader = master(running)
    os.kill(leader, signal.SIGKILL)
    assert wait_for(lambda: not processes(running), 5), processes(running)  # the worker goes too
    assert run_agent(running, "monitor", CRM_meta_interval=10000).returncode == 7
    assert run_agent(running, "reload").returncode == 7  # nothing to reload
    assert run_agent(running, "stop").returncode == 0
    assert not (running / "haproxy.pid").exists() and not (running / "haproxy.pid.start").exists()


def test_a_runtime_api_that_does_not_answer_fails_the_monitor(running):
    worker = worker_pid(running)
    os.kill(worker, signal.SIGSTOP)
    try:
        started = time.monotonic()
        hung = run_agent(running, "monitor", CRM_meta_interval=10000, CRM_meta_timeout=6000)
        assert hung.returncode == 1
        assert f"runs but its runtime API at {running}/rt.sock does not answer within 2s" in hung.stderr
        assert time.monotonic() - started < 6
    finally:
        os.kill(worker, signal.SIGCONT)
    assert run_agent(running, "monitor", CRM_meta_interval=10000).returncode == 0
    # a runtime socket nobody answers on (the config declares another one)
    elsewhere = run_agent(running, "monitor", runtime_socket=running / "other.sock", CRM_meta_timeout=6000)
    assert elsewhere.returncode == 1 and "other.sock does not answer" in elsewhere.stderr


# ---------------------------------------------------------------- start while the address is taken

@contextlib.contextmanager
def holding(port, reuse_port=False):
    """A listener on VIP:port standing for cinder-api of the old mode. ``reuse_port``: opened with
    SO_REUSEPORT, as eventlet's listen does where the kernel has it: a process of the same user
    (here root, as HAProxy's master) could then bind beside it and share its connections."""
    holder = socket.socket()
    try:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        holder.bind((VIP, port))
        holder.listen()
        yield holder
    finally:
        holder.close()


@pytest.mark.parametrize("reuse_port", [False, True], ids=["plain", "SO_REUSEPORT"])
def test_start_fails_at_once_while_another_process_holds_the_address(folder, reuse_port):
    """cinder-api of the old mode still on VIP:port until the node's Salt run moves it: the start
    fails at once, launching nothing (a start that waited would hold up the whole cluster's
    actions), and succeeds once the address is free. With SO_REUSEPORT HAProxy could bind beside
    it and share its connections: the check, not the bind, refuses."""
    port = RETRY_PORT + reuse_port * 10
    (folder / "cinder-ha.cfg").write_text(render_on(folder, port, transparent=True))
    with holding(port, reuse_port):
        started = time.monotonic()
        start = run_agent(folder, "start", CRM_meta_timeout=20000)
        took = time.monotonic() - started
        assert start.returncode == 1, start.stderr
        assert re.search(rf"another process listens on a frontend address \({re.escape(VIP)}:{port} ", start.stderr)
        assert took < 3, took
        assert not processes(folder)
        assert not any((folder / name).exists() for name in ("haproxy.pid", "haproxy.pid.start", "haproxy.pid.conf",
                                                             "haproxy.pid.stopping"))
        assert run_agent(folder, "monitor", CRM_meta_interval=0).returncode == 7
    print(f"start refused in {took:.2f} s with the address taken ({'SO_REUSEPORT' if reuse_port else 'plain'})")
    start = run_agent(folder, "start", CRM_meta_timeout=20000)
    assert start.returncode == 0, start.stderr
    assert run_agent(folder, "monitor", CRM_meta_interval=10000).returncode == 0
    assert get("/v3/after-release", port)[0] == 200
    assert not (folder / "haproxy.pid.stopping").exists()  # the crash watcher reports again
    assert f"pid={master(folder)}\n" in (folder / "haproxy.pid.start").read_text()


def test_any_other_exit_at_start_fails_at_once(folder):
    """A master that exits for another reason (here its master CLI socket cannot be made) is not
    launched again."""
    started = time.monotonic()
    start = run_agent(folder, "start", master_socket=folder / "missing" / "master.sock")
    took = time.monotonic() - started
    assert start.returncode == 1, start.stderr
    assert "haproxy exited during start" in start.stderr and "launching it again" not in start.stderr
    assert took < 5
    assert not processes(folder) and not (folder / "haproxy.pid").exists()


# ---------------------------------------------------------------- reload

def test_reload_with_a_request_under_way(running, nodes):
    leader, old_worker = master(running), worker_pid(running)
    slow = InFlight()
    assert wait_for(lambda: slow_requests_at(nodes, "node1") or slow_requests_at(nodes, "node2"), 5)
    # the new config adds a frontend: a request there proves the new worker read it
    (running / "cinder-ha.cfg").write_text(render(running, public_vip=VIP, public_port=EXTRA_PORT))
    started = time.monotonic()
    reloaded = run_agent(running, "reload")
    took = time.monotonic() - started
    assert reloaded.returncode == 0, reloaded.stderr
    answered_ms = int(re.search(r"its new worker \d+ answered (\d+) ms after SIGUSR2", reloaded.stderr).group(1))
    print(f"reload: new worker answered {answered_ms} ms after SIGUSR2; the reload action took {took:.2f} s")
    # the request under way did not hold the reload up (bounds loose for a loaded 2-core machine)
    assert answered_ms < SLOW * 1000
    assert master(running) == leader and worker_pid(running) != old_worker
    assert get("/v3/after", EXTRA_PORT)[0] == 200 and get("/v3/after")[0] == 200
    slow.join(30)
    assert slow.result[0] == 200 and slow.result[1].endswith(" /slow"), slow.result
    assert SLOW - 0.5 < slow.took < SLOW + 10  # served to its end, not cut by the reload
    assert wait_for(lambda: old_worker not in processes(running), 5)  # it left once its request ended
    assert run_agent(running, "monitor", CRM_meta_interval=10000).returncode == 0
    assert f"runtime_socket={running}/rt.sock\n" in (running / "haproxy.pid.start").read_text()


def test_monitors_during_reloads_never_fail(running):
    """While the master re-executes itself its command line is empty for an instant, and an old
    worker may answer the runtime API as it leaves: a monitor then must not say 7 or 1 (the
    cluster would restart HAProxy). Found so: of 40 reloads under monitors, 2 reloads failed ("exited
    during its reload"), then, that fixed, 2 monitors of 150 ("answered by pid N, no worker")."""
    codes, done = [], threading.Event()

    def monitor():
        while not done.is_set():
            result = run_agent(running, "monitor", CRM_meta_interval=10000, CRM_meta_timeout=6000)
            codes.append((result.returncode, result.stderr.strip()[-300:]))

    watcher = threading.Thread(target=monitor, daemon=True)
    watcher.start()
    try:
        reloads = [run_agent(running, "reload") for _ in range(20)]
    finally:
        done.set()
        watcher.join(30)
    assert [r.returncode for r in reloads] == [0] * 20, [r.stderr for r in reloads if r.returncode]
    assert len(codes) >= 10 and [code for code in codes if code[0] != 0] == []


def test_reload_refuses_a_config_haproxy_refuses_and_the_old_worker_serves_on(running):
    leader, worker = master(running), worker_pid(running)
    good = render(running)
    (running / "cinder-ha.cfg").write_text(good.replace("    balance leastconn", "    balance leastconn\n    bogus"))
    refused = run_agent(running, "reload")
    assert refused.returncode == 6, refused.stderr
    assert "haproxy refuses" in refused.stderr and "unknown keyword 'bogus'" in refused.stderr
    assert (master(running), worker_pid(running)) == (leader, worker)
    assert get("/v3/still")[0] == 200
    # the master re-executes itself with its own command line: another master socket is a restart
    (running / "cinder-ha.cfg").write_text(good)
    moved = run_agent(running, "reload", master_socket=running / "other-master.sock")
    assert moved.returncode == 1 and "another master_socket needs a restart, not a reload" in moved.stderr
    # A config haproxy -c takes but HAProxy cannot load (an address another process holds): the
    # master says so, its old worker serves on, and the reload fails (1), not at its timeout.
    with socket.socket() as holder:
        holder.bind((VIP, BUSY_PORT))
        holder.listen()
        (running / "cinder-ha.cfg").write_text(render(running, public_vip=VIP, public_port=BUSY_PORT))
        started = time.monotonic()
        failed = run_agent(running, "reload")
        assert failed.returncode == 1, failed.stderr
        assert "could not load" in failed.stderr and "its old worker serves on" in failed.stderr
        assert time.monotonic() - started < 10
    assert (master(running), worker_pid(running)) == (leader, worker)
    assert get("/v3/still")[0] == 200
    assert run_agent(running, "monitor", CRM_meta_interval=10000).returncode == 0


# ---------------------------------------------------------------- the config written by Salt

def test_install_config_then_reload_serves_the_new_config(running):
    config, pid_file = str(running / "cinder-ha.cfg"), str(running / "haproxy.pid")
    leader = master(running)
    assert cinder_haproxy.running(pid_file) is True
    assert cinder_haproxy.running(str(running / "none.pid")) is False
    new = render(running, public_vip=VIP, public_port=EXTRA_PORT)
    assert cinder_haproxy.config_file(config) == render(running)
    assert cinder_haproxy.install_config(config, new) is True
    assert cinder_haproxy.install_config(config, new) is False
    found = os.stat(config)
    assert (found.st_mode & 0o777, found.st_uid, found.st_gid) == (0o640, 0, int(subprocess.run(
        ["getent", "group", "haproxy"], capture_output=True, text=True).stdout.split(":")[2]))
    assert get("/v3/before", EXTRA_PORT)[0] is None  # written, not yet read
    assert cinder_haproxy.reload(str(running / "haproxy"), params(running), INSTANCE, timeout=30) is True
    assert get("/v3/after", EXTRA_PORT)[0] == 200 and master(running) == leader
    # a text HAProxy refuses: nothing written, the running HAProxy untouched
    worker = worker_pid(running)
    with pytest.raises(CommandExecutionError, match="unknown keyword 'bogus'"):
        cinder_haproxy.install_config(config, new.replace("    balance leastconn", "    balance leastconn\n    bogus"))
    assert cinder_haproxy.config_file(config) == new
    assert (master(running), worker_pid(running)) == (leader, worker)
    assert get("/v3/still", EXTRA_PORT)[0] == 200


def test_the_state_writes_and_reloads_or_refuses(running, monkeypatch):
    from _states import cinder_haproxy as state

    config, pid_file = str(running / "cinder-ha.cfg"), str(running / "haproxy.pid")
    funcs = {f"cinder_haproxy.{name}": getattr(cinder_haproxy, name)
             for name in ("config_file", "check_config", "install_config", "running", "reload")}
    monkeypatch.setattr(state, "__salt__", funcs, raising=False)
    monkeypatch.setattr(state, "__opts__", {"test": False}, raising=False)
    leader = master(running)
    args = (pid_file, str(running / "haproxy"), params(running), INSTANCE)
    new = render(running, public_vip=VIP, public_port=EXTRA_PORT)
    ret = state.config_managed(config, new, *args)
    assert ret["result"] is True and ret["comment"] == f"{config} written and HAProxy reloaded", ret
    assert f"+    bind {VIP}:{EXTRA_PORT}" in ret["changes"]["diff"]
    assert get("/v3/state", EXTRA_PORT)[0] == 200 and master(running) == leader
    assert state.config_managed(config, new, *args)["changes"] == {}
    worker = worker_pid(running)
    ret = state.config_managed(config, new + "    bogus\n", *args)
    assert ret["result"] is False and ret["changes"] == {} and "unknown keyword 'bogus'" in ret["comment"]
    assert cinder_haproxy.config_file(config) == new and (master(running), worker_pid(running)) == (leader, worker)
    # HAProxy stopped: the file is written, the cluster starts it from there
    assert run_agent(running, "stop").returncode == 0
    ret = state.config_managed(config, render(running), *args)
    assert ret["result"] is True and "HAProxy not running on this node" in ret["comment"]
    assert cinder_haproxy.config_file(config) == render(running) and not processes(running)


# ---------------------------------------------------------------- drain

def test_drain_a_node_with_a_request_under_way(running, nodes):
    sock = str(running / "rt.sock")
    # the slow request goes to node1: node2 is held out meanwhile
    assert cinder_haproxy.set_server_state(sock, haproxy.BACKEND, "node2", "maint")["state"] == "MAINT"
    slow = InFlight()
    assert wait_for(lambda: slow_requests_at(nodes, "node1"), 5)
    cinder_haproxy.set_server_state(sock, haproxy.BACKEND, "node2", "ready")
    started = time.monotonic()
    drained = cinder_haproxy.set_server_state(sock, haproxy.BACKEND, "node1", "drain")
    assert (drained["state"], drained["sessions"]) == ("DRAIN", 1)
    nodes.clear()
    assert all(get(f"/v3/{index}")[0] == 200 for index in range(6))
    assert {node for node, _path, _headers in nodes} == {"node2"}  # no new request for node1
    left = cinder_haproxy.wait_drained(sock, haproxy.BACKEND, "node1", timeout=15)
    took = time.monotonic() - started
    print(f"drain: node1 drained {took:.2f} s after set drain (its request under way: {SLOW} s)")
    assert left["drained"] is True and (left["state"], left["sessions"], left["queued"]) == ("DRAIN", 0, 0)
    slow.join(5)
    assert slow.result[0] == 200 and slow.result[1] == "node1 /slow"
    # a reload keeps the drain (the agent saves the servers' states to the server-state-file)
    assert run_agent(running, "reload").returncode == 0
    assert cinder_haproxy.server_states(sock)[haproxy.BACKEND]["node1"]["state"] == "DRAIN"
    cinder_haproxy.set_server_state(sock, haproxy.BACKEND, "node1", "ready")
    nodes.clear()
    assert all(get(f"/v3/{index}")[0] == 200 for index in range(6))
    assert {node for node, _path, _headers in nodes} == {"node1", "node2"}


# ---------------------------------------------------------------- stop

def test_stop_finishes_the_request_under_way_and_leaves_nothing(running, nodes):
    leader = master(running)
    slow = InFlight()
    assert wait_for(lambda: slow_requests_at(nodes, "node1") or slow_requests_at(nodes, "node2"), 5)
    started = time.monotonic()
    stopped = run_agent(running, "stop")
    took = time.monotonic() - started
    assert stopped.returncode == 0, stopped.stderr
    assert "soft stop" in stopped.stderr
    slow.join(10)
    assert slow.result[0] == 200, slow.result  # finished, not cut
    assert took < SLOW + 3
    assert run_agent(running, "monitor", CRM_meta_interval=0).returncode == 7
    assert not processes(running)
    assert not [pid for pid, (pgid, _uid) in processes(running).items() if pgid == leader]
    assert not any((running / name).exists() for name in ("haproxy.pid", "haproxy.pid.start", "haproxy.pid.conf",
                                                          "haproxy.pid.stopping", "master.sock"))
    assert get("/v3/gone")[0] is None
    assert run_agent(running, "stop").returncode == 0  # stopping a stopped HAProxy


def test_stop_is_bounded_by_its_timeout(running, nodes):
    """A request that outlives the soft stop (half the stop timeout) is cut (SIGTERM, then
    SIGKILL of the group): the stop ends within its timeout."""
    leader = master(running)
    slow = InFlight()
    assert wait_for(lambda: slow_requests_at(nodes, "node1") or slow_requests_at(nodes, "node2"), 5)
    started = time.monotonic()
    stopped = run_agent(running, "stop", CRM_meta_timeout=4000)
    took = time.monotonic() - started
    assert stopped.returncode == 0, stopped.stderr
    assert "still had requests under way after 2s of soft stop" in stopped.stderr
    assert took < 4
    assert not processes(running) and not (running / "haproxy.pid").exists()
    assert not any(pgid == leader for pgid, _uid in processes(running).values())
    slow.join(10)
    assert slow.result[0] != 200


# ---------------------------------------------------------------- the rendered config, checked by HAProxy

def test_check_config_with_haproxy_itself(folder, tmp_path):
    pem = tmp_path / "cinder-api.pem"
    key = tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(pem), "-days", "1", "-subj", "/CN=cinder-api"], check=True, capture_output=True, timeout=60)
    pem.write_text(pem.read_text() + key.read_text())
    text = haproxy.render_config([("node1", "2001:db8::11", 8776), ("node2", "192.0.2.12", 8776)], "2001:db8::10",
                                 "/run/cinder-ha/haproxy.sock", public_vip="203.0.113.10", public_port=443,
                                 public_cert=str(pem), user="haproxy")
    assert cinder_haproxy.check_config(text) == (True, "Configuration file is valid")
    ok, message = cinder_haproxy.check_config(text.replace("    balance leastconn", "    balance nowhere"))
    assert ok is False and "<config>:" in message
    assert str(tempfile.gettempdir()) not in message
