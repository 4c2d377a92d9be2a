"""Validate and normalize the ``cinder_ha`` pillar. Pure logic: no Salt, no I/O.

``normalize(raw)`` returns ``(settings, errors, warnings)``. ``errors`` lists every problem
at once (the formula's first state fails with all of them and nothing else runs);
``warnings`` says which of the guide's 2014 names were migrated. ``settings`` is the one
shape every state reads: defaults filled in, the guide's inputs mapped to today's.

Every key is declared once in ``MEANINGS`` with what its value means (``cinder_ha_lib.meanings``):
the validator checks each value by that meaning, the errors name the key and say what would be
valid, and the README's pillar reference lists the same words (``docs_table()``). What is left
below is what only several keys together decide (a VIP inside its netmask, the cloned mode's
keys, the guide's names and their migration).

Reference: pillar.example. Loaded by Salt as ``__utils__["cinder_ha_pillar.normalize"]``.
"""
import copy
import ipaddress
from urllib.parse import urlsplit

from cinder_ha_lib import consumers as consumers_pillar
from cinder_ha_lib import meanings as m
from cinder_ha_lib import urls
from cinder_ha_lib import volume as volume_pillar
from cinder_ha_lib.meanings import BOOL, LIST, MAPPING, NUMBER, SCALAR, TEXT  # noqa: F401 - TYPES' words

URL_FORMS = urls.ENDPOINT_PATHS
MODES = ("active_passive", "cloned", "balanced")
# the modes where cinder-api is a clone, an instance on every controller
CLONE_MODES = ("cloned", "balanced")
CLONED_ONLY = ("clone_id", "clone_max", "vip_stickiness", "failure_timeout")
# balanced mode: the score that draws the VIP to a node where HAProxy runs (finite: with HAProxy
# nowhere the VIP stays where it is); cluster:vip_stickiness stays below it
BALANCED_VIP_SCORE = 100000
# oslo.messaging's notification drivers: the entry points `oslo.messaging.notify.drivers` of
# cinder's venv (importlib.metadata; oslo.messaging 18.3.1, cinder 29.0.0), frozen here.
NOTIFICATION_DRIVERS = ("log", "messaging", "messagingv2", "noop", "routing", "test")
# oslo.messaging's transports: its entry points `oslo.messaging.drivers` (same venv).
TRANSPORT_SCHEMES = ("rabbit", "kombu", "kafka", "fake")
# The databases cinder runs on (SQLAlchemy dialects; mysql and mysql+mysqldb are rewritten to
# mysql+pymysql, the driver cinder installs; sqlite is warned about).
DATABASE_SCHEMES = ("mysql+pymysql", "mysql", "mysql+mysqldb", "postgresql", "postgresql+psycopg2", "sqlite")
# The 2014 guide's notifier_strategy values (the Glance/cinder option of the time).
GUIDE_NOTIFIER_STRATEGIES = ("rabbit", "qpid", "noop", "no_op", "logging", "default")
BLOCK_STORAGE_TYPES = ("block-storage", "volumev3")
INTERFACES = ("public", "internal", "admin")

VIP = m.HostAddress()
PREFIX = m.PrefixLength()
HOST = m.Host()
BROKER = m.Broker()
KEYSTONE_URL = m.KeystoneUrl()
SCORE = m.Score()
SECRET_MODE = m.Enum(("lrm", "plain"))
MINION_ID = m.Text("a Salt minion id (no white space, no '/')", max_len=255, forbid=" /", exact=True)
# Probed against the real broker with cinder's oslo.messaging/kombu: every other printable
# character works percent-encoded, '/' never does (kombu splits the URL on it and reads the
# rest as host:port), in the user as in the password.
RABBIT_CREDENTIAL = m.Text(
    "a RabbitMQ user or password: any characters on one line but '/', not empty", forbid="/", kind=SCALAR,
    echo=False, why_forbidden="which cinder's messaging stack (kombu) cannot use in transport_url however it is "
                              "encoded (it takes it for the end of the host part and fails to connect); choose one "
                              "without '/'")
