"""
The Block Storage entries of the Keystone v3 catalog, on keystoneauth1.

Credentials: every function takes ``auth`` (a dict with auth_url, username, password,
project_name, user_domain_name, project_domain_name, region, cacert, insecure, timeout).
Without it the ``keystone`` part of the ``cinder_ha`` pillar is used, so SLS files never
carry the password. One keystoneauth1 session (v3 password auth) serves a whole run:
one token, the service list read once, each service's endpoints read once (filtered by
Keystone: ``GET /v3/endpoints?service_id=...&region_id=...``), and the catalog lookup
reads that same token's catalog unless the run changed the catalog (then, and only then,
it takes a fresh token). Passwords and tokens never appear in returns, comments or log lines.

Admin API calls go to the ``auth_url`` itself (``.../v3/services``...), not to an identity
endpoint looked up in the catalog: the catalog is what this module edits.

CLI Example:

.. code-block:: bash

    salt '*' cinder_keystone.plan block-storage urls='{public: http://192.0.2.10:8776/v3}'
    salt '*' cinder_keystone.catalog_lookup block-storage public
"""
import contextlib
import contextvars
import fcntl
import hashlib
import json
import logging
import os
import stat
import threading
import time
import urllib.parse

from salt.exceptions import CommandExecutionError

from cinder_ha_lib import catalog
from cinder_ha_lib.probe import http_get

try:
    from keystoneauth1 import exceptions as ks_exc
    from keystoneauth1 import session as ks_session
    from keystoneauth1.identity import v3 as ks_v3

    HAS_KEYSTONEAUTH = True
except ImportError:  # pragma: no cover - reported by __virtual__
    HAS_KEYSTONEAUTH = False

log = logging.getLogger(__name__)

__virtualname__ = "cinder_keystone"

AUTH_DEFAULTS = {"user_domain_name": "Default", "project_domain_name": "Default", "region": "RegionOne",
                 "cacert": None, "insecure": False, "timeout": 10.0}
AUTH_REQUIRED = ("auth_url", "username", "password", "project_name")
_CTX = "cinder_keystone"
# A minion without multiprocessing keeps __context__ between jobs: a "run" (session and cached
# listings) must not outlive a few minutes, or a later job would plan from stale listings.
RUN_LIFETIME = 300


def __virtual__():
    if not HAS_KEYSTONEAUTH:
        return (False, "cinder_keystone: the Python library keystoneauth1 is not installed (pip install keystoneauth1)")
    return __virtualname__



# ---------------------------------------------------------------- credentials and session

def _auth(auth):
    """The credentials to use: ``auth`` or the pillar's ``cinder_ha:keystone``, defaults filled in."""
    if not auth:
        # the credentials straight from the pillar (no public function returns them); the rest
        # of the pillar may be incomplete (e.g. for a catalog-only run)
        auth = __salt__["pillar.get"]("cinder_ha:keystone", {}, unmask=True) or {}
    merged = dict(AUTH_DEFAULTS)
    merged.update({k: v for k, v in dict(auth).items() if v is not None})
    missing = [k for k in AUTH_REQUIRED if not merged.get(k)]
    if missing:
        raise CommandExecutionError(f"Keystone credentials incomplete: missing {', '.join(missing)} "
                                    "(pillar cinder_ha:keystone or the auth argument)")
    url = str(merged["auth_url"]).rstrip("/")
    if url.endswith("/v2.0"):
        raise CommandExecutionError("Keystone v2.0 was removed in Queens: give the v3 auth_url (.../v3)")
    if not url.endswith("/v3"):
        url += "/v3"
    merged["auth_url"] = url
    merged["timeout"] = float(merged["timeout"])
    return merged


def _who(auth):
    return (f"user {auth['username']!r} (domain {auth['user_domain_name']!r}, project {auth['project_name']!r}) "
            f"at {auth['auth_url']}")


def _new_session(auth):
    plugin = ks_v3.Password(auth_url=auth["auth_url"], username=auth["username"], password=auth["password"],
                            project_name=auth["project_name"], user_domain_name=auth["user_domain_name"],
                            project_domain_name=auth["project_domain_name"])
    verify = False if auth["insecure"] else (auth["cacert"] or True)
    session = ks_session.Session(auth=plugin, verify=verify, timeout=auth["timeout"],
                                 app_name="cinder-ha", app_version="0.1")
    session.session.hooks["response"].append(_count_request)  # tokens included: one requests.Session
    return session


