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
from urllib.parse import urlsplit

from cinder_ha_lib import urls

URL_FORMS = urls.ENDPOINT_PATHS



def _closest(word, choices):
    match = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{match[0]}'?)" if match else ""


def _unknown_keys(raw, schema, path, errors):
    for key, value in raw.items():
        if key not in schema:
            errors.append(f"{path}{key}: unknown key{_closest(str(key), schema)}")
        elif isinstance(schema[key], dict):
            if value is None:
                continue
            if not isinstance(value, dict):
                errors.append(f"{path}{key}: got {_kind(value)}, expected a mapping")
            else:
                _unknown_keys(value, schema[key], f"{path}{key}:", errors)


# ---------------------------------------------------------------- types and hostile values
# Every value reaches the CIB, a path, a command's argument list, a URL or a single-line key of
# cinder.conf: its type and shape are checked here, before anything changes, and a value of the
# wrong type is dropped from the tree the rest of normalize() reads (never a traceback).

SCALAR, TEXT, LIST, BOOL, NUMBER, MAPPING = "scalar", "text", "list", "bool", "number", "mapping"
TYPES = {
    "vip": {"address": TEXT, "netmask": SCALAR, "nic": TEXT},
    "public_vip": {"address": TEXT, "netmask": SCALAR, "nic": TEXT},
    "cinder_api_port": SCALAR,
    "controller": TEXT,
    "database": {"connection": TEXT, "host": TEXT, "port": SCALAR, "user": SCALAR, "password": SCALAR,
                 "name": SCALAR},
    "sql_connection": TEXT,
    "rabbitmq": {"hosts": LIST, "port": SCALAR, "user": SCALAR, "password": SCALAR, "virtual_host": TEXT},
    "rabbit_host": TEXT, "rabbit_hosts": LIST, "rabbit_port": SCALAR, "rabbit_userid": SCALAR,
    "rabbit_password": SCALAR, "rabbit_virtual_host": TEXT,
    "notifications": {"driver": TEXT, "transport_url": TEXT, "topics": LIST},
    "notifier_strategy": TEXT,
    "keystone": {"auth_url": TEXT, "username": SCALAR, "password": SCALAR, "project_name": SCALAR,
                 "user_domain_name": SCALAR, "project_domain_name": SCALAR, "region": SCALAR,
                 "cacert": TEXT, "insecure": BOOL, "timeout": NUMBER},
    "endpoints": {"url_form": TEXT, "service_types": LIST, "interfaces": LIST, "retire_legacy": BOOL,
                  "service_name": SCALAR, "description": SCALAR},
    "agent": {key: SCALAR for key in (
        "source", "source_hash", "binary", "config", "user", "pid", "monitor_interval", "monitor_timeout",
        "start_timeout", "stop_timeout", "os_username", "os_password", "os_tenant_name", "keystone_get_token_url",
        "os_auth_url", "os_project_name", "os_user_domain_name", "os_project_domain_name",
        "additional_parameters", "secret_mode")},
    "cinder_conf": {"path": TEXT, "extra": MAPPING},
    "cluster": {"primitive_id": TEXT, "vip_id": TEXT, "stickiness": SCALAR, "mode": TEXT, "clone_id": TEXT,
                "clone_max": SCALAR, "nodes": LIST, "vip_stickiness": SCALAR, "failure_timeout": SCALAR},
    # overrides of the formula's parameters (salt/cinder_ha/parameters/defaults.yaml holds the
    # defaults): only these keys
    "lookup": {"cinder_user": SCALAR, "cinder_group": SCALAR, "cinder_api_binary": TEXT, "pid_dir": TEXT,
               "agent_dir": TEXT, "agent_name": TEXT, "agent_source": TEXT, "vip_monitor_interval": SCALAR,
               "vip_monitor_timeout": SCALAR, "settle_timeout": NUMBER, "secrets_dir": TEXT, "alert_id": TEXT,
               "alert_agent": TEXT, "alert_agent_source": TEXT, "alert_spool": TEXT, "alert_spool_user": SCALAR,
               "alert_spool_group": SCALAR, "engine_conf": TEXT},
    # cinder_ha.clean: catalog true also removes the Block Storage services and endpoints
    "clean": {"catalog": BOOL},
}
# Every key the pillar may hold (unknown keys are errors): the shape of TYPES.
SCHEMA = {key: ({sub: None for sub in kind} if isinstance(kind, dict) else None) for key, kind in TYPES.items()}
EXPECTED = {SCALAR: "a string or a number", TEXT: "a string", LIST: "a list (or a comma-separated string)",
            BOOL: "true or false", NUMBER: "a number", MAPPING: "a mapping"}
