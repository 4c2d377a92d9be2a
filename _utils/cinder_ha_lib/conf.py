"""cinder.conf as oslo.config reads it: a round-trip model, change planning, migration of the
HA guide's (2014) option names, and masking. Pure logic: stdlib only, no Salt, no I/O.

The model keeps every byte the operator wrote: ``render(parse(text)) == text`` for any text.
Only the lines of options that really change are rewritten (keeping the ``key = `` prefix and
the line ending the operator used); new keys go after the last option of their section, new
sections at the end. Parsing follows ``oslo_config.iniparser`` rule for rule (continuation
lines, ``#``/``;`` comments, one pair of surrounding quotes stripped, section names
case-insensitive except ``DEFAULT``), so "did the effective configuration change" is answered
the way cinder would answer it, and a comment-only difference is not a change.

Values given to ``plan`` are LITERAL: oslo.config would expand ``$name`` in a value, so ``$`` is
written ``$$``; values with surrounding quotes or spaces are written quoted. oslo.config has no
way to write a newline inside a value (a continuation line is joined with ``\\n`` but its
leading spaces are lost), so newlines are rejected, as is ``\\$`` (oslo.config always reads it
as ``$``).

Entry points: ``parse``, ``plan``, ``desired_options``, ``managed_keys``, ``mask_value``, ``mask_text``,
``masked_diff``; for "does the running cinder-api need a restart": ``effective_changes``,
``parse_start_record``; for "can cinder load its database driver": ``db_driver``,
``shebang_argv``.
"""
import difflib
import ipaddress
import posixpath
import re
from urllib.parse import urlsplit

from cinder_ha_lib import secret_rule, urls, volume  # secrets; URL building; the volume service
from cinder_ha_lib.errors import ConfError, InvalidPillar, StartRecordError
from cinder_ha_lib.secret_rule import MASK, is_secret_name, mask_url

KEY_RE = re.compile(r"[A-Za-z0-9_.-]+")
URL_KEYS = {("database", "connection"), ("DEFAULT", "transport_url"),
            ("oslo_messaging_notifications", "transport_url")}
TRANSPORT_SCHEMES = ("rabbit", "kombu", "amqp", "kafka", "fake")
HOST_PORT_RE = re.compile(r":\d+$")

# (section, key) of the guide's names -> what replaced them
LEGACY_SQL = (("DEFAULT", "sql_connection"), ("database", "sql_connection"), ("sql", "connection"))
RABBIT_KEYS = ("rabbit_host", "rabbit_hosts", "rabbit_port", "rabbit_userid", "rabbit_password",
               "rabbit_virtual_host")
LEGACY_RABBIT = tuple((section, key) for section in ("DEFAULT", "oslo_messaging_rabbit") for key in RABBIT_KEYS)
LEGACY_NOTIFY = {
    ("DEFAULT", "notifier_strategy"): "driver",
    ("DEFAULT", "notification_driver"): "driver",
    ("DEFAULT", "notification_topics"): "topics",
    ("DEFAULT", "notification_transport_url"): "transport_url",
}
LEGACY_KEYS = set(LEGACY_SQL) | set(LEGACY_RABBIT) | set(LEGACY_NOTIFY)

WHY_SQL = ("cinder ignores {old} today (oslo.db dropped the name) and silently falls back to a local "
           "SQLite file, $state_path/cinder.sqlite: every node would get its own database")
WHY_RABBIT = ("{old}: removed from oslo.messaging in Stein and silently ignored (cinder would talk to "
              "guest@localhost)")
WHY_NOTIFY = "{old}: ignored by cinder today, so no notification is sent"


def section_name(name):
    """oslo.config's group name: case-insensitive, except DEFAULT."""
    return name if name == "DEFAULT" else name.lower()


class Entry:
    """One logical item of the file: a blank line, a comment, a section header or an option
    (with its continuation lines). ``lines`` hold the raw text, line endings included."""
    __slots__ = ("kind", "lines", "section", "key", "value")

    def __init__(self, kind, lines, section=None, key=None, value=None):
        self.kind, self.lines, self.section, self.key, self.value = kind, lines, section, key, value


