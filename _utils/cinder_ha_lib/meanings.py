"""What a pillar value means: the types the pillar's keys are declared with (``pillar.MEANINGS``,
``volume.MEANINGS``), each one's check, and the words its errors and the docs use. Pure logic.

A meaning checks a value by what it is for (a unicast host address a node can hold, a Pacemaker
score, a driver oslo.messaging has), not by a list of known bad cases: every value of a category
that cannot work is refused, whatever the spelling. ``check(meaning, value, where, errors)``
returns the value as the rest of the formula reads it (``30`` -> ``"30s"``), or ``INVALID`` with
each problem in ``errors``, naming the key and saying what would be valid. A secret is never
echoed; a URL is shown with its password masked.

Salt 3008's ``salt.utils.schema`` builds JSON Schema documents but validates nothing without
``jsonschema`` (not in Salt's environment), and knows none of these meanings: a small table of
our own instead.
"""
import difflib
import ipaddress
import re
from urllib.parse import urlsplit

from cinder_ha_lib import secret_rule

# The YAML shape a meaning takes (the pillar's TYPES are these, key by key).
SCALAR, TEXT, LIST, BOOL, NUMBER, MAPPING, ANY = "scalar", "text", "list", "bool", "number", "mapping", "any"
EXPECTED = {SCALAR: "a string or a number", TEXT: "a string", LIST: "a list (or a comma-separated string)",
            BOOL: "true or false", NUMBER: "a number", MAPPING: "a mapping"}
INVALID = object()  # check()'s answer for a value that means nothing valid
_QUIET = object()  # a problem that does not show the value
CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class Invalid(ValueError):
    """Why a value is refused: ``problems`` are (sub-key path, reason, value shown or _QUIET, hint)."""

    def __init__(self, reason, value=_QUIET, at="", hint="", problems=None):
        super().__init__(reason)
        self.problems = problems if problems is not None else [(at, reason, value, hint)]

    def messages(self, where):
        found = []
        for at, reason, value, hint in self.problems:
            path = f"{where}{at}"
            text = f"{path}: {reason}"
            if value is not _QUIET and not secret_rule.is_secret_name(path.rsplit(":", 1)[-1]):
                text += f", got {_shown(value)}"
            found.append(text + hint)
        return found


def _shown(value):
    text = secret_rule.mask_url(value) if isinstance(value, str) else value
    text = repr(text)
    return text if len(text) <= 80 else text[:77] + "..."


def kind_of(value):
    """``value``'s YAML shape, as errors name it."""
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


def kind_ok(value, kind):
    if kind == ANY:
        return True
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
        return isinstance(value, str) or (isinstance(value, (list, tuple)) and all(kind_ok(v, SCALAR) for v in value))
    if kind == TEXT:
        return isinstance(value, str)
    return isinstance(value, (str, int, float)) and not isinstance(value, bool)


def parsed(meaning, value):
    """``value`` as ``meaning`` reads it, its YAML shape checked first; or Invalid."""
    if not kind_ok(value, meaning.kind):
        raise Invalid(f"got {kind_of(value)}, expected {EXPECTED[meaning.kind]}")
    return meaning.parse(value)


def check(meaning, value, where, errors):
    """``value`` as ``meaning`` reads it, or INVALID with its problems in ``errors`` (naming ``where``)."""
    try:
        return parsed(meaning, value)
    except Invalid as exc:
        errors.extend(exc.messages(where))
        return INVALID


