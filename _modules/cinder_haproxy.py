"""
HAProxy in front of cinder-api (the formula's balanced mode): a config checked by HAProxy itself
before it is written, and the servers of the runtime API (state, requests under way), drained
and readied one at a time.

The runtime API is the config's ``stats socket`` (a unix socket, root only), spoken to from
Python, one command per connection: never through a shell. The config's text and the reading of
the answers are ``cinder_ha_lib.haproxy`` (pure logic).

CLI Example:

.. code-block:: bash

    salt '*' cinder_haproxy.check_config "$(cat /etc/haproxy/cinder-ha.cfg)"
    salt '*' cinder_haproxy.server_states /run/haproxy/cinder-ha.sock
    salt '*' cinder_haproxy.set_server_state /run/haproxy/cinder-ha.sock cinder_api node1 drain
    salt '*' cinder_haproxy.wait_drained /run/haproxy/cinder-ha.sock cinder_api node1 timeout=120
    salt '*' cinder_haproxy.config_file /etc/haproxy/cinder-ha.cfg
    salt '*' cinder_haproxy.running /run/resource-agents/p_haproxy.pid
    salt '*' cinder_haproxy.reload /usr/lib/ocf/resource.d/openstack/haproxy \
        '{"config": "/etc/haproxy/cinder-ha.cfg"}' p_haproxy
"""
import grp
import os
import pwd
import re
import shutil
import socket
import stat
import subprocess
import tempfile
import time

from cinder_ha_lib import haproxy
from cinder_ha_lib.errors import HaproxyError

__virtualname__ = "cinder_haproxy"

BINARY = "/usr/sbin/haproxy"
PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
# what haproxy -c says every time, of no use in a message
NOISE = ("haproxy version is", "path to executable is")
OCF_ROOT = "/usr/lib/ocf"
# an OCF_RESKEY_ name: a word, so that it is one environment variable
PARAM_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def __virtual__():
    if not shutil.which("haproxy", path=PATH):
        return (False, "cinder_haproxy: haproxy is not installed (apt-get install haproxy): balanced mode runs "
                       "HAProxy in front of cinder-api on every controller")
    return __virtualname__


def _error(message):
    from salt.exceptions import CommandExecutionError

    return CommandExecutionError(message)


def _said(output, path):
    """haproxy's words, one line each, the temp file named ``<config>``."""
    lines = [line.strip().replace(path, "<config>") for line in output.splitlines()]
    return "\n".join(line for line in lines if line and not any(noise in line for noise in NOISE))


def check_config(text, binary=BINARY, timeout=30):
    """
    Whether HAProxy takes ``text`` as its config (``haproxy -c``), before it is written where
    HAProxy reads it: ``(ok, message)``, the message being HAProxy's alerts and warnings (the
    temp file named ``<config>``). The text goes to a file of a private (0700) temp folder,
    removed whatever happens; nothing of it reaches a command line.

    CLI Example:

    .. code-block:: bash

        salt '*' cinder_haproxy.check_config "$(cat /etc/haproxy/cinder-ha.cfg)"
    """
    with tempfile.TemporaryDirectory(prefix="cinder-haproxy-") as folder:
        path = os.path.join(folder, "haproxy.cfg")
        with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w", encoding="utf-8") as handle:
            handle.write(text)
        try:
            proc = subprocess.run([binary, "-c", "-f", path], stdin=subprocess.DEVNULL, capture_output=True,
                                  text=True, timeout=timeout, cwd="/", env={"PATH": PATH, "LANG": "C.UTF-8"})
        except subprocess.TimeoutExpired:
            return False, f"{binary} -c did not answer within {timeout}s"
        except OSError as exc:
            return False, f"{binary} cannot be run: {exc.strerror}"
    return proc.returncode == 0, _said(proc.stdout + "\n" + proc.stderr, path)


