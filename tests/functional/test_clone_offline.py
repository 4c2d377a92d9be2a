"""cluster:mode cloned through Salt's loader on an offline CIB (CIB_file) of three nodes with
Pacemaker's real tools: the switch from the primitive to its clone and back is ONE CIB
version each way, test=True says what the cluster would do (crm_simulate on the file's
status: the running instance is kept, the other nodes get theirs), crm_verify accepts every
candidate, and a second apply changes nothing. No cluster runs: crm_simulate moves the file's
status section forward in place of one."""
import os
import pathlib
import subprocess
import xml.etree.ElementTree as ET

import pytest

from tests.conftest import cluster_env

NODES = ("n1", "n2", "n3")


def tool(cib_file, *argv, check=True):
    res = subprocess.run(list(argv), capture_output=True, text=True, timeout=60,
                         env=cluster_env(CIB_file=str(cib_file)))
    if check:
        assert res.returncode == 0, (argv, res.stdout[-1500:], res.stderr[-1500:])
    return res


def settle(cib_file):
    """What a cluster would do next, done on the file (crm_simulate --simulate, saved in place)."""
    tool(cib_file, "crm_simulate", "--xml-file", str(cib_file), "--simulate", "--save-output", str(cib_file))


@pytest.fixture
def three_nodes(cib_file, monkeypatch):
    """An offline CIB with three online, quorate nodes (crm_simulate injects them)."""
    root = ET.parse(cib_file).getroot()
    root.set("have-quorum", "1")
    cib_file.write_text(ET.tostring(root, encoding="unicode"))
    tool(cib_file, "crm_simulate", "--xml-file", str(cib_file), *[a for n in NODES for a in ("--node-up", n)],
         "--simulate", "--save-output", str(cib_file))
    monkeypatch.setenv("CIB_file", str(cib_file))
    return cib_file


def objects(mode):
    vip = {"primitive": "t13_ip", "agent": "ocf:heartbeat:Dummy", "ops": {"monitor": {"interval": "10s"}},
           "meta": {"resource-stickiness": "100"}}
    api = {"primitive": "t13_api", "agent": "ocf:heartbeat:Dummy", "params": {"fake": "1"},
           "ops": {"monitor": {"interval": "5s"}}}
    if mode == "active_passive":
        return [vip, api, {"colocation": "t13_c_api_with_ip", "resources": ["t13_api", "t13_ip"]},
                {"order": "t13_o_ip_before_api", "first": "t13_ip", "then": "t13_api"}]
    api["meta"] = {"migration-threshold": "1", "failure-timeout": "60s", "multiple-active": "stop_unexpected"}
    return [vip, api,
            {"clone": "t13_cl_api", "resource": "t13_api", "meta": {"clone-node-max": 1, "interleave": True}},
            {"colocation": "t13_c_ip_with_cl", "resources": ["t13_ip", "t13_cl_api"]},
            {"order": "t13_o_cl_before_ip", "first": "t13_cl_api", "then": "t13_ip"}]


def epoch(cib_file):
    return int(ET.parse(cib_file).getroot().get("epoch"))


def running(cib_file):
    """{resource id: [nodes]} from crm_mon on the file (clone instances add up)."""
    out = tool(cib_file, "crm_mon", "--one-shot", "--output-as=xml").stdout
    found = {}
    for resource in ET.fromstring(out).iter("resource"):
        found.setdefault(resource.get("id"), []).extend(n.get("name") for n in resource.findall("node"))
    return found


