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
(one small JSON file per cluster event) and forwards each file as ``cinder_ha/cluster/resource``.

Delivery (issue 14): ``event.send`` returns True as soon as the event is on the minion's own
bus, and the minion drops it when the master is away. So this engine sends each event itself
through the master's request channel, as ``event.fire_master`` does from ``salt-call``
(``cmd: _minion_event``, the minion's key, signed when ``minion_sign_messages`` is set): the
master answers only after it fired the event on its bus, and the request raises when no
answer comes (see :py:class:`MasterSender`). Only then is a spool file deleted or a drift
marked reported; otherwise the engine retries, 1 s doubling to 30 s
(``cinder_ha_delivery.Backoff``). Acknowledged drifts are kept in
``<cachedir>/cinder_ha/watch_reported.json``, so an edit made while the minion was down is
reported once at start-up, and one already reported is not reported again.

The master's answer means the event reached its bus, not that anything acted on it: the
reactor may have rate-limited or dropped it, or its job failed. So a drift still there
(the file's digest is the one reported, not the formula's record) is sent again ``recheck``
seconds after it was sent, then after pauses that double up to 16 times ``recheck``
(``cinder_ha_lib.delivery.Resend``); a corrected file, or the formula's own write, ends it.

Spool entries are opened with ``O_NOFOLLOW|O_NONBLOCK`` and must be regular files: a
symlink, folder or FIFO named ``*.json`` is skipped with one log line and left in place.

The engine touches ``<alert_spool>/.engine-alive`` at start and every 5 s. The alert agent and
the cinder-api agent spool only while it is at most 120 s old
(``cinder_ha_lib.events.ENGINE_STALE_SECONDS``): a node without a running engine (the engine
never configured, its minion stopped) spools nothing, so no backlog piles up to be sent the
day an engine starts. A minion restart within that time loses nothing.

Minion configuration:

.. code-block:: yaml

    engines:
      - cinder_ha_watch:
          paths: [/etc/cinder/cinder.conf]     # default: pillar cinder_ha:cinder_conf:path
          alert_spool: /var/lib/cinder-ha/alerts
          debounce: 0.08                       # seconds
          recheck: 60                          # a reported drift still there is sent again
                                               # after this many seconds, then 2x, 4x ... 16x
                                               # (0: never)
"""
import hashlib
import json
import logging
import os
import stat
import time

from cinder_ha_lib import delivery, events

try:
    import pyinotify

    HAS_PYINOTIFY = True
except ImportError:  # pragma: no cover - pyinotify is a dependency of the package
    HAS_PYINOTIFY = False

log = logging.getLogger(__name__)

__virtualname__ = "cinder_ha_watch"

DEFAULT_CONF = "/etc/cinder/cinder.conf"
ABSENT = "absent"  # reported digest of a watched file that was removed
NOT_REGULAR = "not-a-regular-file"  # ... and of one replaced by a FIFO, a folder, a device
MAX_ALERT_BYTES = 64 * 1024
RESCAN_SECONDS = 5.0  # spool leftovers and vanished directories are retried this often
RECHECK_SECONDS = 60.0  # a reported drift still there is sent again after this, then doubling


def __virtual__():
    if not HAS_PYINOTIFY:
        return (False, "cinder_ha_watch: the pyinotify library is not installed (pip install pyinotify)")
    return __virtualname__


# ---------------------------------------------------------------- pure helpers


def _open_nonblocking(path, follow=True):
    """A read-only fd that cannot block (a FIFO opens at once); None when the file is gone."""
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | (0 if follow else os.O_NOFOLLOW)
    try:
        return os.open(path, flags)
    except FileNotFoundError:
        return None


def _regular(fd):
    """Whether ``fd`` is a regular file; closes it when it is not."""
    if stat.S_ISREG(os.fstat(fd).st_mode):
        return True
    os.close(fd)
    return False


def file_digest(path):
    """
    sha256 hex of the file's bytes, ``ABSENT`` when it does not exist, ``NOT_REGULAR`` when it
    is a FIFO, a device, a folder...: read without blocking, so such a file cannot hang the
    engine; reported like any drift, and the formula's state then says what is wrong.
    """
    fd = _open_nonblocking(path)
    if fd is None:
        return ABSENT
    if not _regular(fd):
        return NOT_REGULAR
    with os.fdopen(fd, "rb") as handle:
        sha = hashlib.sha256()
        for chunk in iter(lambda: handle.read(65536), b""):
            sha.update(chunk)
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
    return events.clean_fields(raw, events.ALERT_FIELDS)


class NotAnAlertFile(Exception):
    """A spool entry that is no regular file (folder, FIFO, symlink, socket): skipped, left in place."""


def read_alert_file(path):
    """
    The sanitized alert of one spool file, or None when unreadable/invalid (then deleted).
    Opened with ``O_NOFOLLOW|O_NONBLOCK`` and checked to be a regular file, else
    :py:class:`NotAnAlertFile`: only the alert agent writes here, as root, and a FIFO or
    folder named ``*.json`` must neither block nor stop the engine.
    """
    try:
        fd = _open_nonblocking(path, follow=False)
    except OSError as exc:  # ELOOP: a symlink; ENXIO: a socket; EACCES ...
        raise NotAnAlertFile(f"cannot be opened without following it: {exc.strerror}") from exc
    if fd is None:
        return None
    if not _regular(fd):
        raise NotAnAlertFile("not a regular file")
    with os.fdopen(fd, "rb") as handle:
        raw = handle.read(MAX_ALERT_BYTES + 1)
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

    ``send(tag, data, timeout) -> bool`` ships one event and returns True only when the
    master acknowledged it within ``timeout`` seconds; ``digests_file`` is the formula's
    record; ``reported_file`` keeps the acknowledged drifts across restarts; ``backoff`` is the
    retry schedule of the master link. Independent of Salt so the functional tests drive it
    with a plain callable.
    """

    def __init__(self, paths, send, digests_file, alert_spool=None, debounce=0.08, reported_file=None,
                 backoff=None, recheck=RECHECK_SECONDS):
        self.paths = [os.path.abspath(p) for p in paths]
        self.send = send
        self.digests_file = digests_file
        self.alert_spool = os.path.abspath(alert_spool) if alert_spool else None
        self.beat_failed = False
        self.debounce = float(debounce)
        self.reported_file = reported_file
        self.last_reported = delivery.load_reported(reported_file)
        self.backoff = backoff or delivery.Backoff()
        # a drift still there is sent again (None: never; see cinder_ha_lib.delivery.Resend)
        self.resend = delivery.Resend(recheck) if recheck else None
        self.skipped = set()  # spool entries that are no regular file, logged once each
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

    def _remember(self, path, digest):
        """Keep what the master acknowledged (None: nothing outstanding), on disk too."""
        self.last_reported, changed = delivery.reported_transition(self.last_reported, path, digest)
        if changed:
            try:
                delivery.save_reported(self.reported_file, self.last_reported)
            except OSError as exc:  # a restart may then report this drift once more
                log.warning("cinder_ha_watch: could not save %s: %s", self.reported_file, exc)

    def _deliver(self, tag, data, what):
        """Send one event; True once the master acknowledged it, else schedule the retry."""
        started, wait = time.monotonic(), self.backoff.ack_wait()
        try:
            acked = bool(self.send(tag, data, wait))
        except Exception as exc:  # pylint: disable=broad-except  # the loop must survive any sender error
            log.warning("cinder_ha_watch: sending %s failed: %s", tag, exc)
            acked = False
        if acked:
            if self.backoff.down:
                log.info("cinder_ha_watch: the master acknowledges events again")
            self.backoff.succeeded()
            return True
        due = self.backoff.failed(started)
        log.warning("cinder_ha_watch: the master did not acknowledge %s (%s) within %.0f s; next attempt in %.1f s",
                    tag, what, wait, max(0.0, due - time.monotonic()))
        return False

    def check_path(self, path):
        """Report ``path`` if it holds an outside change. Returns True when the master acknowledged it."""
        current = file_digest(path)
        recorded = recorded_digest(self._digests(), path)
        report, remembered = should_report(current, recorded, self.last_reported.get(path))
        if not report:
            self._remember(path, remembered)
            if self.resend is not None:
                if remembered is None:  # the formula's content again: nothing to re-send
                    self.resend.forget(path)
                else:  # the drift already reported is still there
                    self.resend.watch(path, time.monotonic())
            return False
        if not self.backoff.ready(time.monotonic()):  # the link is down: wait for the retry
            self.pending[path] = self.backoff.due
            return False
        if self._deliver(events.CONF_TAG, {"path": path, "digest": current}, path):
            self._remember(path, remembered)
            if self.resend is not None:
                self.resend.forget(path)
                self.resend.sent(path, time.monotonic())
            log.info("cinder_ha_watch: outside change of %s reported (sha256 %s)", path, current[:12])
            return True
        # the file is read again then: a newer edit is reported instead of this one
        self.pending[path] = self.backoff.due
        return False

    def recheck(self, path):
        """
        Send again a drift that is still there: same file content as reported, still not the
        formula's. A new edit goes the usual way instead; a corrected file ends the re-checks.
        """
        current = file_digest(path)
        recorded = recorded_digest(self._digests(), path)
        if current != self.last_reported.get(path) or (recorded is not None and current == recorded):
            self.resend.forget(path)
            self.pending.setdefault(path, time.monotonic())
            return False
        if not self.backoff.ready(time.monotonic()):
            self.resend.retry_at(path, self.backoff.due)
            return False
        if not self._deliver(events.CONF_TAG, {"path": path, "digest": current}, path):
            self.resend.retry_at(path, self.backoff.due)
            return False
        self.resend.sent(path, time.monotonic())
        log.info("cinder_ha_watch: %s still differs from what the formula wrote (sha256 %s): reported again",
                 path, current[:12])
        return True

    def drain_spool(self):
        """Forward every spooled alert in name order; delete each once acknowledged. Returns the count."""
        if not self.alert_spool or not os.path.isdir(self.alert_spool):
            return 0
        sent = 0
        names = sorted(os.listdir(self.alert_spool))
        self.skipped &= set(names)  # an entry gone and back is logged again
        for name in names:
            if not is_spool_name(name):
                continue
            path = os.path.join(self.alert_spool, name)
            try:
                alert = read_alert_file(path)
            except NotAnAlertFile as exc:
                if name not in self.skipped:
                    self.skipped.add(name)
                    log.warning("cinder_ha_watch: skipping %s in the alert spool: %s (left in place)", name, exc)
                continue
            if alert is not None:
                if not self.backoff.ready(time.monotonic()) or not self._deliver(events.RESOURCE_TAG, alert, name):
                    # kept in order: later alerts wait behind it
                    self.spool_due = self.backoff.due
                    return sent
                sent += 1
            else:
                log.warning("cinder_ha_watch: dropping unreadable alert file %s", name)
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
            except OSError as exc:  # replaced by a folder meanwhile: the next drain skips it
                log.warning("cinder_ha_watch: could not remove %s from the alert spool: %s", name, exc)
        return sent

    # -- loop
    def _timeout_ms(self):
        deadlines = list(self.pending.values())
        if self.spool_due is not None:
            deadlines.append(self.spool_due)
        if self.resend is not None and self.resend.next_due() is not None:
            deadlines.append(self.resend.next_due())
        next_rescan = self.last_rescan + RESCAN_SECONDS
        wait = min(deadlines + [next_rescan]) - time.monotonic()
        return max(0, int(wait * 1000))

    def beat(self):
        """Touch the heartbeat in the alert spool: the agents spool only while it is fresh."""
        if not self.alert_spool:
            return
        path = os.path.join(self.alert_spool, events.ENGINE_HEARTBEAT)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK, 0o644)
            try:
                os.utime(fd)
            finally:
                os.close(fd)
        except OSError as exc:  # no spool folder yet (the formula makes it), or not a file
            if not self.beat_failed:
                log.warning("cinder_ha_watch: cannot touch the heartbeat %s: %s (no alert is spooled "
                            "until it can)", path, exc)
            self.beat_failed = True
        else:
            self.beat_failed = False

    def step(self):
        """One round: wait for inotify or the next deadline, then act on what is due."""
        if self.notifier.check_events(timeout=self._timeout_ms()):
            self.notifier.read_events()
            self.notifier.process_events()
        now = time.monotonic()
        if now - self.last_rescan >= RESCAN_SECONDS:
            self.last_rescan = now
            self.beat()
            self._ensure_watches()
            if self.alert_spool:
                self.spool_due = self.spool_due or max(now, self.backoff.due or now)
        for path, deadline in list(self.pending.items()):
            if deadline <= now:
                del self.pending[path]
                self.check_path(path)
        if self.resend is not None:
            for path in self.resend.ready(now):
                self.recheck(path)
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
            self.beat()
            self.spool_due = time.monotonic()
        try:
            while not self.stopping:
                self.step()
        finally:
            self.notifier.stop()


