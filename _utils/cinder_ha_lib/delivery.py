"""
Delivery bookkeeping of the ``cinder_ha_watch`` engine (issue 14): pure logic, no Salt.

An event counts as delivered only when the master answered the request that carried it;
until then the spooled alert stays on disk and the drift stays unreported, and the engine
retries on one schedule for the whole master link (:py:class:`Backoff`). What was reported is
kept on disk (:py:func:`load_reported` / :py:func:`save_reported`) so that a restart of the
minion neither loses an unacknowledged drift nor reports an acknowledged one a second time.
"""
import json
import os

FIRST = 1.0  # seconds before the first retry ...
FACTOR = 2.0  # ... doubling ...
CAP = 30.0  # ... up to this
# A live master answers in ~50 ms; an attempt waits at least this long for it, so a busy
# master is not taken for an absent one.
MIN_ACK_WAIT = 5.0


class Backoff:
    """
    Retry schedule of the master link: ``first`` seconds after a failed attempt, doubling
    up to ``cap``, back to ``first`` after an acknowledgement.

    Times are whatever monotonic clock the caller passes. The delay counts from the START of
    the failed attempt, and an attempt waits for the master's answer for :py:meth:`ack_wait`
    seconds (at least the delay): while the master is away the engine spends its back-off
    waiting inside a request (the engine's side-effect-free probe), which the transport hands
    over as soon as the master listens again, so a returning master gets the event within
    its start-up, not up to 30 s later.
    """

    def __init__(self, first=FIRST, cap=CAP, factor=FACTOR, min_ack_wait=MIN_ACK_WAIT):
        if first <= 0 or cap < first or factor < 1:
            raise ValueError("need 0 < first <= cap and factor >= 1")
        self.first = float(first)
        self.cap = float(cap)
        self.factor = float(factor)
        self.min_ack_wait = float(min_ack_wait)
        self.failures = 0
        self.due = None  # no retry pending: the link is believed up

    def delay(self):
        """The pause the next failure will cause."""
        return min(self.cap, self.first * self.factor ** self.failures)

    def ack_wait(self):
        """How long the next attempt waits for the master's answer."""
        return max(self.min_ack_wait, self.delay())

    def ready(self, now):
        """Whether an attempt may be made at ``now``."""
        return self.due is None or now >= self.due

    def wait(self, now):
        """Seconds until an attempt may be made (0 when it may be made now)."""
        return 0.0 if self.due is None else max(0.0, self.due - now)

    def failed(self, started):
        """An attempt begun at ``started`` got no answer: returns when the next one is due."""
        self.due = started + self.delay()
        self.failures += 1
        return self.due

    def succeeded(self):
        """The master answered: the link is up again."""
        self.failures = 0
        self.due = None

    @property
    def down(self):
        return self.due is not None


class Resend:
    """
    When a drift is sent again. The master's answer says only that the event reached its bus:
    the reactor may have dropped it (rate limit, a full pool) or its job may have failed. So a
    drift still there ``first`` seconds after it was sent is sent again, then after twice as
    long, up to ``cap`` (bounded: a drift nobody corrects costs one event per ``cap``). The
    formula's own write is never one: it records its digest before the file changes.
    """

    def __init__(self, first=60.0, cap=None):
        if first <= 0:
            raise ValueError("need first > 0")
        self.first = float(first)
        self.cap = float(cap) if cap is not None else 16 * self.first
        self.due = {}  # path -> (monotonic time, interval that led there)

    def sent(self, path, now):
        """``path``'s drift was acknowledged at ``now``: the next send doubles the last pause."""
        interval = self.due[path][1] * 2 if path in self.due else self.first
        self.due[path] = (now + min(interval, self.cap), min(interval, self.cap))

    def watch(self, path, now):
        """A drift already reported (before a restart, say): re-checked ``first`` s from ``now``."""
        self.due.setdefault(path, (now + self.first, self.first / 2))

    def retry_at(self, path, when):
        """The re-send was not acknowledged: try again at ``when``, the pause unchanged."""
        if path in self.due:
            self.due[path] = (when, self.due[path][1])

    def forget(self, path):
        """No drift any more (corrected, or a new edit that is reported on its own)."""
        self.due.pop(path, None)

    def ready(self, now):
        """The paths whose re-check is due."""
        return [path for path, (when, _) in self.due.items() if when <= now]

    def next_due(self):
        return min((when for when, _ in self.due.values()), default=None)


def reported_transition(reported, path, digest):
    """
    ``reported`` (path -> digest) after setting ``path`` to ``digest`` (None forgets it),
    and whether it changed, so callers write the file only when it did.
    """
    if reported.get(path) == digest:
        return reported, False
    updated = dict(reported)
    if digest is None:
        updated.pop(path, None)
    else:
        updated[path] = digest
    return updated, True


def load_reported(path):
    """The drifts the master acknowledged (path -> sha256), ``{}`` when none or unreadable."""
    if not path:
        return {}
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {key: value for key, value in data.items() if isinstance(key, str) and isinstance(value, str)}


def save_reported(path, reported):
    """Write ``reported`` atomically (a crash leaves the old or the new file, never half)."""
    if path:
        write_json_atomic(path, reported)


def write_json_atomic(path, data):
    """
    Replace ``path`` with ``data`` as JSON, durably: a temp file, fsynced, renamed over
    ``path``, then the folder fsynced (the rename itself survives a power cut).
    """
    folder = os.path.dirname(path)
    os.makedirs(folder, mode=0o700, exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        with open(tmp, "w", encoding="utf-8") as handle:
            json.dump(data, handle, sort_keys=True)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
