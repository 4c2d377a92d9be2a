"""HAProxy in front of cinder-api on every controller (balanced mode): the haproxy.cfg the formula
writes, and the answers of HAProxy's runtime API it reads. Pure logic: no file, no socket, no
process (the execution module ``cinder_haproxy`` and the agent ``ocf:openstack:haproxy`` own those).

The config is text HAProxy reads word by word, line by line, ``#`` starting a comment: every value
is checked by what it means (``meanings``) before it is written, and a value that could end a line,
start a comment or add a word (a control character, white space, ``#``, a quote, a backslash,
``$``) is refused, so no input can add a directive. What is refused raises ``HaproxyError`` with
every problem found.

``render_config`` writes the config (see its docstring for the choices); ``parse_info`` reads the
answer to ``show info``, ``parse_stat`` the CSV of ``show stat`` (per server: state and current
sessions), ``drained`` says whether a server takes no new request and holds none.
``state_command`` and ``command_error`` are the runtime API's ``set server`` and its answer.
"""
import csv
import io
import ipaddress
import re

from cinder_ha_lib import meanings as m
from cinder_ha_lib import urls
from cinder_ha_lib.errors import HaproxyError

BACKEND = "cinder_api"
FRONTEND = "cinder_api_%s"  # internal, public
# Health checks (the docstring of render_config says why)
DEFAULT_INTER = 2
DEFAULT_FALL = 3
DEFAULT_RISE = 2
DEFAULT_CHECK_TIMEOUT = 5
# cinder's long requests (a large list, a backup or transfer call waiting on the database)
DEFAULT_TIMEOUT = 600
LOG_LEVELS = ("emerg", "alert", "crit", "err", "warning", "notice", "info", "debug")
STATES = ("ready", "drain", "maint")  # what `set server <backend>/<server> state` takes
# A unix socket's path is at most 107 bytes, and HAProxy binds "<path>.<pid>.tmp" first.
SOCKET_PATH_MAX = 90
# What HAProxy would read as the end of a word or a line, a comment, a quote or an escape, or
# expand (an environment variable).
UNSAFE = re.compile(r"[\s#'\"\\$\x00-\x1f\x7f]")


class ConfigPath(m.Meaning):
    """An absolute path HAProxy reads as one word."""

    def __init__(self, max_len=4095):
        super().__init__(f"an absolute path of at most {max_len} characters, without white space, '#', quotes, "
                         "backslash, '$' or '..'")
        self.max_len = max_len

    def parse(self, value):
        if not value.startswith("/") or ".." in value.split("/") or len(value) > self.max_len or UNSAFE.search(value):
            self.refuse(value)
        return value


PROXY_NAME = m.Word("an HAProxy backend name (a letter, digit or '_', then letters, digits, '_', '.', ':', '-'; "
                    "at most 100)", "A-Za-z0-9_", "A-Za-z0-9_.:-", 100)
MEANINGS = {
    "vip": m.HostAddress(),
    "address": m.HostAddress(),
    "port": m.PORT,
    # HAProxy's own rule for a server's name is letters, digits and "-_.:"; a node's name is that
    "server": m.NODE_NAME,
    "backend": PROXY_NAME,
    "path": ConfigPath(),
    "socket": ConfigPath(SOCKET_PATH_MAX),
    "inter": m.Integer(1, 3600, "a whole number of seconds, 1 to 3600"),
    "count": m.Integer(1, 100, "a whole number, 1 to 100"),
    "timeout": m.Integer(1, 86400, "a whole number of seconds, 1 to 86400"),
    "log_level": m.Enum(LOG_LEVELS),
    "user": m.POSIX_NAME,
    "state": m.Enum(STATES),
}


def _checked(kind, value, where, problems):
    """``value`` as ``MEANINGS[kind]`` reads it, or ``m.INVALID`` with the problem in ``problems``."""
    if isinstance(value, str) and m.CONTROL.search(value):
        problems.append(f"{where}: holds a control character (line break, tab, NUL...): every value is written "
                        "on one line of the config")
        return m.INVALID
    return m.check(MEANINGS[kind], value, where, problems)


def _endpoint(address, port):
    """``address:port`` as HAProxy reads it: an IPv6 address in brackets (its last ':' would
    otherwise be taken for the port's)."""
    return f"{urls.url_host(address)}:{port}"


