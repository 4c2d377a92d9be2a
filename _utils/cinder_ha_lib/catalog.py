"""The Block Storage entries of the Keystone catalog: what to create, patch and delete.

Pure logic: no Salt, no I/O. The execution module ``cinder_keystone`` lists services and
endpoints, hands them here, and carries out the returned actions in order.

Rules (the ones the older tools broke):

- an endpoint is keyed on (service, interface, region); a changed URL is PATCHed in place;
- several endpoints for one key are reduced to one (the one already right, else the first);
- endpoints of other regions, other interfaces and other services are never in a plan;
- legacy entries (``volume``/``volumev2`` services, ``/v1`` and ``/v2`` URLs) are only
  retired by ``plan_legacy``, which the caller runs on request.

Actions are dicts with ``action`` (create, update, delete, delete_service), the key fields
and a ``reason``. Creates and updates come before deletes, so a run that stops half-way
never leaves a key with fewer working endpoints than before.
"""
import re
from urllib.parse import urlsplit

from cinder_ha_lib import urls

INTERFACES = ("public", "internal", "admin")
BLOCK_STORAGE_TYPES = ("block-storage", "volumev3")
LEGACY_SERVICE_TYPES = ("volume", "volumev2")
URL_PATHS = urls.ENDPOINT_PATHS
TEMPLATE_NAMES = ("project_id", "tenant_id")
_TEMPLATE_RE = re.compile(r"%\((\w+)\)s")
_LEGACY_PATH_RE = re.compile(r"(?:^|/)(v[12])(?:\.\d+)?(?:/|$)")
_DEAD_API = {"v1": "cinder's v1 API was removed in Queens", "v2": "cinder's v2 API was removed in Xena"}


def legacy_version(url):
    """'v1' or 'v2' when the URL names a dead Block Storage API version, else None."""
    match = _LEGACY_PATH_RE.search(urlsplit(str(url)).path)
    return match.group(1) if match else None


def check_url(url):
    """Validate one endpoint URL template. Returns (errors, warnings)."""
    errors, warnings = [], []
    text = str(url or "").strip()
    if not text:
        return ["empty URL"], warnings
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        return [f"{text!r}: not a URL ({exc})"], warnings
    if parts.scheme not in ("http", "https") or not parts.hostname:
        errors.append(f"{text!r}: not an http(s) URL with a host")
    if port is None and parts.scheme == "http" and parts.hostname:
        warnings.append(f"{text}: no port; cinder-api listens on {urls.DEFAULT_PORT} unless told otherwise")
    names = _TEMPLATE_RE.findall(text)
    unknown = sorted({n for n in names if n not in TEMPLATE_NAMES})
    if unknown:
        errors.append(f"{text!r}: unknown template variable(s) {', '.join(unknown)}; "
                      "Block Storage URLs may use %(project_id)s only")
    if "%" in _TEMPLATE_RE.sub("", text):
        errors.append(f"{text!r}: malformed template: a '%' that is not part of %(project_id)s")
    version = legacy_version(text)
    if version:
        warnings.append(f"{text}: {_DEAD_API[version]}; clients following this endpoint get 404 (use /v3)")
    if "tenant_id" in names:
        warnings.append(f"{text}: %(tenant_id)s is the Keystone v2.0 name; use %(project_id)s")
    return errors, warnings


def desired_urls(wanted, interfaces=None):
    """Normalize ``wanted`` (one string for every interface, or {interface: url}).

    Returns ({interface: url}, errors, warnings).
    """
    errors, warnings = [], []
    if isinstance(wanted, str):
        wanted = {iface: wanted for iface in (interfaces or INTERFACES)}
    if not isinstance(wanted, dict) or not wanted:
        return {}, ["urls: give one URL or a mapping interface -> URL (public, internal, admin)"], warnings
    result = {}
    for iface, url in wanted.items():
        if iface not in INTERFACES:
            errors.append(f"urls: {iface!r} is not an interface (public, internal, admin)")
            continue
        url_errors, url_warnings = check_url(url)
        errors.extend(f"urls:{iface}: {e}" for e in url_errors)
        warnings.extend(url_warnings)
        result[iface] = str(url).strip()
    return result, errors, sorted(set(warnings), key=warnings.index)


def find_services(services, service_type, name=None):
    """The services of one type (and name, when given), sorted by id for a stable choice."""
    return sorted((s for s in services if s.get("type") == service_type and (name is None or s.get("name") == name)),
                  key=lambda s: s["id"])


def resolve_service(services, service_type, name=None):
    """The one service endpoints are attached to. Returns (service or None, error or None)."""
    found = find_services(services, service_type, name)
    label = f"type {service_type!r}" + (f" named {name!r}" if name else "")
    if not found:
        return None, f"no Keystone service of {label}: run service_present first"
    if len(found) > 1:
        listed = ", ".join(f"{s['id']} ({s.get('name')})" for s in found)
        hint = "pass service_name" if name is None else "delete the duplicate service"
        return None, f"{len(found)} Keystone services of {label}: {listed}; {hint}"
    return found[0], None


def _keeper(candidates, url):
    """Of several endpoints for one key: the one already right, else the enabled, else the first by id."""
    return sorted(candidates, key=lambda e: (e.get("url") != url, not e.get("enabled", True), e["id"]))[0]


