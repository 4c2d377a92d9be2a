"""Validate and normalize the ``cinder_ha`` pillar. Pure logic: no Salt, no I/O.

``normalize(raw)`` returns ``(settings, errors, warnings)``. ``errors`` lists every problem
at once (the formula's first state fails with all of them and nothing else runs);
``warnings`` says which of the guide's 2014 names were migrated. ``settings`` is the one
shape every state reads: defaults filled in, the guide's inputs mapped to today's.

Reference: pillar.example. Loaded by Salt as ``__utils__["cinder_ha_pillar.normalize"]``.
"""
import difflib
import ipaddress
import re
from urllib.parse import quote, urlsplit

DEFAULT_PORT = 8776
SECRET_KEY_RE = re.compile(r"(pass(word)?|secret|token|credential|key)$", re.IGNORECASE)
URL_FORMS = {
    "v3": "/v3",
    "v3_project": "/v3/%(project_id)s",
    # the guide's form: accepted, warned about (cinder v1 was removed in Queens)
    "legacy_v1": "/v1/%(tenant_id)s",
}

SCHEMA = {
    "vip": {"address": None, "netmask": None, "nic": None},
    "public_vip": {"address": None, "netmask": None, "nic": None},
    "cinder_api_port": None,
    "controller": None,
    "database": {"connection": None, "host": None, "port": None, "user": None, "password": None, "name": None},
    "sql_connection": None,
    "rabbitmq": {"hosts": None, "port": None, "user": None, "password": None, "virtual_host": None},
    "rabbit_host": None,
    "rabbit_hosts": None,
    "rabbit_port": None,
    "rabbit_userid": None,
    "rabbit_password": None,
    "rabbit_virtual_host": None,
    "notifications": {"driver": None, "transport_url": None, "topics": None},
    "notifier_strategy": None,
    "keystone": {"auth_url": None, "username": None, "password": None, "project_name": None,
                 "user_domain_name": None, "project_domain_name": None, "region": None,
                 "cacert": None, "insecure": None, "timeout": None},
    "endpoints": {"url_form": None, "service_types": None, "interfaces": None, "retire_legacy": None,
                  "service_name": None, "description": None},
    "agent": {"source": None, "source_hash": None, "binary": None, "config": None, "user": None, "pid": None,
              "monitor_interval": None, "monitor_timeout": None, "start_timeout": None, "stop_timeout": None,
              "os_username": None, "os_password": None, "os_tenant_name": None, "keystone_get_token_url": None,
              "os_auth_url": None, "os_project_name": None, "os_user_domain_name": None,
              "os_project_domain_name": None, "additional_parameters": None, "secret_mode": None},
    "cinder_conf": {"path": None, "extra": None},
    "cluster": {"primitive_id": None, "vip_id": None, "stickiness": None},
}


def _closest(word, choices):
    match = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{match[0]}'?)" if match else ""


def _unknown_keys(raw, schema, path, errors):
    for key, value in raw.items():
        if key not in schema:
            errors.append(f"{path}{key}: unknown key{_closest(key, schema)}")
        elif isinstance(schema[key], dict):
            if value is None:
                continue
            if not isinstance(value, dict):
                errors.append(f"{path}{key}: must be a mapping")
            else:
                _unknown_keys(value, schema[key], f"{path}{key}:", errors)


def _port(value, where, errors, default=None):
    if value is None:
        return default
    if isinstance(value, bool) or not re.fullmatch(r"\d{1,5}", str(value).strip()) or not 0 < int(value) < 65536:
        errors.append(f"{where}: port must be an integer 1-65535, got {value!r}")
        return default
    return int(value)


def _vip(raw, where, errors, required):
    if not raw or not raw.get("address"):
        if required:
            errors.append(f"{where}:address: missing (the virtual IP cinder-api runs behind)")
        return None
    address = str(raw["address"]).strip()
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        errors.append(f"{where}:address: not an IP address: {address!r}")
        return None
    netmask = raw.get("netmask", 32 if ip.version == 4 else 128)
    if str(netmask).isdigit() and 0 < int(netmask) <= ip.max_prefixlen:
        netmask = int(netmask)
    else:
        try:  # dotted netmask, as IPaddr2 also accepts
            netmask = ipaddress.ip_network(f"0.0.0.0/{netmask}").prefixlen
        except ValueError:
            errors.append(f"{where}:netmask: not a prefix length or netmask: {netmask!r}")
            netmask = None
    nic = raw.get("nic")
    if nic is not None and not re.fullmatch(r"[A-Za-z0-9_.:@-]{1,15}", str(nic)):
        errors.append(f"{where}:nic: not an interface name: {nic!r}")
    return {"address": address, "netmask": netmask, "nic": nic, "version": ip.version}