# Pacemaker ids are XML IDs; they also become folder names (lrm secrets) and attribute names.
PACEMAKER_ID = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,99}")
POSIX_USER = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,31}")
CONF_SECTION = re.compile(r"[A-Za-z0-9_.:-]{1,100}")
CONF_KEY = re.compile(r"[A-Za-z0-9_.-]{1,100}")
CONTROL = re.compile(r"[\x00-\x1f\x7f]")
PATHS = (("cinder_conf", "path"), ("agent", "binary"), ("agent", "config"), ("agent", "pid"),
         ("keystone", "cacert"), ("lookup", "cinder_api_binary"), ("lookup", "pid_dir"), ("lookup", "agent_dir"),
         ("lookup", "secrets_dir"), ("lookup", "alert_agent"), ("lookup", "alert_spool"))
URLS = (("keystone", "auth_url"), ("agent", "os_auth_url"), ("agent", "url"), ("agent", "keystone_get_token_url"),
        ("notifications", "transport_url"), ("database", "connection"), ("sql_connection",))


def _kind(value):
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (int, float)):
        return "a number"
    return f"a {type(value).__name__}"


def _type_ok(value, kind):
    if kind == MAPPING:
        return isinstance(value, dict)
    if kind == BOOL:
        return isinstance(value, bool)
    if kind == NUMBER:
        if isinstance(value, str):
            try:
                float(value)
                return True
            except ValueError:
                return False
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == LIST:
        return isinstance(value, str) or (isinstance(value, (list, tuple))
                                          and all(_type_ok(v, SCALAR) for v in value))
    if kind == TEXT:
        return isinstance(value, str)
    return isinstance(value, (str, int, float)) and not isinstance(value, bool)


def _typed(raw, types, path, errors):
    """A copy of `raw` without the values of the wrong type (each one an error)."""
    clean = {}
    for key, value in raw.items():
        kind = types.get(key)
        if kind is None or value is None:
            clean[key] = value
        elif isinstance(kind, dict):
            clean[key] = _typed(value, kind, f"{path}{key}:", errors) if isinstance(value, dict) else None
        elif _type_ok(value, kind):
            clean[key] = value
        else:
            errors.append(f"{path}{key}: got {_kind(value)}, expected {EXPECTED[kind]}")
    return clean


