"""
The lrm secrets of Pacemaker resources on THIS node: the files Pacemaker's executor reads for
``lrm://`` parameters, and the digest of them a node publishes (``crm`` writes it in the CIB).

- files: ``<secrets_dir>/<rsc>/<param>`` (0600) and its md5 ``<param>.sign`` (Pacemaker's format),
  folder 0700, replaced complete in one ``renameat2(RENAME_EXCHANGE)``, only when they differ;
- digest: PBKDF2 of the values, HMAC-keyed by the corosync authkey (``/etc/corosync/authkey``,
  the same on every node of a cluster with corosync crypto; ``crm_secrets.authkey`` in the
  minion config names another file), remembered in the folder (``.cinder_ha_digest``) so that
  a run whose secrets did not change does not recompute it.

Values never reach a command line, a log or a return: only parameter names and digests do.

CLI Example:

.. code-block:: bash

    salt '*' crm_secrets.held p_cinder-api
    salt '*' crm_secrets.key_status
"""
import errno
import fcntl
import glob
import json
import logging
import os
import shutil
import stat
import tempfile

from cinder_ha_lib import cib

log = logging.getLogger(__name__)

__virtualname__ = "crm_secrets"

AUTHKEY = "/etc/corosync/authkey"
# The digest memo: the last digest this node computed for a resource's secrets, in that
# resource's own lrm secret folder (root-only, 0700, beside the plaintext secret files, and
# removed with them), filed under a plain SHA-256 of the same values and key (cib.digest_memo_key):
# a run whose secrets did not change skips the ~25 ms PBKDF2. Pacemaker reads only the files
# named after parameters there.
DIGEST_MEMO = ".cinder_ha_digest"
DIGESTS = "crm_secrets.digests"  # __context__: digests computed in this run, by memo key


def __virtual__():
    if not hasattr(os, "O_NOFOLLOW"):
        return (False, "crm_secrets needs O_NOFOLLOW (Linux)")
    return __virtualname__


def _fail(message):
    from salt.exceptions import CommandExecutionError

    raise CommandExecutionError(message)


def _secrets_dir(secrets_dir=None):
    return secrets_dir or __opts__.get("crm_secrets.secrets_dir") or __opts__.get("crm.secrets_dir") or cib.SECRETS_DIR


