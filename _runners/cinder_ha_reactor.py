"""
Master side of the cinder_ha reactor: whether a minion's event may start a job, and the job.

Why a runner: the event bus cannot say who sent an event. The master fires a minion's
single event (``event.send``) as the request load, whose ``id`` it authenticated; but a
*batched* load (``"events": [...]``, e.g. ``event.fire_master`` with ``preload``) is fired
event by event exactly as the minion wrote it, ``id`` included, with nothing added but
``_stamp`` (``salt/daemons/masterapi.py``, ``RemoteFuncs._minion_event``). The two look
alike on the bus. What a minion cannot forge is a signature with another minion's key: with
``minion_sign_messages: True`` every request load (a single event too) carries ``sig``, the
minion's RSA signature over the load (``salt/channel/client.py``, ``_package_load``), and
the master holds the accepted public key of every minion. So :py:func:`react` acts only on
an event whose ``sig`` verifies with the accepted key of the minion named by its ``id``,
that is recent and not seen before, from a minion the master allows, within a per-minion
rate limit; and it targets that minion only. ``dispatch.sls`` makes the stateless checks
(:py:func:`cinder_ha_lib.events.screen`: tag, id, signature, age) while the master renders
it, so an unsigned or forged event never becomes a runner job; this runner checks again and
adds the allow list, the replay cache and the rate limit, which need the master's state.

Master configuration (all optional):

.. code-block:: yaml

    cinder_ha_reactor:
      allow: 'I@cinder_ha:vip:address'  # compound target or list of ids; default:
                                        # cinder_ha_orch_tgt, else the controllers by pillar
      max_jobs: 6                       # cinder.conf corrections per minion ...
      max_moves: 60                     # ... and recorded cluster moves (a failover alone
                                        # brings several start/stop alerts per node) ...
      window: 60                        # ... per this many seconds; the excess is dropped
      max_age: 300                      # seconds a signed event is valid (clock skew + replay)
      conf_names: [cinder.conf]         # file names a conf/changed event may name
      conf_sls: cinder_ha.config        # what a conf/changed event re-applies
      drop_log_interval: 60             # dispatch.sls logs one line per sender per this
                                        # many seconds (with the count of its drops)

Controllers (minion configuration): ``minion_sign_messages: True``.

CLI Example:

.. code-block:: bash

    salt-run cinder_ha_reactor.allowed
    salt-run cinder_ha_reactor.allowed node1
"""
import base64
import binascii
import fcntl
import hashlib
import json
import logging
import os
import time

from cinder_ha_lib import delivery, events

try:
    import salt.client
    import salt.utils.minions

    HAS_SALT = True
except ImportError:  # the pure helpers below are unit-tested without Salt
    HAS_SALT = False

log = logging.getLogger(__name__)

__virtualname__ = "cinder_ha_reactor"

DEFAULT_ALLOW = "I@cinder_ha:vip:address"


def __virtual__():
    if not HAS_SALT:
        return (False, "cinder_ha_reactor: salt is not importable")
    return __virtualname__


# ---------------------------------------------------------------- pure helpers


settings = events.reactor_settings


def allow_target(opts):
    """``(target, tgt_type)`` of the minions allowed to trigger jobs."""
    allow = settings(opts).get("allow") or opts.get("cinder_ha_orch_tgt") or DEFAULT_ALLOW
    if isinstance(allow, (list, tuple)):
        return [str(item) for item in allow], "list"
    return str(allow), "compound"




def decode_event(event_b64):
    """The event data as the reactor saw it (base64 of its JSON, key order kept), or None."""
    try:
        view = json.loads(base64.b64decode(event_b64, validate=True).decode("utf-8"))
    except (TypeError, ValueError, binascii.Error, UnicodeDecodeError):
        return None
    return view if isinstance(view, dict) else None


def decode_sig(sig_b64):
    try:
        return base64.b64decode(sig_b64, validate=True) or None
    except (TypeError, ValueError, binascii.Error):
        return None


