"""The services that consume Block Storage (nova, glance with the cinder store) pointed at the
highly available endpoint: the HA guide's section 3, "your OpenStack services point their Block
Storage API configuration to the highly available virtual IP". Pure logic: no Salt, no I/O.

A consumer finds cinder-api in one of two ways, and both must lead to a VIP:

- an endpoint template (nova ``[cinder] endpoint_template``, glance_store
  ``cinder_endpoint_template``) overrides the catalog. One that names anything but a VIP (a
  controller's own address, typically) bypasses the HA endpoint: it is removed, and the
  consumer falls back to the catalog, which the formula keeps on the VIPs (a template on a VIP
  is the operator's choice and stays);
- the catalog lookup ``<service_type>:<service_name>:<interface>URL`` (nova ``catalog_info``,
  glance_store ``cinder_catalog_info``) in a region (``os_region_name``,
  ``cinder_os_region_name``): set to the pillar's service type (``volumev3``, what both
  default to: keystoneauth matches it to ``block-storage`` through the service-types
  aliases), interface (internal by default) and region (the Keystone one by default).

For an https endpoint the consumer also needs the CA (nova ``[cinder] cafile``, glance_store
``cinder_ca_certificates_file``): written when the pillar gives one.

The option names were read in the consumers' sources: nova ``nova/conf/cinder.py`` (with the
keystoneauth session options of the ``[cinder]`` group) and ``nova/volume/cinder.py`` (the
lookup: ``session.get_endpoint(auth, service_type=, interface=, region_name=)``, the template
first); glance_store ``glance_store/_drivers/cinder/store.py`` (options of ``[glance_store]``,
or of each cinder store's own section with ``[DEFAULT] enabled_backends``; with all four
``cinder_store_*`` credentials set, glance ignores the template and catalog_info and
cinderclient looks ``volumev3`` up on the public interface).

Entry points: ``normalize`` (the pillar section), ``desired`` (the {section: {key: value}} to
hand ``conf.plan``, with the notes that explain it), ``lookup_of`` (how a consumer finds
cinder-api from a file's text), ``url_on_vip`` (is a URL on a VIP).
"""
import ipaddress
import re
from urllib.parse import urlsplit

from cinder_ha_lib import catalog, conf
from cinder_ha_lib import meanings as m

KINDS = ("nova", "glance")
DEFAULT_SERVICE_TYPE = "volumev3"  # nova's and glance_store's default catalog_info: volumev3::publicURL
DEFAULT_INTERFACE = "internal"  # service-to-service traffic stays on the internal VIP
# The option of each role, per consumer (nova: [cinder]; glance_store: its store's section).
OPTIONS = {
    "nova": {"catalog_info": "catalog_info", "endpoint_template": "endpoint_template",
             "region": "os_region_name", "cafile": "cafile", "insecure": "insecure"},
    "glance": {"catalog_info": "cinder_catalog_info", "endpoint_template": "cinder_endpoint_template",
               "region": "cinder_os_region_name", "cafile": "cinder_ca_certificates_file",
               "insecure": "cinder_api_insecure"},
}
NOVA_SECTION = "cinder"
GLANCE_SECTION = "glance_store"
# Names a consumer ignores today (nova read cinder_* in [DEFAULT] until Juno; nothing reads them
# now): removed, the pillar's values set under today's names.
NOVA_LEGACY = ("cinder_catalog_info", "cinder_endpoint_template", "cinder_ca_certificates_file",
               "cinder_api_insecure")
# glance_store still reads os_region_name as a deprecated name of cinder_os_region_name.
GLANCE_DEPRECATED = {"os_region_name": "cinder_os_region_name"}
# With all of these set, glance_store authenticates itself and cinderclient finds the endpoint
# with its own defaults (volumev3, public), ignoring the template and cinder_catalog_info.
GLANCE_OWN_CREDENTIALS = ("cinder_store_auth_address", "cinder_store_user_name", "cinder_store_password",
                          "cinder_store_project_name")
CINDERCLIENT_LOOKUP = ("volumev3", "publicURL")

MEANINGS = {
    ("consumers", "files"): m.MappingOf(
        m.ABSOLUTE_PATH, m.Enum(KINDS),
        "config file path -> nova or glance (nova.conf, glance-api.conf with the cinder store)", nonempty=True),
    ("consumers", "interface"): m.Enum(catalog.INTERFACES),
    ("consumers", "region"): m.KEYSTONE_REGION,
    ("consumers", "service_type"): m.Enum(catalog.BLOCK_STORAGE_TYPES),
    ("consumers", "cafile"): m.ABSOLUTE_PATH,
}