def _read_private(path):
    """Text of a secret file that is a regular 0600 file (None otherwise: rewrite it)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(fd).st_mode) or stat.S_IMODE(os.fstat(fd).st_mode) != 0o600:
            return None
        try:
            return handle.read().decode("utf-8")
        except UnicodeDecodeError:
            return None


def _private_folder(path):
    """A real directory (not a link) of mode 0700: a secret folder this module may trust."""
    return os.path.isdir(path) and not os.path.islink(path) and stat.S_IMODE(os.stat(path).st_mode) == 0o700


def _secret_signs(objects, secrets_dir):
    """{(rsc, param): md5 the node holds}, None where the value and .sign disagree or are missing."""
    signs = {}
    for obj in objects:
        if obj["tag"] != "primitive" or obj.get("secret_mode") != "lrm":
            continue
        folder = os.path.join(_secrets_dir(secrets_dir), obj["id"])
        folder_ok = _private_folder(folder)
        for name in obj["secret_params"]:
            value = _read_private(os.path.join(folder, name)) if folder_ok else None
            sign = _read_private(os.path.join(folder, name) + ".sign") if value is not None else None
            signs[(obj["id"], name)] = sign if sign is not None and sign == cib.md5_hex(value) else None
    return signs


_LIBC = []
AT_FDCWD = -100
RENAME_EXCHANGE = 2  # linux/fs.h


def _exchange(first, second):
    """Swap two paths in one step: renameat2(RENAME_EXCHANGE) (Linux 3.15+, glibc 2.28+)."""
    import ctypes

    if not _LIBC:
        _LIBC.append(ctypes.CDLL(None, use_errno=True))
    renameat2 = getattr(_LIBC[0], "renameat2", None)
    if renameat2 is None:
        raise OSError(errno.ENOSYS, "renameat2 is not available in this C library")
    if renameat2(AT_FDCWD, os.fsencode(first), AT_FDCWD, os.fsencode(second), RENAME_EXCHANGE) != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"renameat2(RENAME_EXCHANGE) failed: {os.strerror(code)}", second)


def _fsync_dir(path):
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_new_private(path, data):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _write_secret_folder(secrets_dir, rsc, values):
    """
    Replace ``<secrets_dir>/<rsc>/`` by a folder holding every value and its md5 ``.sign``.

    The new folder is written complete beside the old one (files 0600, folder 0700, fsynced),
    then the two are swapped with ONE renameat2(RENAME_EXCHANGE): a reader that resolves the
    folder once sees the old pairs or the new pairs, never a value with another value's sign
    (two renames, value then sign, left a window where they disagreed). Files of parameters
    not in ``values`` are carried over. A host-local flock on the secrets folder serialises
    writers on this node.
    """
    base = _secrets_dir(secrets_dir)
    os.makedirs(base, mode=0o700, exist_ok=True)
    os.chmod(base, 0o700)
    final = os.path.join(base, rsc)
    lock = os.open(base, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        for leftover in glob.glob(os.path.join(glob.escape(base), f".{glob.escape(rsc)}.swap-*")):
            shutil.rmtree(leftover, ignore_errors=True)  # from a run killed mid-write
        new = tempfile.mkdtemp(dir=base, prefix=f".{rsc}.swap-")  # mode 0700
        try:
            ours = set(values) | {name + ".sign" for name in values}
            if os.path.isdir(final) and not os.path.islink(final):
                for entry in os.scandir(final):
                    # other parameters' files are kept (cibsecret's); the digest memo is of the old values
                    if entry.name not in ours and entry.name != DIGEST_MEMO and entry.is_file(follow_symlinks=False):
                        with open(entry.path, "rb") as handle:
                            _write_new_private(os.path.join(new, entry.name), handle.read())
            for name, value in sorted(values.items()):
                _write_new_private(os.path.join(new, name), value.encode("utf-8"))
                _write_new_private(os.path.join(new, name + ".sign"), cib.md5_hex(value).encode("ascii"))
            key = cib.digest_memo_key(rsc, values, _cluster_key())
            if key in __context__.get(DIGESTS, {}):  # this run computed these values' digest
                _write_digest_memo(new, key, __context__[DIGESTS][key])
            _fsync_dir(new)
            if os.path.lexists(final):
                _exchange(new, final)  # `new` now names the old folder, removed below
            else:
                os.rename(new, final)
            _fsync_dir(base)
        finally:
            shutil.rmtree(new, ignore_errors=True)
    finally:
        os.close(lock)


def _lrm_secrets(obj):
    return {name: obj["params"][name] for name in obj.get("secret_params", ()) if name in obj["params"]}


def _store_secrets(objects, signs, secrets_dir):
    """Write the lrm secret folder of each primitive whose files are missing or hold other values."""
    for obj in objects:
        if obj["tag"] != "primitive" or obj.get("secret_mode") != "lrm":
            continue
        secrets = _lrm_secrets(obj)
        stale = [name for name, value in secrets.items() if signs.get((obj["id"], name)) != cib.md5_hex(value)]
        if not stale:
            continue
        _write_secret_folder(secrets_dir, obj["id"], secrets)
        log.info("crm_secrets: stored secret parameters %s of %s in %s", ", ".join(sorted(stale)), obj["id"],
                 os.path.join(_secrets_dir(secrets_dir), obj["id"]))


def _check_secret_values(rsc, secrets):
    """Refuse values Pacemaker could never read back (named, never shown)."""
    problems = [problem for problem in (cib.secret_value_problem(rsc, name, value)
                                        for name, value in sorted(secrets.items())) if problem]
    if problems:
        _fail("secret files left unchanged: " + "; ".join(problems))


def _secret_args(rsc, secrets):
    try:
        cib._check_id(rsc, "resource")  # also keeps the folder name inside the secrets folder
    except cib.ModelError as exc:
        _fail(str(exc))
    if not isinstance(secrets, dict) or not secrets:
        _fail(f"{rsc}: secrets must be a non-empty mapping of parameter: value")
    secrets = {str(k): (v if isinstance(v, str) or v is None or isinstance(v, bool) else str(v))
               for k, v in secrets.items()}
    _check_secret_values(rsc, secrets)
    return secrets


DIGEST_MEMO = ".cinder_ha_digest"


def _write_digest_memo(folder, key, digest):
    path = os.path.join(folder, DIGEST_MEMO)
    if os.path.lexists(path + ".new"):  # left by a run killed mid-write
        os.unlink(path + ".new")
    _write_new_private(path + ".new", json.dumps({"key": key, "digest": digest}).encode())
    os.replace(path + ".new", path)


def _cluster_key():
    """The corosync authkey's bytes (root-only, the same on every node with corosync crypto),
    or None when there is none: the digest is then the PBKDF2 alone. Read once per run."""
    if "crm_secrets.key" not in __context__:
        path = __opts__.get("crm_secrets.authkey") or AUTHKEY
        key = None
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError:
            fd = None
        if fd is not None:
            with os.fdopen(fd, "rb") as handle:
                if stat.S_ISREG(os.fstat(fd).st_mode):
                    key = handle.read(1 << 16) or None
        __context__["crm_secrets.key"] = key
    return __context__["crm_secrets.key"]


def key_status():
    """
    Whether the published digests are keyed: ``{"keyed": bool, "path": ...}``. Without a key
    (corosync ``crypto_cipher: none`` and no authkey) the digest in the CIB is the PBKDF2
    alone, which a weak password does not survive offline: create the key with
    ``corosync-keygen`` on one node and copy it (0400 root) to every node.

    CLI Example:

    .. code-block:: bash

        salt '*' crm_secrets.key_status
    """
    return {"keyed": _cluster_key() is not None, "path": __opts__.get("crm_secrets.authkey") or AUTHKEY}


def digest(rsc, secrets, secrets_dir=None):
    """
    The digest of ``secrets`` ({param: value}) of ``rsc`` this node publishes as its node
    attribute ``cinder_ha_secrets_<rsc>`` (keyed, see the module doc), remembered in the
    resource's secret folder: a run whose secrets and key did not change reads it back.

    CLI Example:

    .. code-block:: bash

        salt '*' crm_secrets.digest p_cinder-api '{os_password: ...}'   # prefer an SLS: not on a command line
    """
    secrets = _secret_args(rsc, secrets)
    key = _cluster_key()
    folder = os.path.join(_secrets_dir(secrets_dir), rsc)
    memo_key = cib.digest_memo_key(rsc, secrets, key)
    try:
        memo = json.loads(_read_private(os.path.join(folder, DIGEST_MEMO)) or "{}")
    except ValueError:
        memo = {}
    if isinstance(memo, dict) and memo.get("key") == memo_key and isinstance(memo.get("digest"), str):
        return memo["digest"]
    value = cib.secrets_digest(rsc, secrets, key)
    # kept for the run too: a secret folder written later in it (_write_secret_folder) files it
    __context__[DIGESTS] = {**__context__.get(DIGESTS, {}), memo_key: value}
    try:
        if _private_folder(folder):
            _write_digest_memo(folder, memo_key, value)
    except OSError as exc:  # a memo is an optimisation: the digest is right without it
        log.debug("crm_secrets: digest memo of %s not written: %s", rsc, exc)
    return value


def signs(objects, secrets_dir=None):
    """
    Internal (``crm.configure``): for each ``secret_mode: lrm`` primitive of ``objects``
    (normalized), ``{rsc: {param: md5 this node holds, or None}}`` (None: missing, or value
    and .sign disagree). Never a value.

    CLI Example:

    .. code-block:: bash

        salt '*' crm_secrets.signs '[{tag: primitive, id: p_x, secret_mode: lrm, secret_params: [pw]}]'
    """
    found = {}
    for (rsc, name), sign in _secret_signs(objects, secrets_dir).items():
        found.setdefault(rsc, {})[name] = sign
    return found


def held(rsc, secrets_dir=None):
    """
    The secret parameters of ``rsc`` this node holds (names only, never values); None when
    this node has no secret folder for ``rsc``.

    CLI Example:

    .. code-block:: bash

        salt '*' crm_secrets.held p_cinder-api
    """
    folder = os.path.join(_secrets_dir(secrets_dir), rsc)
    if not os.path.isdir(folder):
        return None
    return sorted({name[:-len(".sign")] if name.endswith(".sign") else name
                   for name in os.listdir(folder) if name != DIGEST_MEMO})


def store(rsc, secrets, secrets_dir=None, test=False):
    """
    Write ``secrets`` ({param: value}) of resource ``rsc`` where Pacemaker's executor reads
    ``lrm://`` values (value file 0600 + md5 ``.sign``, directories 0700), on THIS node, in
    one atomic folder swap, only when something differs. Every node that may run the resource
    needs them. Values Pacemaker cannot read back (empty, a line break, trailing whitespace,
    more than 254 bytes) are refused and nothing is written. Returns the names that changed
    (``test=True``: that would change); values never appear.

    CLI Example:

    .. code-block:: bash

        salt '*' crm_secrets.store p_cinder-api '{os_password: ...}'   # prefer an SLS: not on a command line
    """
    secrets = _secret_args(rsc, secrets)
    obj = {"tag": "primitive", "id": rsc, "secret_mode": "lrm", "params": dict(secrets),
           "secret_params": sorted(secrets)}
    held_signs = _secret_signs([obj], secrets_dir)
    changed = sorted(name for name, value in secrets.items() if held_signs.get((rsc, name)) != cib.md5_hex(value))
    if changed and not test:
        _store_secrets([obj], held_signs, secrets_dir)
    return changed


def remove(rsc, secrets_dir=None, test=False):
    """
    Remove THIS node's secret folder of ``rsc`` (call it once the resource is gone and stopped
    here: a stop still reads it; the ``crm_secrets.absent`` state waits for that). Returns the
    parameter names removed (never values), [] when there was none.

    CLI Example:

    .. code-block:: bash

        salt '*' crm_secrets.remove p_cinder-api test=True
    """
    try:
        cib._check_id(rsc, "resource")  # keeps the folder inside the secrets folder
    except cib.ModelError as exc:
        _fail(str(exc))
    folder = os.path.join(_secrets_dir(secrets_dir), rsc)
    names = held(rsc, secrets_dir) or []
    if not test and os.path.isdir(folder):
        shutil.rmtree(folder)
    return names
