#!/usr/bin/env python3
"""Cost of a no-op `state.apply cinder_ha` on the sandbox minion, against an empty SLS.

    PYTHONPATH=/srv/cinder-ha/site /srv/cinder-ha/venv/salt/bin/python bench/formula_bench.py [--rounds 5]

Runs masterless and in-process (salt.client.Caller) with the sandbox's pillar and the
project's state tree, so it can count what one run costs: wall time, subprocesses started
(subprocess.Popen) and HTTP requests sent (http.client). Needs the sandbox up and
cinder_ha applied once (scripts/demo). Prints a table.
"""
import argparse
import http.client
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

PROJECT = pathlib.Path(__file__).resolve().parent.parent
SANDBOX = pathlib.Path(os.environ.get("CINDER_HA_SANDBOX", "/srv/cinder-ha"))

COUNTS = {"subprocess": 0, "http": 0}


def count_calls():
    popen_init = subprocess.Popen.__init__
    http_request = http.client.HTTPConnection.putrequest  # urllib3 overrides request(), not this

    def counting_popen(self, *args, **kwargs):
        COUNTS["subprocess"] += 1
        return popen_init(self, *args, **kwargs)

    def counting_request(self, *args, **kwargs):
        COUNTS["http"] += 1
        return http_request(self, *args, **kwargs)

    subprocess.Popen.__init__ = counting_popen
    http.client.HTTPConnection.putrequest = counting_request


def caller(root):
    import salt.client
    import salt.config

    (root / "empty").mkdir(exist_ok=True)
    (root / "empty" / "bench_empty.sls").write_text("{}\n")
    conf = root / "minion"
    conf.write_text(json.dumps({
        "file_client": "local",
        "root_dir": str(root / "root"),
        "id": "node1",
        "file_roots": {"base": [str(PROJECT / "salt"), str(PROJECT), str(root / "empty")]},
        "pillar_roots": {"base": [str(SANDBOX / "salt" / "pillar")]},
        "log_level_logfile": "warning",
    }))
    opts = salt.config.minion_config(str(conf))
    return salt.client.Caller(mopts=opts)


def measure(call, sls, rounds):
    times, subprocesses, requests, changes = [], [], [], 0
    for _ in range(rounds):
        COUNTS.update(subprocess=0, http=0)
        started = time.perf_counter()
        ret = call.cmd("state.apply", sls)
        times.append((time.perf_counter() - started) * 1000)
        subprocesses.append(COUNTS["subprocess"])
        requests.append(COUNTS["http"])
        if not isinstance(ret, dict):
            sys.exit(f"state.apply {sls} failed: {ret}")
        failed = [k for k, v in ret.items() if v["result"] is not True]
        if failed:
            sys.exit(f"state.apply {sls}: failed states {failed}")
        changes += sum(1 for v in ret.values() if v["changes"])
    return times, subprocesses, requests, changes


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    count_calls()
    with tempfile.TemporaryDirectory(prefix="cinder-ha-bench-") as tmp:
        call = caller(pathlib.Path(tmp))
        call.cmd("state.apply", "cinder_ha")  # warm up, and converge if anything drifted
        rows = []
        for sls in ("bench_empty", "cinder_ha"):
            times, subprocesses, requests, changes = measure(call, sls, args.rounds)
            rows.append((sls, statistics.median(times), max(times), statistics.median(subprocesses),
                         statistics.median(requests), changes))
    print(f"no-op state.apply, {args.rounds} rounds each, in-process masterless minion on the sandbox\n")
    print("| SLS | median ms | max ms | subprocesses | HTTP requests | changes |")
    print("|---|---|---|---|---|---|")
    for sls, median, worst, procs, reqs, changes in rows:
        print(f"| {sls} | {median:.0f} | {worst:.0f} | {procs:.0f} | {reqs:.0f} | {changes} |")
    print(f"\nratio cinder_ha / empty SLS: {rows[1][1] / rows[0][1]:.1f}x")


if __name__ == "__main__":
    main()