class Config:
    """A parsed cinder.conf: ``entries`` in file order; ``errors`` like oslo.config's ParseError."""

    def __init__(self, entries, errors):
        self.entries = entries
        self.errors = errors

    def render(self):
        return "".join(line for entry in self.entries for line in entry.lines)

    def options(self, section, key):
        section = section_name(section)
        return [e for e in self.entries if e.kind == "option" and e.section == section and e.key == key]

    def effective(self):
        """{section: {key: [values as oslo.config parses them]}}: what cinder sees."""
        result = {}
        for entry in self.entries:
            if entry.kind == "option":
                result.setdefault(entry.section, {}).setdefault(entry.key, []).append(canonical(entry.value))
        return result


def split_lines(text):
    # Only "\n" ends a line (str.splitlines would also split on \x0b, \x1c, U+2028...).
    return re.findall(r"[^\n]*\n|[^\n]+$", text)


def _split_key_value(line):
    """(key, value start index, first value part) as oslo_config.iniparser splits a line."""
    colon, equal = line.find(":"), line.find("=")
    if colon < 0 and equal < 0:
        return None, None, None
    sep = equal if colon < 0 or 0 <= equal < colon else colon
    start = sep + 1
    while start < len(line) and line[start] in " \t":
        start += 1
    value = line[sep + 1:].strip()
    if value and value[0] == value[-1] and value.startswith(("\"", "'")):
        value = value[1:-1]
    return line[:sep].strip(), start, value


def parse(text):
    """Parse cinder.conf text into a ``Config`` (never raises; problems go to ``errors``)."""
    entries, errors = [], []
    section = None
    option = None  # the option continuation lines would extend
    for number, raw in enumerate(split_lines(text), start=1):
        line = raw.rstrip()
        if not line:
            entries.append(Entry("blank", [raw]))
            option = None
            continue
        if line.startswith((" ", "\t")):
            if option is None:
                errors.append(f"line {number}: unexpected continuation line: {mask_text(line.strip())!r}")
                entries.append(Entry("junk", [raw]))
            else:
                option.lines.append(raw)
                option.value += "\n" + line.lstrip()
            continue
        option = None
        if line.startswith("["):
            if not line.endswith("]") or len(line) <= 2:
                errors.append(f"line {number}: invalid section header: {line!r}")
                entries.append(Entry("junk", [raw]))
            else:
                section = section_name(line[1:-1])
                entries.append(Entry("section", [raw], section=section))
        elif line.startswith(("#", ";")):
            entries.append(Entry("comment", [raw]))
        else:
            key, _start, value = _split_key_value(line)
            if key is None or not key:
                errors.append(f"line {number}: not 'key = value': {mask_text(line)!r}")
                entries.append(Entry("junk", [raw]))
            elif section is None:
                errors.append(f"line {number}: option {key!r} before any [section] (oslo.config refuses the file)")
                entries.append(Entry("junk", [raw]))
            else:
                option = Entry("option", [raw], section=section, key=key, value=value)
                entries.append(option)
    return Config(entries, errors)


def canonical(parsed_value):
    """A value as parsed, with oslo.config's two spellings of a literal dollar made one."""
    return parsed_value.replace("\\$", "$$")


def escape(literal):
    """A literal value in oslo.config's notation (before quoting): ``$`` -> ``$$``."""
    return literal.replace("$", "$$")


def unescape(parsed_value):
    """Best-effort literal of a parsed value (``$$`` -> ``$``), e.g. to build a URL from it."""
    return canonical(parsed_value).replace("$$", "$")


def quote_for_file(parsed_value):
    """The text to write after ``key = `` so that oslo.config parses back ``parsed_value``."""
    value = parsed_value
    if value != value.strip() or (value and value[0] == value[-1] and value.startswith(("\"", "'"))):
        value = f"\"{value}\""
    return value


def _format_option(key, parsed_value, prefix=None, eol="\n"):
    text = quote_for_file(parsed_value)
    if prefix is None:
        prefix = f"{key} = " if text else f"{key} ="
    return f"{prefix}{text}{eol}"


