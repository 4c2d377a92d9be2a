"""
The services that consume Block Storage (nova, glance with the cinder store) pointed at the
highly available endpoint (the HA guide's section 3), and the check that they are: the
endpoint resolved exactly as the consumer resolves it.

A consumer's file is planned by ``cinder_ha_lib.consumers`` (an endpoint template that names
anything but a VIP removed, ``catalog_info``, the region and, for an https endpoint, the CA set)
and written by ``cinder_conf``, with cinder.conf's own logic: comments, key order, unrelated
keys, owner, group and ACLs kept, legacy names migrated, secrets masked in every diff, an
atomic write that refuses to overwrite an edit made meanwhile. The settings come from the
``cinder_ha`` pillar (``consumers``, the VIPs, the endpoint URLs, the Keystone credentials the
check uses); no function returns a secret.

CLI Example:

.. code-block:: bash

    salt -C 'G@roles:nova-compute' cinder_consumers.check /etc/nova/nova.conf nova
    salt -C 'G@roles:nova-compute' cinder_consumers.resolve /etc/nova/nova.conf nova
    salt -C 'G@roles:glance' cinder_consumers.apply /etc/glance/glance-api.conf glance
"""
import errno
import hashlib
import logging
import os
import socket

from cinder_ha_lib import consumers, probe

try:
    import keystoneauth1  # noqa: F401 - the check resolves the endpoint as the consumer does: keystoneauth

    HAS_KEYSTONEAUTH = True
except ImportError:  # pragma: no cover - reported by __virtual__
    HAS_KEYSTONEAUTH = False

log = logging.getLogger(__name__)

__virtualname__ = "cinder_consumers"


def __virtual__():
    if not HAS_KEYSTONEAUTH:
        return (False, "cinder_consumers: the Python library keystoneauth1 is not installed (pip install "
                       "keystoneauth1): the endpoint check resolves the catalog as nova and glance do")
    return __virtualname__


def _error(message):
    from salt.exceptions import CommandExecutionError

    return CommandExecutionError(message)


def _settings():
    """The normalized pillar (masked: this module needs no secret of it; the Keystone check reads
    its credentials itself, in cinder_keystone)."""
    return __salt__["cinder_ha.settings"]()


def _read(name):
    """(text, sha256) of the regular file ``name``; a link is never followed. Raises
    CommandExecutionError naming the file: a consumer's config is never created by this module."""
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise _error(f"{name} does not exist: is the consumer installed here? A consumer's configuration is "
                     "never created by the formula (pillar cinder_ha:consumers:files names the files)") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise _error(f"{name} is a symbolic link: the formula never writes through one; name the file itself "
                         "in cinder_ha:consumers:files") from None
        raise _error(f"{name} cannot be read ({exc.strerror})") from None
    try:
        with os.fdopen(fd, "rb") as handle:
            data = handle.read()
    except OSError as exc:  # a directory
        raise _error(f"{name} cannot be read ({exc.strerror})") from None
    return data.decode("utf-8", "surrogateescape"), hashlib.sha256(data).hexdigest()


def _addresses(host):
    """Every address a host name resolves to here (the resolver the consumer uses), or []."""
    try:
        return sorted({info[4][0] for info in socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)})
    except (OSError, UnicodeError):
        return []


def _kind(kind):
    if kind not in consumers.KINDS:
        raise _error(f"kind: {kind!r}, expected one of {', '.join(consumers.KINDS)}")
    return kind


def _plan(name, kind):
    """(text, digest, consumers.Desired, settings) for the file ``name``."""
    _kind(kind)
    settings = _settings()
    text, digest = _read(name)
    section = settings["consumers"]
    endpoint = settings["endpoint_urls"].get(section["interface"], "")
    wanted = consumers.desired(kind, text, section, endpoint, consumers.vip_addresses(settings),
                               resolve=_addresses)
    return text, digest, wanted, settings


def _report(name, kind, conf_report, wanted, digest=None):
    """cinder_conf's report with the consumer's notes; ``digest``: the bytes ``wanted`` was
    planned from, which cinder_conf.check must have read too."""
    if digest is not None and conf_report["digest"] not in (None, digest):
        conf_report["errors"] = list(conf_report["errors"]) + [
            f"{name} changed while it was being planned: left as it is; apply again"]
    report = dict(conf_report, kind=kind, notes=list(wanted.notes), bypasses=list(wanted.bypasses))
    report["migrations"] = list(conf_report.get("migrations") or [])
    return report


