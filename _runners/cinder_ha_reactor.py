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
rate limit; and it targets that minion only.

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

from cinder_ha_lib import events

try:
    import salt.cache
    import salt.client
    import salt.crypt
    import salt.serializers.msgpack
    import salt.utils.minions

    HAS_SALT = True
except ImportError:  # the pure helpers below are unit-tested without Salt
    HAS_SALT = False

log = logging.getLogger(__name__)

__virtualname__ = "cinder_ha_reactor"

# the master adds _stamp after the minion signed; sig is not part of what it signed
UNSIGNED_KEYS = ("sig", "_stamp")
DEFAULT_ALLOW = "I@cinder_ha:vip:address"
DEFAULTS = {
    "allow": None,
    "max_jobs": 6,
    "max_moves": 60,
    "window": 60,
    "max_age": 300,
    "conf_names": ["cinder.conf"],
    "conf_sls": "cinder_ha.config",
}


def __virtual__():
    if not HAS_SALT:
        return (False, "cinder_ha_reactor: salt is not importable")
    return __virtualname__


# ---------------------------------------------------------------- pure helpers


def settings(opts):
    """The ``cinder_ha_reactor`` master option over the defaults."""
    conf = opts.get("cinder_ha_reactor")
    merged = dict(DEFAULTS)
    if isinstance(conf, dict):
        merged.update({key: value for key, value in conf.items() if value is not None})
    return merged


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


def signed_view(data):
    """What the minion signed: the fired load without ``sig`` and ``_stamp``, in its order."""
    return {key: value for key, value in data.items() if key not in UNSIGNED_KEYS}


def fresh(ts, now, max_age):
    """The minion's ``ts`` (seconds, its clock) is within ``max_age`` of ``now``."""
    return isinstance(ts, int) and not isinstance(ts, bool) and abs(now - ts) <= max_age






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


def admit(state, bucket, digest, now, max_jobs, window, max_age):
    """
    Decide about one verified event: ``"replay"``, ``"rate"`` (first drop of the window),
    ``"rate-again"`` (further drops) or ``"ok"`` (recorded: counts against the bucket).
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
    state["seen"][digest] = now + max_age
    return "ok"


# ---------------------------------------------------------------- master side


def _state_path():
    return os.path.join(__opts__["cachedir"], "cinder_ha_reactor", "state.json")


def _admit(bucket, digest, conf):
    """:py:func:`admit` on the state file, one caller at a time (the reactor runs runners in threads)."""
    path = _state_path()
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    with open(path + ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            with open(path, encoding="utf-8") as handle:
                state = json.load(handle)
            if not isinstance(state, dict):
                state = {}
        except (OSError, ValueError):
            state = {}
        verdict = admit(state, bucket, digest, time.time(), int(conf["max_jobs"]), float(conf["window"]),
                        float(conf["max_age"]))
        tmp = f"{path}.tmp{os.getpid()}"
        with open(tmp, "w", encoding="utf-8") as handle:
            json.dump(state, handle)
        os.replace(tmp, path)
    return verdict


def _accepted_key(minion):
    """The accepted public key of ``minion`` (PEM), or None (pending, rejected, denied, unknown)."""
    cache = salt.cache.Cache(__opts__, driver=__opts__["keys.cache_driver"])
    key = cache.fetch("keys", minion)
    if isinstance(key, dict) and key.get("state") == "accepted" and key.get("pub"):
        return key["pub"]
    return None


def _verify(view, sig):
    pub = _accepted_key(view["id"])
    if pub is None:
        return False
    message = salt.serializers.msgpack.serialize(view)
    # the minions' default; a 3008.4 master has no default for it (its own _return then fails)
    algorithm = __opts__.get("signing_algorithm") or "PKCS1v15-SHA1"
    try:
        return bool(salt.crypt.PublicKey.from_str(pub).verify(message, sig, algorithm=algorithm))
    except Exception as exc:  # a malformed signature is a failed one
        log.debug("cinder_ha_reactor: signature check error: %s", exc)
        return False


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
    if tag == events.RECONFIGURE_TAG:
        return _drop(tag, None, "reconfiguring every controller is an operator command on the master: "
                                "salt-run state.orchestrate cinder_ha.orch.reconfigure")
    if tag not in events.JOB_TAGS:
        return _drop(str(tag)[:64], None, "not a cinder_ha job tag")
    view = decode_event(event)
    if view is None:
        return _drop(tag, None, "event data unreadable")
    minion = events.safe_minion_id(view.get("id"))
    if minion is None:
        return _drop(tag, None, "no valid minion id")
    signature = decode_sig(sig)
    if signature is None:
        return _drop(tag, minion, "unsigned: a batched event, or minion_sign_messages is not True on the sender")
    if view.get("tag") != tag or view.get("cmd") != "_minion_event":
        return _drop(tag, minion, "not the load of a minion event with this tag")
    if not _verify(view, signature):
        return _drop(tag, minion, "signature does not verify with this minion's accepted key (forged id)")
    conf = settings(__opts__)
    if not fresh(view.get("ts"), time.time(), float(conf["max_age"])):
        return _drop(tag, minion, "stale or future timestamp")
    if minion not in _allowed_minions():
        return _drop(tag, minion, "minion not allowed (cinder_ha_reactor:allow)")

    payload = view.get("data")
    if tag == events.CONF_TAG:
        path = payload.get("path") if isinstance(payload, dict) else None
        if not events.conf_path_ok(path, list(conf["conf_names"])):
            return _drop(tag, minion, "path is not an absolute path to a known config file name")
        fun, kwarg = "state.apply", {"mods": str(conf["conf_sls"]), "queue": True}
    else:
        clean = events.clean_fields(payload)
        if clean is None:
            return _drop(tag, minion, "no usable cluster event fields")
        fun, kwarg = "cinder_ha_events.handle_move", {"event": clean}

    digest = hashlib.sha256(signature).hexdigest()
    # alerts are bursty (a failover brings several per node): their own, higher limit
    limit = conf["max_moves"] if tag.endswith("/cluster/resource") else conf["max_jobs"]
    verdict = _admit(f"{minion}|{tag}", digest, dict(conf, max_jobs=limit))
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