def _leaves(node, path=""):
    """(key path, string) for every string and number in the tree."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _leaves(value, f"{path}{key}:")
    elif isinstance(node, (list, tuple)):
        for value in node:
            yield from _leaves(value, path)
    elif node is not None and not isinstance(node, bool):
        yield path.rstrip(":"), str(node)


def _hostile(raw, errors):
    """Shapes no value may have, whatever its key: control characters (every value ends up on
    one line: a CIB attribute, a cinder.conf key, a URL, a command's argument); then ids,
    paths, user names, URLs and cinder.conf keys by their own syntax."""
    for where, text in _leaves(raw):
        if CONTROL.search(text):
            errors.append(f"{where}: holds a control character (line break, tab, NUL...): every value "
                          "is written on one line")
    def section(name):
        value = raw.get(name)
        return value if isinstance(value, dict) else {}

    cluster = section("cluster")
    for key in ("primitive_id", "vip_id"):
        value = cluster.get(key)
        if value is not None and not PACEMAKER_ID.fullmatch(str(value)):
            errors.append(f"cluster:{key}: not a Pacemaker id (a letter or '_', then letters, digits, "
                          f"'_', '.', '-'; at most 100): {str(value)[:60]!r}")
    if cluster.get("primitive_id", "p_cinder-api") == cluster.get("vip_id", "p_ip_cinder-api"):
        errors.append("cluster: primitive_id and vip_id must differ")
    for name, key in PATHS:
        value = section(name).get(key)
        if value is not None and not (isinstance(value, str) and value.startswith("/") and "\0" not in value
                                      and "/../" not in value + "/"):
            errors.append(f"{name}:{key}: must be an absolute path (no '..'), got {str(value)[:60]!r}")
    user = section("agent").get("user")
    if user is not None and not POSIX_USER.fullmatch(str(user)):
        errors.append(f"agent:user: not a POSIX user name (letters, digits, '_', '.', '-'; not starting "
                      f"with '-' or a digit; at most 32): {str(user)[:40]!r}")
    for path in URLS:
        node = section(path[0]) if len(path) > 1 else raw
        value = node.get(path[-1])
        if isinstance(value, str) and value and re.search(r"\s", value):
            errors.append(f"{':'.join(path)}: a URL holds no white space")
    extra = section("cinder_conf").get("extra")
    if isinstance(extra, dict):
        for name, keys in extra.items():
            if not CONF_SECTION.fullmatch(str(name)):
                errors.append(f"cinder_conf:extra:{str(name)[:40]}: not a cinder.conf section name "
                              "(letters, digits, '_', '.', ':', '-')")
            if not isinstance(keys, dict):
                continue
            for key, value in keys.items():
                if not CONF_KEY.fullmatch(str(key)):
                    errors.append(f"cinder_conf:extra:{name}:{str(key)[:40]}: not a cinder.conf key "
                                  "(letters, digits, '_', '.', '-')")
                values = value if isinstance(value, (list, tuple)) else [value]
                for item in values:
                    if isinstance(item, (dict, list, tuple)):
                        errors.append(f"cinder_conf:extra:{name}:{key}: got {_kind(item)}, expected a "
                                      "string, a number, a boolean or a list of them")
                        break
    timeout = section("keystone").get("timeout")
    if timeout is not None and _type_ok(timeout, NUMBER) and not 0 < float(timeout) <= 300:
        errors.append(f"keystone:timeout: seconds between 0 and 300, got {timeout!r}")


def _lookup(raw, errors):
    """``lookup``: the formula parameters it overrides, checked by their own syntax."""
    lookup = {k: v for k, v in (raw.get("lookup") or {}).items() if v is not None}
    for key in ("vip_monitor_interval", "vip_monitor_timeout"):
        if key in lookup:
            value = str(lookup[key]).strip()
            if re.fullmatch(r"\d+", value):
                value += "s"
            if not re.fullmatch(r"\d+(ms|s|m|min|h)", value):
                errors.append(f"lookup:{key}: a duration like 10s, got {lookup[key]!r}")
            lookup[key] = value
    if "settle_timeout" in lookup and not 0 < float(lookup["settle_timeout"]) <= 3600:
        errors.append(f"lookup:settle_timeout: seconds between 0 and 3600, got {lookup['settle_timeout']!r}")
    if "alert_id" in lookup and not PACEMAKER_ID.fullmatch(str(lookup["alert_id"])):
        errors.append(f"lookup:alert_id: not a Pacemaker id: {str(lookup['alert_id'])[:60]!r}")
    for key in ("cinder_user", "cinder_group", "alert_spool_user", "alert_spool_group"):
        if key in lookup and not POSIX_USER.fullmatch(str(lookup[key])):
            errors.append(f"lookup:{key}: not a POSIX user or group name: {str(lookup[key])[:40]!r}")
    for key in ("agent_name", "engine_conf"):
        if key in lookup and not re.fullmatch(r"[A-Za-z0-9_.-]{1,100}", str(lookup[key])):
            errors.append(f"lookup:{key}: a file name (letters, digits, '_', '.', '-'), got "
                          f"{str(lookup[key])[:60]!r}")
    for key in ("agent_source", "alert_agent_source"):
        if key in lookup and ".." in str(lookup[key]).split("/"):
            errors.append(f"lookup:{key}: a path below the formula (or a salt:// URL), no '..'")
    return lookup


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
        port = _port(db.get("port"), "database:port", errors, urls.DEFAULT_DATABASE_PORT)
        connection = urls.database_url(db["host"], db["user"], db["password"], db.get("name") or "cinder", port)
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
    default_port = _port(rabbit.get("port"), "rabbitmq:port", errors, urls.DEFAULT_BROKER_PORT)
    user = str(rabbit.get("user") or "guest")
    password = rabbit.get("password")
    if password is None:
        errors.append("rabbitmq:password: missing")
        return None
    # Probed against the real broker with cinder's oslo.messaging/kombu: every other printable
    # character works percent-encoded, '/' never does (kombu splits the URL on it and reads the
    # rest as host:port), in the user as in the password.
    for key, value in (("user", user), ("password", str(password))):
        if "/" in value:
            errors.append(f"rabbitmq:{key}: contains '/', which cinder's messaging stack (kombu) cannot use in "
                          "transport_url however it is encoded (it takes it for the end of the host part and "
                          f"fails to connect); choose a {key} without '/'")
    brokers = []
    for host in hosts:
        host = str(host).strip()
        match = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\](?::(\d+))?|([^:\s/@]+)(?::(\d+))?", host)
        if not match:
            errors.append(f"rabbitmq:hosts: not host[:port]: {host!r}")
            continue
        name = match.group(1) or match.group(3)
        port = _port(match.group(2) or match.group(4), f"rabbitmq:hosts:{host}", errors, default_port)
        brokers.append((name, port))
    return urls.transport_url(brokers, user, password, rabbit.get("virtual_host") or "/")


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
    agent.setdefault("pid", None)  # the agent's default: /run/resource-agents/<primitive id>.pid
    if mode == "lrm" and agent.get("os_password") is not None:
        problem = lrm_unreadable(str(agent["os_password"]))
        if problem:
            errors.append(f"agent:os_password: {problem}; with secret_mode lrm Pacemaker could never load it "
                          "(its monitor would fail with 'Unable to load CIB secrets')")
    return agent


LRM_MAX = 254


def lrm_unreadable(value):
    """Why Pacemaker cannot read ``value`` back from an lrm secret file, or None.

    Pacemaker's executor reads ONE line of at most 254 characters, strips trailing
    whitespace, and compares its md5 with the .sign file (lib/common/cib_secrets.c)."""
    if value == "":
        return "is empty"
    if "\n" in value or "\r" in value:
        return "holds a line break (Pacemaker reads one line of a secret file)"
    if value != value.rstrip():
        return "ends in whitespace (Pacemaker strips it when it reads the secret back)"
    if len(value) > LRM_MAX:
        return f"is {len(value)} characters long (Pacemaker reads at most {LRM_MAX})"
    return None


def normalize(raw):
    """Check the whole ``cinder_ha`` pillar; return (settings, errors, warnings)."""
    errors, warnings = [], []
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        return None, [f"cinder_ha: got {_kind(raw)}, expected a mapping"], []
    _unknown_keys(raw, SCHEMA, "", errors)
    _hostile(raw, errors)
    raw = _typed(raw, TYPES, "", errors)

    vip = _vip(raw.get("vip"), "vip", errors, required=True)
    public_vip = _vip(raw.get("public_vip"), "public_vip", errors, required=False) or vip
    port = _port(raw.get("cinder_api_port"), "cinder_api_port", errors, urls.DEFAULT_PORT)
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
    settings["cluster"] = _cluster(raw, settings, errors)
    settings["lookup"] = _lookup(raw, errors)
    settings["clean"] = {"catalog": bool((raw.get("clean") or {}).get("catalog", False))}
    if vip and public_vip and vip["version"] != public_vip["version"]:
        errors.append("public_vip and vip must both be IPv4 or both IPv6")
    if errors:
        return None, errors, warnings
    settings["endpoint_urls"] = endpoint_urls(settings)
    return settings, errors, warnings


MODES = ("active_passive", "cloned")
CLONED_ONLY = ("clone_id", "clone_max", "vip_stickiness", "failure_timeout")


def default_clone_id(cluster):
    """The clone of cluster:mode cloned: cluster:clone_id, else ``cl_<primitive_id>``. Also what
    a switch back to active_passive (or cinder_ha.clean) looks for, whatever the mode now."""
    return cluster.get("clone_id") or f"cl_{cluster['primitive_id']}"


def _cluster(raw, settings, errors):
    """``cluster``: the guide's ids, and the mode (``active_passive``, the guide's one primitive
    behind the VIP; ``cloned``, an instance on every controller and only the VIP moves)."""
    cluster = dict(raw.get("cluster") or {})
    cluster.setdefault("primitive_id", "p_cinder-api")
    cluster.setdefault("vip_id", "p_ip_cinder-api")
    cluster.setdefault("stickiness", None)
    mode = cluster.get("mode") or "active_passive"
    if mode not in MODES:
        errors.append(f"cluster:mode: one of {', '.join(MODES)}, got {mode!r}{_closest(str(mode), MODES)}")
        mode = "active_passive"
    cluster["mode"] = mode
    nodes = cluster.get("nodes")
    if isinstance(nodes, str):
        nodes = [n for n in re.split(r"[,\s]+", nodes) if n]
    if nodes is not None:
        nodes = [str(n) for n in nodes]
        bad = [n for n in nodes if not PACEMAKER_ID.fullmatch(n)]
        if bad or len(set(nodes)) != len(nodes):
            errors.append(f"cluster:nodes: the controllers' cluster node names, each once "
                          f"(got {', '.join(map(repr, nodes))[:120]})")
    cluster["nodes"] = nodes
    if mode == "active_passive":
        given = [key for key in CLONED_ONLY if cluster.get(key) is not None]
        for key in given:
            errors.append(f"cluster:{key}: only with cluster:mode cloned (the mode is active_passive)")
        for key in CLONED_ONLY:
            cluster[key] = None
        return cluster
    # cloned
    if cluster.get("stickiness") is not None:
        errors.append("cluster:stickiness: with cluster:mode cloned every controller runs its own cinder-api "
                      "instance, which never moves: stickiness on it means nothing. Only the VIP moves: set "
                      "cluster:vip_stickiness instead")
    clone_id = default_clone_id(cluster)
    if not PACEMAKER_ID.fullmatch(str(clone_id)):
        errors.append(f"cluster:clone_id: not a Pacemaker id: {str(clone_id)[:60]!r}")
    elif clone_id in (cluster["primitive_id"], cluster["vip_id"]):
        errors.append("cluster:clone_id: must differ from primitive_id and vip_id")
    cluster["clone_id"] = clone_id
    clone_max = cluster.get("clone_max")
    if clone_max is not None:
        if isinstance(clone_max, bool) or not re.fullmatch(r"\d{1,3}", str(clone_max).strip()):
            errors.append(f"cluster:clone_max: a whole number of instances, got {clone_max!r}")
            clone_max = None
        else:
            clone_max = int(str(clone_max).strip())
            if clone_max < 2:
                errors.append(f"cluster:clone_max: {clone_max}: a cloned cinder-api needs at least two instances "
                              "(with one, the VIP has nowhere to go: use cluster:mode active_passive)")
            elif nodes is not None and clone_max > len(nodes):
                errors.append(f"cluster:clone_max: {clone_max} instances but cluster:nodes names {len(nodes)} "
                              "controllers (one instance per node): the extra instances could never run")
    if nodes is not None and len(nodes) < 2:
        errors.append("cluster:nodes: cluster:mode cloned needs at least two controllers")
    cluster["clone_max"] = clone_max
    vip_stickiness = cluster.get("vip_stickiness")
    if vip_stickiness is not None and not re.fullmatch(r"-?\d{1,7}|[+-]?INFINITY", str(vip_stickiness).strip()):
        errors.append(f"cluster:vip_stickiness: a score (an integer or INFINITY), got {vip_stickiness!r}")
    cluster["vip_stickiness"] = None if vip_stickiness is None else str(vip_stickiness).strip()
    timeout = str(cluster.get("failure_timeout") or "60s").strip()
    if re.fullmatch(r"\d+", timeout):
        timeout += "s"
    if not re.fullmatch(r"\d+(ms|s|m|min|h)", timeout):
        errors.append(f"cluster:failure_timeout: a duration like 60s, got {cluster.get('failure_timeout')!r}")
    cluster["failure_timeout"] = timeout
    url = (settings.get("agent") or {}).get("url")
    vip = settings.get("vip")
    if url and vip and urls.url_host(vip["address"]) in str(url):
        errors.append("agent:url: points at the VIP; with cluster:mode cloned each instance must be checked on "
                      "its own node (the VIP answers from whichever node holds it): leave agent:url unset")
    return cluster


def endpoint_urls(settings):
    """The catalog URL per interface: public on the public VIP, internal and admin on the VIP."""
    path = settings["endpoints"]["path"]
    found = {}
    for iface in settings["endpoints"]["interfaces"]:
        vip = settings["public_vip"] if iface == "public" else settings["vip"]
        found[iface] = f"http://{urls.url_host(vip['address'])}:{settings['port']}{path}"
    return found
