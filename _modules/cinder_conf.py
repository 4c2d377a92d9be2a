"""
Manage cinder.conf keys the cinder-ha formula needs, on today's option names, keeping the
file the operator's (comments, key order, repeated keys, owner, group, mode) and migrating the
OpenStack HA guide's (2014) names found in it. Every value this module returns is masked.

The file is written atomically (temp file in the same folder, fsync, rename, fsync of the
folder), never through a symbolic link, with the old file's owner, group, ACLs and other
extended attributes (SELinux label included) and without world permission bits (it holds
passwords). A missing cinder.conf is created only when asked (``create``): the formula's keys
alone are no working cinder.conf. The sha256 of the bytes the formula wrote (or found correct)
is recorded in ``<cachedir>/cinder_ha/digests.json`` BEFORE the rename, so a file watcher that
sees the new file already knows it is the formula's own.

CLI Example:

.. code-block:: bash

    salt '*' cinder_conf.check /etc/cinder/cinder.conf
    salt '*' cinder_conf.digest /etc/cinder/cinder.conf
    salt '*' cinder_conf.restart_needed /etc/cinder/cinder.conf /run/resource-agents/p_cinder-api.pid
    salt '*' cinder_conf.managed_keys
    salt '*' cinder_conf.driver_check /etc/cinder/cinder.conf /usr/bin/cinder-api
"""
import errno
import grp
import hashlib
import json
import logging
import os
import socket
import stat
import subprocess
import tempfile
import time

from cinder_ha_lib import conf, pillar
from cinder_ha_lib.errors import CinderHaError, InvalidPillar

log = logging.getLogger(__name__)

__virtualname__ = "cinder_conf"

NEW_FILE_MODE = 0o640  # cinder.conf holds passwords
NEW_FILE_GROUP = "cinder"


def __virtual__():
    return __virtualname__



def _error(message):
    from salt.exceptions import CommandExecutionError

    return CommandExecutionError(message)


def _file_kind(mode):
    for test, kind in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device")):
        if test(mode):
            return kind
    return "not a regular file"


def _open_regular(path):
    """A read-only fd of the regular file ``path``, or None when it does not exist. Raises
    CinderHaError for a symbolic link (never followed: where the cinder user can write the
    folder, a link would point root's write anywhere), anything that is not a regular file
    (a FIFO would block the reader) and a file that cannot be opened."""
    try:
        # lstat first: a device or FIFO is never even opened
        st = os.lstat(path)
        if stat.S_ISLNK(st.st_mode):
            raise OSError(errno.ELOOP, "a symbolic link")
        if not stat.S_ISREG(st.st_mode):
            raise CinderHaError(f"{path} is not a regular file ({_file_kind(st.st_mode)}): left as it is; "
                                "cinder.conf must be a plain file")
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise CinderHaError(f"{path} is a symbolic link: the formula never writes through one (a link in a "
                                "folder the cinder user can write would send root's write anywhere); set "
                                "cinder_ha:cinder_conf:path to the file itself") from None
        raise CinderHaError(f"{path} cannot be read ({exc.strerror}): left as it is") from None
    st = os.fstat(fd)  # what was opened, if it was swapped after the lstat
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise CinderHaError(f"{path} is not a regular file ({_file_kind(st.st_mode)}): left as it is; "
                            "cinder.conf must be a plain file")
    return fd


def _read_file(path):
    """(text, bytes, os.stat_result) of the regular file ``path``; ("", None, None) when it does not
    exist. Raises CinderHaError when it is a link, not a regular file, or unreadable."""
    fd = _open_regular(path)
    if fd is None:
        return "", None, None
    try:
        st = os.fstat(fd)
        chunks = []
        while True:
            try:
                chunk = os.read(fd, 1 << 16)
            except OSError as exc:
                raise CinderHaError(f"{path} cannot be read ({exc.strerror}): left as it is") from None
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(fd)
    data = b"".join(chunks)
    # surrogateescape: bytes that are not UTF-8 survive the round trip unchanged
    return data.decode("utf-8", "surrogateescape"), data, st


def _read(path):
    """(text, bytes) of the file; ("", None) when it does not exist (see ``_read_file``)."""
    return _read_file(path)[:2]


def _sha256(data):
    return hashlib.sha256(data).hexdigest()


