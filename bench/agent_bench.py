"""Bench of ocf:openstack:cinder-api (run by hand on the sandbox, prints numbers):

  - time of one monitor call, healthcheck only and with credentials (Keystone v3 token + GET /v3/);
  - recovery time after kill -9 of cinder-api under the live cluster, monitor interval 30 s and 5 s.

Uses the private instance (127.0.0.113:18763, /srv/cinder-ha/agent-instance) and resource id agent_bench_cinder-api.

    PYTHONPATH=/srv/cinder-ha/site /srv/cinder-ha/venv/salt/bin/python bench/agent_bench.py [--rounds-30 2] [--rounds-5 3]
"""
import argparse
import os
import pathlib
import signal
import statistics
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))
from tests.support import agent as support  # noqa: E402

RSC = "agent_bench_cinder-api"


def time_monitor(params, calls):
    samples = []
    for _ in range(calls):
        start = time.monotonic()
        result = support.run_agent("monitor", params, instance=RSC, CRM_meta_interval=30000)
        samples.append(time.monotonic() - start)
        if result.returncode != 0:
            raise SystemExit(f"monitor rc={result.returncode}: {result.stderr[-500:]}")
    return samples


def bench_monitor(facts, calls):
    pid_file = f"/run/resource-agents/{RSC}.pid"
    plain = {"binary": support.BINARY, "config": str(support.CONF_KEYSTONE), "pid": pid_file}
    creds = dict(support.modern_params(facts), pid=pid_file)
    support.kill_instance()
    started = support.run_agent("start", plain, instance=RSC)
    if started.returncode != 0:
        raise SystemExit(f"start failed: {started.stderr}")
    try:
        for label, params in (("healthcheck only", plain), ("with credentials (v3 token + GET /v3/)", creds)):
            samples = time_monitor(params, calls)
            print(f"monitor, {label}: median {statistics.median(samples) * 1000:.0f} ms, "
                  f"min {min(samples) * 1000:.0f} ms, max {max(samples) * 1000:.0f} ms ({calls} calls)")
    finally:
        support.run_agent("stop", plain, instance=RSC)
        support.kill_instance()


def bench_recovery(facts, interval, rounds):
    params = support.guide_params(facts)
    params["pid"] = f"/run/resource-agents/{RSC}.pid"
    support.delete_primitive(RSC)
    support.create_primitive(RSC, params, monitor_interval=f"{interval}s")
    times = []
    try:
        if not support.start_resource(RSC, timeout=120):
            raise SystemExit("the cluster did not start cinder-api")
        for _ in range(rounds):
            time.sleep(1)
            old = set(support.cinder_pids())
            killed = time.monotonic()
            os.kill(min(old), signal.SIGKILL)
            back = support.wait_for(lambda: (set(support.cinder_pids()) - old)  # noqa: B023 (waited for here)
                                    and support.healthcheck(0.5) == 200,
                                    interval + 90, step=0.1)
            if not back:
                raise SystemExit(f"no recovery within {interval + 90} s")
            times.append(time.monotonic() - killed)
            support.crm("resource", "cleanup", RSC, check=False)
            support.wait_for(lambda: support.healthcheck() == 200, 60)
    finally:
        support.delete_primitive(RSC)
        support.kill_instance()
    print(f"recovery after kill -9, monitor interval {interval}s: "
          + ", ".join(f"{t:.1f}" for t in times) + f" s (median {statistics.median(times):.1f} s, {rounds} rounds)")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--rounds-30", type=int, default=2)
    parser.add_argument("--rounds-5", type=int, default=3)
    args = parser.parse_args()
    support.prepare_instance()
    support.install_agent()
    # The guide's primitive keeps os_password in the CIB, which Pacemaker logs: a Keystone user
    # made for this run (deleted after it), never the sandbox's admin password.
    with support.throwaway_keystone_user(support.facts()) as facts:
        bench_monitor(facts, args.calls)
        bench_recovery(facts, 5, args.rounds_5)
        bench_recovery(facts, 30, args.rounds_30)


if __name__ == "__main__":
    main()