def test_switch_to_the_clone_and_back_is_one_transaction_each_way(loaders, three_nodes):
    states = loaders.states.crm
    cib_file = three_nodes
    start = epoch(cib_file)
    assert states.configured(name="t13", objects=objects("active_passive")).result is True
    one_patch = epoch(cib_file) - start  # what one cibadmin --patch does to a CIB file's epoch
    settle(cib_file)
    [active] = running(cib_file)["t13_api"]
    assert running(cib_file)["t13_ip"] == [active]

    before = epoch(cib_file)
    dry = states.configured(name="t13", objects=objects("cloned"), test=True)
    assert dry.result is None, dry.comment
    assert epoch(cib_file) == before  # test=True writes nothing
    assert dry.changes["objects"]["t13_cl_api"]["action"] == "create"
    assert dry.changes["objects"]["t13_c_api_with_ip"] == {
        "action": "delete", "removed": {"old": "names t13_api, now inside clone t13_cl_api", "new": None}}
    others = sorted(n for n in NODES if n != active)
    # the running instance is adopted (no stop, no restart, the VIP stays); the others start
    assert sorted(dry.changes["cluster"]) == sorted(f"start t13_api:{i} on {n}" for i, n in
                                                    zip((1, 2), others)), dry.comment
    assert "cluster would: start t13_api:" in dry.comment

    switched = states.configured(name="t13", objects=objects("cloned"))
    assert switched.result is True, switched.comment
    assert epoch(cib_file) == before + one_patch  # one patch: one transaction
    assert tool(cib_file, "crm_verify", "--live-check").returncode == 0
    assert states.configured(name="t13", objects=objects("cloned")).changes == {}  # second apply
    settle(cib_file)
    now = running(cib_file)
    assert sorted(now["t13_api"]) == sorted(NODES) and now["t13_ip"] == [active]

    before = epoch(cib_file)
    dry = states.configured(name="t13", objects=objects("active_passive"), test=True)
    assert dry.result is None
    assert dry.changes["objects"]["t13_cl_api"]["removed"]["old"] == "t13_api taken out of clone t13_cl_api"
    assert {"t13_c_ip_with_cl", "t13_o_cl_before_ip"} <= set(dry.changes["objects"])
    assert dry.changes["cluster"] == [f"restart t13_api on {active}"], dry.changes["cluster"]
    assert "crm_verify warnings" in dry.comment and "expected: its clone is unwrapped" in dry.comment
    back = states.configured(name="t13", objects=objects("active_passive"))
    assert back.result is True, back.comment
    assert epoch(cib_file) == before + one_patch
    # Pacemaker's summary says "Restart", but with multiple-active=stop_unexpected (declared in
    # cloned mode, kept by the unwrap) the instance under the VIP is never stopped: only the
    # two others are
    out = tool(cib_file, "crm_simulate", "--xml-file", str(cib_file), "--simulate").stdout
    stops = sorted(line.split()[-1] for line in out.splitlines() if "Resource action:" in line and " stop " in line)
    assert stops == sorted(n for n in NODES if n != active), out
    assert states.configured(name="t13", objects=objects("active_passive")).changes == {}
    settle(cib_file)
    now = running(cib_file)
    assert len(now["t13_api"]) == 1 and now["t13_ip"] == now["t13_api"]


def test_a_failed_instance_moves_the_vip_away_at_once(loaders, three_nodes):
    """migration-threshold 1: the VIP goes to a warm instance, no local restart first."""
    cib_file = three_nodes
    assert loaders.states.crm.configured(name="t13", objects=objects("cloned")).result is True
    settle(cib_file)
    [holder] = running(cib_file)["t13_ip"]
    out = tool(cib_file, "crm_simulate", "--xml-file", str(cib_file), "--simulate",
               "--op-inject", f"t13_api_monitor_5000@{holder}=7").stdout
    summary = out.split("Transition Summary:")[1].split("Executing")[0]
    assert "Move       t13_ip" in summary and f"( {holder} -> " in summary, summary
    assert "Recover" not in summary and "Restart    t13_ip" not in summary


def test_a_failed_instance_elsewhere_leaves_the_vip_alone(loaders, three_nodes):
    cib_file = three_nodes
    assert loaders.states.crm.configured(name="t13", objects=objects("cloned")).result is True
    settle(cib_file)
    [holder] = running(cib_file)["t13_ip"]
    other = next(n for n in NODES if n != holder)
    out = tool(cib_file, "crm_simulate", "--xml-file", str(cib_file), "--simulate",
               "--op-inject", f"t13_api_monitor_5000@{other}=7").stdout
    summary = out.split("Transition Summary:")[1].split("Executing")[0]
    assert "t13_ip" not in summary, summary


def test_crm_status_shows_each_instance(loaders, three_nodes):
    crm = loaders.modules.crm
    assert crm.configure(objects("cloned"))["result"] is True
    settle(three_nodes)
    status = crm.status()["resources"]
    assert sorted(status["t13_cl_api"]["nodes"]) == sorted(NODES)
    assert len(status["t13_cl_api"]["instances"]) == 3
    assert sorted(crm.locate("t13_api")) == sorted(NODES)


AGENT = pathlib.Path(__file__).resolve().parents[2] / "salt" / "cinder_ha" / "files" / "ocf" / "cinder-api"


def agent_env(tmp_path, listen, binary, **instance):
    """The environment Pacemaker gives the agent for a cinder.conf listening on ``listen``
    (written in tmp_path, the pid file in tmp_path/run), plus ``instance`` (clone meta)."""
    conf = tmp_path / "cinder.conf"
    conf.write_text(f"[DEFAULT]\nosapi_volume_listen = {listen}\nosapi_volume_listen_port = 8776\n")
    (tmp_path / "run").mkdir(mode=0o755)
    return cluster_env(OCF_ROOT="/usr/lib/ocf", OCF_RESOURCE_INSTANCE="t13_api", OCF_RESKEY_binary=str(binary),
                       OCF_RESKEY_config=str(conf), OCF_RESKEY_user="root",
                       OCF_RESKEY_pid=str(tmp_path / "run" / "t13.pid"), OCF_RESKEY_CRM_meta_timeout="20000",
                       HA_LOGFILE=str(tmp_path / "agent.log"), **instance)


