"""
Minion engine: report real outside changes of cinder.conf and forward Pacemaker alerts.

Why an engine and not a beacon: beacons are polled once a second and Salt's inotify beacon
plus a re-applying reactor loops (salt #23685, #50002, #60755). This engine blocks in
``pyinotify`` on the DIRECTORY of each watched file (``IN_CLOSE_WRITE | IN_MOVED_TO``, so
in-place writes and ``sed -i``/vim/``file.managed`` rename-over writes are both seen), waits a
short debounce, and then sends ``cinder_ha/conf/changed`` only when the file's sha256 differs
from the digest the ``cinder_conf.managed`` state recorded in
``<cachedir>/cinder_ha/digests.json`` before its atomic rename (and from the digest this
engine already reported). The formula's own writes therefore never trigger anything, and an
edit made while a state runs is still reported (the reactor queues the re-apply).

It also drains the alert spool written by the Pacemaker alert agent ``cinder_ha_alert``
(one small JSON file per cluster event) and forwards each file as ``cinder_ha/cluster/resource``,
deleting it only once the event went to the master.

Minion configuration:

.. code-block:: yaml

    engines:
      - cinder_ha_watch:
          paths: [/etc/cinder/cinder.conf]     # default: pillar cinder_ha:cinder_conf:path
          alert_spool: /var/lib/cinder-ha/alerts
          debounce: 0.08                       # seconds
"""
import hashlib
import json
import logging
import os
import re
import time

try:
    import pyinotify

    HAS_PYINOTIFY = True
except ImportError:  # pragma: no cover - pyinotify is a dependency of the package
    HAS_PYINOTIFY = False

log = logging.getLogger(__name__)

__virtualname__ = "cinder_ha_watch"

CONF_TAG = "cinder_ha/conf/changed"
ALERT_TAG = "cinder_ha/cluster/resource"
DEFAULT_CONF = "/etc/cinder/cinder.conf"
ABSENT = "absent"  # reported digest of a watched file that was removed
ALERT_KEYS = ("kind", "rsc", "task", "rc", "target_rc", "status", "desc", "node", "timestamp",
              "interval", "attribute_name", "attribute_value", "recipient")
MAX_ALERT_BYTES = 64 * 1024
RESCAN_SECONDS = 5.0  # spool leftovers and vanished directories are retried this often


def __virtual__():
    if not HAS_PYINOTIFY:
        return (False, "cinder_ha_watch: the pyinotify library is not installed (pip install pyinotify)")
    return __virtualname__


# ---------------------------------------------------------------- pure helpers


def file_digest(path):
    """sha256 hex of the file's bytes, or ``ABSENT`` when it does not exist."""
    sha = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(65536), b""):
                sha.update(chunk)
    except FileNotFoundError:
        return ABSENT
    return sha.hexdigest()


def recorded_digest(digests, path):
    """The digest the formula recorded for ``path`` (as configured or as resolved)."""
    return digests.get(path) or digests.get(os.path.realpath(path))


def should_report(current, recorded, last_reported):
    """
    Decide about one settled change: returns ``(report, new_last_reported)``.

    Equal to the recorded digest: the formula's own write (or a revert to it): nothing to do,
    and the next outside edit is new again even if it repeats an earlier one.
    Equal to the digest already reported: a second notification of the same edit.
    """
    if recorded is not None and current == recorded:
        return False, None
    if current == last_reported:
        return False, last_reported
    return True, current


def sanitize_alert(raw):
    """Keep only the known alert fields, as short strings: event data are data, never commands."""
    if not isinstance(raw, dict):
        return None
    clean = {}
    for key in ALERT_KEYS:
        value = raw.get(key)
        if value is None:
            continue
        clean[key] = str(value)[:256]
    rsc = clean.get("rsc")
    if rsc is not None and not re.fullmatch(r"[A-Za-z0-9_.:-]{1,128}", rsc):
        return None
    return clean or None