def _eol(raw):
    return "\r\n" if raw.endswith("\r\n") else "\n" if raw.endswith("\n") else ""


def _as_values(value):
    """Pillar value -> list of literal strings (a list is a multi-valued option)."""
    values = value if isinstance(value, (list, tuple)) else [value]
    out = []
    for item in values:
        if isinstance(item, bool):
            out.append("true" if item else "false")
        elif item is None:
            out.append("")
        else:
            out.append(str(item))
    return out


# ---------------------------------------------------------------- masking

def mask_value(key, value):
    """A value as it may be shown (text): the shared rule of cinder_ha_secrets."""
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        return [mask_value(key, v) for v in value]
    return secret_rule.mask_value(key, str(value))


def mask_text(line):
    """Mask one line of text that may be ``key = value`` or hold a URL."""
    key, start, _value = _split_key_value(line.strip())
    if key and is_secret_name(key) and start is not None:
        stripped = line.strip()
        return line[:len(line) - len(line.lstrip())] + stripped[:start] + MASK
    return mask_url(line) if "://" in line else line


def masked_lines(text):
    """The file's lines with every secret masked (secret keys, URL passwords, their continuations)."""
    out = []
    for entry in parse(text).entries:
        for index, raw in enumerate(entry.lines):
            if entry.kind == "option" and index > 0 and is_secret_name(entry.key):
                out.append(raw[:len(raw) - len(raw.lstrip())] + MASK + _eol(raw))
            elif entry.kind in ("option", "junk"):
                out.append(mask_text(raw.rstrip("\r\n")) + _eol(raw))
            elif entry.kind == "comment":  # commented-out examples hold real passwords too
                body = raw.rstrip("\r\n")
                marker = len(body) - len(body.lstrip("#; \t"))
                out.append(body[:marker] + mask_text(body[marker:]) + _eol(raw))
            else:
                out.append(raw)
    return out


def masked_diff(old_text, new_text, path="cinder.conf"):
    """A unified diff of two versions of the file with every secret masked."""
    return "".join(difflib.unified_diff(masked_lines(old_text), masked_lines(new_text),
                                        fromfile=path, tofile=path))


# ---------------------------------------------------------------- desired options

# A desired value meaning "no such key": the settings make it wrong, whatever its value
# (e.g. a backend_host left from active_passive once cinder-volume runs active_active).
ABSENT = type("Absent", (), {"__repr__": lambda self: "ABSENT"})()


def listen_address(settings, node=None):
    """Where cinder-api listens: the VIP, or with cluster:mode balanced this node's own address
    (``node``: this node's cluster name; HAProxy listens on the VIP). A node the pillar does not
    name has no address to listen on: InvalidPillar."""
    addresses = (settings.get("cluster") or {}).get("node_addresses")
    if (settings.get("cluster") or {}).get("mode") != "balanced" or not addresses:
        return settings["vip"]["address"] if settings.get("vip") else None
    if node not in addresses:
        raise InvalidPillar([f"cluster:nodes: this node ({node}) is not named, so it has no address for its "
                               f"cinder-api in cluster:mode balanced (named: {', '.join(sorted(addresses))})"])
    return addresses[node]


