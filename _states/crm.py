"""
Pacemaker cluster objects, compared deeply and committed in one transaction.

A parameter, op or meta attribute that differs is applied; generated ids, empty attribute
sets, attribute order, the ``ocf:heartbeat:`` abbreviation, quoting and time units
(``30s`` = ``30000ms``) are not differences. ``target-role`` (and ``is-managed``,
``maintenance``) set by an operator are kept unless the state declares them in ``meta``.
Under ``test=True`` the comment lists per-parameter changes AND what the cluster would do
(``crm_simulate`` on a copy of the CIB with the change applied). Secret parameters are
shown only as ``***``.

.. code-block:: yaml

    cinder_ha cluster resources:
      crm.configured:
        - objects:
          - primitive: p_ip_cinder-api
            agent: ocf:heartbeat:IPaddr2
            params: {ip: 127.0.0.103, cidr_netmask: 32, nic: lo}
            ops: {monitor: {interval: 10s, timeout: 20s}}
          - primitive: p_cinder-api
            agent: ocf:openstack:cinder-api
            # a secret is named by its pillar key, never rendered into the SLS
            params: {config: /etc/cinder/cinder.conf, os_password: {pillar: "cinder_ha:agent:os_password"}}
            secret_params: [os_password]
            secret_mode: lrm
            ops: {monitor: {interval: 30s, timeout: 30s}}
          - colocation: c_cinder-api_with_ip
            resources: [p_cinder-api, p_ip_cinder-api]
          - order: o_ip_before_cinder-api
            first: p_ip_cinder-api
            then: p_cinder-api
          # only nodes that hold the current secret may run (or probe) cinder-api; the VIP
          # follows (see crm_secrets.present)
          - location: l_p_cinder-api_secrets
            resource: p_cinder-api
            secrets_of: p_cinder-api
            resource_discovery: never
          - location: l_p_ip_cinder-api_secrets
            resource: p_ip_cinder-api
            secrets_of: p_cinder-api
"""

__virtualname__ = "crm"


def __virtual__():
    if "crm.configure" in __salt__:
        return __virtualname__
    return (False, "crm execution module not loaded (crm (crmsh) or Pacemaker CLI tools missing)")


def _from_pillar(values, where):
    """Each ``{"pillar": "a:b:c"}`` value read here (unmasked): a secret passed this way never
    appears in the rendered SLS, so neither Salt's minion cache (highstate.cache.p) nor a debug
    log of the state's arguments holds it."""
    from salt.exceptions import CommandExecutionError

    from cinder_ha_lib import cib

    try:
        return cib.resolve_pillar_refs(values, where, lambda key: __salt__["pillar.get"](key, None, unmask=True))
    except cib.ModelError as exc:
        raise CommandExecutionError(str(exc)) from None


def _resolve_objects(objects):
    resolved = []
    for obj in objects or []:
        if isinstance(obj, dict) and "primitive" in obj and obj.get("params"):
            obj = dict(obj, params=_from_pillar(obj["params"], obj["primitive"]))
        resolved.append(obj)
    return resolved


def _token():
    # One CIB read per state run: every crm state of this run shares the read.
    return globals().get("__instance_id__")


def _describe(changes):
    lines = []
    for object_id, paths in changes.items():
        action = paths.get("action", "update")
        details = [f"{path}: {diff['old']!r} -> {diff['new']!r}" for path, diff in paths.items()
                   if isinstance(diff, dict)]
        lines.append(f"{action} {object_id}" + ("".join(f"\n    {d}" for d in details)))
    return lines


def _ret(name, outcome):
    ret = {"name": name, "result": outcome["result"], "changes": {}, "comment": ""}
    lines = []
    if outcome["changes"]:
        lines.append("CIB changes:" if outcome["result"] is not None else "CIB changes that would be made:")
        lines.extend("  " + line.replace("\n", "\n  ") for line in _describe(outcome["changes"]))
    if outcome.get("actions"):
        verb = "cluster would" if outcome["result"] is None else "cluster will"
        lines.append(f"{verb}: " + "; ".join(outcome["actions"]))
    elif outcome["changes"] and outcome["result"] is None:
        lines.append("cluster would: nothing (no action in crm_simulate's transition)")
    if outcome.get("warnings"):
        lines.append("crm_verify warnings:\n  " + "\n  ".join(outcome["warnings"]))
    lines.insert(0, outcome["comment"])
    ret["comment"] = "\n".join(line for line in lines if line)
    if outcome["result"] is not False and outcome["changes"]:
        ret["changes"] = {"objects": outcome["changes"]}
        if outcome.get("actions"):
            ret["changes"]["cluster"] = outcome["actions"]
    return ret


def configured(name, objects, secrets_dir=None, node=None):
    """
    Every object in ``objects`` (primitives, groups, colocations, orders, properties, alerts,
    locations; see the module doc) present exactly as declared, written in ONE CIB
    transaction. Objects the list does not name are left alone.

    A ``location`` with ``secrets_of: <primitive>`` bans (-INFINITY) its resource from every
    node whose permanent attribute ``cinder_ha_secrets_<primitive>`` is missing or is not an
    accepted digest: the digest of the primitive's current ``lrm`` secrets (as declared here),
    and during a rotation the digest of each node where the resource runs, so that a rotation
    never stops or moves it; with ``resource_discovery: never`` such nodes are not even probed.
    Each node publishes its attribute with ``crm_secrets.present``; this node's is set in the
    same transaction as the rule.

    secrets_dir
        Where ``secret_mode: lrm`` parameters are stored (default
        ``/var/lib/pacemaker/lrm/secrets``; Pacemaker's executor reads them there).
    node
        This node's cluster name (default: ``crm_node --name``).
    """
    from salt.exceptions import CommandExecutionError

    try:
        objects = _resolve_objects(objects)
    except CommandExecutionError as exc:
        return {"name": name, "result": False, "changes": {}, "comment": f"CIB left unchanged: {exc}"}
    outcome = __salt__["crm.configure"](objects, test=__opts__["test"], secrets_dir=secrets_dir,
                                        cache_token=_token(), node=node)
    return _ret(name, outcome)


