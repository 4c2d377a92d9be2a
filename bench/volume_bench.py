#!/srv/cinder-ha/venv/salt/bin/python
"""Outage of Block Storage itself (not only of its API): per fault, the time from the fault
until a volume create issued at the fault is `available`, and the failed requests.

    /srv/cinder-ha/venv/salt/bin/python bench/volume_bench.py sandbox [--rounds 3] [--kinds kill,hang,scheduler]
    /srv/cinder-ha/venv/salt/bin/python bench/volume_bench.py multinode [--rounds 3]
        [--modes active_passive,active_active] [--kinds kill,powercut,partition,standby]

(the sandbox's Salt venv: the client is keystoneauth1's, which the host's python3 lacks)

sandbox: the live single-node sandbox after `scripts/demo` (cinder-volume active_passive on
its Ceph): kill -9 of cinder-volume's main process, a hang (SIGSTOP of its process group:
found by the heartbeat monitor), kill -9 of cinder-scheduler.

multinode: three namespace nodes built by the formula (`multinode.py up --formula`, corosync
token 1000, monitor 5s), the volume service switched on with `multinode.py`'s reconfigure on
the nodes' Ceph (198.18.0.254); each fault hits the node running cinder-volume (active_passive)
or one instance of it (active_active).

For each round: a client that knows only Keystone issues a 1 GiB create right after the fault
(retrying a POST the API itself could not take: each failed try is a failed request), waits
until it is `available` or `error` (then a retry is made and counted), and deletes it. Prints a
markdown table. Run as root with the sandbox's services up.
"""
import argparse
import importlib.util
import json
import os
import signal
import statistics
import subprocess
import sys
import time

PROJECT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, PROJECT)
from tests.support.volumes import Volumes, alive, pid_of  # noqa: E402 - the tests' client, one home

SANDBOX = os.environ.get("CINDER_HA_SANDBOX", "/srv/cinder-ha")
VOLUME_RSC, SCHEDULER_RSC = "p_cinder-volume", "p_cinder-scheduler"
NODES = ("n1", "n2", "n3")