def _servers(servers, problems):
    """[(name, address, port)] checked: names and endpoints unique."""
    found, names, endpoints = [], set(), set()
    if isinstance(servers, (str, bytes)) or not isinstance(servers, (list, tuple)) or not servers:
        problems.append("servers: a non-empty list of (name, address, port), one per cinder-api")
        return found
    for index, server in enumerate(servers):
        where = f"servers:{index}"
        if not isinstance(server, (list, tuple)) or len(server) != 3:
            problems.append(f"{where}: not a (name, address, port) triple")
            continue
        name = _checked("server", server[0], f"{where}:name", problems)
        address = _checked("address", server[1], f"{where}:address", problems)
        port = _checked("port", server[2], f"{where}:port", problems)
        if m.INVALID in (name, address, port):
            continue
        endpoint = (ipaddress.ip_address(address), port)
        if name in names:
            problems.append(f"{where}:name: {name!r} names two servers")
        elif endpoint in endpoints:
            problems.append(f"{where}: {_endpoint(address, port)} is there twice")
        names.add(name)
        endpoints.add(endpoint)
        found.append((name, address, port))
    return found


def render_config(servers, vip, runtime_socket, port=urls.DEFAULT_PORT, cert=None, public_vip=None,
                  public_port=None, public_cert=None, inter=DEFAULT_INTER, fall=DEFAULT_FALL, rise=DEFAULT_RISE,
                  check_timeout=DEFAULT_CHECK_TIMEOUT, timeout=DEFAULT_TIMEOUT, log_level="notice", user=None,
                  group=None, state_file=None, transparent=False):
    """
    The haproxy.cfg of balanced mode: HAProxy on every controller, on the VIP (``vip``:``port``,
    and ``public_vip``:``public_port`` when given, the same port by default), sending cinder-api's
    requests to every node's cinder-api (``servers``: ``(name, address, port)``, one per node).
    ``cert``/``public_cert``: a PEM (certificate and key) that makes that frontend TLS.

    - global: ``master-worker`` (the agent starts it so anyway: reloads keep one master pid),
      the runtime API on ``runtime_socket`` (``mode 600 level admin expose-fd listeners``: root
      only, ``set server`` allowed, listeners handed over at a reload), ``hard-stop-after`` the
      request timeout (an old worker never outlives the longest request it could still serve),
      ``log stderr`` at ``log_level`` (None: no log; the agent sends stderr to its console log,
      and ``notice`` keeps server state changes but not one line per request), ``user``/``group``
      (the workers drop root once bound).
    - defaults: ``mode http``, ``option httplog`` (with a log), ``option forwardfor`` (the
      client's address in X-Forwarded-For), ``option redispatch 1`` with ``retries 3`` (a request
      that cannot connect to a node goes to another at its first retry, not after retrying
      the same node with HAProxy's 1 s turn-around between tries), and ``retry-on conn-failure
      empty-response``: a request is sent again to another node also when its cinder-api
      closed the connection without a word (it was stopping: the backlog of a restart), but
      only an idempotent one (GET, HEAD, OPTIONS, PUT, DELETE: ``disable-l7-retry`` for the
      rest): a POST cinder may have acted on is never sent twice, and can fail with a 502 in
      that instant, ``timeout connect 5s``, client and
      server ``timeout`` (600 s: cinder's slow calls), ``timeout http-request 30s`` (a client must
      send its headers in time), ``timeout http-keep-alive 10s``.
    - one frontend per VIP, its ``X-Forwarded-Proto`` set (``https`` with a cert, else ``http``;
      what a client sent is replaced) for cinder's proxy header parsing (oslo.middleware).
    - one backend: ``balance leastconn`` (requests of very different lengths),
      ``option httpchk GET /healthcheck`` and ``http-check expect status 200`` (cinder's own
      health check; 503 once its disable file is there), a ``server`` line per node.

    Health check defaults: ``inter`` 2 s, ``fall`` 3, ``rise`` 2, ``check_timeout`` 5 s, and
    ``fastinter 500ms`` (the interval once a check has failed, or a down server has answered)
    and ``downinter 1s`` (while down). A cinder-api that is gone (connection refused) is out
    after 3 failed checks, at most 2 + 0.5 + 0.5 = 3 s, and a request meanwhile is
    redispatched; a hung one (a check unanswered for 5 s each time) within about 17 s: both
    before Pacemaker's own cinder-api monitor (every 30 s) would notice. One that answers again
    (a restart, a mode switch) has traffic after its second good check, 1-1.5 s. Three
    failures, not one, so a single slow /healthcheck of a busy cinder-api (one eventlet worker
    on a long database call) does not take a healthy node out; two successes to come back, so
    a node that flaps does not get traffic at its first answer.

    ``state_file``: HAProxy's server-state-file: the agent writes the servers' states there
    before a reload, and the new worker starts from them (a drained server stays drained).

    ``transparent``: every frontend's ``bind`` gets HAProxy's ``transparent`` option
    (IP_TRANSPARENT on that one socket). HAProxy runs on every controller, but the VIP is on one
    node at a time: without it, the bind of the VIP fails ("Cannot assign requested address") on
    every node that does not hold the VIP. With it, the socket binds the VIP there anyway and
    receives its traffic as soon as IPaddr2 puts the VIP on that node: no restart of HAProxy
    when the VIP moves. Chosen over the host-wide sysctl ``net.ipv4.ip_nonlocal_bind=1``, which
    would let every process of the host bind any foreign address; this option touches only
    HAProxy's listeners. It needs CAP_NET_ADMIN, which the master has (it binds as root; the
    workers inherit the bound sockets, and a reload hands them over: ``expose-fd listeners``).
    An address another process listens on stays refused ("Address already in use").

    Every value is checked (see the module's docstring); refused: ``HaproxyError``.
    """
    problems = []
    found = _servers(servers, problems)
    settings = {}
    for key, kind, value in (("runtime_socket", "socket", runtime_socket), ("inter", "inter", inter),
                             ("fall", "count", fall), ("rise", "count", rise),
                             ("check_timeout", "timeout", check_timeout), ("timeout", "timeout", timeout)):
        settings[key] = _checked(kind, value, key, problems)
    for key, kind, value in (("log_level", "log_level", log_level), ("user", "user", user),
                             ("group", "user", group), ("state_file", "path", state_file)):
        settings[key] = None if value is None else _checked(kind, value, key, problems)
    settings["group"] = settings["group"] or settings["user"]  # the user's own group by default
    if not isinstance(transparent, bool):
        problems.append(f"transparent: {transparent!r} is not true or false")
    settings["transparent"] = transparent is True
    frontends = []
    for side, address, where_port, pem in (("internal", vip, port, cert),
                                           ("public", public_vip, port if public_port is None else public_port,
                                            public_cert)):
        if side == "public" and address is None:
            if public_port is not None or public_cert is not None:
                problems.append("public_port, public_cert: given without public_vip")
            continue
        prefix = "" if side == "internal" else "public_"
        frontend = (side, _checked("vip", address, f"{prefix}vip", problems),
                    _checked("port", where_port, f"{prefix}port", problems),
                    None if pem is None else _checked("path", pem, f"{prefix}cert", problems))
        if m.INVALID not in frontend:
            frontends.append(frontend)
    binds = [(ipaddress.ip_address(address), bind_port) for _side, address, bind_port, _pem in frontends]
    if len(binds) == 2 and binds[0] == binds[1]:
        problems.append(f"public_vip: {_endpoint(public_vip, binds[1][1])} is the internal frontend's too")
    for name, address, server_port in found:
        if (ipaddress.ip_address(address), server_port) in binds:
            problems.append(f"servers: {name}'s {_endpoint(address, server_port)} is a frontend's: requests would "
                            "loop back into HAProxy")
    if problems:
        raise HaproxyError(problems, heading="refused HAProxy config")
    return _text(found, frontends, settings)


