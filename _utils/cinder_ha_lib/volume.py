"""Block Storage beyond the API: the ``cinder_ha:volume`` and ``cinder_ha:scheduler`` pillar keys,
their cinder.conf options and the HA rules of cinder's own HA document. Pure logic.

cinder's rules (``doc/source/contributor/high_availability.rst`` in openstack/cinder):

- a shared ``[DEFAULT] host`` on every node is "highly discouraged" (the HA guide's old advice);
- ``active_passive`` (one cinder-volume, moved by the cluster) uses the same ``backend_host``
  in every backend section on every node, so the service row and the volumes' host stay the
  same whichever node runs it;
- ``active_active`` (a cinder-volume on every node) needs ``[DEFAULT] cluster`` and a
  distributed lock manager (``[coordination] backend_url``), and only for drivers that declare
  ``SUPPORTS_ACTIVE_ACTIVE`` (checked at apply time, in cinder's own Python);
- the cluster name must not equal any ``host`` or ``backend_host``.

``normalize(raw, errors, warnings)`` returns ``(volume, scheduler)`` settings (``None`` when
unset); ``options(volume)`` the cinder.conf options they manage.
"""
from cinder_ha_lib import meanings as m

MODES = ("active_passive", "active_active")
DEFAULT_BACKEND_HOST = "cinder-ha-volume"
DEFAULT_REPORT_INTERVAL = 10
DEFAULT_SERVICE_DOWN_TIME = 60
# tooz drivers by URL scheme: the entry points `tooz.backends` of cinder's venv (importlib.metadata;
# tooz 9.1.0, cinder 29.0.0), frozen here, less file and ipc. etcd3 (grpc) hangs under eventlet
# (LP#1852086): etcd3+http (etcd3gw, etcd's HTTP gateway) is the one to use with etcd. file://
# and ipc:// lock one machine only: no lock manager for several nodes.
COORDINATION_SCHEMES = ("etcd3+http", "etcd3+https", "redis", "zookeeper", "kazoo", "kubernetes", "memcached",
                        "mysql", "postgresql")
COORDINATION_REFUSED = {
    "etcd3": "tooz's etcd3 (grpc) driver hangs under cinder's eventlet (LP#1852086): use etcd3+http://",
    "file": "a file lock holds on one machine only: active_active needs a lock every node shares",
    "ipc": "an IPC lock holds on one machine only: active_active needs a lock every node shares",
}
# Options the formula writes itself in a backend section (not accepted under options:)
FORMULA_BACKEND_KEYS = ("volume_driver", "backend_host")
# sections cinder already uses for something else
RESERVED_SECTIONS = {"default", "database", "coordination", "keystone_authtoken", "oslo_messaging_notifications",
                     "oslo_concurrency", "oslo_messaging_rabbit", "oslo_middleware", "backend_defaults", "nova",
                     "key_manager", "privsep", "service_user"}
VOLUME_AGENT = {"monitor_interval": "10s", "monitor_timeout": "30s", "start_timeout": "120s",
                "stop_timeout": "90s"}
SCHEDULER_AGENT = {"monitor_interval": "10s", "monitor_timeout": "30s", "start_timeout": "60s",
                   "stop_timeout": "60s"}


class BackendOption(m.Meaning):
    """A backend section's value: a plain value, a list of them, or ``{pillar: key}`` (a secret read
    from another pillar key)."""

    kind = m.ANY

    def __init__(self):
        super().__init__("a value, a list of plain values, or {pillar: key} (a secret read from another pillar key)")

    def parse(self, value):
        if isinstance(value, dict):
            if set(value) != {"pillar"} or not isinstance(value["pillar"], str) or not value["pillar"]:
                raise m.Invalid(self.what)
        elif isinstance(value, (list, tuple)):
            if any(isinstance(item, (dict, list, tuple)) or item is None for item in value):
                raise m.Invalid("a list of plain values")
        elif value is None:
            raise m.Invalid("no value")
        return value


