#!/usr/bin/env python3
"""Cost of a no-op `state.apply cinder_ha` on the sandbox minion, against an empty SLS.

    PYTHONPATH=/srv/cinder-ha/site /srv/cinder-ha/venv/salt/bin/python bench/formula_bench.py [--rounds 7] [--trace]

Runs masterless and in-process (salt.client.Caller) with the sandbox's pillar and the
project's state tree (pip mode: the modules come from PYTHONPATH), so it can count what one
run costs: wall time, the part of it spent rendering the SLS files and
running the states, subprocesses started (subprocess.Popen) and HTTP requests sent
(http.client), with the time spent waiting on each. The empty SLS and cinder_ha rounds
alternate, so both see the same machine load. Needs the sandbox up (`sandbox/sandbox.py
status`) and cinder_ha applied from this tree: the warm-up is a dry run, and the bench stops
when it would change anything (it never rewrites what others on the sandbox applied), unless
`--apply` (apply it first). Other test runs use the live cluster too: run it under their lock,
`flock /tmp/cinder-ha-live.lock ...`. Starts no salt daemon.
`--trace` lists the subprocesses (first two argv words) and requests (method, host, path,
query parameter names) of the last cinder_ha round. Prints a table.

Besides wall time, each round's CPU: this process (threads included), its children (the crm
tools) and the whole machine (/proc/stat: Keystone and the Pacemaker daemons answering too), the
work behind the wall time on a 2-core machine whose load moves wall times by 10-20% between runs.
`--what-if-template-cache` is an experiment, not the figure: Jinja compiles each SLS source once
in this process, as if Salt kept compiled templates between runs (it builds a new Jinja
environment for every render; saltstack/salt#59441).

A third SLS, `bench_shape`, is Salt's floor for a formula of this shape: as many SLS files as
the cinder_ha run renders, each importing a small map.jinja (defaults.yaml), and as many
`test.nop` states, with no module call at all.
"""
import argparse
import collections
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

COUNTS = collections.Counter()  # of the current round: subprocess, http, and the ms of each phase
CALLS = []  # (kind, what) of the current round


def _timed(name, func):
    def timed(*args, **kwargs):
        started = time.perf_counter()
        try:
            return func(*args, **kwargs)
        finally:
            COUNTS[name + " ms"] += (time.perf_counter() - started) * 1000
    return timed


def count_calls():
    import salt.state

    popen_init = subprocess.Popen.__init__
    http_request = http.client.HTTPConnection.putrequest  # urllib3 overrides request(), not this

    def counting_popen(self, *args, **kwargs):
        COUNTS["subprocess"] += 1
        argv = args[0] if args else kwargs.get("args")
        CALLS.append(("subprocess", argv if isinstance(argv, str) else " ".join(str(a) for a in list(argv)[:2])))
        return popen_init(self, *args, **kwargs)

    def counting_request(self, method, url, *args, **kwargs):
        COUNTS["http"] += 1
        path, _, query = url.partition("?")
        names = "&".join(sorted(part.split("=")[0] for part in query.split("&"))) if query else ""
        CALLS.append(("http", f"{method} {self.host}:{self.port}{path}" + (f"?{names}" if names else "")))
        return http_request(self, method, url, *args, **kwargs)

    subprocess.Popen.__init__ = counting_popen
    http.client.HTTPConnection.putrequest = counting_request
    # where the time goes: waiting on subprocesses and on HTTP answers, rendering, running states
    subprocess.Popen.communicate = _timed("subprocess", subprocess.Popen.communicate)
    subprocess.Popen.wait = _timed("subprocess", subprocess.Popen.wait)
    http.client.HTTPConnection.getresponse = _timed("http", http.client.HTTPConnection.getresponse)
    salt.state.HighState.render_highstate = _timed("render", salt.state.HighState.render_highstate)
    salt.state.State.call_high = _timed("states", salt.state.State.call_high)


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
        # pip mode: the formula alone (the project root, which file_roots mode serves for _modules,
        # would add Salt's walk of the whole checkout, ~20 ms, to every round, the empty one too)
        "file_roots": {"base": [str(PROJECT / "salt"), str(root / "empty")]},
        "pillar_roots": {"base": [str(SANDBOX / "salt" / "pillar")]},
        "log_level_logfile": "warning",
    }))
    opts = salt.config.minion_config(str(conf))
    return salt.client.Caller(mopts=opts)