def _count_request(response, *_args, **_kwargs):
    """Count each Keystone request of this run as "METHOD /path" (no query: ids and names stay out)."""
    what = f"{response.request.method} {urllib.parse.urlsplit(response.request.url).path}"
    counted = __context__.get("cinder_keystone.requests", {})
    __context__["cinder_keystone.requests"] = {**counted, what: counted.get(what, 0) + 1}  # runs copy __context__


def request_count():
    """
    Internal (bench, tests): the Keystone requests this module sent in this loader (in a state
    run: in this run), as ``{"POST /v3/auth/tokens": 1, "GET /v3/services": 1, ...}``.

    CLI Example:

    .. code-block:: bash

        salt '*' cinder_keystone.request_count
    """
    return dict(__context__.get("cinder_keystone.requests", {}))


def _state(auth, adopt=True):
    """Per-run state in ``__context__``, keyed by the credentials: the session (its token), the
    cached listings (``endpoints`` by (service id, region or None for every region)) and
    ``wrote``: whether this run changed the catalog since the session's token was issued.
    ``adopt``: wait for the early read, if one is on its way, and keep its listings."""
    key = hashlib.sha256(json.dumps(auth, sort_keys=True, default=str).encode()).hexdigest()
    runs = __context__.setdefault(_CTX, {})
    now = time.monotonic()
    if key not in runs or now - runs[key]["born"] > RUN_LIFETIME:
        runs[key] = {"session": _new_session(auth), "services": None, "endpoints": {}, "born": now,
                     "wrote": False, "early": None}
    if adopt and isinstance(runs[key].get("early"), tuple):
        _adopt_early_read(runs[key])
    return runs[key]


# ---------------------------------------------------------------- the early read

def prefetch(services, region=None, auth=None):
    """
    Internal (init.sls and catalog.sls, while the formula renders): start this run's first
    Keystone reads in the background: the token, ``GET /v3/services`` and the endpoints in
    ``region`` of each service of ``services`` (``{service type: name}``), the very requests
    of a no-op catalog check. The catalog states run after the rest of the formula; by then
    the answers are in, and the first of them waits for what is still on its way. A failed
    early read is dropped: the states read again and report what fails. Listings read early
    plan nothing by themselves: before any write, the state reads again under the catalog
    lock. Returns True when the read started (once per run).

    CLI Example:

    .. code-block:: bash

        salt '*' cinder_keystone.prefetch '{block-storage: cinder}' RegionOne
    """
    try:
        auth = _auth(auth)
    except CommandExecutionError:
        return False  # the catalog states say what is missing
    state = _state(auth, adopt=False)  # a second call (catalog.sls after init.sls) must not wait
    if state["services"] is not None or state["early"] is not None:
        return False
    region = region or auth["region"]
    wanted = dict(services)
    session, answers = state["session"], {}

    def get(path, **params):
        return session.request(auth["auth_url"] + path, "GET", params=params, raise_exc=True).json()

    def read():
        try:
            services = get("/services")["services"]
            endpoints = {(service["id"], region): get("/endpoints", service_id=service["id"], region_id=region)["endpoints"]
                         for stype, name in wanted.items() for service in catalog.find_services(services, stype, name)}
            answers["listings"] = (services, endpoints)
        except Exception as exc:  # pylint: disable=broad-except
            answers["error"] = exc

    # the loader's context (this run's __context__, for the request count) goes with the thread
    thread = threading.Thread(target=contextvars.copy_context().run, args=(read,), daemon=True,
                              name="cinder_keystone-early-read")
    state["early"] = (thread, answers)
    thread.start()
    return True


def _adopt_early_read(state):
    """Wait for the early read (its requests have the session's timeout) and keep its listings."""
    thread, answers = state["early"]
    thread.join()
    state["early"] = None
    if "listings" in answers and state["services"] is None:
        state["services"], endpoints = answers["listings"]
        state["endpoints"].update(endpoints)
        state["early"] = True
    elif "error" in answers:
        log.debug("cinder_keystone: early read dropped (%s); reading again", type(answers["error"]).__name__)


def _reread_before_write(auth):
    """True (and the listings dropped) when they came from the early read: a write is planned
    only from listings read under the catalog lock, after every other minion of the host."""
    state = _state(auth)
    if state["early"] is not True:
        return False
    state.update(services=None, endpoints={}, early=None)
    return True


