"""
Operator functions for the cinder-ha formula: pillar validation (and, from the formula
issue on, status of the highly available cinder-api).

CLI Example:

.. code-block:: bash

    salt '*' cinder_ha.validate
    salt '*' cinder_ha.status
    salt '*' cinder_ha.cluster_objects
"""
import copy
import hashlib
import json
import logging
import subprocess
import time

from cinder_ha_lib import catalog, formula, probe, secret_rule, urls, volume
from cinder_ha_lib import pillar as pillar_rules  # the name pillar is the functions' argument
from cinder_ha_lib.errors import InvalidPillar

log = logging.getLogger(__name__)

__virtualname__ = "cinder_ha"
# The controller choice is read once per run, while the formula renders (a few seconds). A
# minion without multiprocessing (or salt-call in process) keeps __context__ between jobs:
# the cluster's DC may have changed since, so an older answer is asked again.
CONTROLLER_TTL = 30


def __virtual__():
    return __virtualname__


def _pillar(pillar=None):
    # unmask=True: inside custom modules Salt masks secret pillar values otherwise.
    if pillar is not None:
        return pillar
    return __salt__["pillar.get"]("cinder_ha", {}, unmask=True)


def _digest(raw):
    """A key for ``raw`` (the cinder_ha pillar): another pillar, another key. None if unhashable."""
    try:
        text = json.dumps(raw, sort_keys=True, default=repr)
    except (TypeError, ValueError):
        return None
    return hashlib.sha256(text.encode()).hexdigest()


def _normalized(raw):
    """``pillar_rules.normalize(raw)``, computed once per run (``__context__``) for each pillar
    content: every SLS of a run reads the same answer."""
    key = _digest(raw)
    if key is None:
        return pillar_rules.normalize(raw)
    cache = __context__.setdefault("cinder_ha.normalized", {})
    if key not in cache:
        cache[key] = pillar_rules.normalize(raw)
    return copy.deepcopy(cache[key])


def _revealed(pillar=None):
    """The normalized settings, secrets included: for this module's own use only."""
    from salt.exceptions import CommandExecutionError

    result, errors, _warnings = _normalized(_pillar(pillar))
    if errors:
        raise CommandExecutionError(str(InvalidPillar(errors)))
    return result


def settings(pillar=None, reveal=False):
    """
    Normalized settings from the ``cinder_ha`` pillar, as every state of the formula reads
    them. Raises ``CommandExecutionError`` listing every problem when invalid.

    Every secret is shown as ``***``: values of keys named like secrets (numbers too) and
    passwords inside URLs (one rule, ``cinder_ha_secrets``), so what this returns may go to
    the job cache and into rendered SLS. ``reveal`` is accepted for compatibility and
    ignored: modules that need a secret read the pillar themselves.

    CLI Example:

    .. code-block:: bash

        salt '*' cinder_ha.settings
    """
    del reveal
    return secret_rule.masked(_revealed(pillar))


def validate(pillar=None):
    """
    Check the whole ``cinder_ha`` pillar and list every problem at once. Returns
    ``{"valid": bool, "errors": [...], "warnings": [...]}`` (no values, so no secrets).

    CLI Example:

    .. code-block:: bash

        salt '*' cinder_ha.validate
    """
    _settings, errors, warnings = _normalized(_pillar(pillar))
    return {"valid": not errors, "errors": errors, "warnings": warnings}


def controller(pillar=None):
    """
    Whether this minion changes the cluster-wide objects (CIB) and the Keystone catalog in
    this run, and why: ``{"is_controller", "cluster_running", "dc", "node", "reason"}``.
    The controller is the minion named by pillar ``cinder_ha:controller``, else the node that
    is the Pacemaker DC right now (one per cluster). Never raises: with Pacemaker stopped on
    this node, or during an election (no DC), the answer says so and the formula renders a
    visible failure for the cluster part instead of a silent skip. Computed once per run and
    per ``cinder_ha`` pillar content (``__context__``, at most ``CONTROLLER_TTL`` seconds old).

    CLI Example:

    .. code-block:: bash

        salt '*' cinder_ha.controller
    """
    raw = _pillar(pillar) or {}
    return _per_run("cinder_ha.controller", _digest(raw), lambda: _choose_controller(raw))


