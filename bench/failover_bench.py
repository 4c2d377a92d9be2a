#!/usr/bin/env python3
"""Outage of the Block Storage API on the VIP per fault kind, three namespace nodes.

    python3 bench/failover_bench.py [--rounds 5] [--profiles default,tuned[,fast]] [--modes active_passive,cloned]
                                    [--kinds kill,powercut,partition,standby,config]

For each profile (corosync token, pillar agent:monitor_interval) it builds the three nodes the
way an operator would: `sandbox/multinode.py up --formula` starts them with a salt-minion each and
a salt-master, and `salt '*' state.apply cinder_ha` (pillar: multinode.formula_pillar(), the
sandbox's real MariaDB, RabbitMQ and Keystone, the authenticated monitor with an lrm secret,
cluster:stickiness 100) creates every cluster object and the catalog, in the pillar's
cluster:mode (active_passive, the guide's; cloned: an instance per node, only the VIP moves).
Then per fault kind and round: finds the node holding the VIP, polls
GET http://198.18.0.100:8776/healthcheck every 100 ms from the root namespace, injects the
fault, and records the outage = last good answer before the first failure to the first good
answer after it, and the failed polls. "config" is a changed cinder.conf option (pillar
cinder_conf:extra DEFAULT osapi_max_limit, a new value each round) applied by
`salt '*' state.apply cinder_ha`. Then it repairs (node back, heal, online, cleanup) and waits
for the cluster to settle. Prints a markdown table. Run as root, with the sandbox's services up
(`python3 sandbox/sandbox.py up mariadb rabbitmq keystone cinder`); takes ~15 min for both
profiles on 2 cores. Leaves nothing running (multinode.py down).
"""
import argparse
import importlib.util
import os
import statistics
import subprocess
import sys
import time

PROJECT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(PROJECT, "sandbox", "multinode.py")
PROFILES = {
    # corosync 3's default token (3000 ms + 650 ms per node above two) and the pillar's
    # default monitor interval
    "default": {"token": None, "monitor": "30s", "token_text": "default (3650 ms effective)"},
    # what the formula recommends: token 1000 (1650 ms effective), monitor 5s
    "tuned": {"token": 1000, "monitor": "5s", "token_text": "1000 (1650 ms effective)"},
    # node loss is corosync's token + consensus (1.2 x token) before Pacemaker knows: a shorter
    # token for a quiet, low-latency cluster network
    "fast": {"token": 500, "monitor": "5s", "token_text": "500 (1150 ms effective)"},
}


