"""
States of the cinder-ha formula itself.

.. code-block:: yaml

    cinder_ha pillar is valid:
      cinder_ha.pillar_valid
"""

import time

from salt.exceptions import CommandExecutionError

__virtualname__ = "cinder_ha"


def __virtual__():
    if "cinder_ha.validate" in __salt__:
        return __virtualname__
    return (False, "cinder_ha execution module not loaded")


def pillar_valid(name, pillar=None):
    """
    Fail, listing every problem, when the ``cinder_ha`` pillar is invalid. Make every
    other state of the formula require this one so that nothing changes on bad input.
    Migrated legacy names (the HA guide's) are reported as warnings.

    name
        Any label.
    pillar
        The pillar to check (default: ``cinder_ha`` from the minion's pillar).
    """
    ret = {"name": name, "result": True, "changes": {}, "comment": ""}
    check = __salt__["cinder_ha.validate"](pillar)
    if check["errors"]:
        ret["result"] = False
        ret["comment"] = "The cinder_ha pillar is invalid; nothing was changed:\n  - " + "\n  - ".join(check["errors"])
        return ret
    ret["comment"] = "The cinder_ha pillar is valid."
    if check["warnings"]:
        ret["warnings"] = check["warnings"]
        ret["comment"] += "\nWarnings (the HA guide's names are migrated):\n  - " + "\n  - ".join(check["warnings"])
    return ret


# Switches between the two clone modes that cost an outage: each changes where every instance
# listens at once (measured, balanced -> cloned: ~20 s without a listener on the VIP)
THROUGH_ACTIVE_PASSIVE = {("balanced", "cloned"), ("cloned", "balanced")}


def mode_switch_supported(name):
    """
    Fail, changing nothing, when ``name`` (the pillar's cluster:mode) would switch straight
    between cloned and balanced: every instance would move off (or onto) the VIP at once, and
    the VIP would have no listener meanwhile. Such a switch goes through active_passive (two
    applies). Any other switch, a first build, or a node where the CIB cannot be read, passes.

    .. code-block:: yaml

        cinder_ha-validate-mode-switch-supported:
          cinder_ha.mode_switch_supported:
            - name: balanced
    """
    ret = {"name": name, "result": True, "changes": {}, "comment": ""}
    now = __salt__["cinder_ha.cib_mode"]()
    if (now, name) in THROUGH_ACTIVE_PASSIVE:
        ret["result"] = False
        ret["comment"] = (f"cluster:mode {name}: the cluster runs in {now} mode, and a straight switch between "
                          "cloned and balanced moves every cinder-api instance off (or onto) the VIP at once, "
                          "leaving it without a listener meanwhile: set cluster:mode active_passive, apply, then "
                          f"{name} and apply again. Nothing was changed.")
        return ret
    ret["comment"] = f"cluster:mode {name} (the CIB holds {now or 'no cinder-ha mode yet'})."
    return ret


def _a_peer_answers(peers, timeout):
    """Whether one of ``peers`` (URLs) answers 200 within ``timeout`` seconds."""
    deadline = time.monotonic() + float(timeout)
    while True:
        if any(__salt__["cinder_ha.http_probe"](url, timeout=2).get("status") == 200 for url in peers):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.5)


def _nodes_of(rsc):
    try:
        return __salt__["crm.locate"](rsc)
    except CommandExecutionError:  # not in the CIB (yet)
        return []


def _vip_needs_to_move(here, vip_id, haproxy_id, timeout):
    """The VIP is on this node, where no HAProxy runs (it cannot bind the port the restarting
    cinder-api holds): True once HAProxy runs on another node, within ``timeout`` s (False:
    nowhere better for the VIP)."""
    if here in _nodes_of(haproxy_id) or here not in _nodes_of(vip_id):
        return False
    deadline = time.monotonic() + float(timeout)
    while not [node for node in _nodes_of(haproxy_id) if node != here]:
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.5)
    return True


