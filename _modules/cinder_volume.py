"""
cinder's RPC services under the cluster (cinder-scheduler, cinder-volume): what only cinder's
own Python can tell about the pillar's backends, and cinder's own view of its services.

Everything runs in the Python that runs cinder-volume (its ``#!`` line), with an argument list
and no shell; anything that may hold a secret (the lock manager URL, the database URL) goes
to it on standard input or is read by it from cinder.conf, never on a command line.

CLI Example:

.. code-block:: bash

    salt '*' cinder_volume.check_backends
    salt '*' cinder_volume.services
    salt '*' cinder_volume.shared_host /etc/cinder/cinder.conf
"""
import json
import logging
import os
import socket
import subprocess

from cinder_ha_lib import conf, pillar, volume
from cinder_ha_lib.secret_rule import mask_url

log = logging.getLogger(__name__)

__virtualname__ = "cinder_volume"

# Run in cinder's Python: import each driver class, read SUPPORTS_ACTIVE_ACTIVE, and try the
# lock manager (a lock taken and released: a coordinator's start alone may not reach it).
_CHECK = r"""
import json, sys
req = json.load(sys.stdin)
out = {"drivers": {}, "coordination": None}
from oslo_utils import importutils
from cinder import objects
objects.register_all()  # drivers use cinder's versioned objects at import
for name, path in req["drivers"].items():
    try:
        cls = importutils.import_class(path)
        module = sys.modules[cls.__module__]
        missing = [lib for lib in ("rados", "rbd") if lib in vars(module) and vars(module)[lib] is None]
        out["drivers"][name] = {"ok": not missing, "active_active": bool(getattr(cls, "SUPPORTS_ACTIVE_ACTIVE", False)),
                                "error": ("the driver's Python bindings are missing: " + ", ".join(missing)) if missing else None}
    except Exception as exc:
        out["drivers"][name] = {"ok": False, "active_active": False, "error": "%s: %s" % (type(exc).__name__, exc)}
url = req.get("coordination")
if url:
    try:
        from tooz import coordination
        coordinator = coordination.get_coordinator(url, b"cinder-ha-check")
        coordinator.start(start_heart=False)
        try:
            lock = coordinator.get_lock(b"cinder-ha-check")
            if lock.acquire(blocking=False):
                lock.release()
        finally:
            coordinator.stop()
        out["coordination"] = {"ok": True}
    except Exception as exc:
        out["coordination"] = {"ok": False, "error": "%s: %s" % (type(exc).__name__, str(exc)[:300])}
print(json.dumps(out))
"""

# Run in cinder's Python: the services table (the database URL read from cinder.conf here).
_SERVICES = r"""
import configparser, datetime, json, sys
parser = configparser.RawConfigParser(strict=False, default_section="__none__", delimiters=("=",))
parser.optionxform = str
parser.read(sys.argv[1], encoding="utf-8")
url = parser.get("database", "connection", fallback="").replace("$$", "$")
down = int(parser.get("DEFAULT", "service_down_time", fallback="60") or 60)
import sqlalchemy
engine = sqlalchemy.create_engine(url)
with engine.connect() as conn:
    rows = conn.execute(sqlalchemy.text(
        "SELECT host, `binary`, cluster_name, disabled, updated_at, created_at FROM services "
        "WHERE deleted = 0 AND `binary` IN ('cinder-scheduler', 'cinder-volume') ORDER BY `binary`, host")).fetchall()
now = datetime.datetime.utcnow()
out = []
for host, binary, cluster, disabled, updated, created in rows:
    age = int((now - (updated or created)).total_seconds())
    out.append({"host": host, "binary": binary, "cluster": cluster, "disabled": bool(disabled),
                "heartbeat_age": age, "up": age <= down})
print(json.dumps(out))
"""


def __virtual__():
    return __virtualname__


def _error(message):
    from salt.exceptions import CommandExecutionError

    return CommandExecutionError(message)


def _settings():
    raw = __salt__["pillar.get"]("cinder_ha", {}, unmask=True)
    settings, errors, _warnings = pillar.normalize(raw)
    if errors:
        raise _error("invalid cinder_ha pillar: " + "; ".join(errors))
    return settings


def _python(binary):
    """argv of the interpreter that runs ``binary`` (cinder-volume), or an error."""
    try:
        with open(binary, "rb") as handle:
            first = handle.readline(512)
    except OSError as exc:
        raise _error(f"{binary} cannot be read ({exc.strerror}): is cinder-volume installed?") from exc
    argv, problem = conf.python_argv(first)
    if problem:
        raise _error(f"{binary} {problem}: its drivers cannot be checked")
    return argv