DATABASE_URL = m.Url(DATABASE_SCHEMES, "a database URL (expected mysql+pymysql://user:pass@host/cinder)",
                     hostless=("sqlite",))
TRANSPORT_URL = m.Url(TRANSPORT_SCHEMES, "an oslo.messaging transport URL (rabbit://user:pass@host:5672/)",
                      hostless=("fake",))
# nova's and cinder's catalog_info name a service as <type>:<name>:<interface>
SERVICE_NAME = m.Text("a Keystone service name (1 to 255 characters, no '/' or ':', no leading or trailing space)",
                      max_len=255, exact=True, kind=SCALAR, forbid="/:",
                      why_forbidden="which a catalog lookup cannot take (<type>:<name>:<interface>, URL paths)")
DATABASE_USER = m.Text("a database user name (1 to 80 characters)", max_len=80, kind=SCALAR)
DATABASE_NAME = m.Text("a database name (1 to 64 characters, no trailing space)", max_len=64, kind=SCALAR)
# [oslo_messaging_rabbit] heartbeat_timeout_threshold: a connection silent this long is dead, to
# cinder and to RabbitMQ (it takes the lower of its own 60 s and the client's). Until then the
# broker keeps a cut-off node's consumers and hands them casts: a create waits that long.
RABBIT_HEARTBEAT = m.Integer(
    5, 300, "a whole number of seconds, 5 to 300", below="cinder sends a heartbeat every third of it from an "
    "eventlet thread; below 5 s a busy cinder-volume misses them and reconnects, and 0 (no heartbeat) keeps a "
    "cut-off node's consumers on the broker for hours")
DEFAULT_RABBIT_HEARTBEAT = 10  # with cinder_ha:volume; unset (oslo.messaging's 60 s) without it
INTERVAL = m.Duration("30s", 1)  # Pacemaker needs a recurring monitor's interval above 0
TIMEOUT = m.Duration("60s", 5)  # cinder-api is ready 1.6-2 s after launch, on an idle node