def _explain(exc, auth, doing):
    """A clear, secret-free message for a keystoneauth1 failure."""
    if isinstance(exc, ks_exc.Unauthorized):
        return f"Keystone refused the credentials of {_who(auth)} while {doing} (HTTP 401): check username/password"
    if isinstance(exc, ks_exc.Forbidden):
        return f"Keystone denied {doing} to {_who(auth)} (HTTP 403): the user needs the admin role"
    if isinstance(exc, (ks_exc.ConnectFailure, ks_exc.ConnectTimeout)):
        return f"Keystone unreachable at {auth['auth_url']} while {doing}: {type(exc).__name__} (is it running?)"
    if isinstance(exc, ks_exc.SSLError):
        return f"TLS failure talking to {auth['auth_url']} while {doing}: check cacert/insecure"
    if isinstance(exc, ks_exc.HttpError):
        detail = ""
        try:
            detail = exc.response.json()["error"]["message"]
        except Exception:  # pylint: disable=broad-except
            detail = exc.message or ""
        return f"Keystone answered HTTP {exc.http_status} while {doing}: {detail}"
    return f"Keystone request failed while {doing}: {type(exc).__name__}: {exc}"


def _wrote():
    """This run changes the catalog: every session's token now predates it (any credentials).
    Called before the request: a failed one may still have changed the catalog."""
    for run in __context__.get(_CTX, {}).values():
        run["wrote"] = True


def _call(auth, method, path, doing, body=None, params=None):
    state = _state(auth)
    if method != "GET":
        _wrote()
    try:
        resp = state["session"].request(auth["auth_url"] + path, method, json=body, params=params,
                                         raise_exc=True)
    except ks_exc.ClientException as exc:
        raise CommandExecutionError(_explain(exc, auth, doing)) from None
    return resp.json() if resp.content else {}


# ---------------------------------------------------------------- reads (cached per run)

def _services(auth, fresh=False):
    state = _state(auth)
    if fresh or state["services"] is None:
        state["services"] = _call(auth, "GET", "/services", "listing services")["services"]
    return state["services"]


def _endpoints_of(auth, service_id, region=None, fresh=False):
    """The endpoints of one service (in ``region`` only, when given), filtered by Keystone."""
    state = _state(auth)
    key = (service_id, region)
    every_region = state["endpoints"].get((service_id, None))
    if not fresh and region and key not in state["endpoints"] and every_region is not None:
        state["endpoints"][key] = [e for e in every_region if e.get("region_id") == region]
    if fresh or key not in state["endpoints"]:
        params = {"service_id": service_id}
        if region:
            params["region_id"] = region
        where = f" in {region}" if region else ""
        state["endpoints"][key] = _call(auth, "GET", "/endpoints", f"listing endpoints of {service_id}{where}",
                                        params=params)["endpoints"]
    return state["endpoints"][key]


def _remember(auth, service=None, endpoint=None, gone_service=None, gone_endpoint=None):
    """Keep the cached listings true after a write (cheaper than listing again)."""
    state = _state(auth)
    if service is not None and state["services"] is not None:
        state["services"] = [s for s in state["services"] if s["id"] != service["id"]] + [service]
    if gone_service is not None:
        if state["services"] is not None:
            state["services"] = [s for s in state["services"] if s["id"] != gone_service]
        for key in [k for k in state["endpoints"] if k[0] == gone_service]:
            del state["endpoints"][key]
    for (sid, region), cached in list(state["endpoints"].items()):
        kept = [e for e in cached if e["id"] not in (gone_endpoint, endpoint and endpoint["id"])]
        if endpoint is not None and endpoint["service_id"] == sid and region in (None, endpoint.get("region_id")):
            kept.append(endpoint)
        state["endpoints"][(sid, region)] = kept


def _public(record):
    return {k: v for k, v in record.items() if k != "links"}


def service_get(service_type, name=None, auth=None):
    """
    The Keystone service of ``service_type`` (and ``name``), or None. Raises when several match
    (Keystone stores duplicates; they need a human decision).

    CLI Example:

    .. code-block:: bash

        salt '*' cinder_keystone.service_get block-storage cinder
    """
    auth = _auth(auth)
    found = catalog.find_services(_services(auth, fresh=True), service_type, name)
    if len(found) > 1:
        raise CommandExecutionError(catalog.resolve_service(found, service_type, name)[1])
    return _public(found[0]) if found else None