def closest(word, choices):
    match = difflib.get_close_matches(str(word), list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{match[0]}'?)" if match else ""


class Meaning:
    """A value's meaning: ``what`` (the docs' words, and the errors' unless ``message`` says
    otherwise), ``kind`` (its YAML shape), ``parse`` (the value as read, or Invalid)."""

    kind = TEXT

    def __init__(self, what, message=None):
        self.what = what
        self.message = message or what

    def parse(self, value):
        return value

    def refuse(self, value, reason=None, hint=""):
        raise Invalid(reason or self.message, value, hint=hint)

    def __repr__(self):
        return f"{type(self).__name__}({self.what!r})"


class Boolean(Meaning):
    kind = BOOL

    def __init__(self):
        super().__init__("true or false")


class Text(Meaning):
    """One line of text: ``max_len``, ``forbid`` (characters and why), ``exact`` (no blank value,
    no leading or trailing space: a name compared with the one stored elsewhere)."""

    def __init__(self, what, min_len=1, max_len=None, forbid="", why_forbidden="", exact=False, kind=TEXT, echo=True):
        super().__init__(what)
        self.min_len, self.max_len, self.forbid, self.why_forbidden = min_len, max_len, forbid, why_forbidden
        self.exact, self.kind, self.echo = exact, kind, echo

    def parse(self, value):
        text = str(value)
        shown = value if self.echo else _QUIET
        if CONTROL.search(text):
            raise Invalid("holds a control character (line break, tab, NUL...): every value is written on one line")
        if len(text) < self.min_len or (self.exact and not text.strip()):
            raise Invalid(f"is empty: {self.what}")
        if self.max_len is not None and len(text) > self.max_len:
            raise Invalid(f"is {len(text)} characters long: {self.what}")
        if self.exact and text != text.strip():
            raise Invalid(f"begins or ends with a space: {self.what}", shown)
        for char in self.forbid:
            if char in text:
                raise Invalid(f"contains {char!r}, {self.why_forbidden or self.what}", shown)
        return value


class Word(Meaning):
    """A name of ``first`` then ``rest`` characters (regex classes), at most ``max_len``,
    none of ``reserved`` (case-insensitive)."""

    def __init__(self, what, first, rest, max_len, message=None, reserved=(), kind=TEXT):
        super().__init__(what, message)
        self.first, self.rest, self.max_len, self.reserved, self.kind = first, rest, max_len, reserved, kind
        self.pattern = re.compile(f"[{first}][{rest}]{{0,{max_len - 1}}}")

    def parse(self, value):
        text = str(value)
        if not self.pattern.fullmatch(text) or text.lower() in self.reserved:
            self.refuse(value)
        return value


class DottedName(Meaning):
    """A Python dotted path of at least ``parts`` identifiers (a class: module.Class)."""

    IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

    def __init__(self, what, parts=2):
        super().__init__(what)
        self.parts = parts

    def parse(self, value):
        names = str(value).split(".")
        if len(names) < self.parts or not all(self.IDENTIFIER.fullmatch(n) for n in names):
            self.refuse(value)
        return value


class Enum(Meaning):
    """One of ``choices`` (exactly as the consuming software spells them)."""

    def __init__(self, choices, what=None):
        self.choices = tuple(choices)
        super().__init__(what or f"one of {', '.join(self.choices)}")
        self.message = f"one of {', '.join(self.choices)}"

    def parse(self, value):
        if value not in self.choices:
            self.refuse(value, hint=closest(value, self.choices))
        return value


class Integer(Meaning):
    """A whole number from ``lo`` to ``hi``; ``below`` says why less than ``lo`` cannot work."""

    kind = SCALAR

    def __init__(self, lo, hi, what, message=None, below=None):
        super().__init__(what, message)
        self.lo, self.hi, self.below = lo, hi, below

    def parse(self, value):
        text = str(value).strip()
        if isinstance(value, bool) or not re.fullmatch(r"[+-]?\d{1,12}", text):
            self.refuse(value)
        number = int(text)
        if number < self.lo and self.below:
            raise Invalid(f"{number}: {self.below}")
        if not self.lo <= number <= self.hi:
            self.refuse(value)
        return number


class Seconds(Meaning):
    """A number of seconds, more than ``lo`` and at most ``hi`` (fractions allowed)."""

    kind = NUMBER

    def __init__(self, lo, hi):
        super().__init__(f"seconds between {lo} and {hi} (more than {lo})")
        self.message = f"seconds between {lo} and {hi}"
        self.lo, self.hi = lo, hi

    def parse(self, value):
        number = float(value)
        if not self.lo < number <= self.hi:  # NaN fails too
            self.refuse(value)
        return int(number) if number.is_integer() and not isinstance(value, float) else number


# Pacemaker's interval and timeout units (crm_get_msec); a bare number is seconds.
DURATION = re.compile(r"(\d{1,12})(ms|s|m|min|h)?")
UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "min": 60, "h": 3600}
# Pacemaker keeps an operation's timeout in milliseconds in a signed 32-bit int.
DURATION_MAX_S = 24 * 86400


