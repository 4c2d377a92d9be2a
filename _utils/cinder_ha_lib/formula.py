"""The formula's cluster objects, built from the settings and the formula parameters. Pure logic.

``cluster_objects(settings, parameters)`` returns the list ``crm.configured`` takes:

- the VIP primitive (``ocf:heartbeat:IPaddr2``);
- the cinder-api primitive (``ocf:openstack:cinder-api``), its secret parameters named by
  pillar key (``{"pillar": "cinder_ha:agent:os_password"}``), never by value;
- the colocation and the order that keep the two together;
- the Pacemaker alert of the reactor path;
- with ``secret_mode: lrm`` and a password, the two location rules that keep both resources
  off nodes without the current secret.

With ``cluster:mode cloned`` the same two primitives (same ids, so a switch is one CIB
transaction), the cinder-api one wrapped in a clone (one warm instance per node, banned from
its node at its first failure) and the VIP placed with a running instance and ordered after
the clone (cluster.sls also keeps the VIP, unannounced, on every node's loopback).

``settings`` is what ``cinder_ha.settings`` returns (normalized, masked or not: no value of a
secret parameter is copied into the result); ``parameters`` are the formula's parameters
(``salt/cinder_ha/parameters/defaults.yaml`` merged with ``cinder_ha:lookup``).

``object_ids(settings, parameters)`` lists every id the formula may have created, what
``cinder_ha.clean`` removes (the secret rules included, whatever the secret mode).

``map_data(parameters, settings, minion_conf)`` is what ``cinder_ha.formula_map`` hands every
SLS as ``cinder_ha``: the parameters, the settings over them, and the values derived from both.
"""
import ipaddress
import posixpath

from cinder_ha_lib import haproxy, pillar, urls

# The cinder-api agent parameters the pillar may set (agent:<name>), in the agent's order.
AGENT_PARAMS = ("binary", "config", "user", "pid", "url", "keystone_get_token_url", "os_username", "os_password",
                "os_tenant_name", "os_auth_url", "os_project_name", "os_user_domain_name", "os_project_domain_name",
                "additional_parameters")
# The agents of cinder's RPC services: one file (cinder-service) under these names.
SERVICE_AGENTS = ("cinder-scheduler", "cinder-volume")
# Parameters stored as Pacemaker secrets, each named by the pillar key the crm module reads.
SECRET_PARAMS = {"os_password": "cinder_ha:agent:os_password"}


def constraint_ids(cluster):
    """(colocation id, order id) of the primitive and its VIP."""
    return f"c_{cluster['primitive_id']}_with_ip", f"o_ip_before_{cluster['primitive_id']}"


def secret_rule_ids(cluster):
    """The lrm secret location rules: (cinder-api's, the VIP's)."""
    return f"l_{cluster['primitive_id']}_secrets", f"l_{cluster['vip_id']}_secrets"


def agent_params(settings, parameters):
    """(params, secret_params): the cinder-api primitive's parameters, secrets as pillar refs."""
    agent = settings["agent"]
    params = {"binary": parameters["cinder_api_binary"], "user": parameters["cinder_user"]}
    for name in AGENT_PARAMS:
        if agent.get(name) is not None:
            params[name] = str(agent[name])
    secret_params = [name for name in SECRET_PARAMS if params.get(name)]
    for name in secret_params:
        params[name] = {"pillar": SECRET_PARAMS[name]}
    return params, secret_params


def lrm_secrets(settings, parameters):
    """True when the primitive has secret parameters kept in lrm secret files (and rules)."""
    return bool(agent_params(settings, parameters)[1]) and settings["agent"]["secret_mode"] == "lrm"


def _vip_primitive(settings, parameters):
    vip = settings["vip"]
    params = {"ip": vip["address"], "cidr_netmask": str(vip["netmask"])}
    if vip.get("nic"):
        params["nic"] = vip["nic"]
    return {"primitive": settings["cluster"]["vip_id"], "agent": "ocf:heartbeat:IPaddr2", "params": params,
            "ops": {"monitor": {"interval": str(parameters["vip_monitor_interval"]),
                                "timeout": str(parameters["vip_monitor_timeout"])}}}