def url_host(address):
    """An address as it appears in a URL (IPv6 in brackets)."""
    return f"[{address}]" if ":" in address else address


def _database(raw, errors, warnings):
    db = dict(raw.get("database") or {})
    legacy = raw.get("sql_connection")
    if legacy:
        warnings.append("sql_connection is the guide's name for [database] connection; cinder ignores it "
                        "today and silently falls back to a local SQLite file: migrated to database:connection")
        db.setdefault("connection", legacy)
    connection = db.get("connection")
    if not connection:
        needed = [k for k in ("host", "user", "password") if not db.get(k)]
        if needed:
            errors.append("database: give connection (mysql+pymysql://...) or host, user, password"
                          f" (missing: {', '.join(needed)})")
            return None
        port = _port(db.get("port"), "database:port", errors, 3306)
        connection = (f"mysql+pymysql://{quote(str(db['user']), safe='')}:{quote(str(db['password']), safe='')}"
                      f"@{url_host(str(db['host']))}:{port}/{quote(str(db.get('name') or 'cinder'), safe='')}")
    connection = str(connection)
    parts = urlsplit(connection)
    if not parts.scheme or (not parts.netloc and not parts.scheme.startswith("sqlite")):
        errors.append("database:connection: not a database URL (expected mysql+pymysql://user:pass@host/cinder)")
        return None
    if parts.scheme in ("mysql", "mysql+mysqldb"):
        warnings.append(f"database:connection uses {parts.scheme}://; rewritten to mysql+pymysql:// "
                        "(the driver cinder installs)")
        connection = "mysql+pymysql" + connection[len(parts.scheme):]
    elif parts.scheme.startswith("sqlite"):
        warnings.append("database:connection is SQLite: each controller has its own database, fine for a "
                        "sandbox, data loss on failover in production")
    return connection


def _transport_url(raw, errors, warnings):
    rabbit = dict(raw.get("rabbitmq") or {})
    legacy = {k: raw[k] for k in ("rabbit_host", "rabbit_hosts", "rabbit_port", "rabbit_userid",
                                  "rabbit_password", "rabbit_virtual_host") if raw.get(k) is not None}
    if legacy:
        warnings.append(f"{', '.join(sorted(legacy))}: removed from oslo.messaging in Stein and ignored by cinder "
                        "(it would talk to guest@localhost): migrated to [DEFAULT] transport_url")
        hosts = legacy.get("rabbit_hosts") or legacy.get("rabbit_host")
        rabbit.setdefault("hosts", hosts)
        for old, new in (("rabbit_port", "port"), ("rabbit_userid", "user"), ("rabbit_password", "password"),
                         ("rabbit_virtual_host", "virtual_host")):
            if old in legacy:
                rabbit.setdefault(new, legacy[old])
    hosts = rabbit.get("hosts")
    if not hosts:
        errors.append("rabbitmq:hosts: missing (one or more broker hosts, host[:port])")
        return None
    if isinstance(hosts, str):
        hosts = [h for h in re.split(r"[,\s]+", hosts) if h]
    default_port = _port(rabbit.get("port"), "rabbitmq:port", errors, 5672)
    user = str(rabbit.get("user") or "guest")
    password = rabbit.get("password")
    if password is None:
        errors.append("rabbitmq:password: missing")
        return None
    netlocs = []
    for host in hosts:
        host = str(host).strip()
        match = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\](?::(\d+))?|([^:\s/@]+)(?::(\d+))?", host)
        if not match:
            errors.append(f"rabbitmq:hosts: not host[:port]: {host!r}")
            continue
        name = match.group(1) or match.group(3)
        port = _port(match.group(2) or match.group(4), f"rabbitmq:hosts:{host}", errors, default_port)
        netlocs.append(f"{quote(user, safe='')}:{quote(str(password), safe='')}@{url_host(name)}:{port}")
    vhost = str(rabbit.get("virtual_host") or "/")
    vhost_part = "" if vhost == "/" else quote(vhost.lstrip("/"), safe="")
    return "rabbit://" + ",".join(netlocs) + "/" + vhost_part