def _desired(options=None):
    """
    Internal: the {section: {key: value}} to manage: ``options`` as given, else built from the
    ``cinder_ha`` pillar. Contains secrets: not for printing.
    """
    if options is not None:
        return options
    # the pillar itself (no public function returns secrets), normalized by the pure logic
    raw = __salt__["pillar.get"]("cinder_ha", {}, unmask=True)
    settings, errors, _warnings = pillar.normalize(raw)
    if errors:
        raise InvalidPillar(errors)
    # a backend option given as {pillar: key} (a secret) is read here, never rendered into an SLS
    return conf.desired_options(settings, resolve=lambda key: __salt__["pillar.get"](key, unmask=True),
                                node=_node_name(settings))


def _node_name(settings):
    """This node's cluster name, only where the settings need it (balanced mode: where cinder-api
    listens). crm.node_name answers with the host name when Pacemaker does not."""
    if settings["cluster"].get("mode") != "balanced":
        return None
    if "crm.node_name" in __salt__:
        return __salt__["crm.node_name"]()
    return socket.gethostname()


def _missing(name, pid_file=None):
    """Why a missing ``name`` is not created, and how to put it back."""
    said = (f"{name} does not exist: it is not created from the formula's keys alone (they make no working "
            "cinder.conf: no api_paste_config, log_dir, lock_path or backends), and cinder-api is not restarted")
    process = running_process(pid_file) if pid_file else None
    record = process and process["record"]
    copy = record and _read_private(record["snapshot"])
    if record and copy is not None and _sha256(copy) == record["sha256"] and \
            os.path.abspath(record["config"]) == os.path.abspath(name):
        how = (f"cinder-api (pid {process['pid']}) still runs with a private copy of the file it started with: "
               f"restore it with 'install -m 0640 -o root -g {NEW_FILE_GROUP} {record['snapshot']} {name}' (or put "
               "your own file back), then apply again")
    else:
        where = f"; {process['problem']}" if process and process["problem"] else ""
        how = (f"put the file back (from a backup, or from another node: the agent keeps the one each cinder-api "
               f"started with next to its pid file, <pid file>.conf{where}), then apply again")
    return (f"{said}. {how}. Only for a brand-new install: pillar cinder_ha:cinder_conf:create: true creates it "
            "from the formula's keys")


def _plan(name, options, create=False, pid_file=None):
    """(plan, text, bytes, errors, stat) for the file ``name``."""
    try:
        wanted = _desired(options)
        text, data, st = _read_file(name)
    except CinderHaError as exc:  # an invalid pillar or an unusable file: keys and paths, never values
        return None, "", None, exc.problems, None
    if data is None and not create:
        return None, "", None, [_missing(name, pid_file)], None
    plan = conf.plan(text, wanted)
    return plan, text, data, plan.errors, st


def _world_bits(st):
    """{"old", "new"} modes (octal text) when the file grants anything to others, else None."""
    if st is None or not st.st_mode & 0o007:
        return None
    mode = stat.S_IMODE(st.st_mode)
    return {"old": f"{mode:04o}", "new": f"{mode & ~0o007:04o}"}


def _report(name, plan, text, data, errors, st=None):
    report = {
        "path": name,
        "exists": data is not None,
        "digest": None if data is None else _sha256(data),
        "errors": errors,
        "changed": bool(plan and plan.changed),
        "changes": {},
        "migrations": [],
        "mode": None if errors else _world_bits(st),  # world bits removed: cinder.conf holds passwords
    }
    if plan is not None and not errors:
        report["migrations"] = plan.migrations
        if plan.changed:
            report["changes"] = plan.masked_changes()
            report["diff"] = conf.masked_diff(text, plan.new_text, name)
    return report


def check(name, options=None, create=False, pid_file=None):
    """
    What ``cinder_conf.managed`` would change in the file ``name``; changes nothing.
    Returns ``{"path", "exists", "digest", "errors", "changed", "changes", "migrations", "mode",
    "diff"}`` with every secret masked; ``mode`` is the permission change (world bits removed) or
    None. A symbolic link, anything but a regular file, and a missing file without ``create``
    are errors.

    options
        {section: {key: value}} to manage (default: built from the ``cinder_ha`` pillar).
    create
        Plan a missing file from the managed keys alone (a brand-new install).
    pid_file
        The agent's pid file: a missing file's error then names the copy the running cinder-api
        started with.

    CLI Example:

    .. code-block:: bash

        salt '*' cinder_conf.check /etc/cinder/cinder.conf
        salt '*' cinder_conf.check /tmp/c.conf options='{DEFAULT: {osapi_volume_listen: 127.0.0.1}}'
    """
    return _report(name, *_plan(name, options, create, pid_file))