def _api_primitive(settings, parameters):
    agent, cluster = settings["agent"], settings["cluster"]
    params, secret_params = agent_params(settings, parameters)
    # the one address a clone instance may put on its node's lo (the agent refuses any other);
    # declared in both modes, so a switch between them changes no parameter and restarts nothing
    params["vip"] = settings["vip"]["address"]
    obj = {"primitive": cluster["primitive_id"], "agent": "ocf:openstack:cinder-api", "params": params,
           "secret_params": secret_params, "secret_mode": agent["secret_mode"],
           "ops": {"monitor": {"interval": agent["monitor_interval"], "timeout": agent["monitor_timeout"]},
                   "start": {"timeout": agent["start_timeout"]},
                   "stop": {"timeout": agent["stop_timeout"]}}}
    if cluster.get("stickiness") is not None:
        obj["meta"] = {"resource-stickiness": str(cluster["stickiness"])}
    return obj


def _alert(settings, parameters):
    """start/stop/failure of the two resources -> spool -> cinder_ha_watch engine -> reactor."""
    cluster = settings["cluster"]
    return {"alert": parameters["alert_id"], "path": parameters["alert_agent"], "select": ["resources"],
            "attributes": {"cinder_ha_resources": f"{cluster['primitive_id']} {cluster['vip_id']}"},
            "recipient": parameters["alert_spool"]}


def _secret_rules(settings):
    """Nodes whose cinder_ha_secrets_<primitive> attribute is missing or not accepted (the digest of
    the current secrets, or during a rotation the one of a node where cinder-api runs): -INFINITY, and
    resource-discovery=never so they are not even probed (Pacemaker 2.1 applies a rule's
    discovery mode to the nodes the rule matches; a score alone still probes). The VIP gets the
    same ban, probes allowed (IPaddr2 needs no secret): otherwise, when no node is eligible,
    Pacemaker rolls the colocation back and starts the VIP alone."""
    cluster = settings["cluster"]
    api_rule, vip_rule = secret_rule_ids(cluster)
    return [{"location": api_rule, "resource": cluster["primitive_id"], "secrets_of": cluster["primitive_id"],
             "resource_discovery": "never"},
            {"location": vip_rule, "resource": cluster["vip_id"], "secrets_of": cluster["primitive_id"]}]


def cloned_constraint_ids(cluster):
    """(colocation id, order id) of the VIP and the clone (cluster:mode cloned)."""
    return (f"c_{cluster['vip_id']}_with_{cluster['clone_id']}",
            f"o_{cluster['clone_id']}_before_{cluster['vip_id']}")


def _api_clone(settings, parameters, migration_threshold):
    """(VIP, cinder-api primitive, its clone) of the clone modes: the same primitive ids as
    active_passive, the VIP's stickiness from cluster:vip_stickiness."""
    cluster = settings["cluster"]
    vip = _vip_primitive(settings, parameters)
    if cluster.get("vip_stickiness") is not None:
        vip["meta"] = {"resource-stickiness": str(cluster["vip_stickiness"])}
    api = _api_primitive(settings, parameters)
    # multiple-active=stop_unexpected: kept by the crm state when a switch back to
    # active_passive unwraps the clone, so the instance that stays is not restarted
    api["meta"] = {"migration-threshold": str(migration_threshold), "failure-timeout": cluster["failure_timeout"],
                   "multiple-active": "stop_unexpected"}
    clone_meta = {"clone-node-max": "1", "interleave": "true"}
    if cluster.get("clone_max") is not None:
        clone_meta["clone-max"] = str(cluster["clone_max"])
    return vip, api, {"clone": cluster["clone_id"], "resource": cluster["primitive_id"], "meta": clone_meta}


def _cloned_objects(settings, parameters):
    """cluster:mode cloned: cinder-api warm on every controller (an anonymous clone, one instance
    per node), the VIP placed with a running instance and started after the clone. An instance
    whose monitor fails is banned from its node at once (migration-threshold 1): the VIP moves
    to a warm instance instead of waiting for a local restart, and the instance comes back after
    failure-timeout. The same ids as active_passive for the primitives: a switch between the
    modes is one CIB transaction (the crm state wraps or unwraps the primitive, and drops the
    other mode's constraints)."""
    cluster = settings["cluster"]
    clone_id = cluster["clone_id"]
    colocation, order = cloned_constraint_ids(cluster)
    vip, api, clone = _api_clone(settings, parameters, migration_threshold=1)
    alert = _alert(settings, parameters)
    alert["attributes"]["cinder_ha_resources"] += f" {clone_id}"
    objects = [vip, api, clone,
               {"colocation": colocation, "score": "INFINITY", "resources": [cluster["vip_id"], clone_id]},
               {"order": order, "kind": "Mandatory", "first": clone_id, "then": cluster["vip_id"]},
               alert]
    if lrm_secrets(settings, parameters):
        rules = _secret_rules(settings)
        rules[0]["resource"] = clone_id  # a location on a clone's primitive is one on the clone
        objects += rules
    return objects