MEANINGS = {
    ("vip", "address"): VIP, ("vip", "netmask"): PREFIX, ("vip", "nic"): m.INTERFACE,
    ("public_vip", "address"): VIP, ("public_vip", "netmask"): PREFIX, ("public_vip", "nic"): m.INTERFACE,
    ("cinder_api_port",): m.PORT,
    ("controller",): MINION_ID,
    ("database", "connection"): DATABASE_URL, ("database", "host"): HOST, ("database", "port"): m.PORT,
    ("database", "user"): DATABASE_USER, ("database", "password"): m.SECRET, ("database", "name"): DATABASE_NAME,
    ("sql_connection",): DATABASE_URL,
    ("rabbitmq", "hosts"): m.ListOf(BROKER), ("rabbitmq", "port"): m.PORT, ("rabbitmq", "user"): RABBIT_CREDENTIAL,
    ("rabbitmq", "password"): RABBIT_CREDENTIAL,
    ("rabbitmq", "virtual_host"): m.Text("a RabbitMQ virtual host (any text on one line, not empty)"),
    ("rabbitmq", "heartbeat_timeout"): RABBIT_HEARTBEAT,
    ("rabbit_host",): BROKER, ("rabbit_hosts",): m.ListOf(BROKER), ("rabbit_port",): m.PORT,
    ("rabbit_userid",): RABBIT_CREDENTIAL, ("rabbit_password",): RABBIT_CREDENTIAL,
    ("rabbit_virtual_host",): m.Text("a RabbitMQ virtual host (any text on one line, not empty)"),
    ("notifications", "driver"): m.Enum(NOTIFICATION_DRIVERS),
    ("notifications", "transport_url"): TRANSPORT_URL,
    ("notifications", "topics"): m.ListOf(m.Word("a topic name (letters, digits, '_', '.', '-')", "A-Za-z0-9_",
                                                 "A-Za-z0-9_.-", 255)),
    ("notifier_strategy",): m.Enum(GUIDE_NOTIFIER_STRATEGIES),
    ("keystone", "auth_url"): KEYSTONE_URL, ("keystone", "username"): m.KEYSTONE_NAME,
    ("keystone", "password"): m.SECRET, ("keystone", "project_name"): m.KEYSTONE_NAME,
    ("keystone", "user_domain_name"): m.KEYSTONE_NAME, ("keystone", "project_domain_name"): m.KEYSTONE_NAME,
    ("keystone", "region"): m.KEYSTONE_REGION, ("keystone", "cacert"): m.ABSOLUTE_PATH,
    ("keystone", "insecure"): m.BOOLEAN, ("keystone", "timeout"): m.Seconds(0, 300),
    ("endpoints", "url_form"): m.Enum(URL_FORMS), ("endpoints", "service_types"): m.ListOf(m.Enum(BLOCK_STORAGE_TYPES)),
    ("endpoints", "interfaces"): m.ListOf(m.Enum(INTERFACES)), ("endpoints", "retire_legacy"): m.BOOLEAN,
    ("endpoints", "service_name"): SERVICE_NAME, ("endpoints", "description"): m.FREE_TEXT,
    ("agent", "source"): m.Source(), ("agent", "source_hash"): m.SourceHash(),
    ("agent", "binary"): m.ABSOLUTE_PATH, ("agent", "config"): m.ABSOLUTE_PATH, ("agent", "user"): m.POSIX_NAME,
    ("agent", "pid"): m.ABSOLUTE_PATH, ("agent", "url"): m.HTTP_URL,
    ("agent", "monitor_interval"): INTERVAL, ("agent", "monitor_timeout"): TIMEOUT,
    ("agent", "start_timeout"): TIMEOUT, ("agent", "stop_timeout"): TIMEOUT,
    ("agent", "os_username"): m.KEYSTONE_NAME, ("agent", "os_password"): m.SECRET,
    ("agent", "os_tenant_name"): m.KEYSTONE_NAME, ("agent", "keystone_get_token_url"): m.HTTP_URL,
    ("agent", "os_auth_url"): m.HTTP_URL, ("agent", "os_project_name"): m.KEYSTONE_NAME,
    ("agent", "os_user_domain_name"): m.KEYSTONE_NAME, ("agent", "os_project_domain_name"): m.KEYSTONE_NAME,
    ("agent", "additional_parameters"): m.FREE_TEXT, ("agent", "secret_mode"): SECRET_MODE,
    ("cinder_conf", "path"): m.ABSOLUTE_PATH,
    # create a missing cinder.conf from the formula's keys alone: a brand-new install only
    ("cinder_conf", "create"): m.BOOLEAN,
    ("cinder_conf", "extra"): m.MappingOf(m.CONF_SECTION, m.MappingOf(m.CONF_KEY, m.ConfValue(), "key: value"),
                                          "section: {key: value} (cinder.conf's own syntax)"),
    ("cluster", "primitive_id"): m.PACEMAKER_ID, ("cluster", "vip_id"): m.PACEMAKER_ID,
    ("cluster", "stickiness"): SCORE, ("cluster", "mode"): m.Enum(MODES), ("cluster", "clone_id"): m.PACEMAKER_ID,
    ("cluster", "clone_max"): m.Integer(
        2, 999, "a whole number of instances, 2 or more", below="a cloned cinder-api needs at least two instances "
        "(with one, the VIP has nowhere to go: use cluster:mode active_passive)"),
    ("cluster", "nodes"): m.Nodes(m.NODE_NAME, m.NodeAddress()),
    ("cluster", "vip_stickiness"): SCORE, ("cluster", "failure_timeout"): m.Duration("60s", 1),
    # overrides of the formula's parameters (salt/cinder_ha/parameters/defaults.yaml holds the
    # defaults): only these keys
    ("lookup", "cinder_user"): m.POSIX_NAME, ("lookup", "cinder_group"): m.POSIX_NAME,
    ("lookup", "cinder_api_binary"): m.ABSOLUTE_PATH, ("lookup", "pid_dir"): m.ABSOLUTE_PATH,
    ("lookup", "agent_dir"): m.ABSOLUTE_PATH, ("lookup", "agent_name"): m.FILE_NAME,
    ("lookup", "agent_source"): m.FormulaPath(), ("lookup", "agent_functions"): m.FILE_NAME,
    ("lookup", "agent_functions_source"): m.FormulaPath(), ("lookup", "service_agent_source"): m.FormulaPath(),
    ("lookup", "vip_monitor_interval"): m.Duration("10s", 1), ("lookup", "vip_monitor_timeout"): m.Duration("20s", 5),
    ("lookup", "settle_timeout"): m.Seconds(0, 3600), ("lookup", "secrets_dir"): m.ABSOLUTE_PATH,
    ("lookup", "alert_id"): m.PACEMAKER_ID, ("lookup", "alert_agent"): m.ABSOLUTE_PATH,
    ("lookup", "alert_agent_source"): m.FormulaPath(), ("lookup", "alert_spool"): m.ABSOLUTE_PATH,
    ("lookup", "alert_spool_user"): m.POSIX_NAME, ("lookup", "alert_spool_group"): m.POSIX_NAME,
    ("lookup", "engine_conf"): m.FILE_NAME,
    ("lookup", "haproxy_id"): m.PACEMAKER_ID, ("lookup", "haproxy_binary"): m.ABSOLUTE_PATH,
    ("lookup", "haproxy_agent_source"): m.FormulaPath(), ("lookup", "haproxy_config"): m.ABSOLUTE_PATH,
    ("lookup", "haproxy_runtime_socket"): m.ABSOLUTE_PATH, ("lookup", "haproxy_state_file"): m.ABSOLUTE_PATH,
    ("lookup", "haproxy_user"): m.POSIX_NAME, ("lookup", "haproxy_monitor_interval"): m.Duration("10s", 1),
    ("lookup", "haproxy_monitor_timeout"): m.Duration("20s", 5),
    # cinder_ha.clean: catalog true also removes the Block Storage services and endpoints
    ("clean", "catalog"): m.BOOLEAN,
    # cinder-volume and cinder-scheduler: declared (and checked) in cinder_ha_lib.volume
    **volume_pillar.MEANINGS,
    # nova and glance pointed at the VIP (cinder_ha.consumers): cinder_ha_lib.consumers
    **consumers_pillar.MEANINGS,
}
VOLUME_SECTIONS = ("volume", "scheduler")