def _run(argv, script, stdin, timeout):
    try:
        proc = subprocess.run(argv + ["-c", script] + stdin[1], input=stdin[0], capture_output=True, text=True,
                              timeout=timeout, cwd="/", env={"PATH": "/usr/local/bin:/usr/bin:/bin",
                                                              "LANG": "C.UTF-8"})
    except subprocess.TimeoutExpired as exc:
        raise _error(f"cinder's Python ({' '.join(argv)}) did not answer within {timeout}s") from exc
    if proc.returncode != 0:
        said = [line for line in proc.stderr.splitlines() if line.strip()][-1:] or [f"rc {proc.returncode}"]
        raise _error(f"cinder's Python ({' '.join(argv)}) failed: {mask_url(said[0].strip())[:300]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def check_backends(binary=None, settings=None, timeout=60):
    """
    What cinder's own Python says about the pillar's ``volume`` settings, before anything is
    written: every driver class imports (with the bindings it needs, e.g. rados/rbd for RBD);
    in ``active_active``, every driver declares ``SUPPORTS_ACTIVE_ACTIVE``; the cluster name
    equals none of this node's hosts (its ``[DEFAULT] host``, its name) nor any
    ``cluster:nodes``; the coordination URL's lock manager answers (a lock taken and
    released). Returns ``{"ok", "problems", "drivers", "coordination"}`` (masked).

    binary
        cinder-volume (default: beside the agent's cinder-api binary).

    CLI Example:

    .. code-block:: bash

        salt '*' cinder_volume.check_backends
    """
    settings = settings or _settings()
    vol = settings.get("volume")
    result = {"ok": True, "problems": [], "drivers": {}, "coordination": None}
    if not vol:
        return result
    if binary is None:
        from cinder_ha_lib import formula

        binary = formula.service_binary(__salt__["cinder_ha.parameters"](), settings, "cinder-volume")
    request = {"drivers": {name: backend["driver"] for name, backend in vol["backends"].items()},
               "coordination": vol["coordination_url"] if vol["mode"] == "active_active" else None}
    answer = _run(_python(binary), _CHECK, (json.dumps(request), []), timeout)
    problems = result["problems"]
    for name, found in answer["drivers"].items():
        driver = request["drivers"][name]
        result["drivers"][name] = dict(found, driver=driver)
        if not found["ok"]:
            problems.append(f"volume:backends:{name}:driver: {driver} cannot be loaded by cinder's Python: "
                            f"{found['error']}")
        elif vol["mode"] == "active_active" and not found["active_active"]:
            problems.append(f"volume:mode: active_active is refused for backend {name}: its driver {driver} does "
                            "not declare SUPPORTS_ACTIVE_ACTIVE (cinder's HA document: such drivers run "
                            "active_passive only)")
    if vol["mode"] == "active_active":
        hosts = set(settings["cluster"].get("nodes") or []) | {socket.gethostname()}
        hosts |= set(conf.parse(_read_text(settings["cinder_conf"]["path"])).effective()
                     .get("DEFAULT", {}).get("host", []))
        if vol["cluster"] in hosts:
            problems.append(f"volume:cluster: {vol['cluster']!r} equals a host name of this node or a controller: "
                            "cinder requires the cluster name to differ from every host and backend_host")
        coordination = answer.get("coordination") or {"ok": False, "error": "not checked"}
        result["coordination"] = {"url": mask_url(vol["coordination_url"]), **coordination}
        if not coordination["ok"]:
            problems.append(f"volume:coordination:backend_url: the lock manager at {mask_url(vol['coordination_url'])} "
                            f"does not answer cinder's tooz: {mask_url(coordination.get('error') or '')}")
    result["ok"] = not problems
    return result


def _read_text(path):
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as handle:
            return handle.read()
    except OSError:
        return ""


def services(config=None, binary=None, timeout=30):
    """
    cinder's own view of its scheduler and volume services: every row of its ``services`` table
    for cinder-scheduler and cinder-volume, with ``host``, ``cluster``, ``disabled``, the age of
    its last heartbeat and ``up`` (heartbeat within ``service_down_time``, as cinder decides).
    Read by cinder's Python from cinder.conf's database URL (never on a command line).

    CLI Example:

    .. code-block:: bash

        salt '*' cinder_volume.services
    """
    settings = _settings()
    config = config or settings["cinder_conf"]["path"]
    if binary is None:
        from cinder_ha_lib import formula

        binary = formula.service_binary(__salt__["cinder_ha.parameters"](), settings, "cinder-volume")
    return _run(_python(binary), _SERVICES, ("", [config]), timeout)


def expected_rows(settings=None):
    """The cinder-volume rows the pillar implies in active_passive: ``{backend: host}``
    (``backend_host@backend``, the same on every node); ``None`` in active_active."""
    return volume.service_hosts((settings or _settings()).get("volume"))


# ---------------------------------------------------------------- the old HA guide's shared host

def _shared_host_record():
    return os.path.join(__opts__["cachedir"], "cinder_ha", "shared_host.json")


def shared_host(config):
    """
    The ``[DEFAULT] host`` that ``config`` gives every service, or None: the old HA guide's
    way of making any node's cinder-volume the same service, which cinder's HA document calls
    highly discouraged. With pillar ``volume`` the formula removes it (``backend_host`` or
    ``cluster`` replace it).

    CLI Example:

    .. code-block:: bash

        salt '*' cinder_volume.shared_host /etc/cinder/cinder.conf
    """
    values = conf.parse(_read_text(config)).effective().get("DEFAULT", {}).get("host") or []
    return conf.unescape(values[-1]) if values and values[-1] else None


def record_shared_host(config, test=False):
    """Remember the shared host ``config`` holds now (before cinder.conf is rewritten without
    it), for ``move_shared_host``. Returns the host or None."""
    host = shared_host(config)
    if host and not test:
        path = _shared_host_record()
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as handle:
            json.dump({"host": host, "config": config}, handle)
    return host


def recorded_shared_host():
    try:
        with open(_shared_host_record(), encoding="utf-8") as handle:
            return json.load(handle).get("host")
    except (OSError, ValueError):
        return None


def _manage(argv, config, binary, timeout=120):
    manage = os.path.join(os.path.dirname(binary), "cinder-manage")
    proc = subprocess.run([manage, "--config-file", config, *argv], capture_output=True, text=True, timeout=timeout,
                          cwd="/", env={"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"})
    said = [line for line in (proc.stdout + proc.stderr).splitlines() if line.strip()]
    return proc.returncode, mask_url(said[-1].strip() if said else "")


def move_shared_host(config=None, binary=None, test=False):
    """
    After the formula removed a shared ``[DEFAULT] host`` (recorded by ``record_shared_host``):
    the volumes of ``<old host>@<backend>`` move to ``<backend_host>@<backend>#<pool>``
    (``cinder-manage volume update_host``, active_passive) and the old cinder-volume service
    rows are removed (``cinder-manage service remove``), so the volumes created under the old
    setting stay manageable and ``volume service list`` shows no ghost. Returns
    ``{"host", "moved": [...], "removed": [...], "problems": [...]}``; nothing to do without a
    record.

    CLI Example:

    .. code-block:: bash

        salt '*' cinder_volume.move_shared_host
    """
    result = {"host": recorded_shared_host(), "moved": [], "removed": [], "problems": []}
    if not result["host"]:
        return result
    settings = _settings()
    vol = settings.get("volume")
    config = config or settings["cinder_conf"]["path"]
    if binary is None:
        from cinder_ha_lib import formula

        binary = formula.service_binary(__salt__["cinder_ha.parameters"](), settings, "cinder-volume")
    old = result["host"]
    for backend in (vol or {}).get("backends", {}):
        if vol["mode"] == "active_passive":
            # update_host sets the host whole: the pool (#volume_backend_name, the one pool of
            # a single-pool driver such as RBD) is written with it
            pool = vol["backends"][backend]["options"].get("volume_backend_name", backend)
            new = f"{vol['backend_host']}@{backend}#{pool}"
            if test:
                result["moved"].append(f"{old}@{backend} -> {new}")
            else:
                rc, said = _manage(["volume", "update_host", "--currenthost", f"{old}@{backend}", "--newhost", new],
                                   config, binary)
                (result["moved"] if rc == 0 else result["problems"]).append(
                    f"{old}@{backend} -> {new}" + ("" if rc == 0 else f": {said}"))
        else:
            result["problems"].append(f"volumes of {old}@{backend}: active_active has no single new host; move "
                                      "them with cinder-manage volume update_host and set their cluster")
        if not test:
            _manage(["volume", "update_service"], config, binary)  # the volumes' service_uuid follows
            rc, said = _manage(["service", "remove", "cinder-volume", f"{old}@{backend}"], config, binary)
            if rc == 0:
                result["removed"].append(f"cinder-volume {old}@{backend}")
        else:
            result["removed"].append(f"cinder-volume {old}@{backend}")
    if not test and not result["problems"]:
        os.unlink(_shared_host_record())
    return result