def prune(state, now, window):
    """Forget seen signatures past their expiry and job times older than ``window``."""
    state["seen"] = {key: exp for key, exp in (state.get("seen") or {}).items() if exp > now}
    jobs = {}
    for key, times in (state.get("jobs") or {}).items():
        kept = [t for t in times if now - t < window]
        if kept:
            jobs[key] = kept
    state["jobs"] = jobs
    state["drops"] = {key: start for key, start in (state.get("drops") or {}).items() if now - start < window}
    return state


def admit(state, bucket, digest, now, max_jobs, window, max_age, ts=None):
    """
    Decide about one verified event: ``"replay"``, ``"rate"`` (first drop of the window),
    ``"rate-again"`` (further drops) or ``"ok"`` (recorded: counts against the bucket).

    An admitted signature is kept as long as its event counts as fresh: until
    ``max(now, ts) + max_age``, ``ts`` being the minion's stamp (a clock ahead of the master's
    would otherwise make a replay fresh again after the entry left).
    """
    prune(state, now, window)
    if digest in state["seen"]:
        return "replay"
    times = state["jobs"].get(bucket, [])
    if len(times) >= max_jobs:
        if bucket in state["drops"]:
            return "rate-again"
        state["drops"][bucket] = now
        return "rate"
    state["jobs"][bucket] = times + [now]
    state["seen"][digest] = max(now, ts if isinstance(ts, (int, float)) else now) + max_age
    return "ok"


# ---------------------------------------------------------------- master side


def _state_path():
    return os.path.join(__opts__["cachedir"], "cinder_ha_reactor", "state.json")


class ReplayCacheError(Exception):
    """The replay cache cannot be read or written: no event is admitted (a replay could pass)."""


def load_replay_cache(path):
    """The cache file's state; ``{}`` only when there is no file yet. Raises ReplayCacheError."""
    try:
        with open(path, encoding="utf-8") as handle:
            state = json.load(handle)
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise ReplayCacheError(f"{path} is unreadable ({exc})") from exc
    if not isinstance(state, dict) or not all(isinstance(state.get(key, {}), dict)
                                              for key in ("seen", "jobs", "drops")):
        raise ReplayCacheError(f"{path} does not hold a replay cache")
    return state