def apply(name, options=None, expected_digest=None, create=False):
    """
    Write the planned changes to ``name`` atomically (owner, group, ACLs and extended
    attributes kept, world permission bits removed; a new file, only with ``create``, gets 0640
    root:cinder) and record the digest of the bytes written, or of the bytes found when nothing
    changes (then only world bits, if any, are removed). Nothing is written when any problem is
    found (all are listed).

    expected_digest
        sha256 of the file as the caller last saw it (``check``'s ``digest``); refuse to write
        if the file changed since (someone edited it between check and apply).

    CLI Example:

    .. code-block:: bash

        salt '*' cinder_conf.apply /etc/cinder/cinder.conf
    """
    plan, text, data, errors, st = _plan(name, options, create)
    report = _report(name, plan, text, data, errors, st)
    if errors:
        raise _error(f"{name} left unchanged:\n  - " + "\n  - ".join(errors))
    if expected_digest is not None and report["digest"] != expected_digest:
        if not plan.changed:
            # someone else (another minion of this host) wrote exactly what we want meanwhile
            if data is not None:
                record_digest(name, report["digest"])
            return report
        raise _error(f"{name} changed while the state was planning; left unchanged, run the state again")
    if not plan.changed:
        if data is not None:
            _remove_world_bits(name, report["digest"])
            record_digest(name, report["digest"])
        return report
    new_data = plan.new_text.encode("utf-8", "surrogateescape")
    report["digest"] = _write_atomic(name, new_data, read_digest=_sha256(data) if data is not None else None)
    return report


def _new_file_owner():
    try:
        gid = grp.getgrnam(NEW_FILE_GROUP).gr_gid
    except KeyError:
        gid = os.getegid()
    return os.geteuid(), gid, NEW_FILE_MODE


def _current_digest(path):
    data = _read(path)[1]
    return None if data is None else _sha256(data)


def _remove_world_bits(path, read_digest):
    """chmod o-rwx of the file as it was read (its content unchanged: no rewrite)."""
    fd = _open_regular(path)
    if fd is None:
        return
    try:
        mode = stat.S_IMODE(os.fstat(fd).st_mode)
        if mode & 0o007 and _current_digest(path) == read_digest:
            os.fchmod(fd, mode & ~0o007)
    finally:
        os.close(fd)


def _xattrs(fd):
    """{name: value} of every extended attribute of the open file: POSIX ACLs
    (system.posix_acl_access), the SELinux label (security.selinux), user.* ..."""
    try:
        return {name: os.getxattr(fd, name) for name in os.listxattr(fd)}
    except OSError as exc:
        if exc.errno in (errno.ENOTSUP, errno.EOPNOTSUPP):  # a file system without them
            return {}
        raise


def _write_atomic(name, data, read_digest=None):
    """Write ``data`` to ``name`` by temp file + rename. ``read_digest``: sha256 of the bytes
    the new content was planned from (None: the file did not exist); if the file no longer
    holds them right before the rename, someone edited it meanwhile: nothing is replaced (the
    edit would be lost), the state fails, and the next run plans from the edited file."""
    path = os.path.abspath(name)  # never resolved: a link is refused, not followed
    directory = os.path.dirname(path)
    if not os.path.isdir(directory):
        raise _error(f"{directory} does not exist (is cinder installed?)")
    try:
        old = _open_regular(path)
    except CinderHaError as exc:
        raise _error(str(exc)) from None
    if old is None:
        (uid, gid, mode), attrs = _new_file_owner(), {}
    else:
        try:
            st = os.fstat(old)
            uid, gid, mode, attrs = st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode), _xattrs(old)
        finally:
            os.close(old)
    mode &= ~0o007  # no world bits: cinder.conf holds passwords
    digest = _sha256(data)
    # dot name: a watcher filtering on the real file name ignores the temp file
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=directory)
    previous = recorded_digest(name)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            if (uid, gid) != (os.fstat(fd).st_uid, os.fstat(fd).st_gid):
                os.fchown(fd, uid, gid)
            for attr, value in attrs.items():  # ACLs and the SELinux label first: fchmod then sets the mask
                try:
                    os.setxattr(fd, attr, value)
                except OSError as exc:
                    raise _error(f"{name} left unchanged: its extended attribute {attr} cannot be carried over to "
                                 f"the new file ({exc.strerror})") from None
            os.fchmod(fd, mode)
            os.fsync(fd)
        finally:
            os.close(fd)
        record_digest(name, digest)  # before the rename: the watcher must know the new bytes are ours
        try:
            now = _current_digest(path)
        except CinderHaError as exc:  # replaced by a link or a FIFO meanwhile
            raise _error(str(exc)) from None
        if now != read_digest:
            raise _error(f"{name} changed while this run was writing it: left as it is now (nothing of the "
                         "outside edit is lost); apply again")
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        record_digest(name, previous)
        raise
    dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)  # the rename itself survives a crash
    finally:
        os.close(dir_fd)
    log.info("cinder_conf: wrote %s (sha256 %s)", name, digest)
    return digest