def restarted_through_cluster(name, config="/etc/cinder/cinder.conf", pid_file=None, timeout=120, correction=False,
                              reads_backends=True, cloned=None, after_absent=None, peers=None, vip_id=None,
                              haproxy_id=None):
    """
    Restart the cluster resource ``name`` (cinder-api) through Pacemaker, on the node where it
    runs, exactly when the process needs it: when what cinder would read from ``config`` now
    differs from what the running process started with (the agent's start record and private
    copy of the config next to its pid file; comments and key order are no difference). For a
    process started by an older agent (no record) the test is "``config`` was modified after
    the process started". cinder-api is the cluster's process, so it is never restarted with
    ``service.running``. On a node where the resource does not run nothing happens: it reads
    the file whenever the cluster starts it there.

    Meant to run on every apply, after the cinder.conf state (``require``, not ``onchanges``):
    a drift undone in the same run restarts nothing, and a restart that failed before is
    retried. ``test=True`` says whether it would restart and why. A ``config`` that is missing
    or cannot be read never restarts it.

    In the reactor's correction run (``correction: True``) only a difference in a key the
    formula manages restarts it: an operator's edit of any other key is reported ("restart
    pending", also in ``cinder_ha.status``) and takes effect at the next explicit apply, so an
    operator decides when their own change reaches cinder-api.

    name
        The resource id (``p_cinder-api``).
    config
        The cinder.conf the resource runs with (the agent's ``config`` parameter).
    pid_file
        The agent's pid file (its ``pid`` parameter); default
        ``/run/resource-agents/<name>.pid``, the agent's own default.
    timeout
        Seconds to wait for the cluster to settle after the restart.
    correction
        The run corrects an outside edit (the reactor's, pillar ``cinder_ha_run:reason: drift``):
        restart only for the formula's own keys.
    reads_backends
        False for cinder-api and cinder-scheduler: a change in a backend section (only
        cinder-volume reads them) restarts neither.
    cloned
        On a node that is not the controller: the shape the controller's apply gives the
        resource (``crm.restart``'s ``cloned``), so a restart during a mode switch waits for it.
    after_absent
        On a node that is not the controller: ids the controller's apply removes (``crm.restart``'s
        ``after_absent``; balanced mode's HAProxy when the mode changes away from it).
    peers
        cluster:mode balanced: the /healthcheck URLs of the other controllers' cinder-api. The
        restart waits (up to ``timeout``) until one of them answers 200, so that HAProxy has
        another instance to send requests to while this one restarts (in a switch to balanced
        the other instances are still starting); if none does, it restarts anyway and says so.
    vip_id, haproxy_id
        cluster:mode balanced: when the VIP is here but this node's HAProxy (an instance of
        ``haproxy_id``) does not run, as in a switch to balanced, where it cannot bind the VIP's
        port until this very restart frees it, the restart waits (up to ``timeout``) for HAProxy
        to run on another node and moves the VIP there first.

    .. code-block:: yaml

        cinder-api restarted through the cluster if its configuration changed:
          cinder_ha.restarted_through_cluster:
            - name: p_cinder-api
            - config: /etc/cinder/cinder.conf
            - require:
              - cinder_conf: cinder.conf managed
    """
    ret = {"name": name, "result": True, "changes": {}, "comment": ""}
    pid_file = pid_file or f"/run/resource-agents/{name}.pid"
    # In a state run, the cluster as this run already read it (crm.role while the formula rendered): no second
    # crm_mon for a no-op. A change made through the crm module since then drops that read.
    reuse = bool(globals().get("__instance_id__"))
    here = __salt__["crm.node_name"](reuse=reuse)
    try:
        running_on = __salt__["crm.locate"](name, reuse=reuse)
    except CommandExecutionError:
        running_on = []  # not declared yet (first run): nothing runs the old configuration
    if here not in running_on:
        where = ", ".join(running_on) or "no node"
        ret["comment"] = (f"{name} runs on {where}, not on this node ({here}): no restart needed, "
                          "it reads the configuration in force when the cluster starts it here.")
        return ret
    # test=True: the cinder.conf state did not write, so compare with what it would write
    decision = __salt__["cinder_conf.restart_needed"](config, pid_file, planned=bool(__opts__["test"]),
                                                      reads_backends=reads_backends)
    if not decision["needed"]:
        ret["comment"] = f"{name} on {here}: no restart needed: {decision['reason']}."
        return ret
    if correction:
        managed = decision.get("managed_changes") if decision["basis"] == "start record" else None
        if not managed:
            keys = ", ".join(decision["changes"]) or "which keys cannot be told: " + decision["reason"]
            ret["comment"] = (f"{name} on {here}: cinder.conf differs from what cinder-api runs with: restart pending "
                              f"({keys}). This run corrects an outside edit and restarts cinder-api only for a key the "
                              "formula manages: the next explicit state.apply cinder_ha restarts it.")
            return ret
    why = {"basis": decision["basis"], "pid": decision["pid"]}
    if decision["changes"]:
        why["changed"] = decision["changes"]
    if __opts__["test"]:
        ret["result"] = None
        ret["changes"] = dict(why, restart=name, node=here)
        ret["comment"] = f"{name} would be restarted through the cluster on {here}: {decision['reason']}."
        return ret
    alone = peers and not _a_peer_answers(peers, timeout)
    move_first = [vip_id] if vip_id and haproxy_id and _vip_needs_to_move(here, vip_id, haproxy_id, timeout) else None
    try:
        done = __salt__["crm.restart"](name, wait=True, timeout=f"{int(timeout)}s", cloned=cloned, only_here=True,
                                      after_absent=after_absent, move_first=move_first)
    except CommandExecutionError as exc:
        ret["result"] = False
        ret["comment"] = (f"{name} runs on {here} with an outdated configuration ({decision['reason']}), and the "
                          f"restart through the cluster failed: {exc}. The next apply retries it.")
        return ret
    if done.get("restarted") is None:  # a mode switch stopped this node's instance meanwhile
        ret["comment"] = (f"{name} no longer runs on {here} (the cluster stopped this node's instance in a mode "
                          "switch): no restart needed, it reads the configuration in force when the cluster starts "
                          "it here.")
        return ret
    ret["changes"] = dict(why, restarted=name, node=here)
    ret["comment"] = f"{name} restarted through the cluster on {here}: {decision['reason']}."
    if alone:
        ret["comment"] += (f" No other cinder-api answered within {int(timeout)} s ({', '.join(peers)}): requests "
                           "failed while it restarted.")
    return ret