def check(name, kind):
    """
    What ``cinder_consumers.pointed_at_vip`` would change in the consumer's file ``name``
    (``kind``: ``nova`` or ``glance``); changes nothing. Returns cinder_conf.check's report
    (``path``, ``exists``, ``digest``, ``errors``, ``changed``, ``changes``, ``migrations``,
    ``mode``, ``diff``; secrets masked) with ``kind``, ``notes`` (why each removal, naming the
    address a template bypassing the VIP used) and ``bypasses`` (those templates).

    CLI Example:

    .. code-block:: bash

        salt '*' cinder_consumers.check /etc/nova/nova.conf nova
    """
    _text, digest, wanted, _settings_ = _plan(name, kind)
    return _report(name, kind, __salt__["cinder_conf.check"](name, options=wanted.options), wanted, digest)


def apply(name, kind, expected_digest=None):
    """
    Point the consumer's file ``name`` at the VIP: write what ``check`` plans, atomically,
    through ``cinder_conf.apply`` (owner, group, ACLs kept; world bits removed: it holds
    passwords). Nothing is written when any problem is found, or when the file no longer has
    ``expected_digest`` (``check``'s ``digest``).

    CLI Example:

    .. code-block:: bash

        salt '*' cinder_consumers.apply /etc/nova/nova.conf nova
    """
    _text, digest, wanted, _settings_ = _plan(name, kind)
    if expected_digest is not None and digest != expected_digest:
        raise _error(f"{name} changed since it was checked: left as it is; apply again")
    done = __salt__["cinder_conf.apply"](name, options=wanted.options, expected_digest=digest)
    return _report(name, kind, done, wanted)


def _probe_root(url, found):
    """cinder-api's version document at the URL's root, verified with the consumer's CA
    (``cafile``, ``insecure``): what the consumer's TLS would say."""
    parts = url.split("/", 3)
    root = "/".join(parts[:3]) + "/" if len(parts) >= 3 else url
    return probe.http_get(root, timeout=5, cafile=found["cafile"], insecure=found["insecure"])


def resolve(name, kind, planned=False):
    """
    Resolve cinder-api's endpoint exactly as the consumer will with the file ``name``: its
    endpoint template if it has one, else keystoneauth's ``get_endpoint`` with the service
    type, interface and region of its catalog_info and region options (a token's catalog,
    credentials from pillar ``cinder_ha:keystone``), and say whether the URL is on a VIP.
    ``planned``: resolve with what ``apply`` would write instead (``test=True``). For an https
    URL, cinder-api's root is fetched with the consumer's CA. Returns ``{"on_vip", "lookups":
    [{"section", "how", "url", "host", "on_vip", "service_type", "interface", "region",
    "probe", "note"}]}`` (one lookup per section the consumer reads: glance has one per cinder
    store).

    CLI Example:

    .. code-block:: bash

        salt '*' cinder_consumers.resolve /etc/nova/nova.conf nova
        salt '*' cinder_consumers.resolve /etc/glance/glance-api.conf glance planned=True
    """
    text, _digest, wanted, settings = _plan(name, kind)
    if planned:
        text = consumers.planned_text(text, wanted.options)
    vips = consumers.vip_addresses(settings)
    lookups = []
    for section in consumers.sections(kind, text):
        found = consumers.lookup_of(kind, text, section)
        entry = {"section": section, "service_type": found["service_type"], "interface": found["interface"],
                 "region": found["region"], "note": found["note"], "probe": None}
        if found["template"]:
            entry.update(how="endpoint_template", url=found["template"])
        else:
            answer = __salt__["cinder_keystone.catalog_lookup"](service_type=found["service_type"],
                                                                interface=found["interface"], region=found["region"])
            entry.update(how="catalog", url=answer.get("url"))
        if entry["url"]:
            entry["on_vip"], entry["host"], _resolved = consumers.url_on_vip(entry["url"], vips, _addresses)
            if entry["url"].startswith("https:"):
                entry["probe"] = _probe_root(entry["url"], found)
        else:
            entry.update(on_vip=False, host=None)
        lookups.append(entry)
    return {"on_vip": all(e["on_vip"] for e in lookups), "lookups": lookups}