def _notifications(raw, warnings):
    notes = dict(raw.get("notifications") or {})
    strategy = raw.get("notifier_strategy")
    if strategy:
        warnings.append(f"notifier_strategy = {strategy} is the guide's name; cinder ignores it and sends no "
                        "notifications: migrated to [oslo_messaging_notifications] driver = messagingv2")
        if strategy in ("noop", "no_op"):
            notes.setdefault("driver", "noop")
    notes.setdefault("driver", "messagingv2")
    topics = notes.get("topics")
    if isinstance(topics, (list, tuple)):
        notes["topics"] = ",".join(str(t) for t in topics)
    return {k: v for k, v in notes.items() if v is not None}


def _keystone(raw, errors):
    ks = dict(raw.get("keystone") or {})
    for key in ("auth_url", "username", "password", "project_name"):
        if not ks.get(key):
            errors.append(f"keystone:{key}: missing (Keystone admin credentials register the endpoints)")
    url = ks.get("auth_url")
    if url:
        parts = urlsplit(str(url))
        if parts.scheme not in ("http", "https") or not parts.hostname:
            errors.append(f"keystone:auth_url: not an http(s) URL: {url!r}")
        elif parts.path.rstrip("/").endswith("/v2.0"):
            errors.append("keystone:auth_url: Keystone v2.0 was removed in Queens; give the v3 URL (.../v3)")
    ks.setdefault("user_domain_name", "Default")
    ks.setdefault("project_domain_name", "Default")
    ks.setdefault("region", "RegionOne")
    ks.setdefault("insecure", False)
    ks["timeout"] = float(ks.get("timeout") or 10)
    return ks


def _endpoints(raw, errors, warnings):
    ep = dict(raw.get("endpoints") or {})
    form = ep.get("url_form", "v3")
    if form not in URL_FORMS:
        errors.append(f"endpoints:url_form: one of {', '.join(URL_FORMS)}, got {form!r}{_closest(str(form), URL_FORMS)}")
        form = "v3"
    if form == "legacy_v1":
        warnings.append("endpoints:url_form legacy_v1 (/v1/%(tenant_id)s, the guide's URL) names an API removed "
                        "in Queens: clients will get 404; use v3")
    types = ep.get("service_types") or ["block-storage"]
    if isinstance(types, str):
        types = [types]
    for stype in types:
        if stype not in ("block-storage", "volumev3"):
            errors.append(f"endpoints:service_types: {stype!r} is not a current Block Storage type "
                          "(block-storage, volumev3)")
    interfaces = ep.get("interfaces") or ["public", "internal", "admin"]
    for iface in interfaces:
        if iface not in ("public", "internal", "admin"):
            errors.append(f"endpoints:interfaces: {iface!r} is not public, internal or admin")
    if form == "legacy_v1" and ep.get("retire_legacy"):
        errors.append("endpoints: url_form legacy_v1 and retire_legacy contradict each other (every run would "
                      "create the /v1 endpoints and then delete them)")
    return {
        "url_form": form,
        "path": URL_FORMS.get(form, "/v3"),
        "service_types": list(types),
        "interfaces": list(interfaces),
        "retire_legacy": bool(ep.get("retire_legacy", False)),
        "service_name": ep.get("service_name") or "cinder",
        "description": ep.get("description") or "OpenStack Block Storage",
    }