def loopback_addresses(*netns):
    """``ip -o addr show dev lo`` of this namespace, or of ``netns``."""
    return subprocess.run(["ip", *(["-n", netns[0]] if netns else []), "-o", "addr", "show", "dev", "lo"],
                          capture_output=True, text=True, timeout=10, check=True).stdout


@pytest.mark.parametrize("listen, instance", [("198.18.255.213", {}),
                                              ("cinder-api.invalid", {"OCF_RESKEY_CRM_meta_clone": "0"})],
                         ids=["primitive", "clone-instance-of-a-name"])
def test_the_agent_refuses_a_listen_address_this_node_does_not_hold(tmp_path, listen, instance):
    """A listen address the node does not hold, outside a clone instance (which puts an IP address
    on lo itself, below) or a name: a check of it would answer for another node's cinder-api, so
    start fails at once, with the reason, and nothing is launched (nor added to lo)."""
    env = agent_env(tmp_path, listen, "/bin/sleep", **instance)
    lo_before = loopback_addresses()
    res = subprocess.run(["bash", str(AGENT), "start"], capture_output=True, text=True, timeout=60, env=env)
    assert res.returncode == 1, (res.stdout, res.stderr)
    assert "is not an address of this node, and it was not put on lo" in res.stderr
    assert not (tmp_path / "run" / "t13.pid").exists()
    assert loopback_addresses() == lo_before


FAKE_API = """#!/usr/bin/python3
# stands in for cinder-api (the agent passes --config-file): answers /healthcheck on the listen address
import http.server
class Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"OK")
    def log_message(self, *args):
        pass
http.server.HTTPServer(("198.18.255.213", 8776), Health).serve_forever()
"""


@pytest.fixture
def node_netns():
    """A network namespace of our own, standing in for a node just rebooted: lo up, no VIP on it,
    ARP sysctls at their defaults."""
    name = f"cha-reboot-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", name], check=True, timeout=10)
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True, timeout=10)
        yield name
    finally:
        pids = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True, timeout=10).stdout.split()
        for pid in pids:
            subprocess.run(["kill", "-9", pid], timeout=10)
        subprocess.run(["ip", "netns", "delete", name], timeout=10)


def test_a_clone_instance_puts_the_vip_back_on_its_loopback(tmp_path, node_netns):
    """cluster:mode cloned after a reboot: the node's instance starts before the formula runs
    again. A clone instance (CRM_meta_clone set) puts the VIP back on lo, ARP silenced first,
    and starts: the node rejoins warm instead of with a failed start. Stop leaves the address."""
    fake_api = tmp_path / "cinder-api"
    fake_api.write_text(FAKE_API)
    fake_api.chmod(0o755)
    env = agent_env(tmp_path, "198.18.255.213", fake_api, OCF_RESKEY_CRM_meta_clone="1",
                    OCF_RESKEY_vip="198.18.255.213")

    def in_node(*argv, check=True):
        res = subprocess.run(["ip", "netns", "exec", node_netns, *argv], capture_output=True, text=True,
                             timeout=60, env=env)
        assert not check or res.returncode == 0, (argv, res.stdout[-1500:], res.stderr[-1500:])
        return res

    def sysctl(name):
        return in_node("cat", f"/proc/sys/net/ipv4/conf/all/{name}").stdout.strip()

    assert "198.18.255.213" not in loopback_addresses(node_netns)
    assert (sysctl("arp_ignore"), sysctl("arp_announce")) == ("0", "0")

    in_node("bash", str(AGENT), "start")
    assert "198.18.255.213/32" in loopback_addresses(node_netns)
    assert (sysctl("arp_ignore"), sysctl("arp_announce")) == ("1", "2")
    assert in_node("bash", str(AGENT), "monitor", check=False).returncode == 0
    assert "put 198.18.255.213/32 on lo" in (tmp_path / "agent.log").read_text()

    in_node("bash", str(AGENT), "stop")
    assert in_node("bash", str(AGENT), "monitor", check=False).returncode == 7
    assert "198.18.255.213/32" in loopback_addresses(node_netns)
    assert "198.18.255.213" not in loopback_addresses()  # the host's own loopback was never touched
