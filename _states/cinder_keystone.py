"""
The Block Storage service and its endpoints in the Keystone v3 catalog.

Endpoints are keyed on (service, interface, region): a changed URL is PATCHed in place,
duplicates are reduced to one, other regions and other services are never touched.
Every state plans first (``test=True`` shows the plan) and then writes; a failure
half-way reports what was done. Credentials come from the ``cinder_ha:keystone`` pillar
unless ``auth`` is given.

.. code-block:: yaml

    block storage service:
      cinder_keystone.service_present:
        - name: cinder
        - service_type: block-storage
        - description: OpenStack Block Storage

    block storage endpoints:
      cinder_keystone.endpoints_present:
        - name: block-storage
        - service_name: cinder
        - urls:
            public: http://203.0.113.10:8776/v3
            internal: http://192.0.2.10:8776/v3
            admin: http://192.0.2.10:8776/v3
        - region: RegionOne

    legacy block storage retired:
      cinder_keystone.legacy_absent:
        - name: block-storage
        - region: RegionOne
"""
import functools

from salt.exceptions import CommandExecutionError

from cinder_ha_lib import catalog

__virtualname__ = "cinder_keystone"


def __virtual__():
    if "cinder_keystone.plan" in __salt__:
        return __virtualname__
    return (False, "cinder_keystone execution module not loaded (is keystoneauth1 installed?)")


def _ret(name):
    return {"name": name, "result": True, "changes": {}, "comment": ""}



def _serialized(state):
    """Run the state's read-plan-write under the host's catalog lock (see cinder_keystone.catalog_lock)."""
    @functools.wraps(state)
    def locked(*args, **kwargs):
        with __salt__["cinder_keystone.catalog_lock"]():
            return state(*args, **kwargs)
    return locked


@_serialized
def service_present(name, service_type="block-storage", description=None, enabled=True, auth=None):
    """
    One Keystone service of ``service_type`` named ``name`` (created, or its description
    and enabled flag corrected). Puppet's layout is ``cinder``/``block-storage`` plus,
    optionally, ``cinderv3``/``volumev3``.

    .. code-block:: yaml

        block storage service:
          cinder_keystone.service_present:
            - name: cinder
            - service_type: block-storage
            - description: OpenStack Block Storage
    """
    ret = _ret(name)
    test = bool(__opts__["test"])
    try:
        out = __salt__["cinder_keystone.service_ensure"](service_type, name, description=description,
                                                        enabled=enabled, auth=auth, test=test)
    except CommandExecutionError as exc:
        ret.update(result=False, comment=f"Service {service_type} {name!r} not ensured: {exc}")
        return ret
    if not out["action"]:
        ret["comment"] = f"Service {service_type} {name!r} ({out['service']['id']}) is as wanted."
        return ret
    ret["changes"] = out["changes"]
    if test:
        ret.update(result=None, comment=f"Service {service_type} {name!r} would be {out['action']}.")
    else:
        ret["comment"] = f"Service {service_type} {name!r} {out['action']} ({out['service']['id']})."
    return ret


def _report(ret, what, plan_out, applied, test):
    cat = catalog
    warnings = list(plan_out.get("warnings", []))
    if warnings:
        ret["warnings"] = warnings
    actions = plan_out["actions"]
    if not actions:
        ret["comment"] = f"{what}: nothing to do."
    elif test:
        ret["result"] = None
        ret["changes"] = {"planned": [cat.describe(a) for a in actions]}
        ret["comment"] = f"{what}: would\n  - " + "\n  - ".join(cat.describe(a) for a in actions)
    else:
        ret["changes"] = cat.changes_of(applied["done"])
        lines = [cat.describe(a, done=True) for a in applied["done"]]
        if applied["failed"] is None and not applied.get("error"):
            ret["comment"] = f"{what}:\n  - " + "\n  - ".join(lines)
        elif applied["failed"] is None:
            # every planned change went in, but the duplicate check after the creates failed:
            # Keystone may hold two copies now, which a green result would hide
            ret["result"] = False
            ret["comment"] = (f"{what}:\n  - " + "\n  - ".join(lines)
                              + f"\nFAILED after the changes: {applied['error']} (a concurrent create may have "
                                "left a duplicate; the next run removes it)")
        else:
            ret["result"] = False
            ret["comment"] = (f"{what}: FAILED to {cat.describe(applied['failed'])}: {applied['error']}\n"
                              f"Done before the failure: {'; '.join(lines) or 'nothing'}\n"
                              f"Not attempted: {'; '.join(cat.describe(a) for a in applied['pending']) or 'nothing'}")
    if warnings:
        ret["comment"] += "\nWarnings:\n  - " + "\n  - ".join(warnings)
    return ret