def _types():
    types = {}
    for path, meaning in MEANINGS.items():
        if path[0] in VOLUME_SECTIONS:
            continue
        if len(path) == 1:
            types[path[0]] = meaning.kind
        else:
            types.setdefault(path[0], {})[path[1]] = meaning.kind
    types["volume"], types["scheduler"] = MAPPING, None  # checked key by key by cinder_ha_lib.volume
    return types


# The YAML shape of every key (its meaning's), and every key the pillar may hold (unknown keys are errors).
TYPES = _types()
SCHEMA = {key: ({sub: None for sub in kind} if isinstance(kind, dict) else None) for key, kind in TYPES.items()}


def docs_table():
    """The README's table of meanings: each meaning's words and the keys declared with it."""
    rows = {}
    for path, meaning in MEANINGS.items():
        rows.setdefault(meaning.what, []).append(":".join(path))
    lines = ["| a value of | means |", "|---|---|"]
    lines += [f"| {', '.join(f'`{k}`' for k in keys)} | {what.replace('|', '/')} |" for what, keys in rows.items()]
    return "\n".join(lines) + "\n"


def _unknown_keys(raw, schema, path, errors):
    for key, value in raw.items():
        if key not in schema:
            errors.append(f"{path}{key}: unknown key{m.closest(str(key), schema)}")
        elif isinstance(schema[key], dict):
            if value is None:
                continue
            if not isinstance(value, dict):
                errors.append(f"{path}{key}: got {m.kind_of(value)}, expected a mapping")
            else:
                _unknown_keys(value, schema[key], f"{path}{key}:", errors)


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


