"""
The services that consume Block Storage pointed at the highly available endpoint (the HA
guide's section 3): nova's ``[cinder]`` and glance_store's cinder options.

.. code-block:: yaml

    nova points at the Block Storage VIP:
      cinder_consumers.pointed_at_vip:
        - name: /etc/nova/nova.conf
        - kind: nova              # or glance (glance-api.conf with the cinder store)

The settings come from pillar ``cinder_ha:consumers`` (interface, service type, region, CA),
the VIPs and the endpoint URLs of the ``cinder_ha`` pillar. After the write the state resolves
the endpoint as the consumer will (its template, else keystoneauth with its catalog_info and
region) and fails when the URL is not on a VIP. ``test=True`` shows the masked diff, which
template bypassed the VIP and where it sent the requests, and what the consumer would resolve
after the change.
"""

__virtualname__ = "cinder_consumers"


def __virtual__():
    if "cinder_consumers.check" in __salt__:
        return __virtualname__
    return (False, "cinder_consumers: the cinder_consumers execution module is not loaded (keystoneauth1 missing?)")


def _bullets(lines):
    return "\n  - " + "\n  - ".join(lines) if lines else ""


def _resolution(found):
    """(every lookup on a VIP, one sentence per lookup)."""
    said = []
    for lookup in found["lookups"]:
        where = (f"[{lookup['section']}] endpoint template" if lookup["how"] == "endpoint_template" else
                 f"[{lookup['section']}] catalog {lookup['service_type']} {lookup['interface']}"
                 f"{' in ' + lookup['region'] if lookup['region'] else ''}")
        if not lookup["url"]:
            said.append(f"{where}: no endpoint found (is the Block Storage catalog registered? cinder_ha.catalog)")
            continue
        verdict = "on a VIP" if lookup["on_vip"] else f"NOT on a VIP: {lookup['host']} bypasses the HA endpoint"
        sentence = f"{where} -> {lookup['url']} ({verdict})"
        checked = lookup.get("probe")
        if checked:
            sentence += (f"; answers with the consumer's CA (HTTP {checked['status']})" if checked["answers"] else
                         f"; with the consumer's CA: {checked['error']}")
        if lookup.get("note"):
            sentence += f" ({lookup['note']})"
        said.append(sentence)
    tls_failed = any(lookup.get("probe") and "CERTIFICATE_VERIFY_FAILED" in str(lookup["probe"]["error"])
                     for lookup in found["lookups"])
    return found["on_vip"] and not tls_failed, said


def pointed_at_vip(name, kind):
    """
    Make the consumer's file ``name`` reach cinder-api only through a VIP, then prove it.

    - An endpoint template (nova ``[cinder] endpoint_template``, glance_store
      ``cinder_endpoint_template``) that names anything but a VIP is removed: the consumer then
      finds cinder-api in the catalog, which the formula keeps on the VIPs. One on a VIP stays.
    - ``catalog_info`` (``cinder_catalog_info``) is ``<service_type>::<interface>URL`` and
      ``os_region_name`` (``cinder_os_region_name``) the pillar's region.
    - For an https endpoint, ``cafile`` (``cinder_ca_certificates_file``) is the pillar's CA.
    - Names the consumer ignores today (nova's ``[DEFAULT] cinder_*``) or reads under a
      deprecated name (glance_store's ``os_region_name``) are removed.

    The file is written as cinder.conf is (``cinder_conf``: comments and unrelated keys kept,
    atomic write, secrets masked). Then the endpoint is resolved exactly as the consumer will:
    the state fails when it is not on a VIP, when the catalog has no such endpoint, or when an
    https endpoint fails verification with the consumer's CA.

    name
        The consumer's config file (never created).
    kind
        ``nova`` or ``glance``.

    .. code-block:: yaml

        cinder_ha-consumers-etc-nova-nova-conf-pointed-at-vip:
          cinder_consumers.pointed_at_vip:
            - name: /etc/nova/nova.conf
            - kind: nova
    """
    ret = {"name": name, "result": True, "changes": {}, "comment": ""}
    try:
        report = __salt__["cinder_consumers.check"](name, kind)
    except Exception as exc:  # pylint: disable=broad-except  # CommandExecutionError: says what and where
        return dict(ret, result=False, comment=str(exc))
    if report["errors"]:
        return dict(ret, result=False, comment=f"{name} left unchanged; fix these first:" + _bullets(report["errors"]))
    why = _bullets(report["notes"] + report["migrations"])
    pending = report["changed"] or report.get("mode")
    if pending and __opts__["test"]:
        ret["changes"] = dict(report["changes"], diff=report.get("diff", ""))
        if report.get("mode"):
            ret["changes"]["mode"] = report["mode"]
        try:
            ok, said = _resolution(__salt__["cinder_consumers.resolve"](name, kind, planned=True))
        except Exception as exc:  # pylint: disable=broad-except
            ok, said = False, [f"the endpoint cannot be resolved: {exc}"]
        ret["result"] = None
        ret["comment"] = (f"{name} would be updated ({len(report['changes'])} options):{why}\nAfter the change, "
                          f"{kind} would resolve:" + _bullets(said) + ("" if ok else "\nand still not reach a VIP"))
        return ret
    if pending:
        try:
            done = __salt__["cinder_consumers.apply"](name, kind, expected_digest=report["digest"])
        except Exception as exc:  # pylint: disable=broad-except  # masked, lists every problem
            return dict(ret, result=False, comment=str(exc))
        if done.get("changed"):
            ret["changes"] = dict(done["changes"], diff=done.get("diff", ""))
        if report.get("mode"):
            ret["changes"]["mode"] = report["mode"]
    try:
        ok, said = _resolution(__salt__["cinder_consumers.resolve"](name, kind))
    except Exception as exc:  # pylint: disable=broad-except  # Keystone refused or unreachable: said clearly
        ok, said = False, [f"the endpoint cannot be resolved: {exc}"]
    updated = [key for key in ret["changes"] if key not in ("diff", "mode")]
    head = f"{name} updated ({len(updated)} options):{why}\n" if updated else \
        f"{name} already has the desired configuration.\n"
    ret["result"] = ok
    ret["comment"] = head + f"{kind} resolves:" + _bullets(said)
    return ret