# cinder's host (backend_host) and cluster names: cinder joins them to backends with '@' and
# pools with '#', so neither may appear in them.
HOST_NAME = m.Word("a cinder host name (a letter or digit, then letters, digits, '_', '.', '-'; no '@' or '#'; "
                   "at most 63)", "A-Za-z0-9", "A-Za-z0-9_.-", 63)
# What each key of volume: and scheduler: means (pillar.MEANINGS holds them with the other keys);
# "*" stands for a backend's name.
MEANINGS = {
    ("volume", "mode"): m.Enum(MODES),
    ("volume", "backends", "*"): m.Word(
        "a backend name: a cinder.conf section of its own (a letter or digit, then letters, digits, '_', '.', '-'; "
        "at most 63; not a section cinder uses for something else, such as DEFAULT or database)",
        "A-Za-z0-9", "A-Za-z0-9_.-", 63, reserved=RESERVED_SECTIONS),
    ("volume", "backends", "*", "driver"): m.DottedName(
        "the driver's Python class path (e.g. cinder.volume.drivers.rbd.RBDDriver)"),
    ("volume", "backends", "*", "options"): m.MappingOf(m.CONF_KEY, BackendOption(), "the backend section's "
                                                         "options: cinder.conf key -> a value, a list of plain "
                                                         "values, or {pillar: key}"),
    ("volume", "backend_host"): HOST_NAME,
    ("volume", "cluster"): HOST_NAME,
    ("volume", "coordination", "backend_url"): m.Url(
        COORDINATION_SCHEMES, f"a tooz lock manager URL every node shares ({', '.join(COORDINATION_SCHEMES)})",
        refused=COORDINATION_REFUSED),
    ("volume", "report_interval"): m.Integer(1, 3600, "a whole number of seconds, 1 to 3600"),
    ("volume", "service_down_time"): m.Integer(2, 86400, "a whole number of seconds, 2 to 86400"),
    ("volume", "primitive_id"): m.PACEMAKER_ID,
    **{("volume", "agent", key): m.Duration(default, 1 if "interval" in key else 5)
       for key, default in VOLUME_AGENT.items()},
    ("scheduler", "enabled"): m.BOOLEAN,
    ("scheduler", "primitive_id"): m.PACEMAKER_ID,
    **{("scheduler", "agent", key): m.Duration(default, 1 if "interval" in key else 5)
       for key, default in SCHEDULER_AGENT.items()},
}


def _checked(path, value, errors, default=None):
    """``value`` as the meaning of ``path`` reads it (``default`` when unset or refused)."""
    if value is None:
        return default
    result = m.check(MEANINGS[path], value, ":".join(path), errors)
    return default if result is m.INVALID else result


def _agent(raw, where, errors, defaults):
    """Monitor and start/stop timeouts of a service's primitive."""
    raw = raw if isinstance(raw, dict) else {}
    for key in raw:
        if key not in defaults:
            errors.append(f"{where}:{key}: unknown key (known: {', '.join(defaults)})")
    root = where.split(":")[0]
    return {key: _checked((root, "agent", key), raw.get(key), errors, default) for key, default in defaults.items()}


def _backend(name, raw, errors):
    where = f"volume:backends:{name}"
    if m.check(MEANINGS[("volume", "backends", "*")], str(name), where, errors) is m.INVALID:
        return None
    if not isinstance(raw, dict):
        errors.append(f"{where}: got {type(raw).__name__}, expected a mapping with driver and options")
        return None
    for key in raw:
        if key not in ("driver", "options"):
            errors.append(f"{where}:{key}: unknown key (known: driver, options)")
    driver = raw.get("driver")
    if driver is None:
        errors.append(f"{where}:driver: missing ({MEANINGS[('volume', 'backends', '*', 'driver')].what})")
    else:
        m.check(MEANINGS[("volume", "backends", "*", "driver")], driver, f"{where}:driver", errors)
    options = m.check(MEANINGS[("volume", "backends", "*", "options")], raw.get("options") or {}, f"{where}:options",
                      errors)
    clean = {}
    for key, value in ({} if options is m.INVALID else options).items():
        if key in FORMULA_BACKEND_KEYS:
            errors.append(f"{where}:options:{key}: set by the formula (driver, volume:backend_host): remove it")
            continue
        clean[str(key)] = value
    clean.setdefault("volume_backend_name", str(name))
    return {"driver": driver, "options": clean}