def _one_line(raw, errors):
    """Every value, whatever its key, ends up on one line (a CIB attribute, a cinder.conf key, a URL,
    a command's argument): a control character anywhere is an error naming where."""
    for where, text in _leaves(raw):
        if m.CONTROL.search(text):
            errors.append(f"{where}: holds a control character (line break, tab, NUL...): every value "
                          "is written on one line")


def _checked(raw, errors):
    """A copy of ``raw`` where each declared value is as its meaning reads it (``30`` ->
    ``"30s"``); a value that means nothing valid is dropped (its problems in ``errors``), so the
    rest of normalize() never sees it. Returns (copy, the dropped keys' names)."""
    clean = copy.deepcopy(raw)
    for name, kind in TYPES.items():  # a section that is no mapping: _unknown_keys said so
        if isinstance(kind, dict) and clean.get(name) is not None and not isinstance(clean[name], dict):
            clean[name] = None
    dropped = set()
    for path, meaning in MEANINGS.items():
        if path[0] in VOLUME_SECTIONS:
            continue
        node = clean
        for part in path[:-1]:
            node = node.get(part) if isinstance(node, dict) else None
        if not isinstance(node, dict) or node.get(path[-1]) is None:
            continue
        where = ":".join(path)
        value = node[path[-1]]
        if any(m.CONTROL.search(text) for _, text in _leaves(value)):
            result = m.INVALID  # _one_line said so
        else:
            result = m.check(meaning, value, where, errors)
        if result is m.INVALID:
            del node[path[-1]]
            dropped.add(where)
        else:
            node[path[-1]] = result
    return clean, dropped


def _lookup(raw):
    """``lookup``: the formula parameters it overrides (each checked by its meaning)."""
    return {k: v for k, v in (raw.get("lookup") or {}).items() if v is not None}


def _vip(raw, where, errors, required):
    """A VIP: its address (checked by its meaning) inside its netmask."""
    if not raw or not raw.get("address"):
        if required:
            errors.append(f"{where}:address: missing (the virtual IP cinder-api runs behind)")
        return None
    address = raw["address"]
    ip = ipaddress.ip_address(address)
    netmask = raw.get("netmask", ip.max_prefixlen)
    if netmask > ip.max_prefixlen:
        errors.append(f"{where}:netmask: {netmask} is longer than an IPv{ip.version} address (a prefix length 1 "
                      f"to {ip.max_prefixlen})")
        netmask = None
    elif ip.version == 4 and netmask <= 30:
        subnet = ipaddress.ip_network(f"{address}/{netmask}", strict=False)
        if ip in (subnet.network_address, subnet.broadcast_address):
            which = "network" if ip == subnet.network_address else "broadcast"
            errors.append(f"{where}:address: {address} is the {which} address of {subnet}: not a host address "
                          "a node can hold")
    return {"address": address, "netmask": netmask, "nic": raw.get("nic"), "version": ip.version}


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
        connection = urls.database_url(db["host"], db["user"], db["password"], db.get("name") or "cinder",
                                       db.get("port") or urls.DEFAULT_DATABASE_PORT)
    scheme = urlsplit(connection).scheme
    if scheme in ("mysql", "mysql+mysqldb"):
        warnings.append(f"database:connection uses {scheme}://; rewritten to mysql+pymysql:// "
                        "(the driver cinder installs)")
        connection = "mysql+pymysql" + connection[len(scheme):]
    elif scheme == "sqlite":
        warnings.append("database:connection is SQLite: each controller has its own database, fine for a "
                        "sandbox, data loss on failover in production")
    return connection


# The guide's RabbitMQ names and the rabbitmq: keys they migrate to.
RABBIT_LEGACY = {"rabbit_host": "hosts", "rabbit_hosts": "hosts", "rabbit_port": "port", "rabbit_userid": "user",
                 "rabbit_password": "password", "rabbit_virtual_host": "virtual_host"}