def primitive_present(name, agent, params=None, ops=None, meta=None, secret_params=None,
                      secret_mode="plain", secrets_dir=None):
    """
    One primitive, e.g.:

    .. code-block:: yaml

        p_ip_cinder-api:
          crm.primitive_present:
            - agent: IPaddr2
            - params: {ip: 127.0.0.103, cidr_netmask: 32, nic: lo}
            - ops: {monitor: {interval: 10s, timeout: 20s}}
    """
    obj = {"primitive": name, "agent": agent, "params": params or {}, "ops": ops or {}, "meta": meta or {},
           "secret_params": secret_params or [], "secret_mode": secret_mode}
    return configured(name, [obj], secrets_dir=secrets_dir)


def group_present(name, resources, meta=None):
    """
    A group of primitives (started in order, on one node).

    .. code-block:: yaml

        g_cinder:
          crm.group_present:
            - resources: [p_ip_cinder-api, p_cinder-api]
    """
    return configured(name, [{"group": name, "resources": resources, "meta": meta or {}}])


def colocation_present(name, resources, score="INFINITY"):
    """
    ``resources[0]`` placed with ``resources[1]``.

    .. code-block:: yaml

        c_cinder-api_with_ip:
          crm.colocation_present:
            - resources: [p_cinder-api, p_ip_cinder-api]
    """
    return configured(name, [{"colocation": name, "resources": resources, "score": score}])


def order_present(name, first, then, kind="Mandatory", symmetrical=True):
    """
    ``first`` started before ``then`` (and stopped after it when symmetrical).

    .. code-block:: yaml

        o_ip_before_cinder-api:
          crm.order_present:
            - first: p_ip_cinder-api
            - then: p_cinder-api
    """
    return configured(name, [{"order": name, "first": first, "then": then, "kind": kind,
                              "symmetrical": symmetrical}])


def property_present(name, value=None, properties=None, set_id="cib-bootstrap-options"):
    """
    Cluster properties: ``name`` = ``value``, or several at once with ``properties``.

    .. code-block:: yaml

        cluster-recheck-interval:
          crm.property_present:
            - value: 5min
    """
    values = dict(properties or {})
    if value is not None:
        values[name] = value
    return configured(name, [{"property": values, "set": set_id}])


def absent(name, ids=None):
    """
    The objects ``name`` (or ``ids``) absent, with the constraints that name them. A running
    resource is stopped by the cluster as it goes.

    .. code-block:: yaml

        p_old:
          crm.absent
    """
    outcome = __salt__["crm.delete"](ids or [name], test=__opts__["test"], cache_token=_token())
    if outcome["result"] and not outcome["changes"]:
        outcome["comment"] = "already absent"
    return _ret(name, outcome)


def purged(name, ids, timeout="120s"):
    """
    The objects ``ids`` (primitives, clones, groups, constraints, locations, alerts) absent,
    with the constraints that name them, removed in ONE CIB transaction once the resources among
    them are stopped (waited for up to ``timeout``). Secret files stay: ``crm_secrets.absent``
    after this removes them. ``test=True`` lists every object that would go and what the
    cluster would do.

    .. code-block:: yaml

        cinder_ha-clean-cluster-objects-absent:
          crm.purged:
            - ids: [l_p_cinder-api_secrets, c_p_cinder-api_with_ip, o_ip_before_p_cinder-api,
                    p_cinder-api, p_ip_cinder-api, cinder_ha_salt]
    """
    outcome = __salt__["crm.purge"](ids, test=__opts__["test"], cache_token=_token(), timeout=timeout)
    if outcome["result"] and not outcome["changes"]:
        outcome["comment"] = "already absent"
    return _ret(name, outcome)


def failures_cleared(name, node=None):
    """
    The failed actions of resource ``name`` (a primitive; its clone instances' too) on ``node``
    (this node by default) forgotten, so that the cluster tries it again: for a failure this run
    has just made moot (balanced mode's HAProxy failed to start before this node had its config
    file, or while the old mode's cinder-api still held the VIP's port here). Nothing is done
    when there is no such failure.

    .. code-block:: yaml

        haproxy failures here cleared:
          crm.failures_cleared:
            - name: p_haproxy-cinder-api
    """
    ret = {"name": name, "result": True, "changes": {}, "comment": ""}
    node = node or __salt__["crm.node_name"]()
    failed = sorted({f.get("op_key", "?") for f in __salt__["crm.failures"]()
                     # an op key is <resource>_<action>_<interval>
                     if f.get("node") == node and f.get("op_key", "").rsplit("_", 2)[0] == name})
    if not failed:
        ret["comment"] = f"{name} has no failed action on {node}"
        return ret
    if __opts__["test"]:
        ret.update(result=None, changes={"cleared": failed},
                   comment=f"{name}'s failed actions on {node} would be cleared: {', '.join(failed)}")
        return ret
    __salt__["crm.cleanup"](name, node=node)
    ret.update(changes={"cleared": failed}, comment=f"{name}'s failed actions on {node} cleared: {', '.join(failed)}")
    return ret