def desired_options(settings, resolve=None, node=None):
    """The normalized ``cinder_ha`` settings (cinder_ha_pillar.normalize) -> {section: {key: value}}.
    ``resolve(pillar_key)`` gives the value of a backend option written ``{pillar: key}``
    (cinder_ha_lib.volume.options); ``node`` is this node's cluster name (``listen_address``)."""
    listen = {}
    address = listen_address(settings, node)
    if address:
        listen["osapi_volume_listen"] = address
    if settings.get("port") is not None:
        listen["osapi_volume_listen_port"] = settings["port"]
    options = {"DEFAULT": listen, "database": {}, "oslo_messaging_notifications": {}}
    if settings.get("transport_url"):
        options["DEFAULT"]["transport_url"] = settings["transport_url"]
    if settings.get("database_connection"):
        options["database"]["connection"] = settings["database_connection"]
    if settings.get("rabbit_heartbeat") is not None:
        options["oslo_messaging_rabbit"] = {"heartbeat_timeout_threshold": settings["rabbit_heartbeat"]}
    notes = settings.get("notifications") or {}
    for key in ("driver", "transport_url", "topics"):
        if notes.get(key) is not None:
            options["oslo_messaging_notifications"][key] = notes[key]
    managed, absent = volume.options(settings.get("volume"), resolve=resolve)
    for section, values in managed.items():
        options.setdefault(section, {}).update(values)
    for section, key in absent:
        options.setdefault(section, {}).setdefault(key, ABSENT)
    conflicts = []
    for section, values in ((settings.get("cinder_conf") or {}).get("extra") or {}).items():
        target = options.setdefault(section_name(str(section)), {})
        for key, value in (values or {}).items():
            if key in target and _as_values(target[key]) != _as_values(value):
                conflicts.append(f"cinder_conf:extra: [{section}] {key} conflicts with the value the formula "
                                 "sets from its own pillar key; remove it from extra")
            else:
                target[key] = value
    if conflicts:
        raise ConfError(conflicts)
    return {section: values for section, values in options.items() if values}


def managed_keys(desired):
    """The ``[section] key`` names (as ``effective_changes`` names them) of the desired
    {section: {key: value}}, sorted: what the formula manages, as opposed to the operator's
    own keys."""
    return sorted(f"[{section_name(str(section))}] {key}" for section, values in desired.items()
                  for key in (values or {}))


def _check_url(section, key, value, errors):
    where = f"[{section}] {key}"
    try:
        parts = urlsplit(value)
    except ValueError as exc:
        errors.append(f"{where}: not a URL ({exc})")
        return
    if (section, key) == ("database", "connection"):
        if not re.fullmatch(r"[a-z0-9]+(\+[a-z0-9_]+)?", parts.scheme or ""):
            errors.append(f"{where}: not a database URL (expected mysql+pymysql://user:pass@host/cinder)")
        elif not parts.scheme.startswith("sqlite") and not parts.hostname:
            errors.append(f"{where}: no host in the database URL")
        elif parts.scheme.startswith("sqlite") and not parts.path.strip("/"):
            errors.append(f"{where}: no file in the SQLite URL")
        return
    if parts.scheme not in TRANSPORT_SCHEMES:
        errors.append(f"{where}: scheme must be one of {', '.join(TRANSPORT_SCHEMES)}, got {parts.scheme!r}")
        return
    if parts.scheme == "fake":
        return
    for netloc in value[len(parts.scheme) + 3:].split("/", 1)[0].split(","):
        host = netloc.rsplit("@", 1)[-1]
        match = re.fullmatch(r"(\[[0-9A-Fa-f:.]+\]|[^:\[\]]+)(?::(.*))?", host)
        if not match:
            errors.append(f"{where}: not host[:port]: {host!r}")
        elif match.group(2) is not None and not (match.group(2).isdigit() and 0 < int(match.group(2)) < 65536):
            errors.append(f"{where}: port of {match.group(1)} must be an integer 1-65535, got {match.group(2)!r}")