def _transport_url(raw, errors, warnings):
    rabbit = dict(raw.get("rabbitmq") or {})
    legacy = {k: raw[k] for k in RABBIT_LEGACY if raw.get(k) is not None}
    if legacy:
        warnings.append(f"{', '.join(sorted(legacy))}: removed from oslo.messaging in Stein and ignored by cinder "
                        "(it would talk to guest@localhost): migrated to [DEFAULT] transport_url")
        many, one = legacy.pop("rabbit_hosts", None), legacy.pop("rabbit_host", None)
        hosts = many or one
        if hosts:
            rabbit.setdefault("hosts", [hosts] if isinstance(hosts, str) else hosts)
        for old, value in legacy.items():
            rabbit.setdefault(RABBIT_LEGACY[old], value)
    hosts = rabbit.get("hosts")
    if not hosts:
        errors.append("rabbitmq:hosts: missing (one or more broker hosts, host[:port])")
        return None
    password = rabbit.get("password")
    if password is None:
        errors.append("rabbitmq:password: missing")
        return None
    default_port = rabbit.get("port") or urls.DEFAULT_BROKER_PORT
    brokers = [(host, port or default_port) for host, port in map(m.Broker.split, hosts)]
    return urls.transport_url(brokers, str(rabbit.get("user") or "guest"), password, rabbit.get("virtual_host") or "/")


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
    ks.setdefault("user_domain_name", "Default")
    ks.setdefault("project_domain_name", "Default")
    ks.setdefault("region", "RegionOne")
    ks.setdefault("insecure", False)
    ks["timeout"] = float(ks.get("timeout") or 10)
    return ks


def _endpoints(raw, errors, warnings):
    ep = dict(raw.get("endpoints") or {})
    form = ep.get("url_form", "v3")
    if form == "legacy_v1":
        warnings.append("endpoints:url_form legacy_v1 (/v1/%(tenant_id)s, the guide's URL) names an API removed "
                        "in Queens: clients will get 404; use v3")
    if form == "legacy_v1" and ep.get("retire_legacy"):
        errors.append("endpoints: url_form legacy_v1 and retire_legacy contradict each other (every run would "
                      "create the /v1 endpoints and then delete them)")
    return {
        "url_form": form,
        "path": URL_FORMS[form],
        "service_types": list(ep.get("service_types") or ["block-storage"]),
        "interfaces": list(ep.get("interfaces") or INTERFACES),
        "retire_legacy": bool(ep.get("retire_legacy", False)),
        "service_name": ep.get("service_name") or "cinder",
        "description": ep.get("description") or "OpenStack Block Storage",
    }