def load_multinode():
    spec = importlib.util.spec_from_file_location("cinder_ha_multinode", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def multinode_cli(*argv):
    res = subprocess.run([sys.executable, SCRIPT, *argv], capture_output=True, text=True, timeout=900)
    if res.returncode != 0:
        raise SystemExit(f"multinode.py {' '.join(argv)} failed: {res.stderr[-800:]}")


NODES = ("n1", "n2", "n3")


def moved_or_recovered(mn, probe, since, active, survivor, kind, timeout=120):
    """Wait until the fault is behind: the VIP answers from elsewhere (or again, after kill -9)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if probe.outage(since) is not None:
            return
        where = mn.locate(mn.VIP_ID, via=survivor)
        if kind not in ("kill",) and where not in (None, active) and mn.probe():
            time.sleep(1.0)  # a gap that ends now is still measured
            return
        time.sleep(0.2)


def instances_everywhere(mn, via, timeout=90):
    """cloned mode: clean up the failures a fault leaves (the banned instance) until every node
    runs its instance again."""
    for _attempt in range(3):
        mn.wait_settled(via=via)
        mn.node_exec(via, ["crm_resource", "--cleanup"], check=True)
        mn.wait_settled(via=via)
        deadline = time.monotonic() + timeout / 3
        while time.monotonic() < deadline:
            out = mn.node_exec(via, ["crm_resource", "--locate", "-r", mn.PRIMITIVE_ID], timeout=15).stdout
            if out.count("is running on:") == len(NODES):
                return
            time.sleep(0.5)


def one_round(mn, kind, mode, round_no):
    active = mn.locate(mn.VIP_ID)
    survivor = next(n for n in NODES if n != active)
    with mn.OutageProbe() as probe:
        time.sleep(0.5)
        since = time.monotonic()
        if kind == "config":
            mn.reconfigure(options={"DEFAULT": {"osapi_max_limit": 500 + round_no}})
            mn.wait_settled(via=active)
            time.sleep(1.0)
        else:
            mn.inject_fault(kind, active)
            moved_or_recovered(mn, probe, since, active, survivor, kind)
        outage = probe.outage(since)
        failed = sum(1 for r in probe.results if r[0] >= since and not r[2])
    # repair, so the next round starts from three healthy nodes
    if kind == "powercut":
        mn.restart_node(active)  # cloned: its instance puts the VIP back on lo, no state.apply
    elif kind == "partition":
        mn.set_partitioned(active, False)
        mn.wait_online(list(NODES), via=survivor)
    elif kind == "standby":
        mn.set_standby(active, False)
    if mode == "cloned":
        instances_everywhere(mn, survivor)
    elif kind == "kill":
        mn.wait_settled(via=survivor)
        mn.node_exec(survivor, ["crm_resource", "--cleanup"], check=True)
    mn.wait_settled(via=survivor)
    mn.wait_answering(timeout=60)
    return outage, failed, active, mn.locate(mn.VIP_ID, via=survivor)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--profiles", default="default,tuned")
    parser.add_argument("--modes", default="active_passive,cloned")
    parser.add_argument("--kinds", default="kill,powercut,partition,standby,config")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root")
    mn = load_multinode()
    rows = []
    for mode in args.modes.split(","):
        for profile in args.profiles.split(","):
            settings = PROFILES[profile]
            multinode_cli("down")
            up = ["up", "--nodes", "3", "--formula", "--monitor", settings["monitor"], "--stickiness", "100",
                  "--mode", mode]
            up += ["--token", str(settings["token"])] if settings["token"] else []
            started = time.monotonic()
            multinode_cli(*up)
            try:
                mn.wait_answering(timeout=90)
                print(f"[{mode} {profile}] built by the formula and answering in {time.monotonic() - started:.1f}s",
                      file=sys.stderr)
                for kind in args.kinds.split(","):
                    outages, failures = [], []
                    for i in range(args.rounds):
                        outage, failed, was, now = one_round(mn, kind, mode, i)
                        print(f"[{mode} {profile}] {kind} round {i + 1}: outage "
                              f"{'none' if outage is None else f'{outage:.2f}s'}, {failed} failed polls "
                              f"(VIP {was} -> {now})", file=sys.stderr, flush=True)
                        outages.append(outage)
                        failures.append(failed)
                    gaps = [o if o is not None else 0.0 for o in outages]
                    rows.append((mode, kind, settings, len(outages), statistics.median(gaps), max(gaps),
                                 sum(failures)))
            finally:
                multinode_cli("down")
    labels = {"kill": "kill -9 of cinder-api (VIP's node)", "powercut": "power cut of the VIP's node",
              "partition": "VIP's node partitioned", "standby": "`crm node standby` of the VIP's node",
              "config": "config change (`state.apply`)"}
    print("| mode | fault | corosync token | monitor interval | rounds | outage median | outage max | failed polls |")
    print("|---|---|---|---|---|---|---|---|")
    for mode, kind, settings, rounds, median, worst, failed in rows:
        def fmt(v):
            return "none" if not v else f"{v:.2f} s"

        print(f"| {mode} | {labels[kind]} | {settings['token_text']} | {settings['monitor']} | {rounds} | "
              f"{fmt(median)} | {fmt(worst)} | {failed} |")


if __name__ == "__main__":
    main()