def haproxy_clone_id(parameters):
    return f"cl_{parameters['haproxy_id']}"


def balanced_constraint_ids(cluster, parameters):
    """(colocation, order) of the VIP and the HAProxy clone, and the order of the cinder-api
    clone before the HAProxy clone (cluster:mode balanced)."""
    haproxy = haproxy_clone_id(parameters)
    return (f"c_{cluster['vip_id']}_with_{haproxy}", f"o_{haproxy}_before_{cluster['vip_id']}",
            f"o_{pillar.default_clone_id(cluster)}_before_{haproxy}")


def haproxy_agent_params(parameters):
    """ocf:openstack:haproxy's parameters: pid file and master socket named (not derived from the
    instance's name), so that the formula's own reload finds the master Pacemaker started."""
    base = posixpath.join(parameters["pid_dir"], parameters["haproxy_id"])
    return {"binary": parameters["haproxy_binary"], "config": parameters["haproxy_config"],
            "pid": f"{base}.pid", "master_socket": f"{base}.master.sock",
            "runtime_socket": parameters["haproxy_runtime_socket"]}


def _balanced_objects(settings, parameters):
    """cluster:mode balanced: cinder-api on every controller, each on its node's own address (the
    same clone as cloned mode: a switch between the two changes the constraints, not the
    primitive), and HAProxy, a clone too, on every controller, sending the VIPs' requests to all
    of them. The VIP is placed with a running HAProxy (and started after it when both start): it
    no longer depends on any cinder-api instance (HAProxy's health checks take a failed one out
    of the pool). A failed cinder-api instance is restarted on its node up to three times
    (migration-threshold 3) before it is banned there for failure-timeout: no VIP has to move
    away from it any more."""
    cluster = settings["cluster"]
    clone_id, haproxy_id = cluster["clone_id"], parameters["haproxy_id"]
    colocation, order, api_first = balanced_constraint_ids(cluster, parameters)
    vip, api, clone = _api_clone(settings, parameters, migration_threshold=3)
    haproxy = {"primitive": haproxy_id, "agent": "ocf:openstack:haproxy", "params": haproxy_agent_params(parameters),
               "ops": {"monitor": {"interval": str(parameters["haproxy_monitor_interval"]),
                                   "timeout": str(parameters["haproxy_monitor_timeout"])},
                       # stop: a soft stop for half of it, the requests under way finished
                       "start": {"timeout": "30s"}, "stop": {"timeout": "60s"}},
               "meta": {"failure-timeout": cluster["failure_timeout"]}}
    haproxy_clone = {"clone": haproxy_clone_id(parameters), "resource": haproxy_id,
                     "meta": {"clone-node-max": "1", "interleave": "true"}}
    objects = [vip, api, clone, haproxy, haproxy_clone,
               # A finite score, above any stickiness the pillar allows in this mode: the VIP goes
               # where HAProxy runs, but stays where it is while HAProxy runs nowhere (in a switch
               # to balanced the old mode's cinder-api serves it until HAProxy runs elsewhere)
               # instead of stopping.
               {"colocation": colocation, "score": str(pillar.BALANCED_VIP_SCORE),
                "resources": [cluster["vip_id"], haproxy_clone["clone"]]},
               # Optional orders: followed when both start together (HAProxy once this node's
               # cinder-api answers, the VIP once HAProxy runs), but HAProxy starting where the
               # VIP already runs (a switch to balanced) does not restart the VIP.
               {"order": order, "kind": "Optional", "first": haproxy_clone["clone"], "then": cluster["vip_id"]},
               {"order": api_first, "kind": "Optional", "first": clone_id, "then": haproxy_clone["clone"]},
               _alert(settings, parameters)]
    objects[-1]["attributes"]["cinder_ha_resources"] += f" {clone_id}"
    if lrm_secrets(settings, parameters):
        api_rule = _secret_rules(settings)[0]  # the VIP needs no secret: it follows HAProxy
        api_rule["resource"] = clone_id
        objects.append(api_rule)
    return objects