def _agent(raw, settings, errors, warnings):
    agent = dict(raw.get("agent") or {})
    if agent.get("source") and str(agent["source"]).startswith(("http://", "https://", "ftp://")) \
            and not agent.get("source_hash"):
        errors.append("agent:source_hash: required when agent:source is a URL (the agent runs as root)")
    agent.setdefault("monitor_interval", "30s")
    agent.setdefault("monitor_timeout", "30s")
    agent.setdefault("start_timeout", "60s")
    agent.setdefault("stop_timeout", "90s")
    mode = agent.setdefault("secret_mode", "lrm")
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
        return None, [f"cinder_ha: got {m.kind_of(raw)}, expected a mapping"], []
    _unknown_keys(raw, SCHEMA, "", errors)
    _one_line(raw, errors)
    raw, dropped = _checked(raw, errors)

    vip = _vip(raw.get("vip"), "vip", errors, required=True)
    public_vip = _vip(raw.get("public_vip"), "public_vip", errors, required=False) or vip
    conf = dict(raw.get("cinder_conf") or {})
    conf.setdefault("path", "/etc/cinder/cinder.conf")
    conf["create"] = conf.get("create") is True
    extra = conf.get("extra") or {}
    conf["extra"] = extra
    settings = {
        "vip": vip,
        "public_vip": public_vip,
        "port": raw.get("cinder_api_port") or urls.DEFAULT_PORT,
        "controller": raw.get("controller"),
        "cinder_conf": conf,
    }
    settings["database_connection"] = _database(raw, errors, warnings)
    settings["transport_url"] = _transport_url(raw, errors, warnings)
    settings["rabbit_heartbeat"] = (raw.get("rabbitmq") or {}).get("heartbeat_timeout")
    settings["notifications"] = _notifications(raw, warnings)
    settings["keystone"] = _keystone(raw, errors)
    settings["endpoints"] = _endpoints(raw, errors, warnings)
    settings["consumers"] = consumers_pillar.normalize(raw, settings, errors)
    settings["agent"] = _agent(raw, settings, errors, warnings)
    settings["cluster"] = _cluster(raw, settings, errors)
    settings["lookup"] = _lookup(raw)
    settings["clean"] = {"catalog": bool((raw.get("clean") or {}).get("catalog", False))}
    settings["volume"], settings["scheduler"] = volume_pillar.normalize(
        raw, errors, warnings, nodes=settings["cluster"]["nodes"])
    if settings["volume"] and settings["rabbit_heartbeat"] is None:
        settings["rabbit_heartbeat"] = DEFAULT_RABBIT_HEARTBEAT
    shared_host = (extra.get("DEFAULT") or extra.get("default") or {}).get("host")
    if settings["volume"] and shared_host is not None:
        errors.append("cinder_conf:extra:DEFAULT:host: a host shared by every node is what cinder's HA document "
                      "calls highly discouraged (the old HA guide's advice); cinder_ha runs cinder-volume under "
                      "volume:backend_host (active_passive) or volume:cluster (active_active): remove it")
    if vip and public_vip and vip["version"] != public_vip["version"]:
        errors.append("public_vip and vip must both be IPv4 or both IPv6")
    # a value refused by its meaning is not "missing" as well (nor is the key a guide's name migrates to)
    dropped |= {f"rabbitmq:{RABBIT_LEGACY[key]}" for key in dropped if key in RABBIT_LEGACY}
    errors = [e for e in errors if not any(e.startswith(f"{key}: missing") for key in dropped)]
    if errors:
        return None, errors, warnings
    settings["endpoint_urls"] = endpoint_urls(settings)
    return settings, errors, warnings


def default_clone_id(cluster):
    """The clone of cluster:mode cloned: cluster:clone_id, else ``cl_<primitive_id>``. Also what
    a switch back to active_passive (or cinder_ha.clean) looks for, whatever the mode now."""
    return cluster.get("clone_id") or f"cl_{cluster['primitive_id']}"


def _cluster(raw, settings, errors):
    """``cluster``: the guide's ids, and the mode (``active_passive``, the guide's one primitive
    behind the VIP; ``cloned``, an instance on every controller and only the VIP moves;
    ``balanced``, an instance on every controller on its own address and HAProxy on every
    controller, on the VIP, sending requests to all of them). ``nodes`` is the list of names,
    ``node_addresses`` the mapping when the pillar gives one (None otherwise)."""
    cluster = dict(raw.get("cluster") or {})
    cluster.setdefault("primitive_id", "p_cinder-api")
    cluster.setdefault("vip_id", "p_ip_cinder-api")
    cluster.setdefault("stickiness", None)
    if cluster["primitive_id"] == cluster["vip_id"]:
        errors.append("cluster: primitive_id and vip_id must differ")
    mode = cluster["mode"] = cluster.get("mode") or "active_passive"
    nodes = cluster.get("nodes")
    cluster["node_addresses"] = dict(nodes) if isinstance(nodes, dict) else None
    nodes = cluster["nodes"] = list(nodes) if nodes is not None else None
    if mode == "active_passive":
        given = [key for key in CLONED_ONLY if cluster.get(key) is not None]
        for key in given:
            errors.append(f"cluster:{key}: only with cluster:mode cloned or balanced (the mode is active_passive)")
        for key in CLONED_ONLY:
            cluster[key] = None
        return cluster
    # cloned, balanced: cinder-api a clone
    if cluster.get("stickiness") is not None:
        errors.append(f"cluster:stickiness: with cluster:mode {mode} every controller runs its own cinder-api "
                      "instance, which never moves: stickiness on it means nothing. Only the VIP moves: set "
                      "cluster:vip_stickiness instead")
    clone_id = cluster["clone_id"] = default_clone_id(cluster)
    if "clone_id" not in (raw.get("cluster") or {}):  # derived from primitive_id: its own meaning still holds
        m.check(m.PACEMAKER_ID, clone_id, "cluster:clone_id", errors)
    if clone_id in (cluster["primitive_id"], cluster["vip_id"]):
        errors.append("cluster:clone_id: must differ from primitive_id and vip_id")
    clone_max = cluster.setdefault("clone_max", None)
    if clone_max is not None and nodes is not None and clone_max > len(nodes):
        errors.append(f"cluster:clone_max: {clone_max} instances but cluster:nodes names {len(nodes)} "
                      "controllers (one instance per node): the extra instances could never run")
    if nodes is not None and len(nodes) < 2:
        errors.append(f"cluster:nodes: cluster:mode {mode} needs at least two controllers")
    cluster.setdefault("vip_stickiness", None)
    cluster["failure_timeout"] = cluster.get("failure_timeout") or "60s"
    url = (settings.get("agent") or {}).get("url")
    vip = settings.get("vip")
    if url and vip and urls.url_host(vip["address"]) in str(url):
        errors.append(f"agent:url: points at the VIP; with cluster:mode {mode} each instance must be checked on "
                      "its own node (the VIP answers from whichever node holds it): leave agent:url unset")
    if mode == "balanced":
        _balanced(cluster, settings, errors)
    return cluster