class Duration(Meaning):
    """A Pacemaker duration of at least ``minimum_s`` seconds (``example`` in the message),
    returned with its unit (``30`` -> ``"30s"``)."""

    kind = SCALAR

    def __init__(self, example, minimum_s):
        self.example, self.minimum_s = example, minimum_s
        rule = f"(a whole number and ms, s, m, min or h; a bare number is seconds), at least {minimum_s}s and at " \
               "most 24 days"
        super().__init__(f"a Pacemaker duration {rule}", f"a duration like {example} {rule}")

    def parse(self, value):
        match = DURATION.fullmatch(str(value).strip())
        if isinstance(value, bool) or not match:
            self.refuse(value)
        number, unit = int(match.group(1)), match.group(2) or "s"
        seconds = number * UNIT_SECONDS[unit]
        if not self.minimum_s <= seconds <= DURATION_MAX_S:
            self.refuse(value)
        return f"{number}{unit}"


SCORE_MAX = 1000000  # Pacemaker reads any larger score as INFINITY


class Score(Meaning):
    """A Pacemaker score: a whole number from -1000000 to 1000000, or [+-]INFINITY."""

    kind = SCALAR

    def __init__(self):
        super().__init__(f"a score (a whole number from -{SCORE_MAX} to {SCORE_MAX}, or INFINITY, +INFINITY, "
                         "-INFINITY)")

    def parse(self, value):
        text = str(value).strip()
        if text.upper() in ("INFINITY", "+INFINITY", "-INFINITY"):  # Pacemaker compares them ignoring case
            return text.upper()
        if isinstance(value, bool) or not re.fullmatch(r"[+-]?\d{1,12}", text):
            self.refuse(value)
        if abs(int(text)) > SCORE_MAX:
            self.refuse(value, f"{self.what}: Pacemaker reads a larger number as INFINITY; write INFINITY")
        return str(int(text))


def _ip(text):
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _address_problem(ip, holds):
    """Why ``ip`` cannot be a unicast address a node holds (``holds``) or connects to, or None."""
    if ip.is_loopback:
        return None  # the sandbox's VIPs and services
    if ip.version == 6 and ip.ipv4_mapped:
        return "an IPv4-mapped IPv6 address: give the IPv4 address itself"
    if ip.is_unspecified:
        return "the unspecified address (any address), which no node can hold or reach"
    if ip.is_multicast:
        return "a multicast address, which names a group, not a node"
    if ip.version == 4 and ip in ipaddress.ip_network("0.0.0.0/8"):
        return "in 0.0.0.0/8 ('this network'), which no node can be reached at"
    if ip.version == 4 and ip.is_reserved:
        return "a reserved address (240.0.0.0/4, broadcast included)"
    if holds and ip.is_link_local:
        return "a link-local address (one link only, and IPv6 needs a zone): not an address clients reach"
    return None


class HostAddress(Meaning):
    """A unicast host address a node can hold as a VIP (IPv4 or IPv6; loopback allowed)."""

    def __init__(self):
        super().__init__("a unicast IPv4 or IPv6 address a node can hold (not unspecified, multicast, "
                         "broadcast, reserved or link-local; loopback allowed)")

    def parse(self, value):
        text = value.strip()
        ip = _ip(text) if "%" not in text else None
        if ip is None:
            raise Invalid(f"not an IP address: {text!r}")
        problem = _address_problem(ip, holds=True)
        if problem:
            raise Invalid(f"{text} is {problem}: {self.what}")
        return text


class NodeAddress(HostAddress):
    """A node's own address, reached by the other controllers (so not a loopback one)."""

    def __init__(self):
        Meaning.__init__(self, "a unicast IPv4 or IPv6 address of that node that the other controllers reach (not "
                               "loopback, unspecified, multicast, broadcast, reserved or link-local)")

    def parse(self, value):
        text = super().parse(value)
        if _ip(text).is_loopback:
            raise Invalid(f"{text} is a loopback address, which no other controller reaches: {self.what}")
        return text


