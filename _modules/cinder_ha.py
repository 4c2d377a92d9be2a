"""
Operator functions for the cinder-ha formula: pillar validation (and, from the formula
issue on, status of the highly available cinder-api).

CLI Example:

.. code-block:: bash

    salt '*' cinder_ha.validate
"""
import importlib
import logging
import os
import sys

log = logging.getLogger(__name__)

__virtualname__ = "cinder_ha"


def __virtual__():
    return __virtualname__


def library(name):
    """
    Internal: the project's pure logic module ``name`` (``cinder_ha_pillar``, ``cinder_ha_cib``...).

    It ships as plain Python in the ``utils`` folder beside this module's folder in both
    install modes (``saltext_cinder_ha/utils`` after ``pip install``, ``extmods/utils``
    after ``saltutil.sync_all``). Salt's utils loader skips extension packages, so
    ``__utils__`` cannot serve pip mode; modules and states call this instead. The folder
    is appended (not prepended) to ``sys.path``, so nothing there can shadow a stdlib name.
    """
    base = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for folder in (os.path.join(base, "utils"), os.path.join(base, "_utils")):
        if os.path.isfile(os.path.join(folder, name + ".py")):
            if folder not in sys.path:
                sys.path.append(folder)
            break
    return importlib.import_module(name)


def _pillar(pillar=None):
    # unmask=True: inside custom modules Salt masks secret pillar values otherwise.
    if pillar is not None:
        return pillar
    return __salt__["pillar.get"]("cinder_ha", {}, unmask=True)


def settings(pillar=None):
    """
    Normalized settings from the ``cinder_ha`` pillar, as every state of the formula
    reads them. Raises ``CommandExecutionError`` listing every problem when invalid.
    Contains secrets: for use by other modules and Jinja, not to print.
    """
    from salt.exceptions import CommandExecutionError

    result, errors, _warnings = library("cinder_ha_pillar").normalize(_pillar(pillar))
    if errors:
        raise CommandExecutionError("invalid cinder_ha pillar:\n  - " + "\n  - ".join(errors))
    return result


def validate(pillar=None):
    """
    Check the whole ``cinder_ha`` pillar and list every problem at once. Returns
    ``{"valid": bool, "errors": [...], "warnings": [...]}`` (no values, so no secrets).

    CLI Example:

    .. code-block:: bash

        salt '*' cinder_ha.validate
    """
    _settings, errors, warnings = library("cinder_ha_pillar").normalize(_pillar(pillar))
    return {"valid": not errors, "errors": errors, "warnings": warnings}