def normalize(raw, settings, errors):
    """The ``consumers`` section: ``{"files": [{"path", "kind", "id"}] sorted by path (``id``: the
    path as a state id part), "interface",
    "region", "service_type", "cafile"}``, defaults filled in (the internal interface if registered, the
    Keystone region, volumev3, ``keystone:cacert``). ``raw`` holds values its meanings accepted."""
    given = dict(raw.get("consumers") or {})
    served = (settings.get("endpoints") or {}).get("interfaces") or catalog.INTERFACES
    # by default the internal interface, or the first the formula registers of internal, public, admin
    interface = given.get("interface") or next(
        (i for i in (DEFAULT_INTERFACE, *catalog.INTERFACES) if i in served), DEFAULT_INTERFACE)
    if interface not in served:
        errors.append(f"consumers:interface: {interface} is not among endpoints:interfaces "
                      f"({', '.join(served)}): the consumers would look up an endpoint the formula does not register")
    files, ids = [], set()
    for path, kind in sorted((given.get("files") or {}).items()):
        state_id = slug(path)
        if state_id in ids:  # /a/b.conf and /a/b-conf: one slug, two files
            state_id = f"{state_id}-{len(files)}"
        ids.add(state_id)
        files.append({"path": path, "kind": kind, "id": state_id})
    return {
        "files": files,
        "interface": interface,
        "region": given.get("region") or (settings.get("keystone") or {}).get("region"),
        "service_type": given.get("service_type") or DEFAULT_SERVICE_TYPE,
        "cafile": given.get("cafile") or (settings.get("keystone") or {}).get("cacert"),
    }


# ---------------------------------------------------------------- addresses

def _bare(host):
    return host[1:-1] if host.startswith("[") and host.endswith("]") else host


def _ip(text):
    try:
        return ipaddress.ip_address(_bare(text))
    except ValueError:
        return None


def vip_addresses(settings):
    """The VIPs' addresses (the internal and the public one) as ip_address objects."""
    return {ipaddress.ip_address(settings[key]["address"]) for key in ("vip", "public_vip") if settings.get(key)}


def url_host(url):
    """The host a URL (or an endpoint template, ``%(project_id)s`` in its path) names, or None."""
    try:
        host = urlsplit(str(url)).hostname
    except ValueError:
        return None
    return host or None


def url_on_vip(url, vips, resolve=None):
    """(on a VIP?, host, addresses) for ``url``. A host name counts when every address it
    resolves to (``resolve(host)`` -> list of address texts; none given: names never count) is a
    VIP; an address counts when it is one."""
    host = url_host(url)
    if host is None:
        return False, None, []
    ip = _ip(host)
    if ip is not None:
        return ip in vips, host, [str(ip)]
    found = [a for a in (_ip(text) for text in (resolve(host) if resolve else [])) if a is not None]
    return bool(found) and all(a in vips for a in found), host, sorted({str(a) for a in found})


# ---------------------------------------------------------------- the file

def _last(effective, section, key):
    values = effective.get(conf.section_name(section), {}).get(key)
    return conf.unescape(values[-1]) if values else None


def _true(value):
    return str(value or "").strip().lower() in ("true", "1", "yes", "on")


def sections(kind, text):
    """The sections ``kind`` reads its cinder options from: nova ``[cinder]``; glance each store
    of type cinder named in ``[DEFAULT] enabled_backends`` (``name:cinder``), else
    ``[glance_store]``."""
    if kind == "nova":
        return [NOVA_SECTION]
    backends = _last(conf.parse(text).effective(), "DEFAULT", "enabled_backends") or ""
    stores = [name.strip() for name, _sep, store in (item.partition(":") for item in backends.split(","))
              if store.strip() == "cinder" and name.strip()]
    return stores or [GLANCE_SECTION]


def _catalog_info(consumers):
    return f"{consumers['service_type']}::{consumers['interface']}URL"


def lookup_of(kind, text, section=None):
    """How ``kind`` finds cinder-api with the configuration ``text`` (its section ``section``,
    default the first of ``sections``): ``{"section", "template", "service_type", "service_name",
    "interface", "region", "cafile", "insecure", "note"}``; ``template`` set means the catalog
    is not asked at all."""
    section = section or sections(kind, text)[0]
    names = OPTIONS[kind]
    effective = conf.parse(text).effective()

    def get(role):
        return _last(effective, section, names[role])

    region = get("region")
    if kind == "glance" and region is None:
        region = _last(effective, section, "os_region_name")  # the deprecated name, still read
    found = {"section": section, "template": get("endpoint_template"), "region": region,
             "cafile": get("cafile"), "insecure": _true(get("insecure")), "note": ""}
    info = get("catalog_info") or f"{DEFAULT_SERVICE_TYPE}::publicURL"
    parts = info.split(":")
    if len(parts) != 3:
        parts = [parts[0], "", "publicURL"]  # the consumer would refuse it; desired() rewrites it
    found.update(service_type=parts[0], service_name=parts[1] or None, interface=parts[2])
    if kind == "glance" and all(_last(effective, section, key) for key in GLANCE_OWN_CREDENTIALS):
        found.update(template=None, service_type=CINDERCLIENT_LOOKUP[0], service_name=None,
                     interface=CINDERCLIENT_LOOKUP[1],
                     note=f"[{section}] has its own cinder_store_* credentials: glance_store then ignores "
                          f"{names['endpoint_template']} and {names['catalog_info']}, and cinderclient looks up "
                          f"{CINDERCLIENT_LOOKUP[0]} on the public interface")
    return found