def _per_run(name, key, compute):
    """``compute()``, kept in ``__context__`` under ``name`` and ``key`` (None: not kept) for at
    most ``CONTROLLER_TTL`` seconds: every SLS of a run reads the same answer, and a minion that
    keeps ``__context__`` between jobs asks again later. Callers get their own copy."""
    cache = __context__.setdefault(name, {})
    kept = cache.get(key) if key is not None else None
    if kept and time.monotonic() - kept[0] < CONTROLLER_TTL:
        return copy.deepcopy(kept[1])
    answer = compute()
    if key is not None:
        cache[key] = (time.monotonic(), copy.deepcopy(answer))
    return answer


def _choose_controller(raw):
    named = raw.get("controller") if isinstance(raw, dict) else None
    minion = __opts__.get("id")
    # asked while the formula renders: the states reuse these reads (crm.role)
    role = __salt__["crm.role"](for_state_run=True) if "crm.role" in __salt__ else {
        "running": False, "node": None, "dc": None, "is_dc": False, "error": "the crm module is not loaded"}
    answer = {"cluster_running": role["running"], "dc": role["dc"], "node": role["node"]}
    if not role["running"]:
        answer.update(is_controller=False, reason=f"Pacemaker is not running on this node ({role['error']})")
    elif named:
        answer.update(is_controller=named == minion,
                      reason=f"pillar cinder_ha:controller names {named}")
    elif not role["dc"]:
        answer.update(is_controller=False,
                      reason="no node is the Pacemaker DC right now (an election is running): no minion "
                             "applies the cluster objects and the catalog in this run; apply again")
    else:
        answer.update(is_controller=role["is_dc"], reason=f"{role['dc']} is the DC")
    return answer


def _formula_file(path, tplroot, saltenv=None):
    """A YAML file of the formula's state tree (``salt://<tplroot>/<path>``), or None if absent."""
    import salt.utils.yaml

    text = __salt__["cp.get_file_str"](f"salt://{tplroot}/{path}", saltenv=saltenv or "base")
    return salt.utils.yaml.safe_load(text) if text else None


def parameters(pillar=None, tplroot="cinder_ha", saltenv=None):
    """
    The formula's parameters as ``cinder_ha.formula_map`` merges them: ``parameters/defaults.yaml``, then
    ``parameters/os_family/<os_family>.yaml`` if there is one, then pillar
    ``cinder_ha:lookup``. Read from the file server (the formula's state tree, ``saltenv``:
    default ``base``).

    CLI Example:

    .. code-block:: bash

        salt '*' cinder_ha.parameters
    """
    merged = dict((_formula_file("parameters/defaults.yaml", tplroot, saltenv) or {}).get("values") or {})
    os_file = f"parameters/os_family/{__grains__.get('os_family')}.yaml"
    if f"{tplroot}/{os_file}" in __salt__["cp.list_master"](saltenv=saltenv or "base", prefix=f"{tplroot}/parameters/"):
        merged.update((_formula_file(os_file, tplroot, saltenv) or {}).get("values") or {})
    merged.update(_revealed(pillar).get("lookup") or {})
    return merged


