"""Bench of HAProxy in front of cinder-api (balanced mode's proxy; run by hand on the sandbox, prints
numbers): the latency of cinder-api's versions document (GET /, unauthenticated: the sandbox's
/v3/ asks for a token) straight from the sandbox's
cinder-api on its VIP, and through an HAProxy (the config of cinder_ha_lib.haproxy, started with
the real /usr/sbin/haproxy on 127.0.0.133) whose one server is that same cinder-api. p50, p99
and the throughput of one client, both on a kept-alive connection (as keystoneauth's session
does) and with a new connection per request.

    /srv/cinder-ha/venv/salt/bin/python bench/haproxy_bench.py [--requests 1000]

Needs the sandbox up (scripts/demo). HAProxy and its files are removed at the end.
"""
import argparse
import http.client
import json
import os
import pathlib
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "_utils"))
from cinder_ha_lib import haproxy  # noqa: E402

SANDBOX = pathlib.Path(os.environ.get("CINDER_HA_SANDBOX", "/srv/cinder-ha"))
PROXY_VIP, PROXY_PORT = "127.0.0.133", 18891


def sandbox_api():
    facts = json.loads((SANDBOX / "sandbox.json").read_text())
    return facts["vip"], int(facts.get("cinder_port", 8776))


def samples(address, port, count, keep_alive):
    """Seconds per GET / (count of them, after 20 not counted)."""
    conn = None
    times = []
    for n in range(count + 20):
        start = time.perf_counter()
        if conn is None or not keep_alive:
            conn = http.client.HTTPConnection(address, port, timeout=10)
        conn.request("GET", "/")
        answer = conn.getresponse()
        answer.read()
        if answer.status != 300:  # the versions document: Multiple Choices
            raise SystemExit(f"GET / on {address}:{port}: {answer.status}")
        if not keep_alive:
            conn.close()
        if n >= 20:
            times.append(time.perf_counter() - start)
    if conn is not None:
        conn.close()
    return times


def summary(times):
    ordered = sorted(times)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return (f"p50 {statistics.median(ordered) * 1000:6.2f} ms  p99 {p99 * 1000:6.2f} ms  "
            f"{len(times) / sum(times):6.0f} req/s")


def wait_answering(address, port, deadline):
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((address, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000)
    args = parser.parse_args()
    api_vip, api_port = sandbox_api()
    folder = tempfile.mkdtemp(prefix="cinder-ha-haproxy-bench-")
    config = pathlib.Path(folder) / "haproxy.cfg"
    config.write_text(haproxy.render_config([("node1", api_vip, api_port)], PROXY_VIP,
                                            os.path.join(folder, "runtime.sock"), port=PROXY_PORT, log_level=None))
    proc = subprocess.Popen(["/usr/sbin/haproxy", "-W", "-f", str(config)], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        if not wait_answering(PROXY_VIP, PROXY_PORT, time.monotonic() + 10):
            raise SystemExit("haproxy did not listen: " + proc.stderr.read1(2000).decode(errors="replace"))
        time.sleep(4.5)  # until the health check (rise 2, inter 2 s) has the server up
        print(f"GET /, {args.requests} requests each, one client (cinder-api {api_vip}:{api_port}; "
              f"HAProxy with the formula's config on {PROXY_VIP}:{PROXY_PORT})")
        for keep_alive in (True, False):
            label = "kept-alive connection" if keep_alive else "new connection each"
            direct = samples(api_vip, api_port, args.requests, keep_alive)
            proxied = samples(PROXY_VIP, PROXY_PORT, args.requests, keep_alive)
            print(f"  {label:22s} direct:          {summary(direct)}")
            print(f"  {label:22s} through HAProxy: {summary(proxied)}")
            print(f"  {label:22s} overhead: p50 {(statistics.median(proxied) - statistics.median(direct)) * 1000:+.2f} ms")
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