def validate(desired):
    """Every problem with the desired {section: {key: value}} (literal values), as a list."""
    errors = []
    if not isinstance(desired, dict):
        return ["options: must map section -> {key: value}"]
    for section, values in desired.items():
        if not isinstance(values, dict):
            errors.append(f"[{section}]: must be a mapping of key -> value")
            continue
        if not str(section) or re.search(r"[\]\[\r\n]", str(section)):
            errors.append(f"[{section!r}]: not a section name")
        for key, value in values.items():
            where = f"[{section}] {key}"
            if not KEY_RE.fullmatch(str(key)):
                errors.append(f"{where}: not an option name (letters, digits, _ . -)")
                continue
            if (section_name(str(section)), key) in LEGACY_KEYS:
                errors.append(f"{where}: the HA guide's name, ignored by cinder today; set its current name "
                              "(see the cinder_ha README)")
            if isinstance(value, dict):
                errors.append(f"{where}: a value must be a string, number, boolean or list, not a mapping")
                continue
            for text in _as_values(value):
                shown = mask_value(key, text)
                if "\n" in text or "\r" in text or "\0" in text:
                    errors.append(f"{where}: contains a newline or NUL; oslo.config cannot hold such a value "
                                  f"in one option: {shown!r}")
                if "\\$" in text:
                    errors.append(f"{where}: contains '\\$', which oslo.config always reads as '$'")
                if (section_name(str(section)), key) in URL_KEYS:
                    _check_url(section_name(str(section)), key, text, errors)
                if key == "osapi_volume_listen" or key.endswith("_listen"):
                    try:
                        ipaddress.ip_address(text)
                    except ValueError:
                        errors.append(f"{where}: not an IP address: {shown!r}")
                if key.endswith("_port") or key == "port":
                    if isinstance(value, bool) or not re.fullmatch(r"\d{1,5}", text) or not 0 < int(text) < 65536:
                        errors.append(f"{where}: port must be an integer 1-65535, got {shown!r}")
    return errors


# ---------------------------------------------------------------- planning

class Plan:
    """What ``plan`` decided: ``new_text`` (== old text when nothing changes), ``actions``
    [{op, section, key, old, new}] with PARSED (unmasked) values, ``migrations`` (masked
    sentences), ``errors`` (nothing may be written when not empty), ``changed``."""

    def __init__(self, old_text, new_text, actions, migrations, errors):
        self.old_text, self.new_text = old_text, new_text
        self.actions, self.migrations, self.errors = actions, migrations, errors
        self.changed = not errors and parse(old_text).effective() != parse(new_text).effective()

    def masked_changes(self):
        """{"[section] key": {"old": ..., "new": ...}} with secrets masked (values as cinder reads them)."""
        changes = {}
        def shown(key, values):
            if values is None:
                return None
            return mask_value(key, [unescape(v) for v in values] if len(values) != 1 else unescape(values[0]))

        for action in self.actions:
            changes[f"[{action['section']}] {action['key']}"] = {"old": shown(action["key"], action["old"]),
                                                                "new": shown(action["key"], action["new"])}
        return changes


def _block_ends(config, section):
    """Index after which to insert a new key of ``section``: after the last option of its last
    block (or its header); None when the section is absent."""
    spot = None
    in_section = False
    for index, entry in enumerate(config.entries):
        if entry.kind == "section":
            in_section = entry.section == section
            if in_section:
                spot = index
        elif in_section and entry.kind == "option":
            spot = index
    return spot


def _insert(config, section, key, values):
    new_lines = [_format_option(key, value) for value in values]
    entries = [Entry("option", [line], section=section, key=key, value=value)
               for line, value in zip(new_lines, values)]
    spot = _block_ends(config, section)
    if spot is not None:
        last = config.entries[spot].lines
        if not last[-1].endswith("\n"):
            last[-1] += "\n"
        config.entries[spot + 1:spot + 1] = entries
        return
    header = Entry("section", [f"[{section}]\n"], section=section)
    if section == "DEFAULT":  # by convention first: before the first section header
        first = next((i for i, e in enumerate(config.entries) if e.kind == "section"), None)
        if first is not None:
            config.entries[first:first] = [header] + entries + [Entry("blank", ["\n"])]
            return
    if config.entries:
        last = config.entries[-1].lines
        if not last[-1].endswith("\n"):
            last[-1] += "\n"
        if config.entries[-1].kind != "blank":
            config.entries.append(Entry("blank", ["\n"]))
    config.entries.extend([header] + entries)