@_serialized
def endpoints_present(name, urls, region=None, service_name=None, probe=False, auth=None):
    """
    One endpoint per interface given in ``urls`` for the service of type ``name`` in
    ``region`` (default: the pillar's ``keystone:region``). ``urls`` is one URL for every
    interface or ``{public: ..., internal: ..., admin: ...}``; interfaces not given are left
    alone. Default URL form ``http://VIP:8776/v3``; ``/v3/%(project_id)s`` works; the guide's
    ``/v1/%(tenant_id)s`` is accepted with a warning (that API is gone).
    ``probe: True`` GETs each URL afterwards and reports whether it answers (never fails
    the state: cinder-api may start later in the run).

    .. code-block:: yaml

        block storage endpoints:
          cinder_keystone.endpoints_present:
            - name: block-storage
            - service_name: cinder
            - urls: {public: 'http://203.0.113.10:8776/v3', internal: 'http://192.0.2.10:8776/v3',
                     admin: 'http://192.0.2.10:8776/v3'}
            - region: RegionOne
    """
    ret = _ret(name)
    test = bool(__opts__["test"])
    try:
        # Under test=True service_present has not created the service yet: plan the creates.
        plan_out = __salt__["cinder_keystone.plan"](name, urls, region=region, service_name=service_name, auth=auth,
                                                    service_pending=test)
    except CommandExecutionError as exc:
        ret.update(result=False, comment=f"{name} endpoints not planned (nothing changed): {exc}")
        return ret
    what = f"{name} endpoints in {plan_out['region']}"
    applied = None
    if plan_out["actions"] and not test:
        applied = __salt__["cinder_keystone.apply_plan"](plan_out["actions"], auth=auth)
    _report(ret, what, plan_out, applied, test)
    if probe and not test and ret["result"]:
        desired = catalog.desired_urls(urls)[0]
        lines = []
        for iface, url in sorted(desired.items()):
            answer = __salt__["cinder_keystone.probe"](url, auth=auth)
            lines.append(f"{iface} {answer['url']}: " + (f"HTTP {answer['status']} in {answer['ms']} ms"
                                                         if answer["answers"] else f"no answer ({answer['error']})"))
        ret["comment"] += "\nProbe:\n  - " + "\n  - ".join(lines)
    return ret


@_serialized
def legacy_absent(name, region=None, service_types=None, legacy_types=None, auth=None):
    """
    Retire, in ``region``, the dead Block Storage catalog entries: services of type
    ``volume``/``volumev2`` (the whole service when it has no endpoint in another region,
    otherwise only its endpoints here) and ``/v1``, ``/v2`` endpoints of the current types
    (``block-storage``, ``volumev3``). Run it only on request: some clients may still
    read them.

    .. code-block:: yaml

        legacy block storage retired:
          cinder_keystone.legacy_absent:
            - name: block-storage
            - region: RegionOne
    """
    if service_types is None:
        service_types = sorted({name, *catalog.BLOCK_STORAGE_TYPES})
    return _planned_removal(name, "Legacy Block Storage entries", "cinder_keystone.legacy_plan", auth,
                            region=region, service_types=service_types, legacy_types=legacy_types)


def _planned_removal(name, what, planner, auth, **plan_args):
    """Plan with ``planner`` (a read), then carry the deletions out unless test=True; report."""
    ret = _ret(name)
    test = bool(__opts__["test"])
    try:
        plan_out = __salt__[planner](auth=auth, **plan_args)
    except CommandExecutionError as exc:
        ret.update(result=False, comment=f"{what} not planned (nothing changed): {exc}")
        return ret
    applied = None
    if plan_out["actions"] and not test:
        applied = __salt__["cinder_keystone.apply_plan"](plan_out["actions"], auth=auth)
    return _report(ret, f"{what} in {plan_out['region']}", plan_out, applied, test)


@_serialized
def catalog_absent(name, services, region=None, auth=None):
    """
    Remove, in ``region``, the catalog entries ``cinder_ha`` made: each service of
    ``services`` (``{service_type: name}``) with its endpoints, or, when the service still has
    endpoints in another region, only its endpoints in ``region``. Nothing else is touched.
    ``test=True`` lists every deletion.

    .. code-block:: yaml

        cinder_ha-clean-catalog-absent:
          cinder_keystone.catalog_absent:
            - name: block-storage
            - services: {block-storage: cinder}
            - region: RegionOne
    """
    return _planned_removal(name, "Block Storage catalog entries", "cinder_keystone.clean_plan", auth,
                            services=services, region=region)