def coordination_problem(url):
    """Why ``url`` cannot be cinder's tooz lock manager for active_active, or None."""
    found = []
    m.check(MEANINGS[("volume", "coordination", "backend_url")], url, "", found)
    return found[0][len(": "):] if found else None


def _scheduler(raw, volume, errors):
    value = raw.get("scheduler")
    if value is None:
        value = {}
    if isinstance(value, bool):
        value = {"enabled": value}
    if not isinstance(value, dict):
        errors.append(f"scheduler: true, false or a mapping (enabled, primitive_id, agent), got {value!r}")
        return None
    for key in value:
        if key not in ("enabled", "primitive_id", "agent"):
            errors.append(f"scheduler:{key}: unknown key (known: enabled, primitive_id, agent)")
    enabled = _checked(("scheduler", "enabled"), value.get("enabled", volume is not None), errors)
    # checked even when disabled: a key given is a key meant
    scheduler = {"primitive_id": str(_checked(("scheduler", "primitive_id"), value.get("primitive_id"), errors,
                                              "p_cinder-scheduler")),
                 "agent": _agent(value.get("agent"), "scheduler:agent", errors, SCHEDULER_AGENT)}
    return scheduler if enabled else None


def normalize(raw, errors, warnings, nodes=None):
    """``(volume, scheduler)`` from the whole ``cinder_ha`` pillar ``raw``; problems appended to
    ``errors`` naming the key. ``nodes``: the controllers' names (cluster:nodes), which are
    cinder's default ``host`` on each node: neither backend_host nor the cluster may equal one."""
    value = raw.get("volume")
    volume = None
    if value is not None:
        volume = _volume(value, errors, warnings, nodes or [])
    return volume, _scheduler(raw, volume, errors)


def _volume(value, errors, warnings, nodes):
    if not isinstance(value, dict):
        errors.append(f"volume: got {type(value).__name__}, expected a mapping (backends, mode, ...)")
        return None
    known = ("backends", "mode", "backend_host", "cluster", "coordination", "report_interval",
             "service_down_time", "primitive_id", "agent")
    for key in value:
        if key not in known:
            errors.append(f"volume:{key}: unknown key (known: {', '.join(known)})")
    backends = value.get("backends")
    if not isinstance(backends, dict) or not backends:
        errors.append("volume:backends: at least one backend, name -> {driver, options}")
        backends = {}
    normalized = {}
    for name, backend in backends.items():
        result = _backend(name, backend, errors)
        if result:
            normalized[str(name)] = result
    mode = _checked(("volume", "mode"), value.get("mode"), errors, "active_passive")
    report = _checked(("volume", "report_interval"), value.get("report_interval"), errors, DEFAULT_REPORT_INTERVAL)
    down = _checked(("volume", "service_down_time"), value.get("service_down_time"), errors,
                    DEFAULT_SERVICE_DOWN_TIME)
    if down < 2 * report:
        errors.append(f"volume:service_down_time: {down}s must be at least twice report_interval ({report}s): a "
                      "service would be shown down between two of its own heartbeats")
    backend_host = value.get("backend_host")
    cluster = value.get("cluster")
    coordination = value.get("coordination")
    if coordination is not None and not isinstance(coordination, dict):
        errors.append("volume:coordination: a mapping with backend_url")
        coordination = None
    backend_url = (coordination or {}).get("backend_url")
    for key in (coordination or {}):
        if key != "backend_url":
            errors.append(f"volume:coordination:{key}: unknown key (known: backend_url)")
    backend_host = _checked(("volume", "backend_host"), backend_host, errors)
    cluster = _checked(("volume", "cluster"), cluster, errors)
    if mode == "active_passive":
        if cluster is not None:
            errors.append("volume:cluster: only with volume:mode active_active (active_passive runs one "
                          "cinder-volume under volume:backend_host)")
        backend_host = backend_host or DEFAULT_BACKEND_HOST
        if backend_host in nodes:
            errors.append(f"volume:backend_host: {backend_host!r} is a controller's own host name: the service "
                          "row would then belong to that node alone")
    else:
        if backend_host is not None:
            errors.append("volume:backend_host: only with volume:mode active_passive (active_active runs an "
                          "instance per node, each under its own host, grouped by volume:cluster)")
        if not cluster:
            errors.append("volume:cluster: required with volume:mode active_active (the name the instances share)")
        elif cluster in nodes:
            errors.append(f"volume:cluster: {cluster!r} equals a controller's host name; cinder requires the "
                          "cluster name to differ from every host and backend_host")
        if not backend_url:
            errors.append("volume:coordination:backend_url: required with volume:mode active_active (a lock "
                          "manager every node shares, e.g. etcd3+http://ETCD:2379)")
        else:
            _checked(("volume", "coordination", "backend_url"), backend_url, errors)
    return {
        "mode": mode,
        "backends": normalized,
        "backend_host": backend_host if mode == "active_passive" else None,
        "cluster": cluster if mode == "active_active" else None,
        "coordination_url": str(backend_url) if backend_url else None,
        "report_interval": report,
        "service_down_time": down,
        "primitive_id": str(_checked(("volume", "primitive_id"), value.get("primitive_id"), errors, "p_cinder-volume")),
        "agent": _agent(value.get("agent"), "volume:agent", errors, VOLUME_AGENT),
    }