def _set(config, section, key, values, multi, actions):
    """Make the option's parsed values ``values`` (oslo-level strings). A single value is
    compared with the last occurrence only (that is the one oslo.config uses); a list
    (``multi``) manages every occurrence (a multi-valued option)."""
    found = config.options(section, key)
    current = [canonical(e.value) for e in found]
    if not multi and current and current[-1] == values[0]:
        return
    if multi and current == values:
        return
    if not found:
        _insert(config, section, key, values)
        actions.append({"op": "add", "section": section, "key": key, "old": None, "new": values})
        return
    targets = found if multi else found[-1:]
    for entry, value in zip(targets, values):
        first = entry.lines[0]
        _key, start, _v = _split_key_value(first.rstrip())
        entry.lines = [_format_option(key, value, prefix=first[:start], eol=_eol(entry.lines[-1]))]
        entry.value = value
    for entry in targets[len(values):]:
        config.entries.remove(entry)
    if len(values) > len(targets):
        spot = config.entries.index(targets[-1])
        for value in reversed(values[len(targets):]):
            config.entries.insert(spot + 1, Entry("option", [_format_option(key, value)],
                                                  section=section, key=key, value=value))
    actions.append({"op": "set", "section": section, "key": key, "old": current, "new": values})


def _remove(config, section, key, actions):
    found = config.options(section, key)
    for entry in found:
        config.entries.remove(entry)
    if found:
        actions.append({"op": "remove", "section": section, "key": key,
                        "old": [canonical(e.value) for e in found], "new": None})


def _last(config, section, key):
    found = config.options(section, key)
    return canonical(found[-1].value) if found else None


def _rabbit_url(legacy):
    """transport_url from the legacy rabbit_* values (parsed file values)."""
    def literal(name, default):
        value = legacy.get(name)
        return unescape(value) if value not in (None, "") else default
    port = literal("rabbit_port", str(urls.DEFAULT_BROKER_PORT))
    hosts = [h.strip() for h in literal("rabbit_hosts", "").split(",") if h.strip()] \
        or [literal("rabbit_host", "localhost")]
    brokers = [tuple(host.rsplit(":", 1)) if HOST_PORT_RE.search(host) else (host, port) for host in hosts]
    return urls.transport_url(brokers, literal("rabbit_userid", "guest"), literal("rabbit_password", "guest"),
                              literal("rabbit_virtual_host", "/"))


def _notify_driver(old_key, value):
    value = unescape(value).strip().lower()
    if value in ("noop", "no_op") or value.endswith("no_op_notifier"):
        return "noop"
    if value in ("log", "logging") or value.endswith("log_notifier"):
        return "log"
    if old_key == "notification_driver" and value in ("messaging", "messagingv2", "routing", "test"):
        return value
    return "messagingv2"  # rabbit, qpid, rpc, ...rpc_notifier: the guide meant "send them to the broker"


def _migrate(config, desired, errors):
    """Legacy keys found in the file -> (extra desired parsed values, removals, masked sentences)."""
    extra, removals, notes = {}, [], []

    def found(pairs):
        return [(s, k) for s, k in pairs if config.options(s, k)]

    def decide(old_pairs, section, key, build, why):
        names = ", ".join(f"[{s}] {k}" for s, k in old_pairs)
        removals.extend(old_pairs)
        if (section, key) in desired:
            how = "the pillar's value is used"
        elif _last(config, section, key) is not None:
            how = "the file already sets it, so the old keys were dead and are only removed"
        else:
            value = build()
            extra[(section, key)] = value
            how = f"the file's value was moved ({mask_value(key, unescape(value))})"
        notes.append(f"{names} -> [{section}] {key}: {why.format(old=names)}; {how}")

    sql = found(LEGACY_SQL)
    if sql:
        decide(sql, "database", "connection", lambda: _last(config, *sql[-1]), WHY_SQL)
    rabbit = found(LEGACY_RABBIT)
    if rabbit:
        legacy = {k: _last(config, s, k) for s, k in rabbit}
        decide(rabbit, "DEFAULT", "transport_url", lambda: escape(_rabbit_url(legacy)), WHY_RABBIT)
    for target in ("driver", "topics", "transport_url"):
        olds = [pair for pair in found(LEGACY_NOTIFY) if LEGACY_NOTIFY[pair] == target]
        if not olds:
            continue
        if target == "driver":
            def build(olds=olds):
                # notification_driver (the oslo.messaging name) beats glance's notifier_strategy
                pair = next((p for p in olds if p[1] == "notification_driver"), olds[-1])
                return escape(_notify_driver(pair[1], _last(config, *pair)))
        else:
            def build(olds=olds):
                return _last(config, *olds[-1])
        decide(olds, "oslo_messaging_notifications", target, build, WHY_NOTIFY)
    for (section, key), value in extra.items():
        errors.extend(validate({section: {key: unescape(value)}}))
    return extra, removals, notes