def write_shape(root, files, states):
    """bench_shape: ``files`` SLS files importing a map.jinja, ``states`` test.nop states in all."""
    shape = root / "empty" / "bench_shape"
    shape.mkdir(parents=True, exist_ok=True)
    (shape / "defaults.yaml").write_text("values:\n" + "".join(f"  key{i}: value{i}\n" for i in range(60)))
    (shape / "map.jinja").write_text('{%- import_yaml "bench_shape/defaults.yaml" as defaults %}\n'
                                     "{%- set data = {} %}{%- do data.update(defaults['values']) %}\n")
    names = [f"part{i}" for i in range(max(files - 1, 1))]
    (shape / "init.sls").write_text('{%- from "bench_shape/map.jinja" import data with context %}\ninclude:\n'
                                    + "".join(f"  - bench_shape.{name}\n" for name in names))
    for index, name in enumerate(names):
        body = '{%- from "bench_shape/map.jinja" import data with context %}\n'
        for number in range(index, states, len(names)):
            body += f"bench_shape-{number}:\n  test.nop:\n    - name: {{{{ data.key{number % 60} }}}}\n"
        (shape / f"{name}.sls").write_text(body or "{}\n")


def machine_busy_ms():
    """CPU time the whole machine spent busy so far (/proc/stat: every process, Keystone and the
    Pacemaker daemons included; idle, iowait and steal left out), in ms, at the kernel's 10 ms tick."""
    with open("/proc/stat", encoding="ascii") as stat:
        user, nice, system, _idle, _iowait, irq, softirq = (int(v) for v in stat.readline().split()[1:8])
    return (user + nice + system + irq + softirq) * 1000 / os.sysconf("SC_CLK_TCK")


def keep_compiled_templates():
    """--what-if-template-cache: compile each distinct SLS source once in this process, as Salt
    would if it kept compiled templates between runs (it does not: a new Jinja environment per
    render, saltstack/salt#59441). Measures what Salt's Jinja compile costs the formula."""
    import jinja2

    compiled = {}
    compile_source = jinja2.Environment.compile

    def compile_once(self, source, name=None, filename=None, raw=False, defer_init=False):
        if raw or not isinstance(source, str):
            return compile_source(self, source, name, filename, raw, defer_init)
        key = (source, name, filename, defer_init)
        if key not in compiled:
            compiled[key] = compile_source(self, source, name, filename, raw, defer_init)
        return compiled[key]

    jinja2.Environment.compile = compile_once


