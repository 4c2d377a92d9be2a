"""The cinder-ha events: tags and fields, one schema for the engine, the module and the reactor.

The reactor's side (issue 23): :py:func:`screen` is what ``dispatch.sls`` decides while the
master renders it, before any runner job exists, and what the runner checks again;
:py:class:`DropLog` keeps the log of those drops to one line per sender per interval.
"""
import re

CONF_TAG = "cinder_ha/conf/changed"          # engine: cinder.conf differs from what Salt wrote
RESOURCE_TAG = "cinder_ha/cluster/resource"  # engine: an alert of the cluster's alert agent
RECONFIGURE_TAG = "cinder_ha/reconfigure"    # never acted on: an operator command on the master
JOB_TAGS = (CONF_TAG, RESOURCE_TAG)          # the tags the reactor may start a job for

# What the alert agent writes (Pacemaker's CRM_alert_* variables); what a move record keeps.
ALERT_FIELDS = ("kind", "rsc", "task", "rc", "target_rc", "status", "desc", "node", "timestamp",
                "interval", "attribute_name", "attribute_value", "recipient")
MOVE_FIELDS = ALERT_FIELDS[:10]
FIELD_LIMIT = 256
RSC_RE = re.compile(r"[A-Za-z0-9_.:-]{1,128}")
MINION_ID_RE = re.compile(r"[A-Za-z0-9_.@-]{1,253}")

# The engine's heartbeat in the alert spool: the alert agent (Python, as hacluster) and the
# cinder-api agent (shell) spool only while it is this fresh, so that without a running engine
# nothing piles up to be sent as a backlog when one starts. Both scripts carry these two values
# (they cannot import this package); a unit test holds them equal.
ENGINE_HEARTBEAT = ".engine-alive"  # touched at each of the engine's rescans (every 5 s)
ENGINE_STALE_SECONDS = 120          # older than this (a minion stopped, not restarting): no engine

# The master option cinder_ha_reactor over these (see _runners/cinder_ha_reactor.py).
REACTOR_DEFAULTS = {
    "allow": None,
    "max_jobs": 6,
    "max_moves": 60,
    "window": 60,
    "max_age": 300,
    "conf_names": ["cinder.conf"],
    "conf_sls": "cinder_ha.config",
    "drop_log_interval": 60,
}
# the master adds _stamp after the minion signed; sig is not part of what it signed
UNSIGNED_KEYS = ("sig", "_stamp")
RECONFIGURE_REASON = ("reconfiguring every controller is an operator command on the master: "
                      "salt-run state.orchestrate cinder_ha.orch.reconfigure")
UNSIGNED_REASON = "unsigned: a batched event, or minion_sign_messages is not True on the sender"
FORGED_REASON = "signature does not verify with this minion's accepted key (forged id)"


def clean_fields(raw, fields=MOVE_FIELDS):
    """
    Only ``fields`` of ``raw``, as short strings, or None when nothing usable is left or
    the resource name is not one. Event data come from the network: data, never commands.
    """
    if not isinstance(raw, dict):
        return None
    clean = {key: str(raw[key])[:FIELD_LIMIT] for key in fields if raw.get(key) is not None}
    if "rsc" in clean and not RSC_RE.fullmatch(clean["rsc"]):
        return None
    return clean or None


def conf_path_ok(path, conf_names):
    """An absolute path without ``..`` or empty parts whose file name is a known config name."""
    if not isinstance(path, str) or not path.startswith("/") or len(path) > 4096:
        return False
    parts = path.split("/")
    return ".." not in parts and "" not in parts[1:] and parts[-1] in conf_names


def safe_minion_id(value):
    """A minion id fit for a log line or a target, else None."""
    return value if isinstance(value, str) and MINION_ID_RE.fullmatch(value) else None


def reactor_settings(opts):
    """The ``cinder_ha_reactor`` master option over :py:data:`REACTOR_DEFAULTS`."""
    conf = opts.get("cinder_ha_reactor")
    merged = dict(REACTOR_DEFAULTS)
    if isinstance(conf, dict):
        merged.update({key: value for key, value in conf.items() if value is not None})
    return merged