class PrefixLength(Meaning):
    """A prefix length (1-128; the address's version caps it) or a dotted IPv4 netmask, as int."""

    kind = SCALAR

    def __init__(self):
        super().__init__("a prefix length (1 to 32 for IPv4, 1 to 128 for IPv6) or a dotted IPv4 netmask "
                         "(contiguous ones, not 0.0.0.0)")

    def parse(self, value):
        text = str(value).strip()
        if not isinstance(value, bool) and re.fullmatch(r"\d{1,3}", text) and 1 <= int(text) <= 128:
            return int(text)
        ip = _ip(text) if "." in text else None
        if ip is None or ip.version != 4:
            self.refuse(value)
        mask = int(ip)
        inverse = ~mask & 0xFFFFFFFF
        if mask == 0 or inverse & (inverse + 1):  # zero, or ones after a zero (a hostmask)
            self.refuse(value)
        return 32 - inverse.bit_length()


HOST_LABEL = re.compile(r"(?!-)[A-Za-z0-9_-]{1,63}(?<!-)")


class Host(Meaning):
    """A host to connect to: a DNS name or an IP address (IPv6 with or without brackets)."""

    kind = TEXT

    def __init__(self):
        super().__init__("a host name or IP address to connect to (not unspecified or multicast)")

    def parse(self, value):
        text = str(value).strip()
        bare = text[1:-1] if text.startswith("[") and text.endswith("]") else text
        ip = _ip(bare)
        if ip is not None:
            problem = _address_problem(ip, holds=False)
            if problem:
                raise Invalid(f"{bare} is {problem}: {self.what}")
            return text
        if bare != text or len(text) > 253 or not all(HOST_LABEL.fullmatch(p) for p in text.rstrip(".").split(".")) \
                or re.fullmatch(r"[\d.]+", text):
            self.refuse(value)
        return text


class Broker(Host):
    """``host[:port]`` (``[IPv6]:port``) of a message broker."""

    def __init__(self):
        Meaning.__init__(self, "host[:port] ([IPv6]:port), the host a name or IP address, the port 1-65535")

    @staticmethod
    def split(text):
        """(host, port or None) of ``host[:port]``, or None when it is not that shape."""
        match = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\](?::(\d{1,5}))?|([^:\s/@\[\]]+)(?::(\d{1,5}))?", text.strip())
        if not match:
            return None
        port = match.group(2) or match.group(4)
        return match.group(1) or match.group(3), (int(port) if port else None)

    def parse(self, value):
        parts = self.split(str(value))
        if parts is None or (parts[1] is not None and not 0 < parts[1] < 65536):
            self.refuse(value)
        try:
            Host.parse(self, parts[0])
        except Invalid:
            self.refuse(value)
        return str(value).strip()


class Url(Meaning):
    """A URL of one of ``schemes``, with a host (but for ``hostless`` schemes), no white space;
    ``refused``: {scheme: why it cannot work}. Shown with its password masked."""

    def __init__(self, schemes, what, hostless=(), refused=None):
        super().__init__(what, f"not {what}")
        self.schemes, self.hostless, self.refused = tuple(schemes), tuple(hostless), dict(refused or {})

    def parse(self, value):
        if re.search(r"\s", value):
            raise Invalid("a URL holds no white space")
        try:
            parts = urlsplit(value)
            parts.port  # noqa: B018 - raises on a port that is not a number 0-65535
        except ValueError as exc:
            self.refuse(value, f"not a URL ({exc})")
        if parts.scheme in self.refused:
            raise Invalid(self.refused[parts.scheme])
        if parts.scheme not in self.schemes:
            listed = self.schemes[0] in self.what
            self.refuse(value, self.message if listed else f"{self.message} (schemes: {', '.join(self.schemes)})")
        if parts.scheme not in self.hostless and not parts.hostname:
            self.refuse(value, f"{self.message}: no host")
        return value


class KeystoneUrl(Url):
    """Keystone's v3 URL (v2.0 was removed in Queens)."""

    def __init__(self):
        super().__init__(("http", "https"), "an http(s) URL")
        self.what = "Keystone's v3 URL, http(s)://HOST:5000/v3 (v2.0 was removed in Queens)"

    def parse(self, value):
        super().parse(value)
        if urlsplit(value).path.rstrip("/").endswith("/v2.0"):
            raise Invalid("Keystone v2.0 was removed in Queens; give the v3 URL (.../v3)")
        return value