def one_round(call, sls, rows):
    COUNTS.clear()
    CALLS.clear()
    cpu, children, machine = time.process_time(), os.times(), machine_busy_ms()
    started = time.perf_counter()
    ret = call.cmd("state.apply", sls)
    wall = (time.perf_counter() - started) * 1000
    row = rows.setdefault(sls, collections.defaultdict(list))
    row["cpu ms"].append((time.process_time() - cpu) * 1000)  # this process, its threads included
    after = os.times()
    row["children cpu ms"].append((after.children_user + after.children_system
                                   - children.children_user - children.children_system) * 1000)
    row["machine cpu ms"].append(machine_busy_ms() - machine)
    if not isinstance(ret, dict):
        sys.exit(f"state.apply {sls} failed: {ret}")
    failed = [k for k, v in ret.items() if v["result"] is not True]
    if failed:
        sys.exit(f"state.apply {sls}: failed states {failed}")
    row["ms"].append(wall)
    for key in ("render ms", "states ms", "subprocess", "subprocess ms", "http", "http ms"):
        row[key].append(COUNTS[key])
    row["changes"].append(sum(1 for v in ret.values() if v["changes"]))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--apply", action="store_true", help="apply cinder_ha first if it would change anything")
    parser.add_argument("--trace", action="store_true",
                        help="also list the subprocesses and HTTP requests of the last cinder_ha round")
    parser.add_argument("--what-if-template-cache", action="store_true",
                        help="an experiment, not the figure: Jinja compiles each SLS once in this process, "
                             "as if Salt kept compiled templates between runs")
    args = parser.parse_args()
    if args.what_if_template_cache:
        keep_compiled_templates()
    count_calls()
    rows = {}
    with tempfile.TemporaryDirectory(prefix="cinder-ha-bench-") as tmp:
        call = caller(pathlib.Path(tmp))
        if args.apply:
            call.cmd("state.apply", "cinder_ha")
        dry = call.cmd("state.apply", "cinder_ha", test=True)  # warm up; a no-op is what is measured
        if not isinstance(dry, dict):
            sys.exit(f"state.apply cinder_ha test=True failed: {dry}")
        pending = sorted(k.split("_|-")[1] for k, v in dry.items() if v["changes"] or v["result"] is not True)
        if pending:
            sys.exit("cinder_ha is not applied as this tree says (apply it first): " + "; ".join(pending))
        write_shape(pathlib.Path(tmp), len({v["__sls__"] for v in dry.values()}), len(dry))
        call.cmd("state.apply", "bench_shape")
        for _ in range(args.rounds):
            for sls in ("bench_empty", "bench_shape", "cinder_ha"):  # alternate: all see the same load
                one_round(call, sls, rows)
        trace = collections.Counter(CALLS)  # the last cinder_ha round
    median = {sls: {key: statistics.median(values) for key, values in row.items()} for sls, row in rows.items()}
    # the machine's busy time moves in 10 ms ticks: its mean over the rounds, not a median
    machine = {sls: statistics.fmean(row["machine cpu ms"]) for sls, row in rows.items()}
    print(f"no-op state.apply, {args.rounds} rounds each (alternating), in-process masterless minion on the "
          "sandbox; medians" + (" (WHAT IF: Salt kept compiled templates)" if args.what_if_template_cache else "")
          + "\n")
    print("| SLS | ms | max ms | render ms | states ms | subprocesses (ms) | HTTP requests (ms) "
          "| CPU ms: this process / its children / machine | changes |")
    print("|---|---|---|---|---|---|---|---|---|")
    for sls, m in median.items():
        print(f"| {sls} | {m['ms']:.0f} | {max(rows[sls]['ms']):.0f} | {m['render ms']:.0f} | {m['states ms']:.0f} "
              f"| {m['subprocess']:.0f} ({m['subprocess ms']:.0f}) | {m['http']:.0f} ({m['http ms']:.0f}) "
              f"| {m['cpu ms']:.0f} / {m['children cpu ms']:.0f} / {machine[sls]:.0f} | {sum(rows[sls]['changes'])} |")
    print(f"\nratio cinder_ha / empty SLS: {median['cinder_ha']['ms'] / median['bench_empty']['ms']:.2f}x; "
          f"bench_shape / empty SLS: {median['bench_shape']['ms'] / median['bench_empty']['ms']:.2f}x")
    print(f"machine CPU (every process), cinder_ha / empty SLS: {machine['cinder_ha'] / machine['bench_empty']:.2f}x; "
          f"bench_shape / empty SLS: {machine['bench_shape'] / machine['bench_empty']:.2f}x")
    if args.trace:
        print("\ncalls of the last cinder_ha round:")
        for (kind, what), count in sorted(trace.items()):
            print(f"  {count} x {kind}: {what}")


if __name__ == "__main__":
    main()