def _admit(bucket, digest, conf, ts):
    """:py:func:`admit` on the state file, one caller at a time (the reactor runs runners in threads)."""
    path = _state_path()
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    with open(path + ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        state = load_replay_cache(path)
        verdict = admit(state, bucket, digest, time.time(), int(conf["max_jobs"]), float(conf["window"]),
                        float(conf["max_age"]), ts)
        try:
            delivery.write_json_atomic(path, state)
        except OSError as exc:  # an admission that is not on disk could be replayed after a restart
            raise ReplayCacheError(f"{path} could not be written ({exc})") from exc
    return verdict


def _accepted_key(minion):
    return events.accepted_key(__opts__, minion)


def _verify(view, sig):
    return events.signature_ok(_accepted_key(view["id"]), view, sig, events.signing_algorithm(__opts__))


def _allowed_minions():
    tgt, tgt_type = allow_target(__opts__)
    # not greedy: a minion whose pillar the master has not cached is not a controller yet
    found = salt.utils.minions.CkMinions(__opts__).check_minions(tgt, tgt_type, greedy=False)
    return sorted(found.get("minions", []))


def _drop(tag, minion, reason, level=logging.WARNING):
    log.log(level, "cinder_ha_reactor: %s from %s dropped: %s", tag, minion or "(invalid id)", reason)
    return {"result": False, "tag": tag, "minion": minion, "reason": reason}


def allowed(minion=None):
    """
    The minions whose ``cinder_ha/conf/changed`` and ``cinder_ha/cluster/resource`` events
    the reactor acts on (master option ``cinder_ha_reactor:allow``); with ``minion``,
    whether that one is.

    CLI Example:

    .. code-block:: bash

        salt-run cinder_ha_reactor.allowed
        salt-run cinder_ha_reactor.allowed node1
    """
    minions = _allowed_minions()
    if minion is not None:
        return minion in minions
    tgt, tgt_type = allow_target(__opts__)
    return {"target": tgt, "tgt_type": tgt_type, "minions": minions}


def react(tag, event, sig=""):
    """
    What the reactor runs for ``cinder_ha/conf/changed`` and ``cinder_ha/cluster/resource``:
    start the job for the event if its sender is proven, allowed and within its rate.
    ``event`` is the base64 of the event data's JSON (key order kept, ``sig`` and ``_stamp``
    left out), ``sig`` the base64 of its signature. Returns ``result`` and the ``jid`` or the
    ``reason`` of the drop (which is also logged).

    CLI Example (the reactor calls it; by hand only to test):

    .. code-block:: bash

        salt-run cinder_ha_reactor.react cinder_ha/conf/changed "$EVENT_B64" "$SIG_B64"
    """
    if tag != events.RECONFIGURE_TAG and tag not in events.JOB_TAGS:
        tag = str(tag)[:64]
    view, signature = decode_event(event), decode_sig(sig)
    conf = settings(__opts__)
    # dispatch.sls made the same checks while it rendered; again here, for a call by hand
    minion, reason = events.screen(tag, None if view is None else dict(view, sig=signature), time.time(),
                                   float(conf["max_age"]), _verify)
    if reason is not None:
        return _drop(tag, minion, reason)
    if minion not in _allowed_minions():
        return _drop(tag, minion, "minion not allowed (cinder_ha_reactor:allow)")

    payload = view.get("data")
    if tag == events.CONF_TAG:
        path = payload.get("path") if isinstance(payload, dict) else None
        if not events.conf_path_ok(path, list(conf["conf_names"])):
            return _drop(tag, minion, "path is not an absolute path to a known config file name")
        # a correction, not an operator's apply: only a managed key's drift restarts cinder-api
        # (cinder_ha.restarted_through_cluster, correction); any other edit stays pending
        fun, kwarg = "state.apply", {"mods": str(conf["conf_sls"]), "queue": True,
                                     "pillar": {"cinder_ha_run": {"reason": "drift"}}}
    else:
        clean = events.clean_fields(payload)
        if clean is None:
            return _drop(tag, minion, "no usable cluster event fields")
        fun, kwarg = "cinder_ha_events.handle_move", {"event": clean}

    digest = hashlib.sha256(signature).hexdigest()
    # alerts are bursty (a failover brings several per node): their own, higher limit
    limit = conf["max_moves"] if tag.endswith("/cluster/resource") else conf["max_jobs"]
    try:
        verdict = _admit(f"{minion}|{tag}", digest, dict(conf, max_jobs=limit), view.get("ts"))
    except ReplayCacheError as exc:  # fail closed: a replay must not pass for want of the record
        return _drop(tag, minion, f"replay cache: {exc}; every event is dropped until it is repaired "
                                  "or removed (removing it admits replays of the last max_age seconds)",
                     logging.ERROR)
    if verdict == "replay":
        return _drop(tag, minion, "replayed event")
    if verdict in ("rate", "rate-again"):
        reason = f"rate limit: {limit} jobs per {conf['window']} s"
        if verdict == "rate":
            reason += " (further drops in this window are logged at debug level)"
        return _drop(tag, minion, reason, logging.WARNING if verdict == "rate" else logging.DEBUG)

    # the authenticated sender only, as a one-element list (a comma in a string names several)
    with salt.client.get_local_client(__opts__["conf_file"]) as client:
        jid = client.cmd_async([minion], fun, tgt_type="list", kwarg=kwarg)
    if not jid:
        log.error("cinder_ha_reactor: %s from %s: could not publish %s", tag, minion, fun)
        return {"result": False, "tag": tag, "minion": minion, "reason": "publish failed"}
    log.info("cinder_ha_reactor: %s from %s: %s started (jid %s)", tag, minion, fun, jid)
    return {"result": True, "tag": tag, "minion": minion, "fun": fun, "jid": jid}
