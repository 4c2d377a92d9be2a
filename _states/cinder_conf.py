"""
cinder.conf with the keys of a highly available cinder-api, on today's option names.

.. code-block:: yaml

    cinder.conf managed:
      cinder_conf.managed:
        - name: /etc/cinder/cinder.conf
        # options: {section: {key: value}}   # optional; default: built from the cinder_ha pillar
        - binary: /usr/bin/cinder-api         # optional: check its Python can load the DB driver
        - pid_file: /run/resource-agents/p_cinder-api.pid  # optional: names the copy to restore from
        # create: true                        # only a brand-new install: create a missing file

The state reports a change only when the configuration cinder reads changed (a comment or
formatting difference is not a change). Whether the running cinder-api needs a restart is a
question for ``cinder_ha.restarted_through_cluster``: it compares the file with what the
process started with, so a drift undone here never restarts it.
"""

__virtualname__ = "cinder_conf"


def __virtual__():
    if "cinder_conf.check" in __salt__:
        return __virtualname__
    return (False, "cinder_conf/cinder_ha execution modules not loaded")


def _bullets(lines):
    return "\n  - " + "\n  - ".join(lines) if lines else ""


def managed(name, options=None, binary=None, create=False, pid_file=None):
    """
    Make ``name`` (a cinder.conf) carry the formula's keys: ``[database] connection``,
    ``[DEFAULT] osapi_volume_listen`` (the VIP) and ``osapi_volume_listen_port``,
    ``[DEFAULT] transport_url``, ``[oslo_messaging_notifications] driver`` (+ ``transport_url``,
    ``topics``) and ``cinder_ha:cinder_conf:extra``. The HA guide's names found in the file
    (``sql_connection``, ``rabbit_*``, ``notifier_strategy``, ``notification_driver``) are
    migrated and removed: cinder silently ignores them today. Values are written literally.
    Comments, key order, unrelated and repeated keys, owner, group, mode, ACLs and extended
    attributes (the SELinux label) are kept, except world permission bits, which are removed
    (the file holds passwords); the write is atomic. A symbolic link or anything but a regular
    file is refused. Secrets are masked in changes and comments.

    A missing file fails the state (nothing is written, nothing restarted): the formula's keys
    alone make no working cinder.conf. The comment says how to restore it (the running
    cinder-api's private copy, with ``pid_file``).

    name
        Path of cinder.conf.
    options
        ``{section: {key: value}}`` to manage instead of the pillar's (a list value is a
        multi-valued option).
    binary
        The cinder-api program. When given and the file is to change, the state fails before
        writing anything if the Python on its ``#!`` line cannot import the driver of the
        ``[database] connection`` URL (a pip installed cinder has no PyMySQL for ``mysql+pymysql://``). Skipped, with
        a note, when the program is missing or not a Python script.
    create
        Create a missing file from the managed keys alone (0640 root:cinder): only for a
        brand-new install (pillar ``cinder_ha:cinder_conf:create``). Default False.
    pid_file
        The agent's pid file: a missing file's message then names the copy of the file the
        running cinder-api started with (``<pid_file>.conf``).

    .. code-block:: yaml

        cinder.conf managed:
          cinder_conf.managed:
            - name: /etc/cinder/cinder.conf
            - binary: /usr/bin/cinder-api

        cinder-api restarted through the cluster if its configuration changed:
          cinder_ha.restarted_through_cluster:
            - name: p_cinder-api
            - config: /etc/cinder/cinder.conf
            - require:
              - cinder_conf: cinder.conf managed
    """
    ret = {"name": name, "result": True, "changes": {}, "comment": ""}
    report = __salt__["cinder_conf.check"](name, options, create=create, pid_file=pid_file)
    if report["errors"]:
        ret["result"] = False
        ret["comment"] = f"{name} left unchanged; fix these first:" + _bullets(report["errors"])
        return ret
    driver = ""
    # Only before a write: an unchanged file is what cinder-api already runs with, and the
    # check starts cinder's Python (the largest cost of a no-op run).
    if binary and report["changed"]:
        checked = __salt__["cinder_conf.driver_check"](name, binary, options)
        if checked["ok"] is False:
            ret["result"] = False
            ret["comment"] = f"{name} left unchanged: {checked['comment']}"
            return ret
        driver = f"\n{checked['comment']}"
    migrated = ("\nMigrated from the HA guide's option names:" + _bullets(report["migrations"])
                if report["migrations"] else "")
    mode = report.get("mode")  # world bits to remove, or None
    world = (f"\nWorld permission bits {'would be ' if __opts__['test'] else ''}removed (cinder.conf holds "
             f"passwords): {mode['old']} -> {mode['new']}." if mode else "")
    if not report["changed"] and not mode:
        if not __opts__["test"]:
            __salt__["cinder_conf.record_digest"](name, report["digest"])
        ret["comment"] = f"{name} already has the desired configuration.{driver}"
        return ret
    if not report["changed"]:  # the permissions only
        ret["changes"] = {"mode": mode}
        if __opts__["test"]:
            ret["result"] = None
        else:
            try:
                __salt__["cinder_conf.apply"](name, options, expected_digest=report["digest"], create=create)
            except Exception as exc:  # pylint: disable=broad-except  # CommandExecutionError: masked
                return dict(ret, result=False, changes={}, comment=str(exc))
        ret["comment"] = f"{name} already has the desired configuration.{world}{driver}"
        return ret
    ret["changes"] = dict(report["changes"])
    ret["changes"]["diff"] = report["diff"]
    if mode:
        ret["changes"]["mode"] = mode
    if __opts__["test"]:
        ret["result"] = None
        ret["comment"] = f"{name} would be updated ({len(report['changes'])} options).{world}{migrated}{driver}"
        return ret
    try:
        done = __salt__["cinder_conf.apply"](name, options, expected_digest=report["digest"], create=create)
    except Exception as exc:  # CommandExecutionError from apply: masked, lists every problem
        ret["changes"] = {}
        ret["result"] = False
        ret["comment"] = str(exc)
        return ret
    if not done.get("changed"):
        ret["changes"] = {}
        ret["comment"] = f"{name} already has the desired configuration (written meanwhile by another run).{driver}"
        return ret
    ret["changes"] = dict(done["changes"])
    ret["changes"]["diff"] = done.get("diff", "")
    if mode:
        ret["changes"]["mode"] = mode
    ret["comment"] = f"{name} updated ({len(done['changes'])} options).{world}{migrated}{driver}"
    return ret
