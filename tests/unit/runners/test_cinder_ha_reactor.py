"""Issue 14: the reactor's trust decisions (runner cinder_ha_reactor) and dispatch.sls, without daemons."""
import base64
import importlib.util
import json
import time

import pytest

from cinder_ha_lib import events
from tests.conftest import PROJECT

SLS = PROJECT / "salt" / "cinder_ha" / "reactor" / "dispatch.sls"


def load_runner():
    spec = importlib.util.spec_from_file_location("cinder_ha_reactor_under_test",
                                                  PROJECT / "_runners" / "cinder_ha_reactor.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


runner = load_runner()


def genuine_load(minion="node1", tag=events.CONF_TAG, data=None):
    """The load a minion daemon sends for event.send, in its key order (salt/minion.py)."""
    return {"id": minion, "cmd": "_minion_event", "pretag": None,
            "data": data if data is not None else {"path": "/etc/cinder/cinder.conf", "digest": "ab"},
            "tag": tag, "ts": int(time.time())}


# ---------------------------------------------------------------- settings and allow list


def test_settings_defaults_and_overrides():
    conf = runner.settings({"cinder_ha_reactor": {"max_jobs": 2, "conf_sls": None}})
    assert conf["max_jobs"] == 2 and conf["conf_sls"] == "cinder_ha.config" and conf["window"] == 60


@pytest.mark.parametrize("opts, expected", [
    ({}, ("I@cinder_ha:vip:address", "compound")),
    ({"cinder_ha_orch_tgt": "G@role:ctl"}, ("G@role:ctl", "compound")),
    ({"cinder_ha_orch_tgt": "x", "cinder_ha_reactor": {"allow": "L@n1,n2"}}, ("L@n1,n2", "compound")),
    ({"cinder_ha_reactor": {"allow": ["n1", "n2"]}}, (["n1", "n2"], "list")),
])
def test_allow_target(opts, expected):
    assert runner.allow_target(opts) == expected


# ---------------------------------------------------------------- inputs are data


def test_decoders_refuse_garbage():
    assert runner.decode_event("not base64!") is None
    assert runner.decode_event(base64.b64encode(b"[1, 2]").decode()) is None
    assert runner.decode_event(base64.b64encode(b"\xff").decode()) is None
    assert runner.decode_sig("") is None and runner.decode_sig(None) is None and runner.decode_sig("%%") is None


def test_fresh():
    now = 1_000_000
    assert events.fresh(now - 300, now, 300) and events.fresh(now + 10, now, 300)
    assert not events.fresh(now - 301, now, 300) and not events.fresh(now + 301, now, 300)
    assert not events.fresh(str(now), now, 300) and not events.fresh(True, now, 300)
    assert not events.fresh(None, now, 300)


# ---------------------------------------------------------------- rate limit and replays


def test_admit_rate_limit_per_bucket_and_window():
    state, now = {}, 1000.0
    verdicts = [runner.admit(state, "a|conf", f"d{i}", now + i * 0.01, 3, 60, 300) for i in range(6)]
    assert verdicts == ["ok", "ok", "ok", "rate", "rate-again", "rate-again"]
    assert runner.admit(state, "a|resource", "other", now, 3, 60, 300) == "ok"  # its own bucket
    assert runner.admit(state, "b|conf", "d-b", now, 3, 60, 300) == "ok"  # and per minion
    # a window later the bucket is free again, and the first drop is logged loudly again
    assert runner.admit(state, "a|conf", "late", now + 61, 3, 60, 300) == "ok"
    for i in range(2):
        runner.admit(state, "a|conf", f"late{i}", now + 61, 3, 60, 300)
    assert runner.admit(state, "a|conf", "late-x", now + 61, 3, 60, 300) == "rate"


def test_admit_refuses_replays_until_they_expire():
    state = {}
    assert runner.admit(state, "a|conf", "sig1", 1000.0, 5, 60, 300) == "ok"
    assert runner.admit(state, "a|conf", "sig1", 1001.0, 5, 60, 300) == "replay"
    assert runner.admit(state, "a|conf", "sig1", 1301.0, 5, 60, 300) == "ok"  # stale by then (fresh() refuses it)


def test_admit_keeps_an_event_stamped_ahead_until_it_is_stale():
    """A minion clock 250 s ahead: the event is fresh until ts + max_age, so is its entry (issue 23)."""
    state, now, ts = {}, 1000.0, 1250
    assert runner.admit(state, "a|conf", "sig1", now, 5, 60, 300, ts) == "ok"
    assert events.fresh(ts, now + 320, 300)  # what was accepted again at t+320 s before
    assert runner.admit(state, "a|conf", "sig1", now + 320, 5, 60, 300, ts) == "replay"
    assert runner.admit(state, "a|conf", "sig1", now + 549, 5, 60, 300, ts) == "replay"
    assert not events.fresh(ts, now + 551, 300)  # from here the age check refuses it
    # a stamp behind the master's clock: kept max_age from admission, as before
    assert runner.admit(state, "a|conf", "sig2", now, 5, 60, 300, 900) == "ok"
    assert state["seen"]["sig2"] == now + 300


def test_replay_cache_fails_closed_when_unreadable(tmp_path):
    path = tmp_path / "state.json"
    assert runner.load_replay_cache(str(path)) == {}  # no file yet: an empty cache
    for garbage in ("{not json", "[1, 2]", '{"seen": [1]}', "\xff"):
        path.write_text(garbage)
        with pytest.raises(runner.ReplayCacheError):
            runner.load_replay_cache(str(path))
    path.write_text('{"seen": {"a": 1.0}, "jobs": {}}')
    assert runner.load_replay_cache(str(path))["seen"] == {"a": 1.0}
    path.unlink()
    path.mkdir()  # unreadable as a file
    with pytest.raises(runner.ReplayCacheError):
        runner.load_replay_cache(str(path))


def test_admit_state_is_json_and_pruned():
    state = {}
    for i in range(10):
        runner.admit(state, "a|conf", f"s{i}", 1000.0 + i, 2, 60, 300)
    json.dumps(state)
    runner.prune(state, 5000.0, 60)
    assert state == {"seen": {}, "jobs": {}, "drops": {}}


# ---------------------------------------------------------------- signatures, end to end through dispatch.sls


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    import salt.crypt

    folder = tmp_path_factory.mktemp("keys")
    keys = {}
    for name in ("node1", "node2"):
        priv, pub = salt.crypt.gen_keys(2048)
        (folder / f"{name}.pem").write_text(priv)
        keys[name] = (str(folder / f"{name}.pem"), pub)
    return keys


def sign(keys, name, load, algorithm="PKCS1v15-SHA1"):
    """What salt/channel/client.py (_package_load) does with minion_sign_messages: True."""
    import salt.crypt
    import salt.serializers.msgpack

    return salt.crypt.sign_message(keys[name][0], salt.serializers.msgpack.serialize(load), algorithm=algorithm)


def render(tag, data, opts=None):
    """dispatch.sls as the reactor renders it (Salt's py renderer, tag and data as globals)."""
    import salt.config
    import salt.utils.templates

    master_opts = dict(salt.config.DEFAULT_MASTER_OPTS, cachedir="/nonexistent/cachedir", **(opts or {}))
    ret = salt.utils.templates.py(str(SLS), True, __opts__=master_opts, opts=master_opts, __salt__={}, salt={},
                                  tag=tag, data=data)
    assert ret["result"], ret
    return ret["data"]


def runner_kwargs(high):
    (state,) = high.values()
    (args,) = state.values()
    return {key: value for item in args[0]["args"] for key, value in item.items()}


@pytest.fixture
def master(keys, monkeypatch):
    """The runner's master side, with the accepted keys of node1 and node2 and no real client."""
    published = []
    monkeypatch.setattr(runner, "__opts__", {"cinder_ha_reactor": {"max_jobs": 2}, "conf_file": "/nonexistent/master"},
                        raising=False)
    monkeypatch.setattr(events, "accepted_key", lambda opts, minion: keys[minion][1] if minion in keys else None)
    monkeypatch.setattr(events, "REACTOR_DROPS", events.DropLog())
    monkeypatch.setattr(runner, "_allowed_minions", lambda: ["node1"])
    states = {}

    def admit(bucket, digest, conf, ts):
        return runner.admit(states, bucket, digest, time.time(), int(conf["max_jobs"]), 60, 300, ts)
    monkeypatch.setattr(runner, "_admit", admit)

    class Client:
        def __init__(self, *args):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def cmd_async(self, tgt, fun, tgt_type, kwarg):
            published.append((tgt, fun, tgt_type, kwarg))
            return f"jid{len(published)}"
    monkeypatch.setattr(runner.salt.client, "get_local_client", Client)
    return published


def fired(load, sig=None):
    """The event data the master fires for a single event: the load, sig kept, _stamp added."""
    data = dict(load)
    if sig is not None:
        data["sig"] = sig
    data["_stamp"] = "2026-01-01T00:00:00.000000+00:00"
    return data


def react(tag, data):
    high = render(tag, data)
    if not high:
        return None
    return runner.react(**runner_kwargs(high))


def test_genuine_signed_event_starts_one_job_on_its_sender(keys, master):
    load = genuine_load(data={"path": "/etc/cinder/cinder.conf", "digest": "é" * 3})  # non-ASCII survives
    result = react(events.CONF_TAG, fired(load, sign(keys, "node1", load)))
    assert result["result"] is True, result
    assert master == [(["node1"], "state.apply", "list", {"mods": "cinder_ha.config", "queue": True,
                                                        "pillar": {"cinder_ha_run": {"reason": "drift"}}})]


def test_salt_call_event_send_load_is_accepted_too(keys, master):
    """salt-call event.send sends {id, tag, data, cmd} (salt/modules/event.py), signed likewise."""
    load = {"id": "node1", "tag": events.RESOURCE_TAG, "data": {"rsc": "p_cinder-api", "task": "stop"},
            "cmd": "_minion_event", "ts": int(time.time())}
    result = react(events.RESOURCE_TAG, fired(load, sign(keys, "node1", load)))
    assert result["result"] is True, result
    assert master == [(["node1"], "cinder_ha_events.handle_move", "list",
                       {"event": {"rsc": "p_cinder-api", "task": "stop"}})]


def forged_or_unfit(case, keys):
    load = genuine_load()
    sig = sign(keys, "node1", load)
    tag = events.CONF_TAG
    if case == "unsigned":
        sig = None
    elif case == "garbage":
        sig = b"\0" * 256
    elif case == "other-key":  # node2 signs a load that claims node1
        sig = sign(keys, "node2", load)
    elif case == "changed-data":  # node1's genuine signature, another path
        load["data"] = {"path": "/etc/other/cinder.conf", "digest": "ab"}
    elif case == "changed-tag":
        tag = events.RESOURCE_TAG
    elif case == "unknown-minion":
        load["id"] = "node9"
        sig = sign(keys, "node1", load)
    elif case == "not-allowed":
        load["id"] = "node2"
        sig = sign(keys, "node2", load)
    elif case == "stale":
        load["ts"] -= 301
        sig = sign(keys, "node1", load)
    elif case == "future":
        load["ts"] += 302  # ts is whole seconds: 301 could be 300.x ahead
        sig = sign(keys, "node1", load)
    return tag, fired(load, sig)


SCREENED = [("unsigned", "unsigned"), ("garbage", "signature"), ("other-key", "signature"),
            ("changed-data", "signature"), ("changed-tag", "not the load"), ("unknown-minion", "signature"),
            ("stale", "stale"), ("future", "stale")]


@pytest.mark.parametrize("case, reason", SCREENED)
def test_forged_or_unfit_events_render_to_nothing(case, reason, keys, master, caplog):
    """Dropped while dispatch.sls renders: no runner job at all; the runner would drop them too."""
    tag, data = forged_or_unfit(case, keys)
    with caplog.at_level("WARNING", logger="cinder_ha.reactor"):
        assert render(tag, data) == {}
    (line,) = [r.getMessage() for r in caplog.records if r.name == "cinder_ha.reactor"]
    assert "dropped before any job: " + reason in line, line
    view = {key: value for key, value in data.items() if key not in ("sig", "_stamp")}
    result = runner.react(tag, base64.b64encode(json.dumps(view).encode()).decode(),
                          base64.b64encode(data.get("sig") or b"").decode())
    assert result["result"] is False and result["reason"].startswith(reason), result
    assert master == []


def test_a_minion_outside_the_allow_list_is_dropped_by_the_runner(keys, master):
    result = react(*forged_or_unfit("not-allowed", keys))
    assert result["result"] is False and result["reason"].startswith("minion not allowed"), result
    assert master == []


def test_replay_and_rate_limit(keys, master):
    load = genuine_load()
    data = fired(load, sign(keys, "node1", load))
    assert react(events.CONF_TAG, data)["result"] is True
    assert react(events.CONF_TAG, data)["reason"] == "replayed event"
    for number in range(4):
        load = genuine_load(data={"path": "/etc/cinder/cinder.conf", "digest": str(number)})
        react(events.CONF_TAG, fired(load, sign(keys, "node1", load)))
    assert len(master) == 2  # max_jobs 2


def test_sls_drops_what_is_no_signed_job_event_and_logs_once_per_sender(master, caplog):
    flood = [("cinder_ha/reconfigure", {"id": "node1", "_stamp": "x"}),
             (events.CONF_TAG, {"id": "node1", "data": {"path": "/etc/passwd"}}),
             (events.CONF_TAG, {"id": "a,b", "data": {"path": "/etc/cinder/cinder.conf"}}),
             ("cinder_ha/other", {"id": "node1"})] * 50
    with caplog.at_level("WARNING", logger="cinder_ha.reactor"):
        for tag, data in flood:
            assert render(tag, data, opts={"cinder_ha_reactor": {"drop_log_interval": 30}}) == {}
        lines = [r.getMessage() for r in caplog.records if r.name == "cinder_ha.reactor"]
        # one line per claimed sender: node1 (first: the reconfigure), and the invalid id
        assert len(lines) == 2, lines
        assert "cinder_ha/reconfigure from node1" in lines[0] and "salt-run state.orchestrate" in lines[0]
        assert "from (invalid id)" in lines[1]
        for entry in events.REACTOR_DROPS.entries.values():  # a window later: one line each again,
            entry[0] -= 31                                      # counting what was kept quiet
        render(events.CONF_TAG, {"id": "node1"}, opts={"cinder_ha_reactor": {"drop_log_interval": 30}})
        lines = [r.getMessage() for r in caplog.records if r.name == "cinder_ha.reactor"]
    assert len(lines) == 3 and "(150 drop(s) from this sender since its previous line" in lines[2], lines
    assert master == []


def test_runner_drops_reconfigure_with_the_operator_command(master):
    result = runner.react("cinder_ha/reconfigure", base64.b64encode(b"{}").decode())
    assert result["result"] is False
    assert "salt-run state.orchestrate cinder_ha.orch.reconfigure" in result["reason"]


def test_sls_passes_a_signed_event_to_the_runner_as_data(keys, master):
    load = genuine_load(tag=events.RESOURCE_TAG, data={"rsc": "p_cinder-api", "task": "stop"})
    sig = sign(keys, "node1", load)
    high = render(events.RESOURCE_TAG, fired(load, sig))
    assert list(high) == ["cinder_ha_react"] and list(high["cinder_ha_react"]) == ["runner.cinder_ha_reactor.react"]
    kwargs = runner_kwargs(high)
    assert json.loads(base64.b64decode(kwargs["event"])) == load and base64.b64decode(kwargs["sig"]) == sig
    assert list(json.loads(base64.b64decode(kwargs["event"]))) == list(load)  # key order: what was signed


def test_sls_finds_the_logic_where_formula_mode_syncs_it(tmp_path):
    """Formula mode: cinder_ha_lib only in <extension_modules>/utils (salt-run saltutil.sync_all)."""
    import shutil
    import subprocess
    import sys

    shutil.copytree(PROJECT / "_utils" / "cinder_ha_lib", tmp_path / "extmods" / "utils" / "cinder_ha_lib")
    script = f"""
import sys
import salt.config, salt.utils.templates
assert "cinder_ha_lib" not in sys.modules
opts = dict(salt.config.DEFAULT_MASTER_OPTS, extension_modules={str(tmp_path / "extmods")!r})
ret = salt.utils.templates.py({str(SLS)!r}, True, __opts__=opts, opts=opts, __salt__={{}}, salt={{}},
                              tag="cinder_ha/conf/changed", data={{"id": "node1"}})
assert ret == {{"result": True, "data": {{}}}}, ret
print(sys.modules["cinder_ha_lib"].__file__)
"""
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path,
                         env={"PATH": "/usr/bin:/bin"}, timeout=60)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.strip().startswith(str(tmp_path / "extmods" / "utils")), res.stdout
