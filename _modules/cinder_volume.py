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
    salt '*' cinder_volume.record_placement_change /etc/cinder/cinder.conf test=True
    salt '*' cinder_volume.move_placement
"""
import json
import logging
import os
import socket
import subprocess
import time

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


# Run in cinder's Python, with cinder's own objects (cinder.conf from argv): move what a
# placement change stranded, as cinder-manage and cinder's include_in_cluster would.
_MOVE = r"""
import json, sys, time
req = json.load(sys.stdin)
from oslo_config import cfg
from cinder import objects
objects.register_all()
from cinder.common import config  # noqa: F401 (registers cinder's options)
cfg.CONF(["--config-file", sys.argv[1]], project="cinder", default_config_files=[], default_config_dirs=[])
from cinder import context, exception
from cinder.db import api as db
from cinder.volume import volume_utils
ctxt = context.get_admin_context()
out = {"moved": [], "removed": [], "creating": [], "problems": []}

def rows():
    return objects.ServiceList.get_all(ctxt, {"binary": "cinder-volume"})

def filed_under(obj, kind):
    # a service row's, volume's or group's placement of that kind (a volume's host ends in #pool)
    return (obj.host if kind == "host" else obj.cluster_name) or ""

def up(kind, name):
    return any(row.is_up for row in rows() if filed_under(row, kind) == name)

def file_in_cluster(row, cluster):
    # cinder files a service row in a cluster only when the row had none (Service.__init__'s
    # added_to_cluster), creating the cluster as its _ensure_cluster_exists does
    try:
        objects.Cluster.get_by_id(ctxt, None, name=cluster, binary=row.binary)
    except exception.ClusterNotFound:
        try:
            objects.Cluster(context=ctxt, name=cluster, binary=row.binary, disabled=row.disabled,
                            replication_status=row.replication_status, active_backend_id=row.active_backend_id,
                            frozen=row.frozen).create()
        except exception.ClusterExists:
            pass  # another node's run of this same move made it first
    row.cluster_name = cluster
    row.save()

for backend, change in sorted(req["changes"].items()):
    (old_kind, old), (new_kind, new) = change["from"], change["to"]
    if old_kind == new_kind == "cluster":
        # A rename. Members restarted under the new name keep reporting on their rows in the
        # old cluster (cinder never moves a row that has one), so the scheduler would go on
        # casting to the old cluster's topic, which no member reads any more: their creates
        # stayed `creating` (seen). The rows follow the new name, as cinder files a new member.
        for row in rows():
            if row.cluster_name == old:
                file_in_cluster(row, new)
                out["moved"].append("cinder-volume %s: cluster %s -> %s" % (row.host, old, new))
    deadline = time.monotonic() + req["wait"]
    while not up(new_kind, new) and time.monotonic() < deadline:
        time.sleep(2)
    if not up(new_kind, new):
        out["problems"].append("no cinder-volume of %s is up after %ss: the volumes and rows of %s were left "
                               "where they are" % (new, req["wait"], old))
        continue
    where = {"host": old} if old_kind == "host" else {"cluster_name": old}
    volumes = objects.VolumeList.get_all(ctxt, filters=dict(where))
    out["creating"] += [v.id for v in volumes if v.status == "creating"]
    if new_kind == "cluster":
        # cinder's own inclusion: cluster_name = the old name replaced, pool kept
        objects.VolumeList.include_in_cluster(ctxt, new, **where)
        objects.GroupList.include_in_cluster(ctxt, new, **where)
    else:
        for vol in volumes:
            pool = volume_utils.extract_host(vol.host, "pool")
            db.volume_update(ctxt, vol.id, {"host": new + ("#" + pool if pool else ""), "cluster_name": None})
        for group in objects.GroupList.get_all(ctxt):  # its cluster_name filter is exact: no '#pool' forms
            if filed_under(group, old_kind).split("#")[0] == old:
                db.group_update(ctxt, group.id, {"host": new, "cluster_name": None})
    out["moved"].append("%s -> %s (%d volumes)" % (old, new, len(volumes)))
    for row in rows():
        if filed_under(row, old_kind) == old:
            try:
                row.destroy()
            except exception.ServiceNotFound:
                continue  # another node's run of this same move removed it first
            out["removed"].append("cinder-volume %s" % row.host)
    if old_kind == "cluster":
        try:
            # db's, not the object's destroy(): cinder's Cluster.destroy() reads values from
            # db.cluster_destroy, which returns None, and fails after the row is gone
            db.cluster_destroy(ctxt, objects.Cluster.get_by_id(ctxt, None, name=old, binary="cinder-volume").id)
            out["removed"].append("cluster %s" % old)
        except (exception.ClusterNotFound, exception.ClusterHasHosts):
            pass
db.volume_update_all_by_service(ctxt)  # the volumes' service_uuid follows their new host
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


def _volume_binary(settings, binary=None):
    """``binary``, else cinder-volume's as the formula installs it (beside the agent's cinder-api)."""
    if binary is not None:
        return binary
    from cinder_ha_lib import formula

    return formula.service_binary(__salt__["cinder_ha.parameters"](), settings, "cinder-volume")


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
    binary = _volume_binary(settings, binary)
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
    binary = _volume_binary(settings, binary)
    return _run(_python(binary), _SERVICES, ("", [config]), timeout)