def load(name):
    spec = importlib.util.spec_from_file_location(f"cinder_ha_{name}", os.path.join(PROJECT, "sandbox", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def facts():
    with open(os.path.join(SANDBOX, "sandbox.json")) as handle:
        return json.load(handle)


def measure(client, inject, label):
    """(seconds from the fault to `available`, failed requests, outcome) of a create issued at the fault."""
    client.failed_requests = 0
    fault_at = time.monotonic()
    inject()
    vol = client.create(f"bench-{label}", retry_for=120)
    outcome = client.wait(vol, timeout=400)
    took = time.monotonic() - fault_at
    if outcome == "error":  # the dying cinder-volume had it: a retry, timed from the fault too
        client.delete(vol)
        vol = client.create(f"bench-{label}-retry", retry_for=60)
        outcome = "error, retry " + client.wait(vol, timeout=300)
        took = time.monotonic() - fault_at
    client.delete(vol)
    return took, client.failed_requests, outcome


# ---------------------------------------------------------------- single node

def wait_replaced(rsc, old, timeout=240):
    """Until the cluster runs ``rsc`` under another pid than the faulted one."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pid = pid_of(rsc)
        if pid and pid != old and alive(pid):
            return
        time.sleep(0.5)
    raise SystemExit(f"{rsc} was not started again within {timeout}s")


def settle(env):
    subprocess.run(["crm_resource", "--wait", "--timeout", "120s"], env=env, capture_output=True, timeout=150)
    subprocess.run(["crm_resource", "--cleanup"], env=env, capture_output=True, timeout=60)
    subprocess.run(["crm_resource", "--wait", "--timeout", "120s"], env=env, capture_output=True, timeout=150)


def sandbox_bench(args):
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
    client = Volumes(facts())
    faults = {
        "kill": ("kill -9 of cinder-volume's main process", VOLUME_RSC,
                 lambda pid: os.kill(pid, signal.SIGKILL)),
        "hang": ("cinder-volume hung (SIGSTOP of its group)", VOLUME_RSC, lambda pid: os.killpg(pid, signal.SIGSTOP)),
        "scheduler": ("kill -9 of cinder-scheduler", SCHEDULER_RSC, lambda pid: os.killpg(pid, signal.SIGKILL)),
    }
    rows = []
    for kind in args.kinds.split(","):
        label, rsc, fault = faults[kind]
        results = []
        for i in range(args.rounds):
            old = pid_of(rsc)
            results.append(measure(client, lambda fault=fault, old=old: fault(old), kind))
            print(f"[sandbox] {kind} round {i + 1}: available {results[-1][0]:.1f}s after the fault, "
                  f"{results[-1][1]} failed requests ({results[-1][2]})", file=sys.stderr, flush=True)
            wait_replaced(rsc, old)
            settle(env)
        rows.append(("single node", "active_passive", label, results))
    return rows


# ---------------------------------------------------------------- three nodes

def multinode_bench(args):
    mn = load("multinode")
    run = [sys.executable, os.path.join(PROJECT, "sandbox", "multinode.py")]
    subprocess.run(run + ["down"], check=True, capture_output=True, timeout=300)
    subprocess.run(run + ["up", "--nodes", "3", "--token", "1000", "--formula", "--monitor", "5s",
                          "--stickiness", "100"], check=True, capture_output=True, timeout=900)
    rows = []
    try:
        for mode in args.modes.split(","):
            mn.reconfigure(volume=mode)
            mn.wait_settled(timeout=180)
            client = Volumes(facts(), region=mn.REGION)
            for kind in args.kinds.split(","):
                results = []
                for i in range(args.rounds):
                    node = mn.locate(resource=VOLUME_RSC, via=mn.running_node())
                    survivor = next(n for n in NODES if n != node)

                    def inject(kind=kind, node=node):
                        if kind == "kill":
                            pid = mn.node_exec(node, ["cat", f"/run/resource-agents/{VOLUME_RSC}.pid"]).stdout.strip()
                            mn.node_exec(node, ["kill", "-9", pid])
                        else:
                            mn.inject_fault(kind, node)

                    results.append(measure(client, inject, kind))
                    print(f"[{mode}] {kind} of {node} round {i + 1}: available {results[-1][0]:.1f}s after the "
                          f"fault, {results[-1][1]} failed requests ({results[-1][2]})", file=sys.stderr, flush=True)
                    if kind == "powercut":
                        mn.restart_node(node)
                    elif kind == "partition":
                        mn.set_partitioned(node, False)
                        mn.wait_online(list(NODES), via=survivor)
                    elif kind == "standby":
                        mn.set_standby(node, False)
                    mn.wait_settled(via=survivor, timeout=180)
                    mn.node_exec(survivor, ["crm_resource", "--cleanup"])
                    mn.wait_settled(via=survivor, timeout=180)
                rows.append(("three nodes", mode, {"kill": "kill -9 of cinder-volume", "powercut": "power cut",
                                                   "partition": "partition", "standby": "standby"}[kind]
                             + " (its node)", results))
    finally:
        subprocess.run(run + ["down"], capture_output=True, timeout=300)
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("where", choices=("sandbox", "multinode"))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--kinds", default=None)
    parser.add_argument("--modes", default="active_passive,active_active")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root")
    if args.where == "sandbox":
        args.kinds = args.kinds or "kill,hang,scheduler"
        rows = sandbox_bench(args)
    else:
        args.kinds = args.kinds or "kill,powercut,partition,standby"
        rows = multinode_bench(args)
    print("| where | mode | fault | rounds | create -> available, median | max | failed requests | outcomes |")
    print("|---|---|---|---|---|---|---|---|")
    for where, mode, label, results in rows:
        times = [r[0] for r in results]
        outcomes = sorted({r[2] for r in results})
        print(f"| {where} | {mode} | {label} | {len(results)} | {statistics.median(times):.1f} s | {max(times):.1f} s | "
              f"{sum(r[1] for r in results)} | {', '.join(outcomes)} |")


if __name__ == "__main__":
    main()
