"""
Cluster moves of cinder-api as this minion saw them, and the check run after a move.

The Pacemaker alert agent ``cinder_ha_alert`` spools one JSON file per start/stop/failure of
``p_cinder-api`` or its VIP; the ``cinder_ha_watch`` engine forwards it as the event
``cinder_ha/cluster/resource``; the master's reactor (runner ``cinder_ha_reactor.react``) runs
:py:func:`handle_move` here, and only here, once it has checked that this minion signed the
event, is allowed and is within its rate limit. Moves are kept as JSON lines in
``<cachedir>/cinder_ha/moves.jsonl`` (the newest ``KEEP``).

CLI Example:

.. code-block:: bash

    salt '*' cinder_ha_events.recent
    salt '*' cinder_ha_events.check
"""
import datetime
import fcntl
import json
import logging
import os
import re
import subprocess

from cinder_ha_lib import events, pillar, probe

log = logging.getLogger(__name__)

__virtualname__ = "cinder_ha_events"

KEEP = 200
CLUSTER_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C"}


def __virtual__():
    return __virtualname__


def _moves_file():
    return os.path.join(__opts__["cachedir"], "cinder_ha", "moves.jsonl")


def _clean(event):
    """Only the known fields, as short strings (event data come from the network)."""
    return events.clean_fields(event) or {}


def record(event):
    """
    Append one cluster event (``kind``, ``rsc``, ``task``, ``rc``, ``node``, ``desc``...) to the
    move log, stamped with the time it was recorded. Unknown keys are dropped. Returns the entry.

    CLI Example:

    .. code-block:: bash

        salt-call cinder_ha_events.record '{"rsc": "p_cinder-api", "task": "start", "rc": "0"}'
    """
    if isinstance(event, str):
        event = json.loads(event)
    return _append(_clean(event))


def _append(entry):
    entry["recorded"] = datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds")
    path = _moves_file()
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    # the reactor may run two of these at once (a stop and a start): one writer at a time
    with open(path + ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        lines = _read_lines(path)[-(KEEP - 1):] + [json.dumps(entry, sort_keys=True, default=str)]
        tmp = f"{path}.tmp{os.getpid()}"
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write("\n".join(lines) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)  # atomic: recent() never sees half a line
    return entry


def _read_lines(path):
    try:
        with open(path, encoding="utf-8") as handle:
            return [line.strip() for line in handle if line.strip()]
    except FileNotFoundError:
        return []


def recent(limit=10):
    """
    The last ``limit`` recorded cluster events, newest last.

    CLI Example:

    .. code-block:: bash

        salt '*' cinder_ha_events.recent limit=5
    """
    entries = []
    for line in _read_lines(_moves_file())[-int(limit):]:
        try:
            entries.append(json.loads(line))
        except ValueError:
            continue
    return entries


def _settings():
    # the pillar itself, normalized by the pure logic (no public function returns secrets)
    raw = __salt__["pillar.get"]("cinder_ha", {}, unmask=True)
    settings, errors, _warnings = pillar.normalize(raw)
    if errors:  # no or invalid pillar: the check says so instead of failing
        log.debug("cinder_ha_events: no usable cinder_ha pillar: %s", errors)
        return None
    return settings


def _locate(resource):
    """Which nodes run ``resource``: crm.locate when the crm module is there, else crm_resource."""
    if "crm.locate" in __salt__:
        try:
            nodes = list(__salt__["crm.locate"](resource))
            return {"via": "crm.locate", "nodes": nodes, "running": bool(nodes)}
        except Exception as exc:  # e.g. the resource is not in the cluster (yet)
            return {"via": "crm.locate", "error": str(exc)[:300]}
    try:
        res = subprocess.run(["crm_resource", "--locate", "--resource", resource], capture_output=True,
                             text=True, timeout=15, env=CLUSTER_ENV, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return {"via": "crm_resource", "error": str(exc)[:300]}
    nodes = re.findall(r"is running on: (\S+)", res.stdout)
    result = {"via": "crm_resource", "nodes": nodes, "running": bool(nodes)}
    if res.returncode != 0:
        result["error"] = re.sub(r"\x1b\[[0-9;]*m", "", res.stderr).strip()[-300:]
    return result


def _probe(settings):
    """
    Does the catalog URL answer? What a client does when cinder_keystone is there (fresh
    token, catalog lookup, GET of the endpoint); else a GET of the URL the pillar defines.
    """
    if not settings:
        return {"via": "none", "answers": False, "error": "no valid cinder_ha pillar: catalog URL unknown"}
    urls = pillar.endpoint_urls(settings)
    interface = "internal" if "internal" in urls else next(iter(urls), "public")
    url = urls.get(interface)
    errors = []
    if "cinder_keystone.catalog_lookup" in __salt__:
        try:
            found = __salt__["cinder_keystone.catalog_lookup"](
                service_type=settings["endpoints"]["service_types"][0], interface=interface, probe_url=True)
            answer = found.get("probe") or {}
            return {"via": "cinder_keystone.catalog_lookup", "interface": interface, "found": found.get("found"),
                    "url": found.get("url"), "answers": bool(answer.get("answers")), "status": answer.get("status"),
                    "error": answer.get("error")}
        except Exception as exc:  # Keystone away: still say whether the pillar's URL answers
            errors.append(f"catalog lookup: {str(exc)[:300]}")
    if not url:
        return {"via": "none", "answers": False, "error": "no endpoint URL in the pillar"}
    if "cinder_keystone.probe" in __salt__:
        try:
            result = dict(__salt__["cinder_keystone.probe"](url), via="cinder_keystone.probe")
        except Exception as exc:
            result = {"via": "cinder_keystone.probe", "url": url, "answers": False, "error": str(exc)[:300]}
    else:
        result = dict(probe.http_get(url), via="http")
    if errors:
        result["catalog_error"] = "; ".join(errors)
    return result


def check(resource=None):
    """
    The check after a move: where the cinder-api resource runs now, and whether the catalog
    URL answers. ``resource`` defaults to pillar ``cinder_ha:cluster:primitive_id``.

    CLI Example:

    .. code-block:: bash

        salt '*' cinder_ha_events.check
    """
    settings = _settings()
    if resource is None:
        resource = settings["cluster"]["primitive_id"] if settings else "p_cinder-api"
    if not events.RSC_RE.fullmatch(str(resource)):
        return {"resource": str(resource)[:128], "error": "not a resource id"}
    # a clone instance (cluster:mode cloned) may be reported as <primitive>:<n>: where the
    # primitive's instances run is the answer (crm.locate lists every node with one)
    return {"resource": resource, "location": _locate(str(resource).split(":", 1)[0]), "probe": _probe(settings)}


def handle_move(event=None):
    """
    What the reactor runs on a ``cinder_ha/cluster/resource`` event: record it and, after a
    successful start, run :py:func:`check` for the resource that moved. Returns the entry.

    CLI Example:

    .. code-block:: bash

        salt-call cinder_ha_events.handle_move '{"rsc": "p_cinder-api", "task": "start", "rc": "0"}'
    """
    if isinstance(event, str):
        event = json.loads(event)
    entry = _clean(event or {})
    if entry.get("task") == "start" and entry.get("rc", "0") == "0" and entry.get("rsc"):
        entry["check"] = check(entry["rsc"])
    return _append(entry)