def _balanced(cluster, settings, errors):
    """cluster:mode balanced: each controller's cinder-api listens on that node's own address
    (cluster:nodes as a mapping), HAProxy on the VIPs. What only the addresses together decide."""
    stickiness = cluster.get("vip_stickiness")
    if stickiness is not None and (not str(stickiness).lstrip("+-").isdigit() or int(stickiness) >= BALANCED_VIP_SCORE):
        errors.append(f"cluster:vip_stickiness: {stickiness} would keep the VIP on a node whose HAProxy failed; with "
                      f"cluster:mode balanced the VIP follows HAProxy with a score of {BALANCED_VIP_SCORE}: give a "
                      f"number below it")
    addresses = cluster["node_addresses"]
    if addresses is None:
        # "missing" when no valid value is there (a value its meaning refused is reported already)
        given = "is a list of names" if cluster["nodes"] else "missing"
        errors.append(f"cluster:nodes: {given}: cluster:mode balanced needs each controller's own address, where "
                      "its cinder-api listens and HAProxy sends requests: a mapping such as "
                      "{controller1: 192.168.42.11}")
        return
    seen = {}
    vips = {ipaddress.ip_address(v["address"]): key for key, v in (("vip", settings.get("vip")),
                                                                   ("public_vip", settings.get("public_vip"))) if v}
    version = settings["vip"]["version"] if settings.get("vip") else None
    for node, address in addresses.items():
        ip = ipaddress.ip_address(address)
        if ip in seen:
            errors.append(f"cluster:nodes:{node}: {address} is {seen[ip]}'s address too: each cinder-api needs its "
                          "own node's address")
        seen.setdefault(ip, node)
        if ip in vips:
            errors.append(f"cluster:nodes:{node}: {address} is the {vips[ip]}, where HAProxy listens: a node's "
                          "cinder-api needs that node's own address")
        if version and ip.version != version:
            errors.append(f"cluster:nodes:{node}: {address} is IPv{ip.version} but the VIP is IPv{version}: "
                          "HAProxy on the VIP and the nodes' cinder-api use one address family")


def endpoint_urls(settings):
    """The catalog URL per interface: public on the public VIP, internal and admin on the VIP."""
    path = settings["endpoints"]["path"]
    found = {}
    for iface in settings["endpoints"]["interfaces"]:
        vip = settings["public_vip"] if iface == "public" else settings["vip"]
        found[iface] = f"http://{urls.url_host(vip['address'])}:{settings['port']}{path}"
    return found
