"""
Manage cinder.conf keys the cinder-ha formula needs, on today's option names, keeping the
file the operator's (comments, key order, repeated keys, owner, group, mode) and migrating the
OpenStack HA guide's (2014) names found in it. Every value this module returns is masked.

The file is written atomically (temp file in the same folder, fsync, rename, fsync of the
folder). The sha256 of the bytes the formula wrote (or found correct) is recorded in
``<cachedir>/cinder_ha/digests.json`` BEFORE the rename, so a file watcher that sees the new
file already knows it is the formula's own.

CLI Example:

.. code-block:: bash

    salt '*' cinder_conf.check /etc/cinder/cinder.conf
    salt '*' cinder_conf.digest /etc/cinder/cinder.conf
"""
import grp
import hashlib
import json
import logging
import os
import stat
import tempfile

log = logging.getLogger(__name__)

__virtualname__ = "cinder_conf"

NEW_FILE_MODE = 0o640  # cinder.conf holds passwords
NEW_FILE_GROUP = "cinder"


def __virtual__():
    return __virtualname__


def _lib():
    return __salt__["cinder_ha.library"]("cinder_ha_conf")


def _error(message):
    from salt.exceptions import CommandExecutionError

    return CommandExecutionError(message)


def _read(path):
    """(text, bytes) of the file; ("", None) when it does not exist."""
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except FileNotFoundError:
        return "", None
    # surrogateescape: bytes that are not UTF-8 survive the round trip unchanged
    return data.decode("utf-8", "surrogateescape"), data


def _sha256(data):
    return hashlib.sha256(data).hexdigest()


def desired(options=None):
    """
    Internal: the {section: {key: value}} to manage: ``options`` as given, else built from the
    ``cinder_ha`` pillar. Contains secrets: not for printing.
    """
    if options is not None:
        return options
    try:
        return _lib().desired_options(__salt__["cinder_ha.settings"](reveal=True))
    except ValueError as exc:
        raise _error(str(exc)) from None


def _plan(name, options):
    lib = _lib()
    try:
        wanted = desired(options)
    except Exception as exc:  # an invalid pillar: its errors name keys, never values
        return lib, None, "", None, [line.strip(" -") for line in str(exc).splitlines() if line.strip(" -")]
    text, data = _read(name)
    plan = lib.plan(text, wanted)
    return lib, plan, text, data, plan.errors


def _report(name, lib, plan, text, data, errors):
    report = {
        "path": name,
        "exists": data is not None,
        "digest": None if data is None else _sha256(data),
        "errors": errors,
        "changed": bool(plan and plan.changed),
        "changes": {},
        "migrations": [],
    }
    if plan is not None and not errors:
        report["migrations"] = plan.migrations
        if plan.changed:
            report["changes"] = plan.masked_changes()
            report["diff"] = lib.masked_diff(text, plan.new_text, name)
    return report


def check(name, options=None):
    """
    What ``cinder_conf.managed`` would change in the file ``name``; changes nothing.
    Returns ``{"path", "exists", "digest", "errors", "changed", "changes", "migrations", "diff"}``
    with every secret masked.

    options
        {section: {key: value}} to manage (default: built from the ``cinder_ha`` pillar).

    CLI Example:

    .. code-block:: bash

        salt '*' cinder_conf.check /etc/cinder/cinder.conf
        salt '*' cinder_conf.check /tmp/c.conf options='{DEFAULT: {osapi_volume_listen: 127.0.0.1}}'
    """
    return _report(name, *_plan(name, options))


def apply(name, options=None, expected_digest=None):
    """
    Write the planned changes to ``name`` atomically (owner, group and mode kept; a new file
    gets 0640 root:cinder) and record the digest of the bytes written, or of the bytes found
    when nothing changes. Nothing is written when any problem is found (all are listed).

    expected_digest
        sha256 of the file as the caller last saw it (``check``'s ``digest``); refuse to write
        if the file changed since (someone edited it between check and apply).

    CLI Example:

    .. code-block:: bash

        salt '*' cinder_conf.apply /etc/cinder/cinder.conf
    """
    lib, plan, text, data, errors = _plan(name, options)
    report = _report(name, lib, plan, text, data, errors)
    if errors:
        raise _error(f"{name} left unchanged:\n  - " + "\n  - ".join(errors))
    if expected_digest is not None and report["digest"] != expected_digest:
        raise _error(f"{name} changed while the state was planning; left unchanged, run the state again")
    if not plan.changed:
        if data is not None:
            record_digest(name, report["digest"])
        return report
    new_data = plan.new_text.encode("utf-8", "surrogateescape")
    report["digest"] = _write_atomic(name, new_data)
    return report


def _new_file_owner():
    try:
        gid = grp.getgrnam(NEW_FILE_GROUP).gr_gid
    except KeyError:
        gid = os.getegid()
    return os.geteuid(), gid, NEW_FILE_MODE


def _write_atomic(name, data):
    path = os.path.realpath(name)  # a symlinked cinder.conf stays a symlink
    directory = os.path.dirname(path)
    if not os.path.isdir(directory):
        raise _error(f"{directory} does not exist (is cinder installed?)")
    try:
        st = os.stat(path)
        uid, gid, mode = st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)
    except FileNotFoundError:
        uid, gid, mode = _new_file_owner()
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
            os.fchmod(fd, mode)
            os.fsync(fd)
        finally:
            os.close(fd)
        record_digest(name, digest)  # before the rename: the watcher must know the new bytes are ours
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
    _text, data = _read(path)
    return None if data is None else _sha256(data)


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