def plan_endpoints(desired, service_ids, endpoints):
    """Actions turning ``endpoints`` into ``desired``.

    desired: {(service_type, interface, region): url}
    service_ids: {service_type: service_id}
    endpoints: current endpoints (Keystone's dicts: id, service_id, interface, region_id, url, enabled);
               anything not matching a desired key is left alone.
    """
    writes, deletes = [], []
    for (stype, iface, region), url in sorted(desired.items()):
        sid = service_ids[stype]
        key = {"service_type": stype, "service_id": sid, "interface": iface, "region": region}
        matches = [e for e in endpoints
                   if e.get("service_id") == sid and e.get("interface") == iface and e.get("region_id") == region]
        if not matches:
            writes.append({"action": "create", **key, "url": url, "reason": "missing"})
            continue
        keep = _keeper(matches, url)
        patch = {}
        if keep.get("url") != url:
            patch["url"] = url
        if not keep.get("enabled", True):
            patch["enabled"] = True
        if patch:
            reason = "URL changed" if "url" in patch else "disabled"
            writes.append({"action": "update", **key, "endpoint_id": keep["id"], "old_url": keep.get("url"),
                           "url": url, "patch": patch, "reason": reason})
        for extra in matches:
            if extra["id"] != keep["id"]:
                deletes.append({"action": "delete", **key, "endpoint_id": extra["id"], "url": extra.get("url"),
                                "reason": f"duplicate of {keep['id']}"})
    return writes + deletes


def plan_legacy(services, endpoints, region, current_types=BLOCK_STORAGE_TYPES,
                legacy_types=LEGACY_SERVICE_TYPES):
    """Actions retiring dead Block Storage entries in ``region``.

    services: every service; endpoints: every endpoint of the legacy and current Block Storage
    services (all regions). A legacy service goes as a whole (Keystone drops its endpoints with it)
    only when none of its endpoints is in another region; otherwise only its endpoints in ``region``.
    Endpoints of the current types go when their URL names /v1 or /v2.
    """
    endpoint_deletes, service_deletes = [], []
    by_service = {}
    for ep in endpoints:
        by_service.setdefault(ep.get("service_id"), []).append(ep)
    for svc in sorted(services, key=lambda s: s["id"]):
        own = sorted(by_service.get(svc["id"], []), key=lambda e: e["id"])
        here = [e for e in own if e.get("region_id") == region]
        if svc.get("type") in legacy_types:
            elsewhere = [e for e in own if e.get("region_id") != region]
            if not elsewhere:
                service_deletes.append({"action": "delete_service", "service_id": svc["id"],
                                        "service_type": svc["type"], "service_name": svc.get("name"),
                                        "endpoints": [e["id"] for e in here],
                                        "reason": f"legacy service type {svc['type']}"})
                continue
            for ep in here:
                endpoint_deletes.append({"action": "delete", "service_type": svc["type"], "service_id": svc["id"],
                                         "interface": ep.get("interface"), "region": region, "endpoint_id": ep["id"],
                                         "url": ep.get("url"),
                                         "reason": f"legacy service type {svc['type']} (service kept: it has "
                                                   f"endpoints in other regions)"})
        elif svc.get("type") in current_types:
            for ep in here:
                version = legacy_version(ep.get("url", ""))
                if version:
                    endpoint_deletes.append({"action": "delete", "service_type": svc["type"],
                                             "service_id": svc["id"], "interface": ep.get("interface"),
                                             "region": region, "endpoint_id": ep["id"], "url": ep.get("url"),
                                             "reason": f"dead /{version} URL"})
    return endpoint_deletes + service_deletes


def describe(action, done=False):
    """One line for comments: what an action does (or did)."""
    verb = {"create": ("create", "created"), "update": ("update", "updated"), "delete": ("delete", "deleted"),
            "delete_service": ("delete service", "deleted service")}[action["action"]][1 if done else 0]
    if action["action"] == "delete_service":
        gone = f" and its endpoints {', '.join(action['endpoints'])}" if action.get("endpoints") else ""
        return f"{verb} {action['service_type']} {action['service_id']} ({action.get('service_name')}){gone}: " \
               f"{action['reason']}"
    where = f"{action['service_type']} {action['interface']} endpoint in {action['region']}"
    if action["action"] == "create":
        return f"{verb} {where}: {action['url']}"
    if action["action"] == "update":
        change = f"{action['old_url']} -> {action['url']}" if "url" in action["patch"] else "enable"
        return f"{verb} {where} {action['endpoint_id']}: {change}"
    return f"{verb} {where} {action['endpoint_id']} ({action['url']}): {action['reason']}"


def changes_of(done):
    """The Salt ``changes`` dict for the actions carried out."""
    changes = {}
    for action in done:
        kind = {"create": "created", "update": "updated", "delete": "deleted",
                "delete_service": "deleted_services"}[action["action"]]
        entry = {k: action[k] for k in ("service_type", "interface", "region", "endpoint_id", "service_id",
                                         "service_name", "url", "old_url", "endpoints", "reason") if k in action}
        changes.setdefault(kind, []).append(entry)
    return changes