def service_ensure(service_type, name, description=None, enabled=True, auth=None, test=False):
    """
    Make sure one service of ``service_type`` named ``name`` exists with this description.
    Returns ``{"service": {...}, "action": "created"|"updated"|None, "changes": {...}}``.

    CLI Example:

    .. code-block:: bash

        salt '*' cinder_keystone.service_ensure block-storage cinder description="OpenStack Block Storage"
    """
    auth = _auth(auth)
    found = catalog.find_services(_services(auth), service_type, name)
    if len(found) > 1:
        raise CommandExecutionError(catalog.resolve_service(found, service_type, name)[1])
    wanted = {"enabled": bool(enabled)}
    if description is not None:
        wanted["description"] = description
    current = found[0] if found else {}
    patch = {k: v for k, v in wanted.items() if current.get(k) != v}  # all of it when there is no service
    if patch and _reread_before_write(auth):
        return service_ensure(service_type, name, description=description, enabled=enabled, auth=auth, test=test)
    if not found:
        if test:
            return {"service": None, "action": "created", "changes": {"type": service_type, "name": name, **wanted}}
        created = _call(auth, "POST", "/services", f"creating service {service_type} {name}",
                        body={"service": {"type": service_type, "name": name, **wanted}})["service"]
        log.info("cinder_keystone: created service %s %s (%s)", service_type, name, created["id"])
        kept = _one_copy_after_create(auth, service_type, name)
        return {"service": _public(kept), "action": "created",
                "changes": {"id": kept["id"], "type": service_type, "name": name, **wanted}}
    if not patch:
        return {"service": _public(current), "action": None, "changes": {}}
    changes = {k: {"old": current.get(k), "new": v} for k, v in patch.items()}
    if test:
        return {"service": _public(current), "action": "updated", "changes": changes}
    updated = _call(auth, "PATCH", f"/services/{current['id']}", f"updating service {current['id']}",
                    body={"service": patch})["service"]
    _remember(auth, service=updated)
    return {"service": _public(updated), "action": "updated", "changes": changes}


# Root's own folder (0700): in the world-writable /run/lock any local user could hold the lock
# and stall every catalog change.
LOCK_DIR = "/run/cinder-ha"


@contextlib.contextmanager
def _host_lock(path, timeout):
    with open(path, "a") as handle:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise CommandExecutionError(
                        f"another catalog change on this host held {path} for {timeout}s") from None
                time.sleep(0.05)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def catalog_lock(timeout=300):
    """
    Internal: a context manager serializing catalog changes (read, plan, write) of every minion
    on this host, so two minions of one host cannot both see an empty catalog and both create.
    Across hosts one controller writes (the formula's choice); ``_one_copy_after_create``
    covers what is left.
    """
    os.makedirs(LOCK_DIR, mode=0o700, exist_ok=True)
    info = os.lstat(LOCK_DIR)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o077:
        raise CommandExecutionError(f"{LOCK_DIR} is not a private folder of this user (mode "
                                    f"{oct(info.st_mode & 0o7777)}, uid {info.st_uid}): refusing to lock there")
    return _host_lock(os.path.join(LOCK_DIR, "catalog.lock"), float(timeout))


def _delete_if_present(auth, path):
    """DELETE that treats 'already gone' as done (a racing controller may have deleted it)."""
    state = _state(auth)
    _wrote()
    resp = state["session"].request(auth["auth_url"] + path, "DELETE", raise_exc=False)
    if resp.status_code not in (204, 404):
        raise CommandExecutionError(f"deleting {path}: HTTP {resp.status_code}")


def _one_copy_after_create(auth, service_type, name):
    """Keystone accepts duplicates, and two controllers may create at the same moment: list
    again after a create and keep the lowest id. Every racing run agrees on that choice, and
    the run whose create came last always sees every copy, so exactly one survives."""
    found = catalog.find_services(_services(auth, fresh=True), service_type, name)  # sorted by id
    for extra in found[1:]:
        _delete_if_present(auth, f"/services/{extra['id']}")
        _remember(auth, gone_service=extra["id"])
        log.info("cinder_keystone: removed duplicate service %s (a concurrent create)", extra["id"])
    return found[0]