def formula_map(tplroot="cinder_ha", saltenv=None):
    """
    The formula's data, what every SLS of it reads first: ``{"check", "cinder_ha", "role"}``.
    This is template-formula's map.jinja merge, done in Python (no SLS imports a map.jinja:
    Salt would fetch and compile it again for every SLS), later layers winning:
    ``parameters/defaults.yaml`` (every default and path), ``parameters/os_family/<os_family>.yaml``
    (only what an OS family changes), pillar ``cinder_ha:lookup`` (the operator's overrides).

    ``check`` is ``cinder_ha.validate`` (no values). ``cinder_ha`` is filled only when the
    pillar is valid: ``cinder_ha.parameters`` (defaults.yaml, OS family file, lookup), the
    masked ``cinder_ha.settings`` over them, and the derived ``catalog_services`` and
    ``engine_conf_path`` (``cinder_ha_lib.formula.map_data``). ``role`` is
    ``cinder_ha.controller``. Computed once per run (``__context__``, keyed on the pillar's
    content, at most ``CONTROLLER_TTL`` seconds old): each SLS of the run reads the
    same answer without reading the file server or the cluster again. Holds no secret.

    CLI Example:

    .. code-block:: bash

        salt '*' cinder_ha.formula_map
    """
    digest = _digest(_pillar())
    return _per_run("cinder_ha.formula_map", None if digest is None else (digest, tplroot, saltenv),
                    lambda: _formula_map(tplroot, saltenv))


def _formula_map(tplroot, saltenv):
    check = validate()
    answer = {"check": check, "cinder_ha": {},
              "role": {"is_controller": False, "cluster_running": False, "reason": "the pillar is invalid"}}
    if check["valid"]:
        minion_conf = __salt__["config.get"]("conf_file") or "/etc/salt/minion"
        answer["cinder_ha"] = formula.map_data(parameters(tplroot=tplroot, saltenv=saltenv), settings(), minion_conf)
        answer["role"] = controller()
    return answer


def cluster_objects(params=None, pillar=None):
    """
    The cluster objects ``cinder_ha.cluster`` keeps in the CIB (the list ``crm.configured``
    takes): VIP, cinder-api primitive, colocation, order, alert, lrm secret rules. Secret
    parameters are named by their pillar key (``{"pillar": "cinder_ha:agent:os_password"}``),
    never by value, so the list may be shown, cached and rendered into an SLS.

    params
        The formula parameters (cluster.sls passes the formula map's own; default: ``cinder_ha.parameters``).

    CLI Example:

    .. code-block:: bash

        salt '*' cinder_ha.cluster_objects
    """
    settings = secret_rule.masked(_revealed(pillar))
    return formula.cluster_objects(settings, params if params is not None else parameters(pillar))


def cluster_object_ids(params=None, pillar=None, secret_rules=False):
    """
    Every CIB object id ``cinder_ha.cluster`` may create (what ``cinder_ha.clean`` removes),
    constraints first; with ``secret_rules`` only the lrm secret location rules.

    CLI Example:

    .. code-block:: bash

        salt '*' cinder_ha.cluster_object_ids
    """
    settings = secret_rule.masked(_revealed(pillar))
    if secret_rules:
        return list(formula.secret_rule_ids(settings["cluster"]))
    return formula.object_ids(settings, params if params is not None else parameters(pillar))


def haproxy_config(params=None, pillar=None):
    """
    cluster:mode balanced: the HAProxy config every controller runs (``cinder_ha_lib.formula``):
    the VIPs, and a server per controller on its own address. No secret is in it.

    CLI Example:

    .. code-block:: bash

        salt '*' cinder_ha.haproxy_config
    """
    settings = secret_rule.masked(_revealed(pillar))
    return formula.haproxy_config(settings, params if params is not None else parameters(pillar))


def cib_mode(pillar=None):
    """
    The cluster:mode the CIB holds now: ``balanced`` (balanced mode's HAProxy clone is there),
    ``cloned`` (cinder-api's clone), ``active_passive`` (its primitive alone), or None (not
    built, or the CIB cannot be read here).

    CLI Example:

    .. code-block:: bash

        salt '*' cinder_ha.cib_mode
    """
    settings = secret_rule.masked(_revealed(pillar))
    params = parameters(pillar)
    cluster = settings["cluster"]
    try:
        if __salt__["crm.show"](formula.haproxy_clone_id(params)):
            return "balanced"
        if __salt__["crm.show"](pillar_rules.default_clone_id(cluster)):
            return "cloned"
        if __salt__["crm.show"](cluster["primitive_id"]):
            return "active_passive"
    except Exception:  # pylint: disable=broad-except
        log.debug("cinder_ha.cib_mode: the CIB cannot be read here", exc_info=True)
    return None


