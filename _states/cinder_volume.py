"""
States for cinder's volume service under the cluster.

.. code-block:: yaml

    placement of the volumes recorded:
      cinder_volume.placement_recorded:
        - name: /etc/cinder/cinder.conf
        - require_in:
          - cinder_conf: cinder.conf managed

    volumes and rows of the old placement moved:
      cinder_volume.placement_moved:
        - name: /etc/cinder/cinder.conf
        - require:
          - cinder_ha: cinder-volume restarted through the cluster

    scheduler and volume services up:
      cinder_volume.services_up:
        - name: /etc/cinder/cinder.conf
        - timeout: 120

    cinder backends usable before cinder.conf is written:
      cinder_volume.backends_usable:
        - name: /etc/cinder/cinder.conf
        - binary: /usr/bin/cinder-volume
        - require_in:
          - cinder_conf: cinder.conf managed
"""
from salt.exceptions import CommandExecutionError

__virtualname__ = "cinder_volume"


def __virtual__():
    if "cinder_volume.check_backends" in __salt__:
        return __virtualname__
    return (False, "the cinder_volume execution module is not loaded")


def backends_usable(name, binary=None):
    """
    Refuse the pillar's ``volume`` settings before cinder.conf (``name``) is written when
    cinder's own Python says they cannot work (``cinder_volume.check_backends``): a driver
    class that does not import, ``active_active`` with a driver that does not declare
    ``SUPPORTS_ACTIVE_ACTIVE`` (named), a cluster name equal to a host, a lock manager that
    does not answer. Checked only when the file would change (or under ``test=True``): a
    no-op run starts no Python of cinder's. Make ``cinder_conf.managed`` require it, so that a
    refusal writes nothing.

    name
        The cinder.conf the settings go to.
    binary
        cinder-volume, whose ``#!`` line names cinder's Python.
    """
    ret = {"name": name, "result": True, "changes": {}, "comment": ""}
    if not __salt__["cinder_ha.settings"]().get("volume"):
        ret["comment"] = "No volume service in the pillar: nothing to check."
        return ret
    if not __opts__["test"] and not __salt__["cinder_conf.check"](name)["changed"]:
        ret["comment"] = f"{name} already holds the volume settings: not checked again."
        return ret
    try:
        found = __salt__["cinder_volume.check_backends"](binary=binary)
    except CommandExecutionError as exc:
        ret["result"] = False
        ret["comment"] = f"The volume settings could not be checked in cinder's Python: {exc}. Nothing was written."
        return ret
    if not found["ok"]:
        ret["result"] = False
        ret["comment"] = ("The volume settings cannot work, nothing was written:\n- "
                          + "\n- ".join(found["problems"]))
        return ret
    drivers = ", ".join(f"{name_}: {d['driver']}" for name_, d in found["drivers"].items())
    ret["comment"] = f"cinder's Python loads every backend's driver ({drivers})"
    if found.get("coordination"):
        ret["comment"] += f"; the lock manager {found['coordination']['url']} answers"
    ret["comment"] += "."
    return ret


def placement_recorded(name):
    """
    Before cinder.conf (``name``) is written: remember, per backend, the placement (host or
    cluster) its cinder-volume rows and volumes are filed under when the pillar changes it (a
    volume:mode switch, a new backend_host or cluster, the old HA guide's shared ``[DEFAULT]
    host`` removed), so that ``placement_moved`` moves them after the restart. Warns on the
    shared host, which cinder's HA document calls highly discouraged.
    """
    ret = {"name": name, "result": True, "changes": {}, "comment": ""}
    if not __salt__["cinder_ha.settings"]().get("volume"):
        ret["comment"] = "No volume service in the pillar: no placement to record."
        return ret
    host = __salt__["cinder_volume.shared_host"](name)
    changes = __salt__["cinder_volume.record_placement_change"](name, test=__opts__["test"])
    if host:
        ret["warnings"] = [f"[DEFAULT] host = {host} in {name} is the old HA guide's shared host, which cinder's "
                           "HA document calls highly discouraged: it is removed, cinder-volume runs under "
                           "volume:backend_host (active_passive) or volume:cluster (active_active), and the "
                           f"volumes and service rows of {host} are moved after the restart."]
    if not changes:
        ret["comment"] = "Every backend keeps its placement: nothing to move."
        return ret
    moves = ", ".join(f"{c['from'][1]} -> {c['to'][1]}" for c in changes.values())
    ret["comment"] = f"Placement changes in this run ({moves}): recorded, moved after the restart."
    return ret