def _ask(path, command, timeout):
    """HAProxy's answer to one command on the unix socket ``path``, within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    answer = b""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(path)
            sock.sendall(command.encode() + b"\n")
            sock.shutdown(socket.SHUT_WR)  # HAProxy answers, then closes
            while True:
                sock.settimeout(max(0.01, deadline - time.monotonic()))
                chunk = sock.recv(65536)
                if not chunk:
                    break
                answer += chunk
    except OSError as exc:  # socket.timeout too
        raise _error(f"HAProxy's runtime API at {path} did not answer {command!r}: {exc}") from exc
    return answer.decode("utf-8", "replace")


def server_states(socket_path, timeout=5):
    """
    Every server of every backend as HAProxy's runtime API (``show stat`` on ``socket_path``)
    sees it: ``{backend: {server: {"state", "status", "sessions", "queued", "check",
    "address", "weight"}}}`` (see ``cinder_ha_lib.haproxy.parse_stat``).

    CLI Example:

    .. code-block:: bash

        salt '*' cinder_haproxy.server_states /run/haproxy/cinder-ha.sock
    """
    try:
        return haproxy.parse_stat(_ask(socket_path, "show stat", timeout))
    except HaproxyError as exc:
        raise _error(f"{socket_path}: {exc}") from exc


def _server(socket_path, backend, server, timeout):
    found = server_states(socket_path, timeout).get(backend, {}).get(server)
    if found is None:
        raise _error(f"HAProxy at {socket_path} has no server {backend}/{server}")
    return found


def set_server_state(socket_path, backend, server, state, timeout=5):
    """
    Set a server's administrative state (``set server <backend>/<server> state <state>``):
    ``ready``, ``drain`` (no new request; those under way finish; health checks go on) or
    ``maint`` (no new request, checks stopped). Returns the server as ``server_states`` then
    shows it. A reload keeps the state only when the config declares a server-state-file
    (the agent saves the states there first).

    CLI Example:

    .. code-block:: bash

        salt '*' cinder_haproxy.set_server_state /run/haproxy/cinder-ha.sock cinder_api node1 drain
    """
    try:
        command = haproxy.state_command(backend, server, state)
    except HaproxyError as exc:
        raise _error(str(exc)) from exc
    problem = haproxy.command_error(_ask(socket_path, command, timeout))
    if problem:
        raise _error(f"HAProxy at {socket_path} refused {command!r}: {problem}")
    return _server(socket_path, backend, server, timeout)


def wait_drained(socket_path, backend, server, timeout=60, interval=0.2):
    """
    Wait, up to ``timeout`` seconds, until a server in ``drain`` or ``maint`` holds no request
    (no current session, none queued). Returns ``{"drained", "state", "sessions", "queued",
    "waited", "problem"}``: what was left when the wait ended. A server that is not draining
    (``problem`` says so) is not waited for: it takes new requests.

    CLI Example:

    .. code-block:: bash

        salt '*' cinder_haproxy.wait_drained /run/haproxy/cinder-ha.sock cinder_api node1 timeout=120
    """
    started = time.monotonic()
    while True:
        found = _server(socket_path, backend, server, min(5, max(1, timeout)))
        waited = round(time.monotonic() - started, 2)
        draining = found["state"] in ("DRAIN", "MAINT")
        if haproxy.drained(found) or not draining or waited >= timeout:
            problem = None if draining else (f"{backend}/{server} is {found['status']}, not draining: set its state "
                                             "to drain first")
            return {"drained": haproxy.drained(found), "state": found["state"], "sessions": found["sessions"],
                    "queued": found["queued"], "waited": waited, "problem": problem}
        time.sleep(min(interval, max(0.0, timeout - waited)))


# ---------------------------------------------------------------- the config file, the running HAProxy

def config_file(path):
    """
    The current text of the config at ``path``, or None when there is none. Reading follows a
    link (writing never does: ``install_config``).

    CLI Example:

    .. code-block:: bash

        salt '*' cinder_haproxy.config_file /etc/haproxy/cinder-ha.cfg
    """
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise _error(f"{path} cannot be read: {exc}") from exc


def _default_group():
    try:
        grp.getgrnam("haproxy")
        return "haproxy"
    except KeyError:
        return "root"


def install_config(path, text, binary=BINARY, mode="0640", user="root", group=None):
    """
    Write ``text`` to ``path`` as HAProxy's config, once HAProxy itself took it (``check_config``):
    a text it refuses raises an error carrying its words, and nothing is written. The write is
    atomic (a temp file in the same folder, its owner and mode set before it holds anything,
    fsync, rename over ``path``): HAProxy, a reload or a start never reads half a file. ``path``
    must be a regular file if it exists: a link or anything else is refused (the rename would
    replace the link, not what it points to, which is never what was meant). A missing folder is
    made (0755). ``group``: ``haproxy`` when that group exists, else ``root`` (the workers read
    nothing: the master, root, reads the file). Returns whether the content changed (owner and
    mode are set right either way).

    CLI Example:

    .. code-block:: bash

        salt '*' cinder_haproxy.install_config /etc/haproxy/cinder-ha.cfg "$(cat /tmp/new.cfg)"

    SLS: through the state ``cinder_haproxy.config_managed`` (its docstring has the example).
    """
    if not isinstance(text, str):
        raise _error(f"{path}: the config must be text")
    try:
        want_mode = int(str(mode), 8)
        uid = pwd.getpwnam(user).pw_uid
        gid = grp.getgrnam(group or _default_group()).gr_gid
    except (ValueError, KeyError) as exc:
        raise _error(f"{path}: mode {mode!r}, user {user!r} or group {group!r} is not usable: {exc}") from exc
    if not os.path.isabs(path):
        raise _error(f"{path}: not an absolute path")
    ok, message = check_config(text, binary=binary)
    if not ok:
        raise _error(f"HAProxy refuses the config for {path} (nothing written): {message}")
    folder = os.path.dirname(path)
    if not os.path.isdir(folder):
        os.makedirs(folder, mode=0o755, exist_ok=True)
        os.chmod(folder, 0o755)  # whatever the umask
    current = None
    try:
        found = os.lstat(path)
    except FileNotFoundError:
        found = None
    if found is not None:
        if stat.S_ISLNK(found.st_mode) or not stat.S_ISREG(found.st_mode):
            raise _error(f"{path} is a symbolic link or not a regular file: refused, nothing written")
        with open(path, encoding="utf-8", errors="replace") as handle:
            current = handle.read()
        if (current == text and stat.S_IMODE(found.st_mode) == want_mode and (found.st_uid, found.st_gid)
                == (uid, gid)):
            return False
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", dir=folder)
    try:
        # owner and mode first: the text is never readable by more than it should be
        os.fchown(fd, uid, gid)
        os.fchmod(fd, want_mode)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            fd = None
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        tmp = None
    finally:
        if fd is not None:
            os.close(fd)
        if tmp is not None:
            os.unlink(tmp)
    # the rename itself on disk
    dir_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return current != text


def _master_argv0(pid):
    """argv[0] of live process ``pid``: None when it is gone or a zombie, "" while it has no
    command line (HAProxy's master re-executing itself at a reload)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8", errors="replace") as handle:
            if handle.read().rsplit(")", 1)[1].split()[0] in ("Z", "X"):
                return None
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return handle.read().split(b"\0")[0].decode(errors="replace")
    except (OSError, IndexError):
        return None


def running(pid_file, binary=BINARY):
    """
    Whether the HAProxy master recorded in ``pid_file`` (the agent's) lives: its pid's process
    exists, is no zombie, and its command line starts with ``binary``. The master's command line
    is empty for an instant while it re-executes itself at a reload: asked again for half a
    second then, so a reload under way is not taken for no HAProxy.

    CLI Example:

    .. code-block:: bash

        salt '*' cinder_haproxy.running /run/resource-agents/p_haproxy.pid
    """
    try:
        with open(pid_file, encoding="utf-8") as handle:
            pid = handle.read(64).strip()
    except (OSError, UnicodeDecodeError):
        return False
    if not pid.isdigit():
        return False
    for _ in range(10):
        argv0 = _master_argv0(pid)
        if argv0 is None:
            return False
        if argv0:
            return argv0 == binary or os.path.realpath(argv0) == os.path.realpath(binary)
        time.sleep(0.05)
    return False


def reload(agent, params, instance, timeout=60):
    """
    Run the ``reload`` action of the OCF agent ``agent`` (ocf:openstack:haproxy) on this node,
    as pacemaker-execd would: ``params`` as ``OCF_RESKEY_<key>``, ``instance`` as the
    resource's name, ``timeout`` seconds as its operation timeout. The agent checks the config
    first and reloads seamlessly (see the agent). Nothing of the caller's environment reaches
    it. Returns True; an error with the end of the agent's stderr when it fails.

    CLI Example:

    .. code-block:: bash

        salt '*' cinder_haproxy.reload /usr/lib/ocf/resource.d/openstack/haproxy \
            '{"config": "/etc/haproxy/cinder-ha.cfg", "pid": "/run/resource-agents/p_haproxy.pid"}' p_haproxy
    """
    env = {"PATH": PATH, "LANG": "C.UTF-8", "OCF_ROOT": OCF_ROOT, "OCF_RESOURCE_INSTANCE": str(instance),
           "OCF_RESOURCE_TYPE": "haproxy", "OCF_RESOURCE_PROVIDER": "openstack", "__OCF_ACTION": "reload",
           "OCF_RESKEY_CRM_meta_timeout": str(int(float(timeout) * 1000))}
    for key, value in (params or {}).items():
        if not PARAM_NAME.fullmatch(str(key)):
            raise _error(f"{key!r} is not a parameter name")
        env[f"OCF_RESKEY_{key}"] = str(value)
    try:
        # a margin past the agent's own timeout: it answers at its end
        proc = subprocess.run([str(agent), "reload"], env=env, stdin=subprocess.DEVNULL, capture_output=True,
                              text=True, timeout=float(timeout) + 10, cwd="/")
    except subprocess.TimeoutExpired as exc:
        raise _error(f"{agent} reload did not end within {timeout}s") from exc
    except OSError as exc:
        raise _error(f"{agent} cannot be run: {exc.strerror}") from exc
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-5:])[-1500:]
        raise _error(f"{agent} reload of {instance} failed (rc {proc.returncode}): {tail}")
    return True