def _digests_file():
    return os.path.join(__opts__["cachedir"], "cinder_ha", "digests.json")


def _digests():
    try:
        with open(_digests_file(), encoding="utf-8") as handle:
            return json.load(handle)
    except (FileNotFoundError, ValueError):
        return {}


def digest(path):
    """
    sha256 (hex) of the file's bytes now, or None when it does not exist.

    CLI Example:

    .. code-block:: bash

        salt '*' cinder_conf.digest /etc/cinder/cinder.conf
    """
    try:
        return _current_digest(path)
    except CinderHaError as exc:
        raise _error(str(exc)) from None


def recorded_digest(path):
    """
    sha256 (hex) of the bytes the formula last wrote to (or found correct in) ``path``, or
    None. A file watcher compares ``digest(path)`` with it: equal means "our own write".

    CLI Example:

    .. code-block:: bash

        salt '*' cinder_conf.recorded_digest /etc/cinder/cinder.conf
    """
    return _digests().get(os.path.abspath(path))


def record_digest(path, hexdigest=None):
    """
    Record ``hexdigest`` (default: the file's digest now) as the formula's own version of
    ``path``; None forgets it. Written atomically; unchanged records are not rewritten.

    CLI Example:

    .. code-block:: bash

        salt '*' cinder_conf.record_digest /etc/cinder/cinder.conf
    """
    if hexdigest is None:
        hexdigest = digest(path)
    key = os.path.abspath(path)
    records = _digests()
    if records.get(key) == hexdigest:
        return hexdigest
    if hexdigest is None:
        records.pop(key, None)
    else:
        records[key] = hexdigest
    target = _digests_file()
    os.makedirs(os.path.dirname(target), mode=0o700, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".digests.", dir=os.path.dirname(target))
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(records, handle, indent=1, sort_keys=True)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return hexdigest


# ---------------------------------------------------------------- the running cinder-api

def _read_private(path):
    """Bytes of a file the agent wrote as root: a regular file owned by root, opened without
    following a link. None otherwise."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_uid != 0:
            return None
        chunks = []
        while True:
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)
    finally:
        os.close(fd)


def _proc_start(pid):
    """(start time in clock ticks after boot, as the agent records it; wall-clock epoch), or
    None when the process is gone or a zombie."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        with open("/proc/stat", encoding="ascii") as handle:
            btime = next(int(line.split()[1]) for line in handle if line.startswith("btime "))
    except (OSError, IndexError, StopIteration, ValueError):
        return None
    if fields[0] in ("Z", "X"):
        return None
    ticks = int(fields[19])
    return ticks, btime + ticks / os.sysconf("SC_CLK_TCK")


def running_process(pid_file):
    """
    The cinder-api the agent runs with pid file ``pid_file`` on this node, and what it was
    started with when the agent left a start record (``<pid_file>.start``) for exactly that
    process. Returns ``{"pid", "started", "record", "problem"}``: ``started`` is the process
    start (epoch seconds); ``record`` (or None) holds the record's fields (config path, API URL,
    sha256 of the config copy); never the copy itself, which holds passwords.

    CLI Example:

    .. code-block:: bash

        salt '*' cinder_conf.running_process /run/resource-agents/p_cinder-api.pid
    """
    result = {"pid": None, "started": None, "record": None, "problem": None}
    try:
        with open(pid_file, encoding="ascii") as handle:
            pid = int(handle.read().strip())
    except (OSError, ValueError):
        result["problem"] = f"no pid in {pid_file}"
        return result
    started = _proc_start(pid)
    if started is None:
        result["problem"] = f"pid {pid} from {pid_file} is not running"
        return result
    result["pid"], result["started"] = pid, started[1]
    data = _read_private(pid_file + ".start")
    if data is None:
        result["problem"] = f"no start record for pid {pid} (started by an older agent?)"
        return result
    try:
        record = conf.parse_start_record(data.decode("utf-8", "replace"))
    except ValueError as exc:
        result["problem"] = str(exc)
        return result
    if (record["pid"], record["starttime"]) != (pid, started[0]):
        result["problem"] = f"the start record is for another process than pid {pid}"
        return result
    if record["snapshot"] != pid_file + ".conf":
        result["problem"] = f"the start record names an unexpected config copy {record['snapshot']}"
        return result
    result["record"] = record
    return result


