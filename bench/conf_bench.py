"""No-op cost of cinder_conf.managed on a 300-line cinder.conf: the pure planning function alone,
and the whole state in-process through Salt's loaders (what a reactor-triggered run pays).

    PYTHONPATH=/srv/cinder-ha/site /srv/cinder-ha/venv/salt/bin/python bench/conf_bench.py
"""
import pathlib
import statistics
import sys
import tempfile
import time

PROJECT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT))
sys.path.insert(0, str(PROJECT / "_utils"))  # cinder_ha_lib from this tree

from cinder_ha_lib import conf as cinder_ha_conf  # noqa: E402
from tests.conftest import minion_config  # noqa: E402
from tests.support.conf import sample_conf  # noqa: E402

DESIRED = {
    "DEFAULT": {"osapi_volume_listen": "127.0.0.115", "osapi_volume_listen_port": 18765,
                "transport_url": "rabbit://openstack:pw@127.0.0.1:5672,openstack:pw@127.0.0.2:5672/"},
    "database": {"connection": "mysql+pymysql://cinder:pw@127.0.0.1:3306/cinder"},
    "oslo_messaging_notifications": {"driver": "messagingv2"},
}


def timed(function, rounds):
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        function()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples), min(samples), max(samples)


def main():
    from saltfactories.utils.functional import Loaders

    text = cinder_ha_conf.plan(sample_conf(300), DESIRED).new_text  # converge once: then every run is a no-op
    print(f"cinder.conf: {len(text.splitlines())} lines, {len(text)} bytes")
    plan = cinder_ha_conf.plan(text, DESIRED)
    assert not plan.changed
    print("plan() alone            median %.2f ms  min %.2f  max %.2f  (500 runs)" %
          timed(lambda: cinder_ha_conf.plan(text, DESIRED), 500))
    with tempfile.TemporaryDirectory(prefix="conf-bench-") as tmp:
        root = pathlib.Path(tmp) / "minion"
        root.mkdir()
        path = pathlib.Path(tmp) / "cinder.conf"
        path.write_text(text)
        loaders = Loaders(minion_config(root))
        try:
            first = loaders.states.cinder_conf.managed(name=str(path), options=DESIRED)
            assert first.result is True and first.changes == {}, first
            print("state (loaders, no-op)  median %.2f ms  min %.2f  max %.2f  (50 runs)" %
                  timed(lambda: loaders.states.cinder_conf.managed(name=str(path), options=DESIRED), 50))
            print("check() module call     median %.2f ms  min %.2f  max %.2f  (200 runs)" %
                  timed(lambda: loaders.modules.cinder_conf.check(str(path), options=DESIRED), 200))
        finally:
            loaders.reset_state()


if __name__ == "__main__":
    main()