def _agent(raw, settings, errors, warnings):
    agent = dict(raw.get("agent") or {})
    if agent.get("source") and str(agent["source"]).startswith(("http://", "https://", "ftp://")) \
            and not agent.get("source_hash"):
        errors.append("agent:source_hash: required when agent:source is a URL (the agent runs as root)")
    for key in ("monitor_interval", "monitor_timeout", "start_timeout", "stop_timeout"):
        value = agent.get(key)
        if value is not None:
            value = str(value).strip()
            if re.fullmatch(r"\d+", value):
                value += "s"  # Pacemaker reads a bare number as seconds: say so explicitly
            if not re.fullmatch(r"\d+(ms|s|m|min|h)", value):
                errors.append(f"agent:{key}: a duration like 30s, got {agent[key]!r}")
            agent[key] = value
    agent.setdefault("monitor_interval", "30s")
    agent.setdefault("monitor_timeout", "30s")
    agent.setdefault("start_timeout", "60s")
    agent.setdefault("stop_timeout", "90s")
    mode = agent.get("secret_mode", "lrm")
    if mode not in ("lrm", "plain"):
        errors.append(f"agent:secret_mode: lrm or plain, got {mode!r}")
    agent["secret_mode"] = mode
    token_url = agent.get("keystone_get_token_url")
    if token_url and "/v2.0" in str(token_url):
        warnings.append("agent:keystone_get_token_url is a Keystone v2.0 URL (removed in Queens); the agent "
                        "uses its v3 equivalent")
    agent.setdefault("config", settings["cinder_conf"]["path"])
    return agent


def normalize(raw):
    """Check the whole ``cinder_ha`` pillar; return (settings, errors, warnings)."""
    errors, warnings = [], []
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        return None, ["cinder_ha: pillar must be a mapping"], []
    _unknown_keys(raw, SCHEMA, "", errors)

    vip = _vip(raw.get("vip"), "vip", errors, required=True)
    public_vip = _vip(raw.get("public_vip"), "public_vip", errors, required=False) or vip
    port = _port(raw.get("cinder_api_port"), "cinder_api_port", errors, DEFAULT_PORT)
    conf = dict(raw.get("cinder_conf") or {})
    conf.setdefault("path", "/etc/cinder/cinder.conf")
    extra = conf.get("extra") or {}
    if not isinstance(extra, dict) or not all(isinstance(v, dict) for v in extra.values()):
        errors.append("cinder_conf:extra: must map section -> {key: value}")
        extra = {}
    conf["extra"] = extra
    settings = {
        "vip": vip,
        "public_vip": public_vip,
        "port": port,
        "controller": raw.get("controller"),
        "cinder_conf": conf,
    }
    settings["database_connection"] = _database(raw, errors, warnings)
    settings["transport_url"] = _transport_url(raw, errors, warnings)
    settings["notifications"] = _notifications(raw, warnings)
    settings["keystone"] = _keystone(raw, errors)
    settings["endpoints"] = _endpoints(raw, errors, warnings)
    settings["agent"] = _agent(raw, settings, errors, warnings)
    cluster = dict(raw.get("cluster") or {})
    cluster.setdefault("primitive_id", "p_cinder-api")
    cluster.setdefault("vip_id", "p_ip_cinder-api")
    cluster.setdefault("stickiness", None)
    settings["cluster"] = cluster
    if vip and public_vip and vip["version"] != public_vip["version"]:
        errors.append("public_vip and vip must both be IPv4 or both IPv6")
    if errors:
        return None, errors, warnings
    settings["endpoint_urls"] = endpoint_urls(settings)
    return settings, errors, warnings


def endpoint_urls(settings):
    """The catalog URL per interface: public on the public VIP, internal and admin on the VIP."""
    path = settings["endpoints"]["path"]
    urls = {}
    for iface in settings["endpoints"]["interfaces"]:
        vip = settings["public_vip"] if iface == "public" else settings["vip"]
        urls[iface] = f"http://{url_host(vip['address'])}:{settings['port']}{path}"
    return urls


def secret_values(raw):
    """Every string in the pillar that is a secret (by key name or URL userinfo), for masking."""
    found = set()

    def walk(node, key=""):
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, str(k))
        elif isinstance(node, (list, tuple)):
            for v in node:
                walk(v, key)
        elif node is not None and not isinstance(node, bool):
            text = str(node)
            if SECRET_KEY_RE.search(key) and text:
                found.add(text)
            parts = urlsplit(text) if "://" in text else None
            if parts and parts.password:
                found.add(parts.password)
    walk(raw)
    return sorted(found, key=len, reverse=True)