def peer_health_urls(node=None, pillar=None):
    """
    cluster:mode balanced: the /healthcheck URL of every other controller's cinder-api, on its
    own address (``node``: this node by default). Empty in the other modes.

    CLI Example:

    .. code-block:: bash

        salt '*' cinder_ha.peer_health_urls
    """
    settings = secret_rule.masked(_revealed(pillar))
    return formula.peer_health_urls(settings, node or __salt__["crm.node_name"]())


def http_probe(url, timeout=5):
    """
    GET ``url`` once: ``{"url", "answers", "status", "ms", "error"}``. Any HTTP answer
    means cinder-api listens (``/v3`` without a token answers 401 or 300).

    CLI Example:

    .. code-block:: bash

        salt '*' cinder_ha.http_probe http://127.0.0.103:8776/healthcheck
    """
    return probe.http_get(url, timeout=timeout)


def probe_catalog(service_type="block-storage", region=None, interface="public", timeout=90):
    """
    What a client that knows only Keystone gets: the ``service_type`` URL from the token's
    catalog, polled until it answers or ``timeout`` seconds pass. Returns
    ``{"answers", "url", "status", "comment"}`` (no credentials).

    CLI Example:

    .. code-block:: bash

        salt '*' cinder_ha.probe_catalog block-storage region=RegionOne
    """
    url = __salt__["cinder_keystone.catalog_lookup"](service_type=service_type, interface=interface,
                                                     region=region)["url"]
    if not url:
        return {"answers": False, "url": None, "status": None,
                "comment": f"No {interface} {service_type} endpoint in the Keystone catalog"
                           f"{' for region ' + region if region else ''}."}
    deadline = time.monotonic() + float(timeout)
    while True:
        answer = http_probe(url)
        if answer["status"] is not None and answer["status"] < 500:
            return {"answers": True, "url": url, "status": answer["status"],
                    "comment": f"The catalog's {interface} {service_type} URL {url} answers (HTTP {answer['status']})."}
        if time.monotonic() >= deadline:
            return {"answers": False, "url": url, "status": answer["status"],
                    "comment": f"The catalog's {interface} {service_type} URL {url} did not answer within "
                               f"{timeout}s (last: {answer['error'] or 'HTTP %s' % answer['status']})."}
        time.sleep(0.5)


def _catalog_matches(conf):
    """Does the Keystone catalog hold exactly the pillar's endpoints? (a no-op plan = yes)"""
    pending = {}
    for service_type in conf["endpoints"]["service_types"]:
        name = conf["endpoints"]["service_name"] + ("" if service_type == "block-storage" else "v3")
        try:
            plan = __salt__["cinder_keystone.plan"](service_type, urls=conf["endpoint_urls"],
                                                   region=conf["keystone"]["region"], service_name=name)
        except Exception as exc:  # pylint: disable=broad-except
            pending[service_type] = str(exc)
            continue
        if plan["actions"]:
            pending[service_type] = [catalog.describe(a) for a in plan["actions"]]
    return {"matches": not pending, "pending": pending, "urls": conf["endpoint_urls"]}


def _clone_status(cluster):
    """cluster:mode cloned: each instance (node, role, failed), and which one serves the VIP."""
    resources = __salt__["crm.status"]()["resources"]
    clone = resources.get(cluster["clone_id"]) or {}
    vip = resources.get(cluster["vip_id"]) or {}
    vip_nodes = vip.get("nodes", []) if vip.get("active") else []
    instances = [{"node": node, "role": instance["role"], "failed": instance["failed"],
                  "holds_vip": node in vip_nodes}
                 for instance in clone.get("instances", []) for node in (instance["nodes"] or [None])]
    return {"id": cluster["clone_id"], "instances": instances,
            "running_on": sorted(i["node"] for i in instances if i["node"] and i["role"] == "Started"),
            "vip_on": vip_nodes[0] if vip_nodes else None}


