"""Cost of a no-op crm.configured check of the three cluster objects vs one `crm configure show`.

Runs on an offline CIB (CIB_file in a temp dir), so it needs no cluster and touches nothing live.

    PYTHONPATH=/srv/cinder-ha/site /srv/cinder-ha/venv/salt/bin/python bench/crm_bench.py
"""
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

PROJECT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT))

from tests.conftest import cluster_env, minion_config  # noqa: E402

ROUNDS = 10
OBJECTS = [
    {"primitive": "b_ip", "agent": "ocf:heartbeat:IPaddr2", "params": {"ip": "127.0.0.114", "cidr_netmask": 32,
                                                                       "nic": "lo"},
     "ops": {"monitor": {"interval": "10s", "timeout": "20s"}}},
    {"primitive": "b_api", "agent": "ocf:heartbeat:Dummy", "params": {"fake": "x"},
     "ops": {"monitor": {"interval": "30s", "timeout": "30s"}}},
    {"colocation": "b_c", "score": "INFINITY", "resources": ["b_api", "b_ip"]},
]


def main():
    from saltfactories.utils.functional import Loaders

    work = pathlib.Path(tempfile.mkdtemp(prefix="crm-bench-"))
    cib = work / "cib.xml"
    cib.write_text(subprocess.run(["cibadmin", "--empty"], capture_output=True, text=True, check=True,
                                  env=cluster_env()).stdout)
    os.environ["CIB_file"] = str(cib)
    subprocess.run(["crm_attribute", "--type", "crm_config", "--name", "stonith-enabled", "--update", "false"],
                   check=True, env=cluster_env(CIB_file=str(cib)))
    (work / "minion").mkdir()
    loaders = Loaders(minion_config(work / "minion"))
    states = loaders.states.crm
    modules = loaders.modules
    assert states.configured(name="bench", objects=OBJECTS).result is True

    noop_ms, counts = [], []
    for round_number in range(ROUNDS):
        before = modules.crm.subprocess_count()
        start = time.perf_counter()
        # A fresh run token per round: each round is one state run with its own CIB read.
        result = modules.crm.configure(OBJECTS, cache_token=f"round-{round_number}")
        noop_ms.append((time.perf_counter() - start) * 1000)
        counts.append(modules.crm.subprocess_count() - before)
        assert result["result"] is True and not result["changes"], result
    show_ms = []
    for _ in range(ROUNDS // 2):
        start = time.perf_counter()
        subprocess.run(["crm", "configure", "show"], capture_output=True, check=True,
                       env=cluster_env(CIB_file=str(cib)), timeout=60)
        show_ms.append((time.perf_counter() - start) * 1000)
    change_ms = []
    for round_number in range(ROUNDS // 2):
        objects = [dict(OBJECTS[0]), dict(OBJECTS[1], params={"fake": f"v{round_number}"}), OBJECTS[2]]
        start = time.perf_counter()
        assert modules.crm.configure(objects)["result"] is True
        change_ms.append((time.perf_counter() - start) * 1000)
    print(f"no-op check of 3 objects (crm.configure, CIB_file): median {statistics.median(noop_ms):.1f} ms, "
          f"max {max(noop_ms):.1f} ms, cluster tool processes per check: {sorted(set(counts))} "
          f"(cibadmin -Q only; crm processes: 0)")
    print(f"one `crm configure show` (CIB_file): median {statistics.median(show_ms):.1f} ms")
    print(f"one changed parameter committed (verify + simulate + crm_diff + cibadmin --patch): "
          f"median {statistics.median(change_ms):.1f} ms")
    loaders.reset_state()


if __name__ == "__main__":
    main()
