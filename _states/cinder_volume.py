"""
States for cinder's volume service under the cluster.

.. code-block:: yaml

    the old shared host recorded:
      cinder_volume.shared_host_recorded:
        - name: /etc/cinder/cinder.conf
        - require_in:
          - cinder_conf: cinder.conf managed

    volumes of the old shared host moved:
      cinder_volume.shared_host_moved:
        - name: /etc/cinder/cinder.conf
        - require:
          - cinder_ha: cinder-volume restarted through the cluster

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


def shared_host_recorded(name):
    """
    Before cinder.conf (``name``) is written: remember the ``[DEFAULT] host`` it shares between
    every node (the old HA guide's way), which the formula removes when pillar ``volume`` is
    set, so that ``shared_host_moved`` can move the volumes created under it. Warns.
    """
    ret = {"name": name, "result": True, "changes": {}, "comment": ""}
    if not __salt__["cinder_ha.settings"]().get("volume"):
        ret["comment"] = "No volume service in the pillar: [DEFAULT] host is left as it is."
        return ret
    host = __salt__["cinder_volume.record_shared_host"](name, test=__opts__["test"])
    if not host:
        ret["comment"] = f"{name} sets no [DEFAULT] host: nothing to migrate."
        return ret
    ret["warnings"] = [f"[DEFAULT] host = {host} in {name} is the old HA guide's shared host, which cinder's HA "
                       "document calls highly discouraged: it is removed, cinder-volume runs under "
                       "volume:backend_host (active_passive) or volume:cluster (active_active), and the volumes "
                       f"and service rows of {host} are moved after the restart."]
    ret["comment"] = f"The shared host {host} is migrated in this run."
    return ret


def shared_host_moved(name, binary=None):
    """
    After cinder-volume runs under its new host: the volumes of the old shared host move to
    ``backend_host@backend`` and the old service rows go (``cinder_volume.move_shared_host``).
    Nothing to do (and no change) when no shared host was recorded.
    """
    ret = {"name": name, "result": True, "changes": {}, "comment": ""}
    found = __salt__["cinder_volume.move_shared_host"](config=name, binary=binary, test=__opts__["test"])
    if not found["host"]:
        ret["comment"] = "No shared host to migrate."
        return ret
    changes = {key: found[key] for key in ("moved", "removed") if found[key]}
    if __opts__["test"]:
        ret["result"] = None
        ret["changes"] = changes
        ret["comment"] = f"The volumes and service rows of the shared host {found['host']} would be moved."
        return ret
    ret["changes"] = changes
    if found["problems"]:
        ret["result"] = False
        ret["comment"] = (f"The shared host {found['host']} was partly migrated: " + "; ".join(found["problems"])
                          + ". The next apply tries again.")
        return ret
    ret["comment"] = f"The volumes and service rows of the shared host {found['host']} were moved."
    return ret
