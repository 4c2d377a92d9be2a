#!/usr/bin/env python3
"""Outage of the Block Storage API on the VIP per fault kind, three namespace nodes.

    python3 bench/failover_bench.py [--rounds 5] [--profiles default,tuned] [--kinds kill,powercut,partition,standby]

For each profile (corosync token, pillar agent:monitor_interval) it builds the three nodes the
way an operator would: `sandbox/multinode.py up --formula` starts them with a salt-minion each and
a salt-master, and `salt '*' state.apply cinder_ha` (pillar: multinode.formula_pillar(), the
sandbox's real MariaDB, RabbitMQ and Keystone, the authenticated monitor with an lrm secret,
cluster:stickiness 100) creates every cluster object and the catalog. Then per fault kind and
round: finds the active node, polls GET http://198.18.0.100:8776/healthcheck every 100 ms from the
root namespace, injects the fault, and records the outage = last good answer before the first
failure to the first good answer after it. Then it repairs (node back, heal, online) and waits
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


def one_round(mn, kind):
    active = mn.locate()
    survivor = next(n for n in ("n1", "n2", "n3") if n != active)
    with mn.OutageProbe() as probe:
        time.sleep(0.5)
        since = time.monotonic()
        if kind == "kill":
            mn.kill_cinder_api(active)
        elif kind == "powercut":
            mn.power_cut(active)
        elif kind == "partition":
            mn.set_partitioned(active, True)
        elif kind == "standby":
            mn.set_standby(active, True)
        recovered = probe.wait_recovered(since, timeout=120)
        outage = probe.outage(since) if recovered else None
    # repair, so the next round starts from three healthy nodes
    if kind == "powercut":
        mn.restart_node(active)
    elif kind == "partition":
        mn.set_partitioned(active, False)
        mn.wait_online(["n1", "n2", "n3"], via=survivor)
    elif kind == "standby":
        mn.set_standby(active, False)
    mn.wait_settled(via=survivor)
    mn.wait_answering(timeout=60)
    return outage, active, mn.locate(via=survivor)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--profiles", default="default,tuned")
    parser.add_argument("--kinds", default="kill,powercut,partition,standby")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root")
    mn = load_multinode()
    rows = []
    for profile in args.profiles.split(","):
        settings = PROFILES[profile]
        multinode_cli("down")
        up = ["up", "--nodes", "3", "--formula", "--monitor", settings["monitor"], "--stickiness", "100"]
        up += ["--token", str(settings["token"])] if settings["token"] else []
        started = time.monotonic()
        multinode_cli(*up)
        try:
            mn.wait_answering(timeout=90)
            print(f"[{profile}] built by the formula and answering in {time.monotonic() - started:.1f}s",
                  file=sys.stderr)
            for kind in args.kinds.split(","):
                outages = []
                for i in range(args.rounds):
                    outage, was, now = one_round(mn, kind)
                    print(f"[{profile}] {kind} round {i + 1}: outage "
                          f"{'none seen' if outage is None else f'{outage:.2f}s'} ({was} -> {now})", file=sys.stderr)
                    outages.append(outage)
                seen = [o for o in outages if o is not None]
                rows.append((kind, settings, len(outages), len(seen),
                             statistics.median(seen) if seen else None, max(seen) if seen else None))
        finally:
            multinode_cli("down")
    labels = {"kill": "kill -9 of cinder-api", "powercut": "active node power cut",
              "partition": "active node partitioned", "standby": "`crm node standby` of the active node"}
    print("| fault | corosync token | monitor interval | rounds | outage median | outage max |")
    print("|---|---|---|---|---|---|")
    for kind, settings, rounds, seen, median, worst in rows:
        fmt = (lambda v: "no gap seen" if v is None else f"{v:.2f} s")
        note = "" if seen == rounds else f" ({rounds - seen} without a gap)"
        print(f"| {labels[kind]} | {settings['token_text']} | {settings['monitor']} | {rounds}{note} | "
              f"{fmt(median)} | {fmt(worst)} |")


if __name__ == "__main__":
    main()
