"""
States of the cinder-ha formula itself.

.. code-block:: yaml

    cinder_ha pillar is valid:
      cinder_ha.pillar_valid
"""

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
        ret["comment"] += "\nMigrated from the HA guide's names:\n  - " + "\n  - ".join(check["warnings"])
    return ret
