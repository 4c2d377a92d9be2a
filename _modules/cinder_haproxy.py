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
"""
import os
import shutil
import socket
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