class AbsolutePath(Meaning):
    def __init__(self):
        super().__init__("an absolute path (no '..')", "must be an absolute path (no '..')")

    def parse(self, value):
        if not value.startswith("/") or ".." in value.split("/") or len(value) > 4095 or CONTROL.search(value):
            self.refuse(value)
        return value


class FormulaPath(Meaning):
    """A file of the formula: a path below its folder or a salt:// URL, no '..'."""

    def __init__(self):
        super().__init__("a path below the formula (or a salt:// URL), no '..'")

    def parse(self, value):
        path = value[len("salt://"):] if value.startswith("salt://") else value
        if not path or path.startswith("/") or ".." in path.split("/") or re.search(r"\s", path):
            self.refuse(value)
        return value


class Source(Meaning):
    """Where Salt's file.managed may fetch a file: a salt://, http(s):// or ftp:// URL, or an absolute path."""

    SCHEMES = ("salt", "http", "https", "ftp")

    def __init__(self):
        super().__init__("a salt://, http(s):// or ftp:// URL or an absolute path")

    def parse(self, value):
        try:
            return AbsolutePath().parse(value) if value.startswith("/") else \
                Url(self.SCHEMES, self.what, hostless=("salt",)).parse(value)
        except Invalid:
            self.refuse(value)


HASH_LENGTHS = {"md5": 32, "sha1": 40, "sha224": 56, "sha256": 64, "sha384": 96, "sha512": 128}


class SourceHash(Meaning):
    """Salt's source_hash: <type>=<hex>, a bare hex digest, or the URL of a hash file."""

    def __init__(self):
        super().__init__("a hash: sha256=<64 hex digits> (md5, sha1, sha224, sha384, sha512 too), a bare hex "
                         "digest, or the URL of a hash file")

    def parse(self, value):
        text = value.strip()
        kind, _, digest = text.rpartition("=")
        if re.fullmatch(r"[0-9a-fA-F]+", digest) and (HASH_LENGTHS.get(kind) == len(digest)
                                                        or (not kind and len(digest) in HASH_LENGTHS.values())):
            return value
        try:
            return Url(Source.SCHEMES, self.what, hostless=("salt",)).parse(value)
        except Invalid:
            self.refuse(value)


class ListOf(Meaning):
    """A list (or comma/space-separated string) of ``item``: never empty, each once if ``unique``."""

    kind = LIST

    def __init__(self, item, what=None, unique=True):
        super().__init__(what or f"a non-empty list, each item {item.what}")
        self.item, self.unique = item, unique

    def parse(self, value):
        items = [i for i in re.split(r"[,\s]+", value) if i] if isinstance(value, str) else list(value)
        if not items:
            raise Invalid(f"an empty list means nothing here: {self.what}")
        problems = []
        for item in items:
            try:
                self.item.parse(str(item))
            except Invalid as exc:
                problems.extend((at, reason, shown, hint) for at, reason, shown, hint in exc.problems)
        if self.unique and len({str(i) for i in items}) != len(items):
            problems.append(("", "lists an item twice", _QUIET, ""))
        if problems:
            raise Invalid(problems[0][1], problems=problems)
        return [str(i) for i in items]


class MappingOf(Meaning):
    """A mapping of ``key`` -> ``value`` meanings (each problem names its sub-key)."""

    kind = MAPPING

    def __init__(self, key, value, what, nonempty=False):
        super().__init__(what)
        self.key, self.value, self.nonempty = key, value, nonempty

    def parse(self, value):
        if self.nonempty and not value:
            raise Invalid(f"an empty mapping means nothing here: {self.what}")
        problems, clean = [], {}
        for key, item in value.items():
            at = f":{str(key)[:40]}"
            try:
                self.key.parse(str(key))
            except Invalid:
                problems.append((at, f"not {self.key.what}", _QUIET, ""))
                continue
            try:
                clean[key] = parsed(self.value, item)
            except Invalid as exc:
                problems.extend((at + sub, reason, shown, hint) for sub, reason, shown, hint in exc.problems)
        if problems:
            raise Invalid(problems[0][1], problems=problems)
        return clean


