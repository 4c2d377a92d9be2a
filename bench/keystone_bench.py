"""Requests and milliseconds of the catalog states against the real Keystone of the sandbox.

A full create (service + three endpoints in a fresh region) and a no-op run of the formula's
three catalog states (service_present, endpoints_present, legacy_absent), each as ONE state
run (one Salt State, so one session, as in ``state.apply``). Cleans up its region and service.

    PYTHONPATH=/srv/cinder-ha/site /srv/cinder-ha/venv/salt/bin/python bench/keystone_bench.py [rounds]
"""
import pathlib
import secrets
import statistics
import sys
import tempfile
import time

PROJECT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT))
sys.path.insert(0, str(PROJECT / "_utils"))  # cinder_ha_lib from this tree

from tests.conftest import minion_config  # noqa: E402
from tests.support.keystone import KeystoneAdmin, admin_auth, count_requests  # noqa: E402


def high(svc_name, region, auth, urls):
    def state(fun, *args, require=None):
        body = [fun, *args, {"auth": auth}]
        if require:
            body.append({"require": [{"cinder_keystone": require}]})
        return {"cinder_keystone": body, "__sls__": "bench", "__env__": "base"}

    return {
        "service": state("service_present", {"name": svc_name}, {"service_type": "block-storage"}),
        "endpoints": state("endpoints_present", {"name": "block-storage"}, {"service_name": svc_name},
                           {"region": region}, {"urls": urls}, require="service"),
        "legacy": state("legacy_absent", {"name": "block-storage"}, {"region": region}, require="endpoints"),
    }


def timed_run(loaders, data):
    with count_requests() as seen:
        started = time.perf_counter()
        result = loaders.modules.state.high(data)
        elapsed = (time.perf_counter() - started) * 1000
    raw = result.raw if hasattr(result, "raw") else result
    failed = [r["comment"] for r in raw.values() if r["result"] is not True]
    if failed:
        raise SystemExit(f"state run failed: {failed}")
    changed = sum(1 for r in raw.values() if r["changes"])
    return elapsed, seen, changed


def main(rounds=5):
    from saltfactories.utils.functional import Loaders

    auth = admin_auth()
    urls = {"public": "http://127.0.0.116:18766/v3", "internal": "http://127.0.0.117:18766/v3",
            "admin": "http://127.0.0.117:18766/v3"}
    with tempfile.TemporaryDirectory(prefix="t6-bench-") as tmp:
        root = pathlib.Path(tmp) / "minion"
        root.mkdir()
        loaders = Loaders(minion_config(root))
        try:
            creates, noops = [], []
            for _ in range(rounds):
                admin = KeystoneAdmin(auth)  # each round cleans up after itself: same Keystone every round
                try:
                    region = admin.region()
                    name = "t6-bench-" + secrets.token_hex(3)
                    data = high(name, region, auth, urls)
                    creates.append(timed_run(loaders, data))
                    admin.adopt_service("block-storage", name)
                    noops.append(timed_run(loaders, data))
                finally:
                    admin.adopt_service("block-storage", name)
                    admin.cleanup()
            for label, runs in (("full create", creates), ("no-op", noops)):
                ms = [r[0] for r in runs]
                requests = sorted({len(r[1]) for r in runs})
                kinds = {}
                for method, url in runs[-1][1]:
                    key = f"{method} {url.split('/v3', 1)[-1].split('?')[0] or '/'}"
                    kinds[key] = kinds.get(key, 0) + 1
                print(f"{label:12s} rounds={rounds} states_changed={runs[-1][2]} requests={requests} "
                      f"median={statistics.median(ms):.0f} ms min={min(ms):.0f} ms max={max(ms):.0f} ms")
                print(f"  last round: {kinds}")
        finally:
            loaders.reset_state()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5)
