"""
The lrm secrets of a Pacemaker resource on THIS node: the files Pacemaker's executor reads for
``lrm://`` parameters, and the node attribute ``cinder_ha_secrets_<rsc>`` that tells the
cluster this node holds them (a ``secrets_of`` location of ``crm.configured`` requires it).

A password rotation never makes a node ineligible: the node's new digest goes into the CIB in
one transaction with the rule, which keeps accepting it (see ``crm.publish_secrets_digest``).

.. code-block:: yaml

    p_cinder-api secrets:
      crm_secrets.present:
        - name: p_cinder-api
        - secrets: {os_password: {pillar: "cinder_ha:agent:os_password"}}
"""

__virtualname__ = "crm_secrets"


def __virtual__():
    if "crm_secrets.store" in __salt__ and "crm.publish_secrets_digest" in __salt__:
        return __virtualname__
    return (False, "crm_secrets or crm execution module not loaded (Pacemaker CLI tools missing)")


def _from_pillar(values, where):
    """Each ``{"pillar": "a:b:c"}`` value read here (unmasked): never in the rendered SLS."""
    from salt.exceptions import CommandExecutionError

    from cinder_ha_lib import cib

    try:
        return cib.resolve_pillar_refs(values, where, lambda key: __salt__["pillar.get"](key, None, unmask=True))
    except cib.ModelError as exc:
        raise CommandExecutionError(str(exc)) from None


def _token():
    # One CIB read per state run, shared with the crm states of this run.
    return globals().get("__instance_id__")


def present(name, secrets, secrets_dir=None, publish=True, node=None):
    """
    The ``lrm://`` secret files of resource ``name`` on THIS node (apply on every node that may
    run it; ``crm.configured`` with ``secret_mode: lrm`` also writes them where it runs), then
    this node's permanent attribute ``cinder_ha_secrets_<name>`` = digest of these values, which
    a ``secrets_of`` location rule requires before the node may probe or run the resource.

    The files are replaced in one atomic folder swap, only when they differ. Values Pacemaker
    cannot read back (empty, a line break, trailing whitespace, more than 254 bytes) fail the
    state and nothing is written. A new digest is published in one CIB transaction with the
    rules, which accept it when this node is eligible now: a rotation never bans this node.

    publish
        Set the node attribute (default). The node that runs ``crm.configured`` with the rule
        passes False: there the attribute goes into the same CIB transaction as the rule.
    node
        This node's cluster name (default: ``crm_node --name``).

    .. code-block:: yaml

        p_cinder-api secrets:
          crm_secrets.present:
            - name: p_cinder-api
            - secrets: {os_password: {pillar: "cinder_ha:agent:os_password"}}
    """
    from salt.exceptions import CommandExecutionError

    ret = {"name": name, "result": True, "changes": {}, "comment": ""}
    test = __opts__["test"]
    try:
        secrets = _from_pillar(secrets, name)
        changed = __salt__["crm_secrets.store"](name, secrets, secrets_dir=secrets_dir, test=test)
    except CommandExecutionError as exc:
        ret.update(result=False, comment=str(exc))
        return ret
    lines = []
    if changed:
        ret["changes"] = {param: "***" for param in changed}
        lines.append(f"{'would store' if test else 'stored'} secret parameters {', '.join(changed)} of {name}")
    else:
        lines.append(f"secret files of {name} already hold these values")
    if publish:
        try:
            if node is None and _token():  # in a state run: the name this run already read
                node = __salt__["crm.node_name"](reuse=True)
            digest = __salt__["crm_secrets.digest"](name, secrets, secrets_dir=secrets_dir)
            published = __salt__["crm.publish_secrets_digest"](name, digest, node=node, test=test,
                                                              cache_token=_token())
        except CommandExecutionError as exc:
            ret.update(result=False, comment="\n".join(lines + [
                f"{name}: the secrets digest could not be published, the node attribute and rules are "
                f"as they were: {exc}"]))
            return ret
        label = f"node attribute {published['attribute']}@{published['node']}"
        if published["changed"]:
            if published["old"] != published["new"]:
                ret["changes"][label] = {"old": published["old"], "new": published["new"]}
            for rule, accepted in sorted(published["rules"].items()):
                ret["changes"][f"accepted by {rule}"] = accepted
            lines.append(f"{'would publish' if test else 'published'} the secrets digest as {label}")
            if published["rules"]:
                lines.append("the rules " + ", ".join(sorted(published["rules"]))
                             + f" {'would accept' if test else 'accept'} it in the same transaction")
        else:
            lines.append(f"{label} already holds the digest of these secrets")
        if not published["eligible"]:
            lines.append(f"{name} stays ineligible on {published['node']} until the controller's run accepts "
                         "this digest (this node was not eligible before)")
        if not __salt__["crm_secrets.key_status"]()["keyed"]:
            lines.append("warning: no corosync authkey on this node: the digest in the CIB is not keyed, "
                         "and a weak password could be guessed from it offline (see crm_secrets.key_status)")
    if test and ret["changes"]:
        ret["result"] = None
    ret["comment"] = "\n".join(lines)
    return ret


def absent(name, secrets_dir=None, node=None, timeout=120):
    """
    THIS node's ``lrm://`` secret folder of resource ``name`` and its node attribute
    ``cinder_ha_secrets_<name>`` absent, once ``name`` is no longer configured and no longer
    active here (waited for up to ``timeout`` seconds: the stop of a removed resource still
    reads its secrets). Apply on every node, after ``crm.purged`` on the controller.

    .. code-block:: yaml

        cinder_ha-clean-cluster-secrets-absent:
          crm_secrets.absent:
            - name: p_cinder-api
            - require:
              - crm: cinder_ha-clean-cluster-objects-absent
    """
    from salt.exceptions import CommandExecutionError

    ret = {"name": name, "result": True, "changes": {}, "comment": ""}
    test = __opts__["test"]
    try:
        files = __salt__["crm_secrets.held"](name, secrets_dir=secrets_dir)  # None: no folder
        folder = files is not None
        out = __salt__["crm.unpublish_secrets_digest"](name, node=node, test=test, timeout=timeout, wait=folder)
        if not test:
            __salt__["crm_secrets.remove"](name, secrets_dir=secrets_dir)
    except CommandExecutionError as exc:
        ret.update(result=False, comment=str(exc))
        return ret
    if not folder and not out["present"]:
        ret["comment"] = f"no secret files nor node attribute of {name} on {out['node']}"
        return ret
    verb = "would remove" if test else "removed"
    lines = []
    if folder:
        ret["changes"]["secret files"] = files
        lines.append(f"{verb} the secret files of {name} ({', '.join(files) or 'empty folder'})")
    if out["present"]:
        label = f"node attribute {out['attribute']}@{out['node']}"
        ret["changes"][label] = "removed"
        lines.append(f"{verb} {label}")
    ret["comment"] = "\n".join(lines)
    if test:
        ret["result"] = None
    return ret