def _text(servers, frontends, s):
    logged = s["log_level"] is not None
    lines = [
        "# cinder-ha balanced mode: HAProxy in front of cinder-api on every controller.",
        "# Written by the cinder-ha formula: edits are overwritten.",
        "global",
        "    master-worker",
        f"    stats socket {s['runtime_socket']} mode 600 level admin expose-fd listeners",
        f"    hard-stop-after {s['timeout']}s",
    ]
    if logged:
        lines.append(f"    log stderr format short daemon {s['log_level']}")
    if s["user"]:
        lines += [f"    user {s['user']}", f"    group {s['group']}"]
    if s["state_file"]:
        lines.append(f"    server-state-file {s['state_file']}")
    lines += ["", "defaults", "    mode http"]
    if logged:
        lines += ["    log global", "    option httplog"]
    lines += [
        "    option forwardfor",
        "    option redispatch 1",
        "    retries 3",
        "    retry-on conn-failure empty-response",
        "    timeout connect 5s",
        f"    timeout client {s['timeout']}s",
        f"    timeout server {s['timeout']}s",
        "    timeout http-request 30s",
        "    timeout http-keep-alive 10s",
        f"    timeout check {s['check_timeout']}s",
    ]
    if s["state_file"]:
        lines.append("    load-server-state-from-file global")
    for side, address, port, pem in frontends:
        tls = f" ssl crt {pem}" if pem else ""
        # the VIP is bound before IPaddr2 puts it on this node (render_config's docstring)
        option = " transparent" if s["transparent"] else ""
        lines += [
            "",
            f"frontend {FRONTEND % side}",
            f"    bind {_endpoint(address, port)}{tls}{option}",
            f"    http-request set-header X-Forwarded-Proto {'https' if pem else 'http'}",
            f"    default_backend {BACKEND}",
        ]
    lines += ["", f"backend {BACKEND}", "    balance leastconn", "    option httpchk GET /healthcheck",
              "    http-check expect status 200",
              # a request the server may have acted on is never sent twice (retry-on's docstring)
              "    http-request disable-l7-retry unless METH_GET || METH_HEAD || METH_OPTIONS || { method PUT DELETE }"]
    check = f"check inter {s['inter']}s fastinter 500ms downinter 1s fall {s['fall']} rise {s['rise']}"
    lines += [f"    server {name} {_endpoint(address, port)} {check}" for name, address, port in servers]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- the runtime API's answers