class Nodes(Meaning):
    """The controllers: a list of cluster node names, or a mapping of each name to the address of
    that node where its cinder-api listens (what cluster:mode balanced needs)."""

    kind = ANY

    def __init__(self, name, address):
        super().__init__(f"the controllers: a list of cluster node names ({name.what}), each once, or a mapping "
                         f"of each name to that node's own address ({address.what})")
        self.names = ListOf(name)
        self.addresses = MappingOf(name, address, self.what, nonempty=True)

    def parse(self, value):
        if isinstance(value, dict):
            return parsed(self.addresses, value)
        if kind_ok(value, LIST):
            return parsed(self.names, value)
        raise Invalid(f"got {kind_of(value)}, expected {self.what}")


class ConfValue(Meaning):
    """A cinder.conf value: a string, a number, a boolean, or a list of them (one line each)."""

    kind = ANY

    def __init__(self):
        super().__init__("a string, a number, a boolean or a list of them")

    def parse(self, value):
        for item in value if isinstance(value, (list, tuple)) else [value]:
            if isinstance(item, (dict, list, tuple)) or item is None and isinstance(value, (list, tuple)):
                raise Invalid(f"got {kind_of(item)}, expected {self.what}")
        return value


# ---------------------------------------------------------------- the meanings the keys share

PACEMAKER_ID = Word("a Pacemaker id (a letter or '_', then letters, digits, '_', '.', '-'; at most 100)",
                    "A-Za-z_", "A-Za-z0-9_.-", 100,
                    message="not a Pacemaker id (a letter or '_', then letters, digits, '_', '.', '-'; at most 100)")
POSIX_NAME = Word("a POSIX user or group name (letters, digits, '_', '.', '-'; not starting with '-' or a digit; "
                  "at most 32)", "A-Za-z_", "A-Za-z0-9_.-", 32, kind=SCALAR,
                  message="not a POSIX user or group name (letters, digits, '_', '.', '-'; not starting with '-' "
                          "or a digit; at most 32)")
NODE_NAME = Word("a cluster node name (a letter or digit, then letters, digits, '_', '.', '-'; at most 100)",
                 "A-Za-z0-9", "A-Za-z0-9_.-", 100)
FILE_NAME = Word("a file name (letters, digits, '_', '.', '-'; not starting with '-'; not . or ..; at most 100)",
                 "A-Za-z0-9_.", "A-Za-z0-9_.-", 100, reserved=(".", ".."))
INTERFACE = Word("a network interface name (letters, digits, '_', '.', ':', '@', '-'; at most 15)",
                 "A-Za-z0-9_", "A-Za-z0-9_.:@-", 15, message="not an interface name")
CONF_SECTION = Word("a cinder.conf section name (letters, digits, '_', '.', ':', '-')", "A-Za-z0-9_",
                    "A-Za-z0-9_.:-", 100)
CONF_KEY = Word("a cinder.conf key (letters, digits, '_', '.', '-')", "A-Za-z0-9_", "A-Za-z0-9_.-", 100)
PORT = Integer(1, 65535, "a port, 1-65535", "port must be an integer 1-65535")
BOOLEAN = Boolean()
ABSOLUTE_PATH = AbsolutePath()
HTTP_URL = Url(("http", "https"), "an http(s) URL")
# Keystone's own limits (keystone/api/validation/parameter_types.py: name and region_id, 1-255
# characters, not blank). A region id is a path segment (GET /v3/regions/<id>): no '/'.
KEYSTONE_NAME = Text("a Keystone name (1 to 255 characters, not blank, no leading or trailing space)",
                     max_len=255, exact=True, kind=SCALAR)
KEYSTONE_REGION = Text("a Keystone region id (1 to 255 characters, no '/', no leading or trailing space)",
                       max_len=255, exact=True, kind=SCALAR, forbid="/",
                       why_forbidden="which Keystone cannot take in a region id (GET /v3/regions/<id>)")
SECRET = Text("a password (any characters on one line, not empty)", kind=SCALAR, echo=False)
FREE_TEXT = Text("any text on one line", min_len=0, kind=SCALAR)