def managed_keys(options=None):
    """
    The options the formula manages (``options``, else from the ``cinder_ha`` pillar), as
    sorted ``[section] key`` names, without values.

    CLI Example:

    .. code-block:: bash

        salt '*' cinder_conf.managed_keys
    """
    try:
        return conf.managed_keys(_desired(options))
    except CinderHaError as exc:
        raise _error(str(exc)) from None


def _managed_among(changes, options):
    """The keys of ``changes`` the formula manages; None when the pillar cannot say."""
    try:
        managed = set(managed_keys(options))
    except Exception:  # pylint: disable=broad-except  # an invalid pillar: cannot tell
        return None
    return [key for key in changes if key in managed]


def restart_needed(name, pid_file, planned=False, options=None, reads_backends=True):
    """
    Whether the cinder-api running here (pid file ``pid_file``) must be restarted to run the
    configuration in ``name``: True exactly when what cinder would read from the file now
    differs from what it read at start (the agent's private copy, ``<pid_file>.conf``).
    Comments, blank lines and key order are no difference. Without a start record (a process
    started by an older agent) the answer is "the file was modified after the process
    started". A file that is missing or cannot be read is never a reason to restart (the
    process keeps what it started with). Returns ``{"needed", "basis", "pid", "config",
    "changes", "managed_changes", "reason"}``; ``changes`` maps ``[section] key`` to the old
    and new values, secrets masked; ``managed_changes`` lists those of them the formula manages
    (None when that cannot be told).

    planned
        Compare with what ``cinder_conf.managed`` would write (``options`` or the pillar)
        instead of the file as it is: what ``test=True`` needs.
    reads_backends
        False for a process that never reads the backend sections (cinder-api,
        cinder-scheduler): a change there is no reason to restart it.

    CLI Example:

    .. code-block:: bash

        salt '*' cinder_conf.restart_needed /etc/cinder/cinder.conf /run/resource-agents/p_cinder-api.pid
    """
    process = running_process(pid_file)
    # the resource's pid file names the process (p_cinder-api, p_cinder-volume, ...)
    who = os.path.basename(pid_file)[:-len(".pid")] if pid_file.endswith(".pid") else "cinder-api"
    result = {"needed": False, "basis": None, "pid": process["pid"], "config": name, "changes": {},
              "managed_changes": None, "reason": ""}
    if process["pid"] is None:
        result["reason"] = (f"cannot tell what {who} runs with: {process['problem']}; not restarting it "
                            "(restart it through the cluster if its configuration changed)")
        return result
    pid = process["pid"]
    record = process["record"]
    config = record["config"] if record else name
    result["config"] = config
    try:
        problem = None if _read(config)[1] is not None else f"{config} does not exist"
    except CinderHaError as exc:
        problem = str(exc)
    if problem:
        result["reason"] = (f"{problem}; not restarting {who} (pid {pid}): it keeps running with the "
                            "configuration it started with")
        return result

    def current_text():
        if planned and os.path.abspath(config) == os.path.abspath(name):
            plan, text, _data, errors, _st = _plan(name, options)
            if plan is not None and not errors:
                return plan.new_text, plan.changed
            return text, False
        return _read(config)[0], False

    if record:
        snapshot = _read_private(record["snapshot"])
        if snapshot is not None and _sha256(snapshot) == record["sha256"]:
            result["basis"] = "start record"
            text, _would_write = current_text()
            started_with = snapshot.decode("utf-8", "surrogateescape")
            result["changes"] = conf.effective_changes(started_with, text)
            if not reads_backends:
                result["changes"] = conf.without_backend_sections(result["changes"], started_with, text)
            result["needed"] = bool(result["changes"])
            if result["needed"]:
                result["managed_changes"] = _managed_among(result["changes"], options)
            keys = ", ".join(result["changes"])
            result["reason"] = (f"what cinder reads from {config} differs from what {who} (pid {pid}) "
                                f"started with: {keys}" if result["needed"] else
                                f"{who} (pid {pid}) already runs the configuration in {config}")
            return result
        process["problem"] = f"the config copy {record['snapshot']} is missing or does not match its record"
    # No usable record: the file's modification time against the process start.
    result["basis"] = "mtime"
    _text, would_write = current_text()
    try:
        mtime = os.stat(config).st_mtime
    except OSError:
        result["reason"] = f"{config} does not exist: a restart would not help {who} (pid {pid})"
        return result
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(process["started"]))
    if would_write or mtime > process["started"]:
        result["needed"] = True
        result["reason"] = (f"{process['problem']}; {config} was {'to be ' if would_write else ''}modified after "
                            f"{who} (pid {pid}) started at {started}")
    else:
        result["reason"] = (f"{process['problem']}; {config} is older than {who} (pid {pid}, started "
                            f"{started})")
    return result