def _one_copy_of_created_endpoints(auth, created):
    """After creates, the same reasoning for endpoints: re-list and drop duplicates of each key."""
    removed = []
    for service_id, region in sorted({(a["service_id"], a["region"]) for a in created}):
        mine = [a for a in created if a["service_id"] == service_id and a["region"] == region]
        desired = {(a["service_type"], a["interface"], a["region"]): a["url"] for a in mine}
        types = {a["service_type"]: service_id for a in mine}
        current = _endpoints_of(auth, service_id, region, fresh=True)
        for action in catalog.plan_endpoints(desired, types, current):
            if action["action"] == "delete":
                _delete_if_present(auth, f"/endpoints/{action['endpoint_id']}")
                _remember(auth, gone_endpoint=action["endpoint_id"])
                removed.append(action["endpoint_id"])
    if removed:
        log.info("cinder_keystone: removed %d duplicate endpoint(s) from a concurrent create", len(removed))
    return removed


def service_delete(service_id, auth=None):
    """
    Delete a service (Keystone deletes its endpoints in every region with it).

    CLI Example:

    .. code-block:: bash

        salt '*' cinder_keystone.service_delete 0123abcd
    """
    auth = _auth(auth)
    _call(auth, "DELETE", f"/services/{service_id}", f"deleting service {service_id}")
    _remember(auth, gone_service=service_id)
    return True


def endpoint_list(service_id=None, interface=None, region=None, auth=None):
    """
    Endpoints as Keystone stores them (URL templates raw), filtered by service id, interface, region.

    CLI Example:

    .. code-block:: bash

        salt '*' cinder_keystone.endpoint_list interface=public region=RegionOne
    """
    auth = _auth(auth)
    params = {k: v for k, v in (("service_id", service_id), ("interface", interface), ("region_id", region)) if v}
    return [_public(e) for e in _call(auth, "GET", "/endpoints", "listing endpoints", params=params)["endpoints"]]


def endpoint_create(service_id, interface, url, region=None, enabled=True, auth=None):
    """
    Create one endpoint. Prefer the ``endpoints_present`` state: Keystone stores duplicates.

    CLI Example:

    .. code-block:: bash

        salt '*' cinder_keystone.endpoint_create 0123abcd public http://192.0.2.10:8776/v3 RegionOne
    """
    auth = _auth(auth)
    region = region or auth["region"]
    body = {"endpoint": {"service_id": service_id, "interface": interface, "url": url, "region_id": region,
                         "enabled": bool(enabled)}}
    created = _call(auth, "POST", "/endpoints", f"creating the {interface} endpoint in {region}", body=body)
    _remember(auth, endpoint=created["endpoint"])
    return _public(created["endpoint"])


def endpoint_update(endpoint_id, url=None, enabled=None, auth=None):
    """
    PATCH an endpoint in place (its id stays).

    CLI Example:

    .. code-block:: bash

        salt '*' cinder_keystone.endpoint_update 4567ef url=http://192.0.2.11:8776/v3
    """
    auth = _auth(auth)
    patch = {k: v for k, v in (("url", url), ("enabled", enabled)) if v is not None}
    if not patch:
        raise CommandExecutionError("endpoint_update: nothing to change (give url and/or enabled)")
    updated = _call(auth, "PATCH", f"/endpoints/{endpoint_id}", f"updating endpoint {endpoint_id}",
                    body={"endpoint": patch})
    _remember(auth, endpoint=updated["endpoint"])
    return _public(updated["endpoint"])


def endpoint_delete(endpoint_id, auth=None):
    """
    Delete one endpoint.

    CLI Example:

    .. code-block:: bash

        salt '*' cinder_keystone.endpoint_delete 4567ef
    """
    auth = _auth(auth)
    _call(auth, "DELETE", f"/endpoints/{endpoint_id}", f"deleting endpoint {endpoint_id}")
    _remember(auth, gone_endpoint=endpoint_id)
    return True


def _region_exists(auth, region):
    try:
        _call(auth, "GET", f"/regions/{region}", f"looking up region {region}")
    except CommandExecutionError as exc:
        if "HTTP 404" not in str(exc):
            raise
        known = [r["id"] for r in _call(auth, "GET", "/regions", "listing regions")["regions"]]
        raise CommandExecutionError(f"region {region!r} is unknown to Keystone (known: {', '.join(sorted(known))}); "
                                    "create it first (openstack region create) or fix the region name") from None


# ---------------------------------------------------------------- plans