class Desired:
    """What ``desired`` decided: ``options`` ({section: {key: value or conf.ABSENT}}, for
    ``conf.plan``), ``notes`` (why each removal: sentences, no secret), ``bypasses`` (the
    templates that named something else than a VIP: {"section", "key", "url", "host"})."""

    def __init__(self):
        self.options, self.notes, self.bypasses = {}, [], []


def desired(kind, text, consumers, endpoint_url, vips, resolve=None):
    """The options ``kind``'s configuration ``text`` must carry: the catalog lookup and region
    of ``consumers`` (the normalized pillar section), the CA when ``endpoint_url`` (the
    catalog URL of the consumers' interface, as the formula registers it) is https, no endpoint
    template unless it names one of ``vips`` (``url_on_vip``), no name the consumer ignores."""
    if kind not in KINDS:
        raise ValueError(f"kind: {kind!r}, expected one of {', '.join(KINDS)}")
    names = OPTIONS[kind]
    effective = conf.parse(text).effective()
    result = Desired()
    shown_vips = ", ".join(sorted(str(v) for v in vips))
    for section in sections(kind, text):
        wanted = result.options.setdefault(section, {})
        wanted[names["catalog_info"]] = _catalog_info(consumers)
        if consumers.get("region"):
            wanted[names["region"]] = consumers["region"]
        if str(endpoint_url).startswith("https:"):
            if consumers.get("cafile"):
                wanted[names["cafile"]] = consumers["cafile"]
            elif not _last(effective, section, names["cafile"]):
                result.notes.append(f"{endpoint_url} is https and the pillar gives no CA (consumers:cafile, "
                                    f"keystone:cacert): {kind} verifies it with the system's trusted CAs")
        template = _last(effective, section, names["endpoint_template"])
        if template is not None:
            on_vip, host, addresses = url_on_vip(template, vips, resolve)
            if not on_vip:
                wanted[names["endpoint_template"]] = conf.ABSENT
                resolved = f" ({', '.join(addresses)})" if addresses and addresses != [host] else ""
                result.bypasses.append({"section": section, "key": names["endpoint_template"], "url": template,
                                        "host": host})
                result.notes.append(
                    f"[{section}] {names['endpoint_template']} = {template} names {host or 'no host'}{resolved}, "
                    f"not a VIP ({shown_vips}): {kind} sends every Block Storage request there, bypassing the HA "
                    f"endpoint; removed, so {kind} finds cinder-api in the catalog ({_catalog_info(consumers)}"
                    f"{', region ' + consumers['region'] if consumers.get('region') else ''}), on the VIP")
        if kind == "glance":
            for old, new in GLANCE_DEPRECATED.items():
                if _last(effective, section, old) is not None:
                    wanted[old] = conf.ABSENT
                    result.notes.append(f"[{section}] {old} is glance_store's deprecated name of {new}: removed, "
                                        f"{new} set")
    if kind == "nova":
        for key in NOVA_LEGACY:
            value = _last(effective, "DEFAULT", key)
            if value is not None:
                result.options.setdefault("DEFAULT", {})[key] = conf.ABSENT
                result.notes.append(f"[DEFAULT] {key} is ignored by nova today (moved to [cinder] in Juno): "
                                    f"removed{_bypass_said(value, key, vips, resolve)}")
    return result


def _bypass_said(value, key, vips, resolve):
    if not key.endswith("endpoint_template"):
        return ""
    on_vip, host, _addresses = url_on_vip(value, vips, resolve)
    return "" if on_vip else f" (it named {host or 'no host'}, not a VIP)"


def planned_text(text, options):
    """The text ``conf.plan`` would write (``text`` itself when it plans errors)."""
    return conf.plan(text, options).new_text


def slug(path):
    """A path as a state id part: letters, digits and '-' (``/etc/nova/nova.conf`` -> ``etc-nova-nova-conf``)."""
    return re.sub(r"[^A-Za-z0-9]+", "-", str(path)).strip("-") or "root"
