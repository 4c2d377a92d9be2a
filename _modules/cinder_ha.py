"""
Operator functions for the cinder-ha formula: pillar validation (and, from the formula
issue on, status of the highly available cinder-api).

CLI Example:

.. code-block:: bash

    salt '*' cinder_ha.validate
    salt '*' cinder_ha.status
"""
import importlib
import logging
import os
import sys
import time
import urllib.error
import urllib.request

log = logging.getLogger(__name__)

__virtualname__ = "cinder_ha"


def __virtual__():
    return __virtualname__


def library(name):
    """
    Internal: the project's pure logic module ``name`` (``cinder_ha_pillar``, ``cinder_ha_cib``...).

    It ships as plain Python in the ``utils`` folder beside this module's folder in both
    install modes (``saltext_cinder_ha/utils`` after ``pip install``, ``extmods/utils``
    after ``saltutil.sync_all``). Salt's utils loader skips extension packages, so
    ``__utils__`` cannot serve pip mode; modules and states call this instead. The folder
    is appended (not prepended) to ``sys.path``, so nothing there can shadow a stdlib name.
    """
    base = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for folder in (os.path.join(base, "utils"), os.path.join(base, "_utils")):
        if os.path.isfile(os.path.join(folder, name + ".py")):
            if folder not in sys.path:
                sys.path.append(folder)
            break
    return importlib.import_module(name)


def _pillar(pillar=None):
    # unmask=True: inside custom modules Salt masks secret pillar values otherwise.
    if pillar is not None:
        return pillar
    return __salt__["pillar.get"]("cinder_ha", {}, unmask=True)


def _revealed(pillar=None):
    """The normalized settings, secrets included: for this module's own use only."""
    from salt.exceptions import CommandExecutionError

    result, errors, _warnings = library("cinder_ha_pillar").normalize(_pillar(pillar))
    if errors:
        raise CommandExecutionError("invalid cinder_ha pillar:\n  - " + "\n  - ".join(errors))
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
    return library("cinder_ha_secrets").masked(_revealed(pillar))


def validate(pillar=None):
    """
    Check the whole ``cinder_ha`` pillar and list every problem at once. Returns
    ``{"valid": bool, "errors": [...], "warnings": [...]}`` (no values, so no secrets).

    CLI Example:

    .. code-block:: bash

        salt '*' cinder_ha.validate
    """
    _settings, errors, warnings = library("cinder_ha_pillar").normalize(_pillar(pillar))
    return {"valid": not errors, "errors": errors, "warnings": warnings}


def controller(pillar=None):
    """
    Whether this minion changes the cluster-wide objects (CIB) and the Keystone catalog in
    this run, and why: ``{"is_controller", "cluster_running", "dc", "node", "reason"}``.
    The controller is the minion named by pillar ``cinder_ha:controller``, else the node that
    is the Pacemaker DC right now (one per cluster). Never raises: with Pacemaker stopped on
    this node, or during an election (no DC), the answer says so and the formula renders a
    visible failure for the cluster part instead of a silent skip. Computed once per run.

    CLI Example:

    .. code-block:: bash

        salt '*' cinder_ha.controller
    """
    if pillar is None and "cinder_ha.controller" in __context__:
        return __context__["cinder_ha.controller"]
    raw = _pillar(pillar) or {}
    named = raw.get("controller") if isinstance(raw, dict) else None
    role = __salt__["crm.role"]() if "crm.role" in __salt__ else {
        "running": False, "node": None, "dc": None, "is_dc": False, "error": "the crm module is not loaded"}
    minion = __opts__.get("id")
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
    if pillar is None:
        __context__["cinder_ha.controller"] = answer
    return answer


def http_probe(url, timeout=5):
    """
    GET ``url`` once: ``{"url", "status", "ms", "error"}``. Any HTTP answer below 500
    counts as the API answering (``/v3`` without a token answers 401 or 300).

    CLI Example:

    .. code-block:: bash

        salt '*' cinder_ha.http_probe http://127.0.0.103:8776/healthcheck
    """
    started = time.monotonic()
    status, error = None, None
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="GET"), timeout=timeout) as resp:
            status = resp.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    except (OSError, ValueError) as exc:
        error = str(getattr(exc, "reason", exc))
    return {"url": url, "status": status, "ms": round((time.monotonic() - started) * 1000, 1), "error": error}


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
        probe = http_probe(url)
        if probe["status"] is not None and probe["status"] < 500:
            return {"answers": True, "url": url, "status": probe["status"],
                    "comment": f"The catalog's {interface} {service_type} URL {url} answers (HTTP {probe['status']})."}
        if time.monotonic() >= deadline:
            return {"answers": False, "url": url, "status": probe["status"],
                    "comment": f"The catalog's {interface} {service_type} URL {url} did not answer within "
                               f"{timeout}s (last: {probe['error'] or 'HTTP %s' % probe['status']})."}
        time.sleep(0.5)


def _catalog_matches(conf):
    """Does the Keystone catalog hold exactly the pillar's endpoints? (a no-op plan = yes)"""
    pending = {}
    for index, service_type in enumerate(conf["endpoints"]["service_types"]):
        name = conf["endpoints"]["service_name"] + ("" if service_type == "block-storage" else "v3")
        try:
            plan = __salt__["cinder_keystone.plan"](service_type, urls=conf["endpoint_urls"],
                                                   region=conf["keystone"]["region"], service_name=name)
        except Exception as exc:  # pylint: disable=broad-except
            pending[service_type] = str(exc)
            continue
        if plan["actions"]:
            pending[service_type] = [library("cinder_ha_catalog").describe(a) for a in plan["actions"]]
    return {"matches": not pending, "pending": pending, "urls": conf["endpoint_urls"]}


def status():
    """
    Where ``p_cinder-api`` and its VIP run, whether the API answers on the VIP, whether
    the Keystone catalog matches the pillar, recent resource failures and the last moves
    the cluster reported. Each part reports its own error instead of failing the whole.

    CLI Example:

    .. code-block:: bash

        salt '*' cinder_ha.status
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
    host = library("cinder_ha_pillar").url_host(vip["address"])
    part("api", lambda: http_probe(f"http://{host}:{conf['port']}/healthcheck"))
    part("catalog", lambda: _catalog_matches(conf))
    part("failures", lambda: __salt__["crm.failures"]())
    if "cinder_ha_events.recent" in __salt__:
        part("recent_moves", lambda: __salt__["cinder_ha_events.recent"](10))
    return report