def read_alert_file(path):
    """The sanitized alert of one spool file, or None when unreadable/invalid."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_ALERT_BYTES + 1)
    except FileNotFoundError:
        return None
    if len(raw) > MAX_ALERT_BYTES:
        return None
    try:
        return sanitize_alert(json.loads(raw.decode("utf-8")))
    except ValueError:
        return None


def is_spool_name(name):
    return name.endswith(".json") and not name.startswith(".")


# ---------------------------------------------------------------- the watcher


class Watcher:
    """
    Blocks in pyinotify; reports settled conf changes and forwards spooled alerts.

    ``send(tag, data) -> bool`` ships one event; ``digests_file`` is the formula's record.
    Independent of Salt so the functional tests drive it with a plain callable.
    """

    def __init__(self, paths, send, digests_file, alert_spool=None, debounce=0.08):
        self.paths = [os.path.abspath(p) for p in paths]
        self.send = send
        self.digests_file = digests_file
        self.alert_spool = os.path.abspath(alert_spool) if alert_spool else None
        self.debounce = float(debounce)
        self.last_reported = {}
        self.pending = {}  # conf path -> monotonic deadline
        self.spool_due = None
        self.stopping = False
        self.watched_dirs = {}  # dir -> wd
        self.manager = pyinotify.WatchManager()
        self.notifier = pyinotify.Notifier(self.manager, default_proc_fun=self._on_event)
        self.last_rescan = 0.0

    # -- inotify
    def _wanted_dirs(self):
        dirs = {os.path.dirname(p) for p in self.paths}
        if self.alert_spool:
            dirs.add(self.alert_spool)
        return dirs

    def _ensure_watches(self, initial=False):
        mask = pyinotify.IN_CLOSE_WRITE | pyinotify.IN_MOVED_TO | pyinotify.IN_DELETE | pyinotify.IN_MOVED_FROM
        for directory in self._wanted_dirs():
            wd = self.watched_dirs.get(directory)
            if wd is not None and self.manager.get_path(wd) == directory and os.path.isdir(directory):
                continue
            if not os.path.isdir(directory):
                self.watched_dirs.pop(directory, None)
                continue
            result = self.manager.add_watch(directory, mask, quiet=True)
            if result.get(directory, -1) >= 0:
                self.watched_dirs[directory] = result[directory]
                log.debug("cinder_ha_watch: watching %s", directory)
                if not initial:  # the file may have changed while its directory was not watched
                    for path in self.paths:
                        if os.path.dirname(path) == directory:
                            self.pending.setdefault(path, time.monotonic())

    def _on_event(self, event):
        path = os.path.join(event.path, event.name) if event.name else event.path
        now = time.monotonic()
        if path in self.paths:
            self.pending[path] = now + self.debounce
        elif self.alert_spool and event.path == self.alert_spool and is_spool_name(event.name or "") \
                and not event.mask & (pyinotify.IN_DELETE | pyinotify.IN_MOVED_FROM):
            self.spool_due = now + self.debounce / 4

    # -- reports
    def _digests(self):
        try:
            with open(self.digests_file, encoding="utf-8") as handle:
                data = json.load(handle)
            return data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            return {}

    def check_path(self, path):
        """Report ``path`` if it holds an outside change. Returns True when an event was sent."""
        current = file_digest(path)
        recorded = recorded_digest(self._digests(), path)
        report, remembered = should_report(current, recorded, self.last_reported.get(path))
        if not report:
            self.last_reported[path] = remembered
            return False
        if self.send(CONF_TAG, {"path": path, "digest": current}):
            self.last_reported[path] = remembered
            log.info("cinder_ha_watch: outside change of %s reported (sha256 %s)", path, current[:12])
            return True
        log.warning("cinder_ha_watch: could not send %s for %s; retrying", CONF_TAG, path)
        self.pending[path] = time.monotonic() + RESCAN_SECONDS
        return False

    def drain_spool(self):
        """Forward every spooled alert in name order; delete each once sent. Returns the count."""
        if not self.alert_spool or not os.path.isdir(self.alert_spool):
            return 0
        sent = 0
        for name in sorted(os.listdir(self.alert_spool)):
            if not is_spool_name(name):
                continue
            path = os.path.join(self.alert_spool, name)
            alert = read_alert_file(path)
            if alert is not None:
                if not self.send(ALERT_TAG, alert):
                    log.warning("cinder_ha_watch: could not forward alert %s; kept for a retry", name)
                    return sent
                sent += 1
            else:
                log.warning("cinder_ha_watch: dropping unreadable alert file %s", name)
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
        return sent

    # -- loop
    def _timeout_ms(self):
        deadlines = list(self.pending.values())
        if self.spool_due is not None:
            deadlines.append(self.spool_due)
        next_rescan = self.last_rescan + RESCAN_SECONDS
        wait = min(deadlines + [next_rescan]) - time.monotonic()
        return max(0, int(wait * 1000))

    def step(self):
        """One round: wait for inotify or the next deadline, then act on what is due."""
        if self.notifier.check_events(timeout=self._timeout_ms()):
            self.notifier.read_events()
            self.notifier.process_events()
        now = time.monotonic()
        if now - self.last_rescan >= RESCAN_SECONDS:
            self.last_rescan = now
            self._ensure_watches()
            if self.alert_spool:
                self.spool_due = self.spool_due or now
        for path, deadline in list(self.pending.items()):
            if deadline <= now:
                del self.pending[path]
                self.check_path(path)
        if self.spool_due is not None and self.spool_due <= now:
            self.spool_due = None
            self.drain_spool()

    def run(self):
        self._ensure_watches(initial=True)
        self.last_rescan = time.monotonic()
        # an edit made while the minion was down: reported when the formula has a record of
        # the file (no record means the formula never managed it here: nothing to restore)
        digests = self._digests()
        for path in self.paths:
            if recorded_digest(digests, path) is not None:
                self.check_path(path)
        if self.alert_spool:
            self.spool_due = time.monotonic()
        try:
            while not self.stopping:
                self.step()
        finally:
            self.notifier.stop()


# ---------------------------------------------------------------- Salt entry point


def _send(tag, data):
    try:
        return bool(__salt__["event.send"](tag, data))
    except Exception as exc:  # the master may be away for a moment: the caller retries
        log.warning("cinder_ha_watch: event.send %s failed: %s", tag, exc)
        return False


def start(paths=None, alert_spool=None, debounce=0.08):
    """Engine entry point (see the module docstring for the configuration)."""
    if not paths:
        paths = [__salt__["pillar.get"]("cinder_ha:cinder_conf:path", DEFAULT_CONF) or DEFAULT_CONF]
    elif isinstance(paths, str):
        paths = [paths]
    digests_file = os.path.join(__opts__["cachedir"], "cinder_ha", "digests.json")
    log.info("cinder_ha_watch: watching %s, alert spool %s", ", ".join(paths), alert_spool or "(none)")
    Watcher(paths, _send, digests_file, alert_spool=alert_spool, debounce=debounce).run()