def pillar_refs(volume):
    """{(section, key): pillar key} of backend options given as ``{pillar: key}``."""
    return {(name, key): value["pillar"] for name, backend in ((volume or {}).get("backends") or {}).items()
            for key, value in backend["options"].items() if isinstance(value, dict)}


def options(volume, resolve=None):
    """``(options, absent)``: the cinder.conf options for the volume settings, and the
    ``(section, key)`` that must not be there. Options: ``[DEFAULT] enabled_backends``, one
    section per backend (its driver, options and, active_passive, ``backend_host``),
    ``[DEFAULT] cluster`` and ``[coordination] backend_url`` (active_active), and the same
    ``report_interval``/``service_down_time`` on every node. Absent: ``[DEFAULT] host`` (a host
    shared by every node, the old HA guide's way: ``backend_host`` or ``cluster`` replace it),
    ``[DEFAULT] cluster`` in active_passive and each backend's ``backend_host`` in
    active_active (what a mode switch leaves behind). ``resolve(pillar_key)`` returns the value
    of a ``{pillar: key}`` option (a secret); without it the reference is left out."""
    if not volume:
        return {}, []
    absent = [("DEFAULT", "host")]
    if volume["mode"] == "active_passive":
        absent.append(("DEFAULT", "cluster"))
    else:
        absent += [(name, "backend_host") for name in volume["backends"]]
    default = {"enabled_backends": ",".join(volume["backends"]), "report_interval": volume["report_interval"],
               "service_down_time": volume["service_down_time"]}
    found = {"DEFAULT": default}
    if volume["mode"] == "active_active":
        default["cluster"] = volume["cluster"]
        found["coordination"] = {"backend_url": volume["coordination_url"]}
    for name, backend in volume["backends"].items():
        section = {"volume_driver": backend["driver"]}
        for key, value in backend["options"].items():
            if isinstance(value, dict):
                if resolve is None:
                    continue
                value = resolve(value["pillar"])
            section[key] = value
        if volume["mode"] == "active_passive":
            section["backend_host"] = volume["backend_host"]
        found[name] = section
    return found, absent


def service_hosts(volume):
    """The ``host`` column cinder-volume's rows have, per backend, in active_passive (the same
    on every node); ``None`` in active_active (each node's own host)."""
    if not volume or volume["mode"] != "active_passive":
        return None
    return {name: host for name, (_kind, host) in placements_from_pillar(volume).items()}


# ---------------------------------------------------------------- where a backend's volumes live
# A backend's "placement" is what cinder files its service rows and volumes under: a host
# (``backend_host@backend``, or the old guide's shared ``host@backend``), addressed alone, or a
# cluster (``cluster@backend``), whose instances each have their own row. Changing it (a
# volume:mode switch, a new backend_host or cluster name, the shared host removed) strands the
# volumes and leaves a ghost row that the scheduler keeps choosing until service_down_time.