def status():
    """
    Where ``p_cinder-api`` and its VIP run, whether the API answers on the VIP, whether
    the Keystone catalog matches the pillar, recent resource failures and the last moves
    the cluster reported. With ``cluster:mode cloned`` also ``clone``: every instance (its
    node, role, failed) and which one holds the VIP. Each part reports its own error instead
    of failing the whole.

    CLI Example:

    .. code-block:: bash

        salt '*' cinder_ha.status

    ``config``: whether cinder.conf differs from what this node's cinder-api runs with (a
    restart pending until the next explicit ``state.apply cinder_ha``), the changed keys
    (secrets masked) and which of them the formula manages.

    With pillar ``volume``/``scheduler``, ``services`` gives cinder-scheduler's and
    cinder-volume's nodes in the cluster beside cinder's own view of them (up/down, host,
    cluster) and any cinder-volume row that is not the pillar's ``backend_host@backend``.
    """
    conf = _revealed()
    cluster, vip = conf["cluster"], conf["vip"]
    report = {"node": None, "resources": {}, "api": None, "catalog": None, "failures": None, "recent_moves": None}

    def part(key, func):
        try:
            report[key] = func()
        except Exception as exc:  # pylint: disable=broad-except
            report[key] = {"error": str(exc)}

    part("node", __salt__["crm.node_name"])
    part("resources", lambda: {rsc: __salt__["crm.locate"](rsc) for rsc in (cluster["primitive_id"], cluster["vip_id"])})
    if cluster.get("mode") == "cloned":
        part("clone", lambda: _clone_status(cluster))
    host = urls.url_host(vip["address"])
    part("api", lambda: http_probe(f"http://{host}:{conf['port']}/healthcheck"))
    part("catalog", lambda: _catalog_matches(conf))
    part("failures", lambda: __salt__["crm.failures"]())
    part("config", lambda: _config_status(conf))
    if "cinder_ha_events.recent" in __salt__:
        part("recent_moves", lambda: __salt__["cinder_ha_events.recent"](10))
    if conf.get("volume") or conf.get("scheduler"):
        part("services", lambda: _services_status(conf))
    return report


def _config_status(conf):
    """cinder.conf against what this node's cinder-api started with (the agent's start record)."""
    pid_file = conf["agent"].get("pid") or f"{parameters()['pid_dir']}/{conf['cluster']['primitive_id']}.pid"
    path = conf["agent"].get("config") or conf["cinder_conf"]["path"]
    decision = __salt__["cinder_conf.restart_needed"](path, pid_file, reads_backends=False)
    pending = bool(decision["needed"])
    return {"restart_pending": pending, "pid": decision["pid"], "changed": decision["changes"],
            "managed": decision.get("managed_changes"),
            "comment": (f"cinder.conf differs from what cinder-api runs with: restart pending "
                        f"({', '.join(decision['changes']) or path + ' modified'}; pid {decision['pid']}) until the "
                        "next explicit state.apply cinder_ha" if pending else decision["reason"])}


def _services_status(conf):
    """cinder-scheduler and cinder-volume: where the cluster runs them, and cinder's own view
    (its services table: host, cluster, up/down, heartbeat age)."""
    found = {"cluster": {}, "cinder": __salt__["cinder_volume.services"]()}
    for part in (conf.get("scheduler"), conf.get("volume")):
        if part:
            found["cluster"][part["primitive_id"]] = __salt__["crm.locate"](part["primitive_id"])
    expected = volume.service_hosts(conf.get("volume"))
    if expected:
        rows = [row["host"] for row in found["cinder"] if row["binary"] == "cinder-volume"]
        found["unexpected_volume_rows"] = sorted(set(rows) - set(expected.values()))
    return found


# ---------------------------------------------------------------- cloned mode: the VIP on the loopback

ARP_SYSCTLS = {"arp_ignore": "1", "arp_announce": "2"}
_SYSCTL_DIR = "/proc/sys/net/ipv4/conf/all"


def _ip(args, timeout=10):
    # an argument list, never a shell: the address is data
    return subprocess.run(["ip"] + args, capture_output=True, text=True, timeout=timeout, check=False)


def _prefix(address):
    return f"{address}/{128 if ':' in address else 32}"