def api_answers(name="block-storage", region=None, interface="public", timeout=90):
    """
    Check what a client that knows only Keystone gets: look ``name`` (a service type) up
    in the token's catalog and wait, up to ``timeout`` seconds, until the URL it names
    answers (the cluster may still be starting cinder-api). Changes nothing.

    .. code-block:: yaml

        block storage API answers through the catalog:
          cinder_ha.api_answers:
            - name: block-storage
            - region: RegionOne
            - timeout: 90
    """
    ret = {"name": name, "result": True, "changes": {}, "comment": ""}
    if __opts__["test"]:
        ret["comment"] = f"The {interface} {name} URL from the Keystone catalog would be probed."
        return ret
    answer = __salt__["cinder_ha.probe_catalog"](name, region=region, interface=interface, timeout=timeout)
    ret["result"] = answer["answers"]
    ret["comment"] = answer["comment"]
    return ret


def loopback_vip(name, present=True, clone_id=None, primitive_id=None, vip_id=None):
    """
    Cloned mode's real-server setup: the VIP ``name`` on ``lo`` of every node, never
    announced in ARP (``arp_ignore=1``, ``arp_announce=2``), so each instance can bind it and
    a node the VIP just left still answers what reaches it. ``present: False`` takes it off
    (after a switch back to active_passive), once the clone ``clone_id`` has left the CIB and
    the cluster has stopped this node's instance of ``primitive_id`` (unless ``vip_id`` runs here).
    The runtime values only: make the sysctls permanent in the host's configuration.

    .. code-block:: yaml

        cinder_ha-cluster-vip-on-loopback:
          cinder_ha.loopback_vip:
            - name: 198.18.0.10
            - present: true
    """
    ret = {"name": name, "result": True, "changes": {}, "comment": ""}
    try:
        now = __salt__["cinder_ha.loopback_vip"](name)
    except CommandExecutionError as exc:
        ret["result"] = False
        ret["comment"] = str(exc)
        return ret
    wanted = {"on_loopback": bool(present)}
    if present:
        wanted["arp_silent"] = True
    differs = {key: {"old": now[key], "new": value} for key, value in wanted.items() if now[key] != value}
    if not differs:
        ret["comment"] = f"{name} is {'on' if present else 'not on'} lo{' with ARP silent' if present else ''}."
        return ret
    if __opts__["test"]:
        ret["result"] = None
        ret["changes"] = differs
        ret["comment"] = f"{name} would be {'put on' if present else 'taken off'} lo."
        return ret
    try:
        after = __salt__["cinder_ha.set_loopback_vip"](name, present=present, clone_id=clone_id,
                                                        primitive_id=primitive_id, vip_id=vip_id)
    except CommandExecutionError as exc:
        ret["result"] = False
        ret["comment"] = str(exc)
        return ret
    ret["changes"] = differs
    ret["result"] = all(after[key] == value for key, value in wanted.items())
    ret["comment"] = f"{name} {'put on' if present else 'taken off'} lo." if ret["result"] else \
        f"{name}: lo still not as wanted: {after}"
    return ret