# ---------------------------------------------------------------- Salt entry point


def _masterless(opts):
    """No master to acknowledge anything (what ``event.send`` checks too)."""
    return (opts.get("local") or opts.get("file_client") == "local" or opts.get("master_type") == "disable") \
        and not opts.get("use_master_when_local")


class MasterSender:
    """
    ``send(tag, data, timeout) -> bool``: one ``_minion_event`` request to the master, True
    only when the master answered it.

    The master's request server fires the event on its bus and then replies (``AESFuncs.
    _minion_event``); with the master stopped the request raises ``SaltReqTimeoutError`` (or
    ``SaltClientError`` if the engine must sign in first). The load is the one the minion
    daemon builds for ``event.send`` (``Minion._fire_master_prepare``), so the master's bus
    shows the same event (tag, ``data``, ``id``; signed like the daemon's requests when
    ``minion_sign_messages`` is set).

    No duplicates from a restarting master: the transport queues a request while the master
    is away and hands it over when the master binds its port, but a starting master answers
    only seconds later (its workers start); giving up on such a request and sending again
    fired the event twice (measured). So each attempt first sends a probe, an EMPTY batch
    (``events: []``: the master fires nothing), and waits up to ``timeout`` for it: a
    returning master gets it at once. Only once the probe was answered (the master is up)
    goes the event, waited for up to ``EVENT_WAIT``. A channel per attempt: what timed out is
    closed with its socket.
    """

    EVENT_WAIT = 30  # seconds; a master that answered the probe answers this in milliseconds

    # The engine never signs in before the minion itself has: on a new minion, two sign-ins at
    # the same moment (the minion's and the engine's, served by two master workers) race to
    # create the minion's session key on the master, and the minion's own sign-in then fails
    # ("Decryption failed"; seen on the sandbox's first start). The minion writes the master's
    # key (minion_master.pub) once its sign-in succeeded: wait for that, plus a margin.
    FIRST_CONTACT_WAIT = 120  # seconds at most
    FIRST_CONTACT_MARGIN = 3  # seconds after minion_master.pub appeared

    def __init__(self, opts):
        import salt.channel.client  # pylint: disable=import-outside-toplevel

        self._channel = salt.channel.client.ReqChannel
        self.opts = dict(opts)  # a plain copy: the tuning below stays in this engine
        self.opts["auth_tries"] = 1  # sign-in bounded by the attempt's timeout, ...
        self.opts["auth_retries"] = 1  # ... not retried forever (the engine retries)
        self._gate_passed = False

    def _after_the_minions_sign_in(self):
        if self._gate_passed:
            return
        marker = os.path.join(self.opts.get("pki_dir") or "", "minion_master.pub")
        deadline = time.monotonic() + self.FIRST_CONTACT_WAIT
        while time.monotonic() < deadline:
            try:
                age = time.time() - os.stat(marker).st_mtime
            except OSError:
                age = None
            if age is not None and age >= self.FIRST_CONTACT_MARGIN:
                break
            time.sleep(0.5)
        self._gate_passed = True

    def _master_uri(self):
        if not self.opts.get("master_uri"):
            # the engine may have been forked before the minion resolved its master
            import salt.minion  # pylint: disable=import-outside-toplevel

            self.opts.update(salt.minion.resolve_dns(self.opts))
        return self.opts["master_uri"]

    def __call__(self, tag, data, timeout):
        self._after_the_minions_sign_in()
        self.opts["auth_timeout"] = max(1, int(timeout))
        probe = {"id": self.opts["id"], "cmd": "_minion_event", "events": []}
        load = {"id": self.opts["id"], "cmd": "_minion_event", "pretag": None, "data": data, "tag": tag}
        try:
            with self._channel.factory(self.opts, master_uri=self._master_uri(), crypt="aes") as channel:
                channel.send(probe, tries=1, timeout=timeout)
                channel.send(load, tries=1, timeout=self.EVENT_WAIT)
        except Exception as exc:  # pylint: disable=broad-except  # the master is away or refused us
            log.debug("cinder_ha_watch: %s not acknowledged: %s: %s", tag, type(exc).__name__, exc)
            return False
        return True


def _local_send(tag, data, timeout=None):  # pylint: disable=unused-argument
    # masterless: the minion's own bus is the only one, event.send's True is all there is
    try:
        return bool(__salt__["event.send"](tag, data))
    except Exception as exc:  # pylint: disable=broad-except
        log.warning("cinder_ha_watch: event.send %s failed: %s", tag, exc)
        return False


def start(paths=None, alert_spool=None, debounce=0.08, recheck=RECHECK_SECONDS):
    """Engine entry point (see the module docstring for the configuration)."""
    if not paths:
        paths = [__salt__["pillar.get"]("cinder_ha:cinder_conf:path", DEFAULT_CONF) or DEFAULT_CONF]
    elif isinstance(paths, str):
        paths = [paths]
    state_dir = os.path.join(__opts__["cachedir"], "cinder_ha")
    send = _local_send if _masterless(__opts__) else MasterSender(__opts__)
    log.info("cinder_ha_watch: watching %s, alert spool %s", ", ".join(paths), alert_spool or "(none)")
    Watcher(paths, send, os.path.join(state_dir, "digests.json"), alert_spool=alert_spool, debounce=debounce,
            reported_file=os.path.join(state_dir, "watch_reported.json"), recheck=float(recheck or 0)).run()