def parse_info(text):
    """The answer to ``show info``: ``{key: value}`` (strings, as HAProxy writes them)."""
    info = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip():
            info[key.strip()] = value.strip()
    if "Pid" not in info or "Name" not in info:
        raise HaproxyError(f"not an answer to show info: {_first_line(text)!r}")
    return info


def _first_line(text):
    return (text.strip().splitlines() or [""])[0][:200]


def _number(row, key):
    value = (row.get(key) or "").strip()
    return int(value) if value.isdigit() else 0


def parse_stat(text):
    """
    The servers in the CSV answer to ``show stat``: ``{backend: {server: {...}}}``, each with
    ``status`` (as HAProxy shows it: "UP", "UP 1/3" going down, "DOWN", "DRAIN", "MAINT",
    "MAINT (via b/s)", "no check"...), ``state`` (its first word: UP, DOWN, DRAIN, MAINT, NOLB;
    "no check" is UP), ``sessions`` (scur: requests under way on it), ``queued`` (qcur),
    ``check`` (the last check's status, e.g. L7OK, L4CON), ``address`` and ``weight``.
    """
    lines = text.splitlines()
    header = next((index for index, line in enumerate(lines) if line.startswith("# pxname,svname,")), None)
    if header is None:
        raise HaproxyError(f"not an answer to show stat: {_first_line(text)!r}")
    reader = csv.DictReader(io.StringIO("\n".join([lines[header][2:]] + lines[header + 1:])))
    servers = {}
    for row in reader:
        if row.get("type") != "2" or not row.get("pxname") or not row.get("svname"):
            continue  # frontends (0), backends (1), listeners (3)
        status = (row.get("status") or "").strip()
        state = "UP" if status == "no check" else (status.split() or [""])[0]
        servers.setdefault(row["pxname"], {})[row["svname"]] = {
            "status": status, "state": state, "sessions": _number(row, "scur"), "queued": _number(row, "qcur"),
            "check": row.get("check_status") or "", "address": row.get("addr") or "",
            "weight": _number(row, "weight"),
        }
    return servers


def drained(server):
    """Whether a server of ``parse_stat`` takes no new request (DRAIN or MAINT) and holds none."""
    return server["state"] in ("DRAIN", "MAINT") and server["sessions"] == 0 and server["queued"] == 0


def state_command(backend, server, state):
    """The runtime API's ``set server <backend>/<server> state <state>``, every part checked (a
    ';' or a line break would start another command)."""
    problems = []
    parts = [_checked(kind, value, kind, problems)
             for kind, value in (("backend", backend), ("server", server), ("state", state))]
    if problems:
        raise HaproxyError(problems, heading="refused runtime API command")
    return "set server {}/{} state {}".format(*parts)


def command_error(answer):
    """What went wrong with a command that answers nothing when it succeeds (``set server``):
    None, or HAProxy's words ("No such server.", "No such backend.", a usage line)."""
    text = answer.strip()
    return text[:300] or None