def haproxy_config(settings, parameters):
    """cluster:mode balanced: the HAProxy config, the same on every controller (cinder_ha_lib.haproxy
    checks every value): the VIP, and the public VIP when it is another address, on the catalog's
    port, bound ``transparent`` (a node binds them before IPaddr2 puts them there); a server per
    node of cluster:nodes, on its address and the same port."""
    cluster, port = settings["cluster"], settings["port"]
    servers = [(node, address, port) for node, address in sorted(cluster["node_addresses"].items())]
    public = settings.get("public_vip")
    public_vip = public["address"] if public and public["address"] != settings["vip"]["address"] else None
    return haproxy.render_config(servers, settings["vip"]["address"], parameters["haproxy_runtime_socket"], port=port,
                                 public_vip=public_vip, user=parameters["haproxy_user"],
                                 state_file=parameters["haproxy_state_file"], transparent=True)


def peer_health_urls(settings, node):
    """cluster:mode balanced: the /healthcheck URL of every other controller's cinder-api, on its
    own address (what a restart of ``node``'s instance waits for: another one serving). Empty
    in the other modes."""
    cluster = settings["cluster"]
    if cluster.get("mode") != "balanced" or not cluster.get("node_addresses"):
        return []
    return [f"http://{urls.url_host(address)}:{settings['port']}/healthcheck"
            for name, address in sorted(cluster["node_addresses"].items()) if name != node]


def other_mode_ids(settings, parameters):
    """(constraints, resources): ids of objects only another cluster:mode creates that this
    one's declaration does not remove by itself (the crm state drops a clone that no longer holds
    its primitive, with its constraints): the cloned mode's VIP constraints when the cinder-api
    clone stays (balanced), balanced mode's HAProxy clone and its constraints in any other mode,
    the VIP's secret rule once the VIP needs no secret. The constraints go first, on their own:
    removed with the resources, HAProxy's would still tie the VIP to it while it is stopped
    (the VIP, and cinder-api after it, would stop too)."""
    cluster = settings["cluster"]
    mode = cluster.get("mode")
    constraints, resources = [], []
    named = dict(cluster, clone_id=pillar.default_clone_id(cluster))
    if mode != "cloned":
        constraints += cloned_constraint_ids(named)
    if mode != "balanced":
        constraints += balanced_constraint_ids(cluster, parameters)
        resources += [haproxy_clone_id(parameters), parameters["haproxy_id"]]
    else:
        constraints.append(secret_rule_ids(cluster)[1])
    return constraints, resources


def service_binary(parameters, settings, service):
    """cinder-scheduler / cinder-volume: installed beside cinder-api (the same package or venv)."""
    api = settings["agent"].get("binary") or parameters["cinder_api_binary"]
    return posixpath.join(posixpath.dirname(api), service)


def service_clone_id(primitive_id):
    return f"cl_{primitive_id}"


def _service_primitive(settings, parameters, service, primitive_id, agent):
    """A cinder service under ocf:openstack:<service> (the formula's cinder-service agent)."""
    params = {"binary": service_binary(parameters, settings, service),
              "config": settings["agent"].get("config") or settings["cinder_conf"]["path"],
              "user": settings["agent"].get("user") or parameters["cinder_user"]}
    return {"primitive": primitive_id, "agent": f"ocf:openstack:{service}", "params": params,
            "ops": {"monitor": {"interval": agent["monitor_interval"], "timeout": agent["monitor_timeout"]},
                    "start": {"timeout": agent["start_timeout"]},
                    "stop": {"timeout": agent["stop_timeout"]}}}


def _clone(primitive_id, settings):
    meta = {"clone-node-max": "1", "interleave": "true"}
    nodes = settings["cluster"].get("nodes")
    if nodes:
        meta["clone-max"] = str(len(nodes))
    return {"clone": service_clone_id(primitive_id), "resource": primitive_id, "meta": meta}


def service_objects(settings, parameters):
    """cinder-scheduler, a clone on every controller (stateless; cinder supports it active/active),
    and cinder-volume: one primitive (volume:mode active_passive: the same backend_host on every
    node, started on one; it stays where it runs when a node comes back, a move being an outage
    of the volume service) or a clone (active_active, the instances grouped under volume:cluster)."""
    objects = []
    scheduler, volume = settings.get("scheduler"), settings.get("volume")
    if scheduler:
        objects += [_service_primitive(settings, parameters, "cinder-scheduler", scheduler["primitive_id"],
                                       scheduler["agent"]),
                    _clone(scheduler["primitive_id"], settings)]
    if volume:
        primitive = _service_primitive(settings, parameters, "cinder-volume", volume["primitive_id"],
                                       volume["agent"])
        objects.append(primitive)
        if volume["mode"] == "active_active":
            objects.append(_clone(volume["primitive_id"], settings))
        else:
            primitive["meta"] = {"resource-stickiness": "100"}
    return objects