def placements_from_conf(effective):
    """``{backend: (kind, name)}`` for the enabled backends of a cinder.conf (``effective``:
    ``conf.parse(text).effective()``), ``kind`` "cluster" or "host". A backend without a
    cluster, backend_host or shared host runs under the node's own name: not a placement of
    the HA setup, left out."""
    from cinder_ha_lib import conf

    def last(section, key):
        values = effective.get(section, {}).get(key) or []
        return conf.unescape(values[-1]).strip() if values and values[-1] else ""

    found = {}
    for backend in [b.strip() for b in last("DEFAULT", "enabled_backends").split(",") if b.strip()]:
        cluster = last("DEFAULT", "cluster")
        host = last(backend, "backend_host") or last("DEFAULT", "backend_host") or last("DEFAULT", "host")
        if cluster:
            found[backend] = ("cluster", f"{cluster}@{backend}")
        elif host:
            found[backend] = ("host", f"{host}@{backend}")
    return found


def placements_from_pillar(volume):
    """``{backend: (kind, name)}`` the pillar's volume settings give each backend."""
    if not volume:
        return {}
    if volume["mode"] == "active_active":
        return {name: ("cluster", f"{volume['cluster']}@{name}") for name in volume["backends"]}
    return {name: ("host", f"{volume['backend_host']}@{name}") for name in volume["backends"]}


def placement_changes(old, new):
    """``{backend: {"from": [kind, name], "to": [kind, name]}}`` for the backends kept whose
    placement differs between ``old`` and ``new`` (``placements_from_*``)."""
    return {backend: {"from": list(old[backend]), "to": list(new[backend])}
            for backend in sorted(set(old) & set(new)) if tuple(old[backend]) != tuple(new[backend])}


# ---------------------------------------------------------------- ready to take creates


def resources_not_started(status, volume, scheduler):
    """What the cluster (``status``, as ``crm.status`` returns it) has not started yet of the
    scheduler and cinder-volume resources the pillar runs: each needs an instance whose start
    is over (role Started, not Starting) and that has not failed. Their rows in cinder's
    services table alone do not tell: a service stopped less than ``service_down_time`` ago
    (by ``cinder_ha.clean``, or a restart) still counts as up there. Returns readable lines,
    [] when both run."""
    wanted = ([scheduler["primitive_id"]] if scheduler else []) + ([volume["primitive_id"]] if volume else [])
    resources = status.get("resources", {})
    missing = []
    for rsc in wanted:
        entry = resources.get(rsc)
        if entry is None:
            missing.append(f"{rsc} is not in the cluster yet")
            continue
        # a clone's instances are judged one by one: the primitive's own entry sums them up
        clone = next((c for c in resources.values() if c.get("clone") and c.get("resource") == rsc), None)
        instances = clone["instances"] if clone else [entry]
        if not any(i.get("active") and i.get("role") == "Started" and not i.get("failed") for i in instances):
            roles = sorted({str(i.get("role")) for i in instances})
            missing.append(f"the cluster has not started {rsc} yet ({', '.join(roles)})")
    return missing


def services_missing(rows, volume, scheduler):
    """What cinder's services table (``rows``, as ``cinder_volume.services`` returns them)
    still lacks before a create can be placed: an up cinder-scheduler when the pillar runs one
    (``scheduler``), and per backend an up cinder-volume filed under the placement the pillar
    gives it (``placements_from_pillar``: its ``host`` in active_passive, its ``cluster`` in
    active_active). A disabled row does not count: the scheduler skips it. Returns readable
    lines, [] when nothing is missing."""
    serving = [row for row in rows if row["up"] and not row["disabled"]]
    missing = []
    if scheduler and not any(row["binary"] == "cinder-scheduler" for row in serving):
        missing.append("no cinder-scheduler is up")
    for backend, (kind, name) in sorted(placements_from_pillar(volume).items()):
        if not any(row["binary"] == "cinder-volume" and (row[kind] or "") == name for row in serving):
            missing.append(f"no cinder-volume of {name} (backend {backend}) is up")
    return missing