def wait_services_up(config=None, binary=None, timeout=120, interval=3):
    """
    Wait, up to ``timeout`` seconds, until the cluster runs the scheduler and cinder-volume
    resources (``volume.resources_not_started``, once its transition is over) and cinder's
    services table shows what a create needs (``volume.services_missing``): an up
    cinder-scheduler if the pillar runs one, and an up cinder-volume of every backend's
    placement. The cluster starts these services before they report: a create issued in
    between is refused by the scheduler (no valid backend). The table alone is not enough:
    the row of a service stopped less than ``service_down_time`` ago still counts as up
    there. Without Pacemaker on this node, only the table is read.
    Returns ``{"ready", "missing", "waited", "rows"}``.

    CLI Example:

    .. code-block:: bash

        salt '*' cinder_volume.wait_services_up timeout=60
    """
    settings = _settings()
    # resolved once, not at every poll
    config = config or settings["cinder_conf"]["path"]
    binary = _volume_binary(settings, binary)
    started = time.monotonic()
    in_cluster = "crm.status" in __salt__
    while True:
        missing = []
        if in_cluster:
            # a transition under way (the start of a service the apply just declared) first
            __salt__["crm.wait"](timeout=f"{int(max(1, min(30, timeout - (time.monotonic() - started))))}s")
            missing = volume.resources_not_started(__salt__["crm.status"](), settings.get("volume"),
                                                   settings.get("scheduler"))
        rows = services(config=config, binary=binary)
        missing += volume.services_missing(rows, settings.get("volume"), settings.get("scheduler"))
        waited = round(time.monotonic() - started, 1)
        if not missing or waited >= timeout:
            return {"ready": not missing, "missing": missing, "waited": waited, "rows": rows}
        time.sleep(min(interval, max(0.0, timeout - waited)))


def expected_rows(settings=None):
    """The cinder-volume rows the pillar implies in active_passive: ``{backend: host}``
    (``backend_host@backend``, the same on every node); ``None`` in active_active."""
    return volume.service_hosts((settings or _settings()).get("volume"))


# ---------------------------------------------------------------- the old HA guide's shared host

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


def _placement_record():
    return os.path.join(__opts__["cachedir"], "cinder_ha", "placement_change.json")


def record_placement_change(config, test=False):
    """
    Before cinder.conf (``config``) is rewritten: remember, per backend kept, the placement
    (``volume.placements_from_conf``: the host or cluster its rows and volumes are filed
    under) it has now if the pillar gives it another one (a volume:mode switch, a new
    backend_host or cluster name, the old guide's shared host removed), for
    ``move_placement`` once cinder-volume runs in its new placement. Returns the changes
    (``{backend: {"from", "to"}}``), recorded unless ``test``.

    CLI Example:

    .. code-block:: bash

        salt '*' cinder_volume.record_placement_change /etc/cinder/cinder.conf test=True
    """
    old = volume.placements_from_conf(conf.parse(_read_text(config)).effective())
    changes = volume.placement_changes(old, volume.placements_from_pillar(_settings().get("volume")))
    if changes and not test:
        path = _placement_record()
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as handle:
            json.dump({"config": config, "changes": changes}, handle)
    return changes


def recorded_placement_change():
    """The placement changes ``record_placement_change`` left for ``move_placement`` ({} if none)."""
    try:
        with open(_placement_record(), encoding="utf-8") as handle:
            return json.load(handle).get("changes") or {}
    except (OSError, ValueError, AttributeError):
        return {}


def move_placement(config=None, binary=None, test=False, wait=None, timeout=None):
    """
    After cinder-volume was restarted in the placement the pillar gives it (recorded by
    ``record_placement_change``), in cinder's own Python: once a cinder-volume of the new
    placement is up (at most ``wait`` seconds, default service_down_time + 2 x
    report_interval), the volumes (and groups) of the old placement move to it (into the
    cluster as cinder's own ``include_in_cluster`` does; to ``backend_host@backend#pool`` out
    of one) and the old service rows (and cluster) are removed, so that the scheduler stops
    choosing a host no process serves and the volumes stay manageable. Volumes that were in
    ``creating`` under the old placement are listed: a create the old service never took
    stays there until its state is reset. Idempotent; every node runs it after its own
    restart, since a node still on the old cinder.conf recreates its old row. Returns
    ``{"changes", "moved", "removed", "creating", "problems"}``.

    CLI Example:

    .. code-block:: bash

        salt '*' cinder_volume.move_placement
    """
    changes = recorded_placement_change()
    result = {"changes": changes, "moved": [], "removed": [], "creating": [], "problems": []}
    if not changes:
        return result
    if test:
        for change in changes.values():
            result["moved"].append(f"{change['from'][1]} -> {change['to'][1]}")
            result["removed"].append(f"cinder-volume {change['from'][1]}")
        return result
    settings = _settings()
    vol = settings.get("volume") or {}
    config = config or settings["cinder_conf"]["path"]
    binary = _volume_binary(settings, binary)
    if wait is None:
        wait = vol.get("service_down_time", volume.DEFAULT_SERVICE_DOWN_TIME) + 2 * vol.get(
            "report_interval", volume.DEFAULT_REPORT_INTERVAL)
    answer = _run(_python(binary), _MOVE, (json.dumps({"changes": changes, "wait": wait}), [config]),
                  timeout or wait + 120)
    for key in ("moved", "removed", "creating", "problems"):
        result[key] = answer[key]
    if not result["problems"]:
        os.unlink(_placement_record())
    return result