def service_object_ids(settings):
    """Ids of the scheduler and volume objects (clones before their primitive), for clean."""
    ids = []
    for part in (settings.get("scheduler"), settings.get("volume")):
        if part:
            ids += [service_clone_id(part["primitive_id"]), part["primitive_id"]]
    return ids


def cluster_objects(settings, parameters):
    """The objects ``crm.configured`` keeps in the CIB, in one transaction (see the module doc)."""
    return _api_objects(settings, parameters) + service_objects(settings, parameters)


def _api_objects(settings, parameters):
    cluster = settings["cluster"]
    if cluster.get("mode") == "cloned":
        return _cloned_objects(settings, parameters)
    if cluster.get("mode") == "balanced":
        return _balanced_objects(settings, parameters)
    colocation, order = constraint_ids(cluster)
    # active_passive (the guide's): one primitive behind its VIP
    resources = [_vip_primitive(settings, parameters), _api_primitive(settings, parameters)]
    constraints = [
        {"colocation": colocation, "score": "INFINITY", "resources": [cluster["primitive_id"], cluster["vip_id"]]},
        {"order": order, "kind": "Mandatory", "first": cluster["vip_id"], "then": cluster["primitive_id"]},
    ]
    objects = resources + constraints + [_alert(settings, parameters)]
    if lrm_secrets(settings, parameters):
        objects += _secret_rules(settings)
    return objects


def object_ids(settings, parameters):
    """Every CIB object id the formula may have created for these settings: constraints and
    rules first (the schema refuses to delete a resource a constraint still names), then the
    resources, then the alert. The secret rules are listed whatever the secret mode: an earlier
    lrm setup may have left them."""
    cluster = settings["cluster"]
    cloned = []
    if cluster.get("mode") in pillar.CLONE_MODES:  # the clone goes before the primitive it holds
        cloned = [*cloned_constraint_ids(cluster), cluster["clone_id"]]
    # balanced mode's HAProxy, whatever the mode now (an earlier balanced setup may have left it)
    haproxy = [*balanced_constraint_ids(cluster, parameters), haproxy_clone_id(parameters), parameters["haproxy_id"]]
    return [*secret_rule_ids(cluster), *constraint_ids(cluster), *cloned, *haproxy, cluster["primitive_id"],
            cluster["vip_id"], parameters["alert_id"], *service_object_ids(settings)]


def catalog_services(settings):
    """{service type: Keystone service name}: ``block-storage`` keeps the pillar's name, the
    legacy ``volumev3`` type gets it with a ``v3`` suffix (catalog.sls, clean/catalog.sls)."""
    endpoints = settings["endpoints"]
    return {service_type: endpoints["service_name"] + ("" if service_type == "block-storage" else "v3")
            for service_type in endpoints["service_types"]}


def map_data(parameters, settings, minion_conf):
    """The formula map's ``cinder_ha``, later layers winning (template-formula's layering): the
    formula's parameters (defaults.yaml, the OS family's file, ``cinder_ha:lookup``), then the
    normalized pillar, then what is derived from them: ``catalog_services``,
    ``engine_conf_path`` (the engine's minion config, in minion.d beside ``minion_conf``, this
    minion's own config file), ``clone_id`` (the clone cluster:mode cloned uses, named or
    ``cl_<primitive_id>``: also what a switch back to active_passive removes) and
    ``vip_is_loopback`` (a loopback VIP, or one on ``lo``, as in the one-machine sandbox:
    IPaddr2 alone handles it and the cloned mode's loopback setup does not apply)."""
    data = dict(parameters)
    data.update(settings)
    data["catalog_services"] = catalog_services(settings)
    data["service_agents"] = list(SERVICE_AGENTS)
    data["service_binaries"] = {service: service_binary(parameters, settings, service) for service in SERVICE_AGENTS}
    data["engine_conf_path"] = posixpath.join(posixpath.dirname(minion_conf), "minion.d", parameters["engine_conf"])
    cluster, vip = settings["cluster"], settings["vip"]
    data["clone_id"] = pillar.default_clone_id(cluster)
    data["haproxy_params"] = haproxy_agent_params(parameters)
    data["other_mode_ids"] = other_mode_ids(settings, parameters)
    data["vip_is_loopback"] = vip.get("nic") == "lo" or ipaddress.ip_address(vip["address"]).is_loopback
    return data