def signed_view(data):
    """What the minion signed: the fired load without ``sig`` and ``_stamp``, in its order."""
    return {key: value for key, value in data.items() if key not in UNSIGNED_KEYS}


def fresh(ts, now, max_age):
    """The minion's ``ts`` (seconds, its clock) is within ``max_age`` of ``now``."""
    return isinstance(ts, int) and not isinstance(ts, bool) and abs(now - ts) <= max_age


def screen(tag, data, now, max_age, verify):
    """
    The stateless checks of one event on the master's bus: ``(minion, reason)``, where
    ``reason`` is None when the event may go on to the runner (allow list, replays, rate).

    ``data`` is the event data as fired (``sig`` bytes included); ``verify(view, sig)`` says
    whether ``sig`` is the signature of ``view`` by the accepted key of ``view["id"]``. It runs
    last: whatever fails before costs no key lookup.
    """
    minion = safe_minion_id(data.get("id")) if isinstance(data, dict) else None
    if tag == RECONFIGURE_TAG:
        return minion, RECONFIGURE_REASON
    if tag not in JOB_TAGS:
        return minion, "not a cinder_ha job tag"
    if not isinstance(data, dict):
        return None, "event data unreadable"
    if minion is None:
        return None, "no valid minion id"
    sig = data.get("sig")
    if not isinstance(sig, bytes) or not sig:
        return minion, UNSIGNED_REASON
    view = signed_view(data)
    if view.get("tag") != tag or view.get("cmd") != "_minion_event":
        return minion, "not the load of a minion event with this tag"
    if not fresh(view.get("ts"), now, max_age):
        return minion, "stale or future timestamp"
    if not verify(view, sig):
        return minion, FORGED_REASON
    return minion, None


class DropLog:
    """
    Rate limit of the drop log: at most one line per sender per ``interval`` seconds, which
    counts the drops kept quiet since the previous line. Senders are claimed ids (anyone can
    claim any): past ``max_keys`` of them they share one entry, so memory stays bounded.
    """

    OVERFLOW = "(many senders)"

    def __init__(self, max_keys=1024):
        self.max_keys = max_keys
        self.entries = {}  # sender -> [time of its last line, drops since]

    def note(self, sender, now, interval):
        """One drop from ``sender``: None (stay quiet) or how many drops its line stands for."""
        if sender not in self.entries and len(self.entries) >= self.max_keys:
            self.entries = {key: entry for key, entry in self.entries.items() if now - entry[0] < interval}
            if len(self.entries) >= self.max_keys:
                sender = self.OVERFLOW
        entry = self.entries.get(sender)
        if entry is not None and now - entry[0] < interval:
            entry[1] += 1
            return None
        self.entries[sender] = [now, 0]
        return 1 + (entry[1] if entry else 0)


# One per process: the reactor renders dispatch.sls in its own process, module state survives.
REACTOR_DROPS = DropLog()


# ---------------------------------------------------------------- master side (imports Salt)


def accepted_key(opts, minion):
    """The accepted public key of ``minion`` (PEM), or None (pending, rejected, denied, unknown)."""
    import salt.cache  # pylint: disable=import-outside-toplevel

    key = salt.cache.Cache(opts, driver=opts["keys.cache_driver"]).fetch("keys", minion)
    if isinstance(key, dict) and key.get("state") == "accepted" and key.get("pub"):
        return key["pub"]
    return None


def signature_ok(pub, view, sig, algorithm):
    """``sig`` is ``pub``'s signature of ``view`` as the minion serialized it (msgpack, key order kept)."""
    import salt.crypt  # pylint: disable=import-outside-toplevel
    import salt.serializers.msgpack  # pylint: disable=import-outside-toplevel

    if pub is None:
        return False
    try:
        return bool(salt.crypt.PublicKey.from_str(pub).verify(salt.serializers.msgpack.serialize(view), sig,
                                                                algorithm=algorithm))
    except Exception:  # pylint: disable=broad-except  # a malformed signature is a failed one
        return False


def signing_algorithm(opts):
    # the minions' default; a 3008.4 master has no default for it (its own _return then fails)
    return opts.get("signing_algorithm") or "PKCS1v15-SHA1"