# ---------------------------------------------------------------- the database driver

_IMPORT = "import importlib, sys; importlib.import_module(sys.argv[1])"


def _interpreter(binary):
    """(argv of the interpreter that runs ``binary``, problem)."""
    try:
        with open(binary, "rb") as handle:
            first = handle.readline(512)
    except OSError as exc:
        return None, f"{binary} cannot be read ({exc.strerror}): is cinder installed?"
    argv, problem = conf.python_argv(first)
    if problem:
        return None, f"{binary} {problem}: its driver cannot be checked"
    return argv, None


def driver_check(name, binary="/usr/bin/cinder-api", options=None):
    """
    Whether the Python that runs ``binary`` (cinder-api; read from its ``#!`` line) can import
    the driver of the ``[database] connection`` URL that ``name`` has (or will have after
    ``cinder_conf.managed`` with ``options`` / the pillar): ``mysql+pymysql`` needs ``pymysql``,
    ``postgresql+psycopg2`` ``psycopg2``, ``mysql`` ``MySQLdb``, ``sqlite`` ``sqlite3``. A pip
    installed cinder has no MySQL driver. The interpreter is run with an argument list (no
    shell) and only the module name on its command line. Returns ``{"ok", "interpreter",
    "module", "scheme", "comment"}``; ``ok`` is None when nothing could be checked (binary
    missing, not a Python script, no or unknown database URL).

    CLI Example:

    .. code-block:: bash

        salt '*' cinder_conf.driver_check /etc/cinder/cinder.conf /usr/bin/cinder-api
    """
    result = {"ok": None, "interpreter": None, "module": None, "scheme": None, "comment": ""}
    plan, text, _data, errors, _st = _plan(name, options, create=True)
    if plan is not None and not errors:
        text = plan.new_text
    urls = conf.parse(text).effective().get("database", {}).get("connection")
    driver = conf.db_driver(conf.unescape(urls[-1])) if urls else None
    if driver is None:
        result["comment"] = f"no database URL of a known dialect in {name}: driver not checked"
        return result
    result["scheme"], result["module"] = driver[0], driver[1]
    argv, problem = _interpreter(binary)
    if argv is None:
        result["comment"] = problem + "; driver not checked"
        return result
    result["interpreter"] = " ".join(argv)
    try:
        proc = subprocess.run(argv + ["-c", _IMPORT, driver[1]], capture_output=True, text=True, timeout=60,
                              cwd="/", env={"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"})
    except (OSError, subprocess.TimeoutExpired) as exc:
        result["ok"] = False
        result["comment"] = (f"cinder-api ({binary}) runs on {result['interpreter']}, which cannot be run "
                             f"({exc}): cinder-api cannot start")
        return result
    if proc.returncode == 0:
        result["ok"] = True
        result["comment"] = f"{result['interpreter']} (cinder-api's Python) imports {driver[1]} for {driver[0]}://"
        return result
    said = [line for line in proc.stderr.strip().splitlines() if line.strip()][-1:] or [f"rc {proc.returncode}"]
    result["ok"] = False
    result["comment"] = (
        f"cinder-api ({binary}) runs on {result['interpreter']}, which cannot import {driver[1]} "
        f"({said[0].strip()}): cinder would fail to load the {driver[0]}:// URL in [database] connection. "
        f"Install the driver into cinder's Python: {driver[2]}"
        # a venv's Python takes pip; a distro's Python takes the distro package
        + (f"; e.g. {argv[0]} -m pip install PyMySQL" if driver[1] == "pymysql" and len(argv) == 1
           and not argv[0].startswith(("/usr/bin/", "/bin/")) else "")
        + ".")
    return result