def plan(service_type="block-storage", urls=None, region=None, service_name=None, auth=None,
         service_pending=False):
    """
    What ``endpoints_present`` would do: ``{"service": {...}, "actions": [...], "warnings": [...]}``.
    ``urls`` is one URL for every interface or ``{interface: url}``. Reads only.
    ``service_pending=True`` (a dry run in which ``service_present`` would create the
    service first) plans every endpoint as a create instead of failing on the missing service.

    CLI Example:

    .. code-block:: bash

        salt '*' cinder_keystone.plan block-storage urls='{public: http://192.0.2.10:8776/v3, internal: http://192.0.2.11:8776/v3}'
    """
    desired, errors, warnings = catalog.desired_urls(urls)
    if errors:
        raise CommandExecutionError("bad endpoint URL(s): " + "; ".join(errors))
    auth = _auth(auth)
    region = region or auth["region"]
    service, error = catalog.resolve_service(_services(auth), service_type, service_name)
    if error and service_pending and not catalog.find_services(_services(auth), service_type, service_name):
        service = {"id": None, "type": service_type, "name": service_name}
        current = []
    elif error:
        raise CommandExecutionError(error)
    else:
        current = _endpoints_of(auth, service["id"], region)
    actions = catalog.plan_endpoints({(service_type, iface, region): url for iface, url in desired.items()},
                                 {service_type: service["id"]}, current)
    if actions and _reread_before_write(auth):
        return plan(service_type, urls, region=region, service_name=service_name, auth=auth,
                    service_pending=service_pending)
    if any(a["action"] == "create" for a in actions) and not any(e.get("region_id") == region for e in current):
        _region_exists(auth, region)  # only when nothing proves it: a no-op costs no extra request
    return {"service": _public(service), "region": region, "actions": actions, "warnings": warnings}


def legacy_plan(region=None, service_types=None, legacy_types=None, auth=None):
    """
    What ``legacy_absent`` would do in ``region``: retire ``volume``/``volumev2`` services and
    ``/v1``, ``/v2`` endpoints of the current Block Storage services. Reads only.

    CLI Example:

    .. code-block:: bash

        salt '*' cinder_keystone.legacy_plan RegionOne
    """
    auth = _auth(auth)
    region = region or auth["region"]
    service_types = list(service_types or catalog.BLOCK_STORAGE_TYPES)
    legacy_types = list(legacy_types or catalog.LEGACY_SERVICE_TYPES)
    relevant = [s for s in _services(auth) if s.get("type") in service_types + legacy_types]
    # a legacy service goes as a whole only when no other region uses it: all its endpoints;
    # of the current services only this region's count (the list endpoints_present already read)
    endpoints = [e for s in relevant
                 for e in _endpoints_of(auth, s["id"], None if s.get("type") in legacy_types else region)]
    actions = catalog.plan_legacy(relevant, endpoints, region, service_types, legacy_types)
    if actions and _reread_before_write(auth):
        return legacy_plan(region, service_types, legacy_types, auth=auth)
    return {"region": region, "actions": actions}


def apply_plan(actions, auth=None):
    """
    Carry out plan actions in order; stop at the first failure.
    Returns ``{"done": [...], "failed": action or None, "error": str or None, "pending": [...]}``.

    CLI Example:

    .. code-block:: bash

        salt '*' cinder_keystone.apply_plan "$(salt-call --out=json cinder_keystone.plan ...)"
    """
    auth = _auth(auth)
    done = []
    for index, action in enumerate(actions):
        try:
            kind = action["action"]
            if kind == "create":
                created = endpoint_create(action["service_id"], action["interface"], action["url"],
                                          action["region"], auth=auth)
                action = {**action, "endpoint_id": created["id"]}
            elif kind == "update":
                endpoint_update(action["endpoint_id"], auth=auth, **action["patch"])
            elif kind == "delete":
                endpoint_delete(action["endpoint_id"], auth=auth)
            elif kind == "delete_service":
                service_delete(action["service_id"], auth=auth)
            else:
                raise CommandExecutionError(f"unknown action {kind!r}")
        except CommandExecutionError as exc:
            return {"done": done, "failed": action, "error": str(exc), "pending": actions[index + 1:]}
        log.info("cinder_keystone: %s", catalog.describe(action, done=True))
        done.append(action)
    created = [a for a in done if a["action"] == "create"]
    if created:
        try:
            _one_copy_of_created_endpoints(auth, created)
        except CommandExecutionError as exc:
            return {"done": done, "failed": None, "error": f"after the creates: {exc}", "pending": []}
    return {"done": done, "failed": None, "error": None, "pending": []}