def plan(old_text, desired):
    """Plan making ``old_text`` carry ``desired`` ({section: {key: literal value or list}}) with
    the guide's legacy keys migrated. Returns a ``Plan``; ``new_text`` is ``old_text`` unchanged
    when there are errors."""
    config = parse(old_text)
    # keys the settings say must not be there (ABSENT): removed, never written
    absent = [(section_name(str(section)), str(key)) for section, values in desired.items()
              if isinstance(values, dict) for key, value in values.items() if value is ABSENT]
    desired = {section: ({key: value for key, value in values.items() if value is not ABSENT}
                         if isinstance(values, dict) else values) for section, values in desired.items()}
    errors = list(config.errors) + validate(desired)
    if errors:
        return Plan(old_text, old_text, [], [], errors)
    wanted = {}
    for section, values in desired.items():
        for key, value in values.items():
            wanted[(section_name(str(section)), str(key))] = (
                [escape(v) for v in _as_values(value)], isinstance(value, (list, tuple)))
    extra, removals, notes = _migrate(config, wanted, errors)
    if errors:
        return Plan(old_text, old_text, [], notes, errors)
    actions = []
    # removals first: a new key then lands after the section's last surviving option
    for section, key in removals + absent:
        _remove(config, section, key, actions)
    for (section, key), (values, multi) in list(wanted.items()) + [(k, ([v], False)) for k, v in extra.items()]:
        _set(config, section, key, values, multi, actions)
    return Plan(old_text, config.render(), actions, notes, [])


# ---------------------------------------------------------------- the running process

def effective_changes(old_text, new_text):
    """What cinder would read differently from ``new_text`` than from ``old_text``:
    {"[section] key": {"old": ..., "new": ...}}, values as cinder reads them, secrets masked,
    None where the key is absent. Comments, blank lines, key order and spelling (``a=1`` vs
    ``a = 1``) are no difference; an unparsable text counts as its parsable part."""
    old, new = parse(old_text).effective(), parse(new_text).effective()
    changes = {}
    for section in sorted(set(old) | set(new)):
        before, after = old.get(section, {}), new.get(section, {})
        for key in sorted(set(before) | set(after)):
            if before.get(key) == after.get(key):
                continue

            def shown(values, key=key):
                if values is None:
                    return None
                literal = [unescape(v) for v in values]
                return mask_value(key, literal[0] if len(literal) == 1 else literal)
            changes[f"[{section}] {key}"] = {"old": shown(before.get(key)), "new": shown(after.get(key))}
    return changes


def backend_sections(*texts):
    """The sections the texts' ``[DEFAULT] enabled_backends`` name: only cinder-volume reads
    them (its drivers register their options there)."""
    found = set()
    for text in texts:
        values = parse(text).effective().get("DEFAULT", {}).get("enabled_backends") or []
        for value in values:
            found.update(name.strip() for name in unescape(value).split(",") if name.strip())
    return found


def without_backend_sections(changes, *texts):
    """``changes`` (of ``effective_changes``) less the keys of backend sections: what
    cinder-api and cinder-scheduler would read differently."""
    sections = backend_sections(*texts)
    return {key: change for key, change in changes.items()
            if key[1:].split("] ", 1)[0] not in sections}


START_RECORD_KEYS = ("version", "pid", "starttime", "started", "config", "api_base", "api_path", "snapshot",
                     "sha256")