def loopback_vip(address):
    """
    Whether ``address`` is on ``lo`` and ARP is silent for it (cloned mode's real-server
    setup): ``{"on_loopback": bool, "arp": {name: value}, "arp_silent": bool}``.

    CLI Example:

    .. code-block:: bash

        salt '*' cinder_ha.loopback_vip 198.18.0.10
    """
    found = _ip(["-o", "addr", "show", "dev", "lo"])
    if found.returncode != 0:
        raise _error(f"ip addr show dev lo failed: {found.stderr.strip()[-300:]}")
    words = found.stdout.split()
    arp = {}
    for name in ARP_SYSCTLS:
        with open(f"{_SYSCTL_DIR}/{name}", encoding="ascii") as handle:
            arp[name] = handle.read().strip()
    return {"on_loopback": _prefix(address) in words, "arp": arp, "arp_silent": arp == ARP_SYSCTLS}


def set_loopback_vip(address, present=True, clone_id=None, primitive_id=None, vip_id=None, wait=60):
    """
    Put ``address`` on ``lo`` with ARP silenced (``present=True``), or take it off. Taking
    it off waits up to ``wait`` seconds for the clone ``clone_id`` to leave the CIB and then,
    with ``primitive_id`` and ``vip_id``, for the cluster to stop this node's instance unless
    the VIP is here: no instance still running loses the address it listens on (its monitor
    would fail). Past ``wait`` the address stays and this raises. Commands get argument
    lists, the sysctls are written as files: nothing goes through a shell.

    CLI Example:

    .. code-block:: bash

        salt '*' cinder_ha.set_loopback_vip 198.18.0.10
        salt '*' cinder_ha.set_loopback_vip 198.18.0.10 present=False clone_id=cl_p_cinder-api
    """
    before = loopback_vip(address)
    if present:
        for name, value in ARP_SYSCTLS.items():
            if before["arp"][name] != value:
                with open(f"{_SYSCTL_DIR}/{name}", "w", encoding="ascii") as handle:
                    handle.write(value)
        if not before["on_loopback"]:
            done = _ip(["addr", "add", _prefix(address), "dev", "lo"])
            if done.returncode != 0:
                raise _error(f"ip addr add {_prefix(address)} dev lo failed: {done.stderr.strip()[-300:]}")
    elif before["on_loopback"]:
        if clone_id:
            # Past the wait the address stays: an instance still running here listens on it,
            # and its monitor would fail (the controller's removal failed, or is slow).
            deadline = time.monotonic() + float(wait)
            while subprocess.run(["cibadmin", "--query", "--xpath", f"//clone[@id='{clone_id}']"],
                                 capture_output=True, text=True, timeout=30, check=False).returncode == 0:
                if time.monotonic() >= deadline:
                    raise _error(f"{address} stays on lo: the clone {clone_id} is still in the CIB after {wait} s "
                                 "(the controller removes it in the same run); apply again once it is gone")
                time.sleep(1)
            if primitive_id and vip_id:
                here = __salt__["crm.node_name"]()
                while True:
                    resources = __salt__["crm.status"]()["resources"]  # one crm_mon for both
                    api, vip = resources.get(primitive_id), resources.get(vip_id)
                    if api is None or vip is None:  # resource gone: nothing runs here
                        break
                    if not (api["active"] and here in api["nodes"]) or (vip["active"] and here in vip["nodes"]):
                        break
                    if time.monotonic() >= deadline:
                        raise _error(f"{address} stays on lo: {primitive_id} still runs on this node after {wait} s "
                                     "without the VIP; apply again once the cluster has stopped it")
                    time.sleep(1)
        done = _ip(["addr", "del", _prefix(address), "dev", "lo"])
        if done.returncode != 0:
            raise _error(f"ip addr del {_prefix(address)} dev lo failed: {done.stderr.strip()[-300:]}")
    return loopback_vip(address)


def _error(message):
    from salt.exceptions import CommandExecutionError  # pylint: disable=import-outside-toplevel

    return CommandExecutionError(message)