# ---------------------------------------------------------------- what clients see

def _fill_template(url, session):
    if "%(" not in url:
        return url
    project_id = session.get_project_id()
    return url % {"project_id": project_id, "tenant_id": project_id}


def probe(url, timeout=5, auth=None):
    """
    Does a catalog URL answer? An unauthenticated HTTP GET (templates filled with the project
    id). Any HTTP status counts as answering (cinder-api answers 401 without a token).
    Returns ``{"url", "answers", "status", "ms", "error"}``.

    CLI Example:

    .. code-block:: bash

        salt '*' cinder_keystone.probe http://192.0.2.10:8776/v3
    """
    auth = _auth(auth) if (auth or "%(" in str(url)) else None
    session = _state(auth)["session"] if auth else ks_session.Session()
    try:
        target = _fill_template(str(url), session)
    except ks_exc.ClientException as exc:
        raise CommandExecutionError(_explain(exc, auth, "filling the URL template")) from None
    tls = auth or {}
    return http_get(target, timeout=timeout, cafile=tls.get("cacert"), insecure=bool(tls.get("insecure")))


def _catalog_url(session, auth, service_type, interface, region):
    try:
        return session.get_endpoint(service_type=service_type, interface=interface, region_name=region)
    except ks_exc.EndpointNotFound:
        return None
    except ks_exc.ClientException as exc:
        raise CommandExecutionError(_explain(exc, auth, "fetching a token with its catalog")) from None


def catalog_lookup(service_type="block-storage", interface="public", region=None, probe_url=False, auth=None):
    """
    What a client that knows only Keystone finds: a token's catalog, then
    ``get_endpoint(service_type, interface, region)``. Returns ``{"found", "url", "fresh_token", ...}``,
    with ``probe`` (see ``probe``) when ``probe_url=True``.

    The token is the run's own (no request at all when the run already has one), unless this
    run changed the catalog since that token was issued: its catalog predates the change, so
    the session authenticates again first (``fresh_token: True``) and keeps the new token. A
    token whose catalog lacks the endpoint is asked once more with a new token too: another
    controller may have made it since the token was issued.

    CLI Example:

    .. code-block:: bash

        salt '*' cinder_keystone.catalog_lookup block-storage public probe_url=True
    """
    auth = _auth(auth)
    region = region or auth["region"]
    state = _state(auth)
    session = state["session"]
    fresh = state["wrote"]
    if fresh:
        session.invalidate()  # the next token request brings a catalog that includes this run's writes
    result = {"service_type": service_type, "interface": interface, "region": region, "fresh_token": fresh}
    url = _catalog_url(session, auth, service_type, interface, region)
    if not url and not fresh:
        # The token may predate a change another controller made since (the run's early read
        # took it outside the catalog lock): what it lacks is asked again, with a new token.
        session.invalidate()
        url = _catalog_url(session, auth, service_type, interface, region)
        result["fresh_token"] = True
    state["wrote"] = False  # the session's token now postdates every write of this run
    result.update(found=bool(url), url=url)
    if url and probe_url:
        result["probe"] = probe(url, auth=auth)
    return result


# ---------------------------------------------------------------- removal (cinder_ha.clean)

def clean_plan(services, region=None, auth=None):
    """
    What ``catalog_absent`` would remove in ``region``: for each ``{service_type: name}`` of
    ``services``, the service with its endpoints when it has none in another region, otherwise
    only its endpoints in ``region``. Other services, other regions are never in the plan.
    Reads only.

    CLI Example:

    .. code-block:: bash

        salt '*' cinder_keystone.clean_plan '{block-storage: cinder}' region=RegionOne
    """
    auth = _auth(auth)
    region = region or auth["region"]
    # fresh listings: a removal never plans from what an earlier job of this minion cached
    relevant = [s for s in _services(auth, fresh=True) if services.get(s.get("type")) == s.get("name")]
    endpoints = [e for s in relevant for e in _endpoints_of(auth, s["id"], fresh=True)]
    actions = catalog.plan_legacy(relevant, endpoints, region, current_types=(), legacy_types=tuple(services))
    for action in actions:
        action["reason"] = ("cinder_ha.clean" if action["action"] == "delete_service"
                            else "cinder_ha.clean (the service keeps its endpoints in other regions)")
    return {"region": region, "actions": actions}