def parse_start_record(text):
    """The agent's start record (``<pid file>.start``: ``key=value`` lines) as a dict with ``pid``,
    ``starttime`` and ``started`` as integers. Raises ValueError when a required field is missing
    or malformed: such a record tells nothing about the running process."""
    record = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key in START_RECORD_KEYS:
            record[key] = value
    for key in ("pid", "starttime", "started"):
        if not re.fullmatch(r"\d+", record.get(key, "")):
            raise StartRecordError(f"start record: {key} missing or not a number")
        record[key] = int(record[key])
    if not re.fullmatch(r"[0-9a-f]{64}", record.get("sha256", "")):
        raise StartRecordError("start record: sha256 missing or malformed")
    for key in ("config", "snapshot"):
        if not record.get(key, "").startswith("/"):
            raise StartRecordError(f"start record: {key} is not an absolute path")
    return record


# ---------------------------------------------------------------- database driver

# SQLAlchemy dialect (+ driver) -> (module to import, how to get it). A dialect alone means
# SQLAlchemy's default driver for it.
DB_DRIVERS = {
    "mysql": ("MySQLdb", "pip install mysqlclient (Debian/Ubuntu: python3-mysqldb; RHEL: python3-mysqlclient)"),
    "mysql+mysqldb": ("MySQLdb", "pip install mysqlclient (Debian/Ubuntu: python3-mysqldb; RHEL: python3-mysqlclient)"),
    "mysql+pymysql": ("pymysql", "pip install PyMySQL (Debian/Ubuntu: python3-pymysql; RHEL: python3-PyMySQL)"),
    "mysql+mysqlconnector": ("mysql.connector", "pip install mysql-connector-python"),
    "mariadb+pymysql": ("pymysql", "pip install PyMySQL (Debian/Ubuntu: python3-pymysql; RHEL: python3-PyMySQL)"),
    "postgresql": ("psycopg2", "pip install psycopg2 (Debian/Ubuntu: python3-psycopg2; RHEL: python3-psycopg2)"),
    "postgresql+psycopg2": ("psycopg2", "pip install psycopg2 (Debian/Ubuntu: python3-psycopg2; RHEL: python3-psycopg2)"),
    "postgresql+psycopg": ("psycopg", "pip install psycopg"),
    "postgresql+pg8000": ("pg8000", "pip install pg8000"),
    "sqlite": ("sqlite3", "a Python built with SQLite (the sqlite3 module)"),
    "sqlite+pysqlite": ("sqlite3", "a Python built with SQLite (the sqlite3 module)"),
}


def db_driver(url):
    """(scheme, module, how to install it) for a database URL; None for an unknown dialect or
    something that is not a URL. Only the scheme is looked at: no secret leaves this function."""
    match = re.match(r"([A-Za-z0-9_.+-]+)://", url or "")
    if not match:
        return None
    scheme = match.group(1).lower()
    found = DB_DRIVERS.get(scheme)
    return None if found is None else (scheme, found[0], found[1])


def shebang_argv(first_line):
    """The interpreter argv of a script's first line (``#!/usr/bin/python3 -s`` ->
    ["/usr/bin/python3", "-s"]; ``#!/usr/bin/env python3`` -> ["/usr/bin/env", "python3"]);
    None when the line is no ``#!`` line."""
    if isinstance(first_line, bytes):
        first_line = first_line.decode("utf-8", "replace")
    if not first_line.startswith("#!"):
        return None
    parts = first_line[2:].strip().split()
    return parts or None


def python_argv(first_line):
    """(argv, None) when the script whose first line this is runs on a Python (``#!/usr/bin/env
    python3`` too), else (None, why not): cinder's own Python, to ask it what it can import."""
    argv = shebang_argv(first_line.rstrip(b"\r\n") if isinstance(first_line, bytes) else first_line.rstrip("\r\n"))
    if not argv:
        return None, "is not a script (no #! line)"
    names = [posixpath.basename(argv[0])]
    if len(argv) > 1 and names[0] == "env":
        names.append(posixpath.basename(argv[1]))
    if not names[-1].startswith("python"):
        return None, f"runs on {' '.join(argv)}, not on Python"
    return argv, None
