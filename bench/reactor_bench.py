#!/srv/cinder-ha/venv/salt/bin/python
"""Edit-to-corrected latency of the cinder_ha reactor path, and jobs per edit (issue 8).

Starts its own salt-master (reactor: cinder_ha/* -> dispatch.sls) and salt-minion (engine
cinder_ha_watch on a temp cinder.conf; the test state of tests/support/reactor.py plays
cinder_ha.config) on free loopback ports, makes N outside edits (alternating an in-place
append and `sed -i`), and prints per edit: engine event at the master, reactor job published,
file corrected, and how many state jobs the edit caused (counted on the master event bus).

    PYTHONPATH=/srv/cinder-ha/site /srv/cinder-ha/venv/salt/bin/python bench/reactor_bench.py [--edits 10]
"""
import argparse
import fnmatch
import os
import pathlib
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

PROJECT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT))
from tests.support import reactor as support  # noqa: E402

BIN = pathlib.Path(sys.executable).parent
MINION_ID = "reactor-bench"


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_configs(base):
    import salt.utils.yaml

    conf = base / "etc" / "cinder.conf"
    conf.parent.mkdir(parents=True)
    conf.write_text(support.WANTED)
    support.make_file_roots(base / "roots", conf)
    (base / "pillar").mkdir()
    publish, ret = free_port(), free_port()
    master = support.master_overrides(base / "roots", base / "pillar", allow=[MINION_ID])  # signed events only
    master.update({"publish_port": publish, "ret_port": ret, "root_dir": str(base / "m"),
                   "sock_dir": str(base / "m" / "sock"), "user": "root", "log_level_logfile": "warning",
                   "log_file": str(base / "master.log")})
    minion = support.minion_overrides(conf)
    minion.update({"id": MINION_ID, "master": "127.0.0.1", "master_port": ret, "publish_port": publish,
                   "root_dir": str(base / "n"), "user": "root", "log_level_logfile": "warning",
                   "log_file": str(base / "minion.log")})
    for name, data in (("master", master), ("minion", minion)):
        (base / "c").mkdir(exist_ok=True)
        (base / "c" / name).write_text(salt.utils.yaml.safe_dump(data, default_flow_style=False))
    return conf


class Bus(threading.Thread):
    """Every master event with its arrival time."""

    def __init__(self, config_dir):
        super().__init__(daemon=True)
        import salt.config
        import salt.utils.event

        opts = salt.config.master_config(str(config_dir / "master"))
        self.bus = salt.utils.event.get_master_event(opts, opts["sock_dir"], listen=True)
        self.events = []
        self.stop = False

    def run(self):
        while not self.stop:
            event = self.bus.get_event(wait=0.05, full=True)
            if event:
                self.events.append((time.time(), event["tag"], event["data"]))
        self.bus.destroy()

    def since(self, start, pattern, fun=None):
        return [(t, data) for t, tag, data in self.events
                if t >= start and fnmatch.fnmatch(tag, pattern) and (fun is None or data.get("fun") == fun)]


def salt_cmd(base, *args, timeout=60):
    return subprocess.run([str(BIN / "salt"), "-c", str(base / "c"), "--out=json", *args],
                          capture_output=True, text=True, timeout=timeout)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--edits", type=int, default=10)
    args = parser.parse_args()
    base = pathlib.Path(tempfile.mkdtemp(prefix="t8b-"))
    env = dict(os.environ, PYTHONPATH=os.environ.get("PYTHONPATH", "/srv/cinder-ha/site"))
    procs = []
    try:
        conf = write_configs(base)
        for daemon in ("salt-master", "salt-minion"):
            procs.append(subprocess.Popen([str(BIN / daemon), "-c", str(base / "c")], env=env,
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                          start_new_session=True))
            time.sleep(2 if daemon == "salt-master" else 0)
        deadline = time.monotonic() + 90
        while MINION_ID + '": true' not in salt_cmd(base, MINION_ID, "test.ping", "--timeout=5").stdout:
            if time.monotonic() > deadline:
                sys.exit("minion did not answer")
        bus = Bus(base / "c")
        bus.start()
        ret = salt_cmd(base, MINION_ID, "state.apply", "cinder_ha.config")  # record the digest once
        assert ret.returncode == 0, ret.stdout + ret.stderr
        time.sleep(2)
        rows = []
        for n in range(args.edits):
            how = "in-place" if n % 2 == 0 else "sed -i"
            start = time.time()
            if how == "in-place":
                support.edit_in_place(conf, f"debug = edit{n}\n")
            else:
                subprocess.run(["sed", "-i", f"s/debug = false/debug = sed{n}/", str(conf)], check=True)
            while support.sha256(conf) != support.wanted_digest():
                if time.time() - start > 30:
                    sys.exit(f"edit {n} not corrected in 30 s")
                time.sleep(0.005)
            corrected = time.time() - start
            time.sleep(3)  # a loop would show as more jobs here
            event = bus.since(start, "cinder_ha/conf/changed")
            job = bus.since(start, "salt/job/*/new", fun="state.apply")
            rows.append({"how": how, "event": event[0][0] - start if event else None,
                         "job": job[0][0] - start if job else None, "corrected": corrected, "jobs": len(job)})
        bus.stop = True
        bus.join(5)
        print(f"{'edit':>4} {'editor':>8} {'event@master':>13} {'job published':>14} {'corrected':>10} {'jobs':>5}")
        for n, row in enumerate(rows):
            fmt = lambda v: f"{v * 1000:9.0f} ms" if v is not None else "        -"  # noqa: E731
            print(f"{n:>4} {row['how']:>8} {fmt(row['event']):>13} {fmt(row['job']):>14} "
                  f"{fmt(row['corrected']):>10} {row['jobs']:>5}")
        lat = [r["corrected"] for r in rows]
        print(f"edit -> corrected: median {statistics.median(lat) * 1000:.0f} ms, max {max(lat) * 1000:.0f} ms "
              f"over {len(lat)} edits; jobs per edit: {sorted({r['jobs'] for r in rows})} "
              f"(total {sum(r['jobs'] for r in rows)} for {len(rows)} edits)")
    finally:
        for proc in reversed(procs):
            os.killpg(proc.pid, signal.SIGTERM)
        for proc in reversed(procs):
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