def placement_moved(name, binary=None):
    """
    After cinder-volume runs in its new placement (require its restart and, on the controller,
    the cluster objects): the volumes of the recorded old placement move to the new one and
    its service rows go (``cinder_volume.move_placement``). No change when nothing was
    recorded.
    """
    ret = {"name": name, "result": True, "changes": {}, "comment": ""}
    try:
        found = __salt__["cinder_volume.move_placement"](config=name, binary=binary, test=__opts__["test"])
    except CommandExecutionError as exc:
        ret["result"] = False
        ret["comment"] = f"The placement change could not be completed: {exc}. The next apply tries again."
        return ret
    if not found["changes"]:
        ret["comment"] = "No placement change to complete."
        return ret
    ret["changes"] = {key: found[key] for key in ("moved", "removed") if found[key]}
    if __opts__["test"]:
        ret["result"] = None
        ret["comment"] = "The volumes and service rows of the old placement would be moved."
        return ret
    if found["creating"]:
        ret.setdefault("warnings", []).append(
            f"Volumes in creating under the old placement: {', '.join(found['creating'])}; a create the old "
            "service never took stays there (reset its state and delete it).")
    if found["problems"]:
        ret["result"] = False
        ret["comment"] = ("The placement change was partly completed: " + "; ".join(found["problems"])
                          + ". The next apply tries again.")
        return ret
    ret["comment"] = "The volumes and service rows of the old placement were moved."
    return ret


def services_up(name, timeout=120):
    """
    Block Storage ready to take creates: wait, up to ``timeout`` seconds, until the cluster
    runs the scheduler and cinder-volume resources and cinder's own services table shows an up
    cinder-scheduler (when the pillar runs one) and an up cinder-volume of every backend's
    placement (``cinder_volume.wait_services_up``). The cluster starts these services before
    their first heartbeat, and a service stopped moments ago still counts as up in the table;
    without this wait, a create right after the apply can end in error (no valid backend).
    Changes nothing; fails, naming what is missing, when they are not up in time.

    name
        The cinder.conf whose database holds the services table.

    .. code-block:: yaml

        scheduler and volume services up:
          cinder_volume.services_up:
            - name: /etc/cinder/cinder.conf
            - timeout: 120
    """
    ret = {"name": name, "result": True, "changes": {}, "comment": ""}
    if not __salt__["cinder_ha.settings"]().get("volume"):
        ret["comment"] = "No volume service in the pillar: nothing to wait for."
        return ret
    if __opts__["test"]:
        ret["comment"] = "cinder's services table would be read until the scheduler and volume services are up."
        return ret
    try:
        found = __salt__["cinder_volume.wait_services_up"](config=name, timeout=timeout)
    except CommandExecutionError as exc:
        ret["result"] = False
        ret["comment"] = f"cinder's services table could not be read: {exc}"
        return ret
    if not found["ready"]:
        ret["result"] = False
        ret["comment"] = (f"Block Storage cannot take creates {found['waited']} s after the apply: "
                          + "; ".join(found["missing"])
                          + ". See cinder_ha.status and the services' logs.")
        return ret
    ret["comment"] = (f"cinder-scheduler and cinder-volume run in the cluster and are up in cinder's services "
                      f"table (waited {found['waited']} s).")
    return ret
