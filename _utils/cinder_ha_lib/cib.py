"""
Pure logic for the ``crm`` execution and state modules: the object model the formula
declares, the same model read back from CIB XML, the comparison of the two, and the
rendering of the desired objects into a copy of the CIB.

Stdlib only, no Salt: the module runs the subprocesses and this file decides.

Object model (one dict per object, the formula's shape)::

    {"primitive": "p_x", "agent": "ocf:heartbeat:IPaddr2", "params": {...}, "ops": {...},
     "meta": {...}, "secret_params": [...], "secret_mode": "lrm" | "plain"}
    {"group": "g_x", "resources": [...], "meta": {...}}
    {"clone": "cl_x", "resource": "p_x", "meta": {"clone-max": 3, "clone-node-max": 1, "interleave": true}}
        -> p_x (a primitive or group of the same list or of the CIB) wrapped in <clone id="cl_x">.
           Declaring a primitive WITHOUT a clone that holds it in the CIB takes it out of that
           clone (the clone and the constraints naming it go, in the same transaction); declaring
           a clone makes the constraints that name its primitive (and that the list does not
           declare) go: Pacemaker would read them as constraints on the clone.
    {"colocation": "c_x", "score": "INFINITY", "resources": [rsc, with_rsc]}
    {"order": "o_x", "kind": "Mandatory", "first": a, "then": b, "symmetrical": bool}
    {"property": {name: value}, "set": "cib-bootstrap-options"}
    {"alert": "a_x", "path": "/path/to/agent", "select": ["resources"], "attributes": {...},
     "recipient": "value handed to the agent"}
    {"location": "l_x", "resource": "p_x", "node": "node1", "score": "100"}
    {"location": "l_x", "resource": "p_x", "resource_discovery": "never",
     "rules": [{"score": "-INFINITY", "boolean_op": "or",
                "expressions": [{"attribute": "a", "operation": "not_defined"},
                                {"attribute": "a", "operation": "ne", "value": "v"}]}]}
    {"location": "l_x", "resource": "p_x", "secrets_of": "p_y", "resource_discovery": "never"}
        -> the rule "-INFINITY where this node has not published the digest of p_y's current
           lrm secrets", accepting more than one digest during a rotation (see ``secrets_rules``);
           p_y must be declared in the same list.

Internally each object is normalized to ``{"tag": ..., "id": ..., ...}`` with every value a
string, op intervals and timeouts in milliseconds, so that what ``crm`` or an operator wrote
(generated ids, empty meta_attributes, attribute order, abbreviations, units) compares equal
to what the formula declares when it means the same thing.
"""
import copy
import hashlib
import re
import xml.etree.ElementTree as ET

from cinder_ha_lib import errors
from cinder_ha_lib.secret_rule import is_secret_name

LRM_VALUE = "lrm://"
SECRETS_DIR = "/var/lib/pacemaker/lrm/secrets"
OCF_ROOT = "/usr/lib/ocf/resource.d"
PROPERTY_SET = "cib-bootstrap-options"
MASK = "***"
# Meta attributes an operator (or `crm resource stop/unmanage/maintenance`) sets at run time:
# kept as they are unless the state declares them.
# multiple-active: cluster:mode cloned declares stop_unexpected on the clone's primitive; kept when
# the primitive is unwrapped again (active_passive does not declare it), so the instance that
# keeps running is not restarted while Pacemaker stops the others.
RUNTIME_META = ("target-role", "is-managed", "maintenance", "multiple-active")
ANSI_RE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
DURATION_RE = re.compile(r"^\s*(\d+)\s*(ms|msec|s|sec|m|min|h|hr)?\s*$", re.IGNORECASE)
DURATION_UNITS = {None: 1000, "ms": 1, "msec": 1, "s": 1000, "sec": 1000, "m": 60000, "min": 60000,
                  "h": 3600000, "hr": 3600000}
TIME_ATTRS = ("interval", "timeout", "start-delay", "interval-origin")
KINDS = ("primitive", "group", "clone", "colocation", "order", "property", "alert", "location")
# Clone meta attributes that hold a count (checked as non-negative integers).
CLONE_COUNTS = ("clone-max", "clone-node-max", "clone-min")
DISCOVERY_MODES = ("always", "never", "exclusive")
RULE_OPERATIONS = ("defined", "not_defined", "eq", "ne", "lt", "lte", "gt", "gte")
# Pacemaker 2.1 (lib/common/cib_secrets.c) reads a secret file with ONE fgets() of at most
# 254 bytes and strips trailing isspace() characters before comparing its md5 with .sign.
SECRET_MAX_BYTES = 254
SECRETS_ATTR_PREFIX = "cinder_ha_secrets_"
# Node attributes live in the CIB, which more people read than the 0600 secret files (a
# crm_report holds it): the published digest is keyed by a secret only the nodes hold (the
# corosync authkey) over a slow, salted, domain-separated hash, never the md5 of .sign files.
SECRETS_DIGEST_DOMAIN = b"cinder-ha lrm secrets v1\x00"
SECRETS_DIGEST_KEY_DOMAIN = b"cinder-ha lrm secrets digest key v2"
SECRETS_DIGEST_ROUNDS = 100000
ALERT_SELECTS = ("nodes", "fencing", "resources", "attributes")


ModelError = errors.ModelError  # the declared objects are not valid; lists every problem


def strip_ansi(text):
    return ANSI_RE.sub("", text or "")


def md5_hex(value):
    return hashlib.md5(value.encode("utf-8")).hexdigest()


def secret_value_problem(rsc, name, value):
    """Why Pacemaker could never read ``value`` back from its lrm:// file (None when it can)."""
    where = f"{rsc}: secret parameter {name}"
    if not isinstance(value, str):
        return f"{where}: expected a string, got {type(value).__name__}"
    if value == "":
        return f"{where} is empty: Pacemaker cannot read an empty secret file"
    if "\n" in value or "\r" in value:
        return f"{where} contains a line break: Pacemaker reads one line of a secret file"
    if value != value.rstrip(" \t\n\v\f\r"):
        return f"{where} ends with whitespace, which Pacemaker strips when it reads the file"
    if "\x00" in value:
        return f"{where} contains a NUL character"
    size = len(value.encode("utf-8"))
    if size > SECRET_MAX_BYTES:
        return (f"{where} is {size} bytes long: Pacemaker reads at most {SECRET_MAX_BYTES} bytes "
                "of a secret file")
    return None


def secrets_attribute(rsc):
    """Name of the permanent node attribute saying which secrets of ``rsc`` a node holds."""
    return SECRETS_ATTR_PREFIX + rsc


def _digest_material(rsc, secrets):
    import json

    return json.dumps([rsc, sorted((str(k), str(v)) for k, v in secrets.items())],
                      ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _digest_key(key):
    """The HMAC key the digest uses: derived from the cluster's key, never that key itself."""
    import hmac

    return hmac.new(key, SECRETS_DIGEST_KEY_DOMAIN, hashlib.sha256).digest()


def secrets_digest(rsc, secrets, key=None):
    """Digest of the lrm secrets of ``rsc`` ({name: value}) that a node publishes in the CIB.

    PBKDF2-HMAC-SHA256 (~25 ms) over an unambiguous encoding (JSON) of the resource id and the
    sorted name/value pairs, salted with a domain string and the resource id, then HMAC-SHA256
    keyed by ``key`` (bytes every node holds: the corosync authkey): equal on every node that
    holds the same values and key; without the key a CIB dump gives nothing to guess against,
    and with it each guess still costs the PBKDF2. ``key=None`` (no cluster key): the PBKDF2
    alone, guessable offline for a weak password.
    """
    import hmac

    salt = SECRETS_DIGEST_DOMAIN + rsc.encode("utf-8")
    slow = hashlib.pbkdf2_hmac("sha256", _digest_material(rsc, secrets), salt, SECRETS_DIGEST_ROUNDS)
    if key is None:
        return slow.hex()
    return hmac.new(_digest_key(key), slow, hashlib.sha256).hexdigest()


def digest_memo_key(rsc, secrets, key=None):
    """What a node's digest memo is filed under: a plain SHA-256 of the same material and of
    the derived key (another cluster key, another digest). Only for a root-only file beside the
    plaintext secret files themselves (see crm_secrets' digest memo), where it reveals nothing
    those files and the authkey do not; never for the CIB."""
    keyed = b"" if key is None else _digest_key(key)
    return hashlib.sha256(SECRETS_DIGEST_DOMAIN + keyed + _digest_material(rsc, secrets)).hexdigest()


# ---------------------------------------------------------------- lrm secrets: the rule and its rotation
#
# A ``secrets_of`` location bans (-INFINITY) every node whose digest attribute is missing or is
# not in the rule's ACCEPTED set of digests (one ``ne`` expression each, ANDed). A password
# rotation never makes a node ineligible by itself:
# - a node's run publishes its new digest in ONE CIB patch with the rule: when the rule does not
#   accept it yet and the node is eligible now, the patch adds it (``node_publication``); a node
#   that is not eligible gains nothing (the controller decides);
# - the controller's run accepts its own digest plus the digest of every node where a guarded
#   resource is (``controller_accepted``): a rotation never stops or moves what runs;
# - anyone drops a digest that no node publishes (it can make no node ineligible), so the old
#   digest goes as soon as the last node holding it has published the new one.


def secrets_rules(attribute, digests):
    """The rules that ban (-INFINITY) every node whose ``attribute`` is missing or not one of
    ``digests`` (sorted: the same set is the same rule)."""
    accepted = sorted(set(digests))
    return [{"score": "-INFINITY", "boolean_op": "and",
             "expressions": [{"attribute": attribute, "operation": "not_defined", "value": None, "type": None}]},
            {"score": "-INFINITY", "boolean_op": "and",
             "expressions": [{"attribute": attribute, "operation": "ne", "value": digest, "type": None}
                             for digest in accepted]}]


def secrets_rule_attribute(location):
    """The digest attribute a location's rules test when they are a secrets rule (this
    formula's, any version), else None."""
    expressions = [expr for rule in location.get("rules") or [] for expr in rule["expressions"]]
    names = {expr["attribute"] for expr in expressions}
    if len(names) != 1 or not next(iter(names)).startswith(SECRETS_ATTR_PREFIX):
        return None
    if any(expr["operation"] not in ("not_defined", "ne") for expr in expressions):
        return None
    return next(iter(names))


def accepted_digests(location):
    """The digests a secrets rule accepts: the values of its ``ne`` expressions."""
    return sorted({expr["value"] for rule in location.get("rules") or [] for expr in rule["expressions"]
                   if expr["operation"] == "ne" and expr["value"] is not None})


def published_digests(parsed, attribute):
    """{node: digest} of each node's ``attribute`` in the CIB's nodes section."""
    return {obj["node"]: obj["value"] for (tag, _oid), obj in parsed["objects"].items()
            if tag == "node_attr" and obj["name"] == attribute}


def _still_published(accepted, published):
    """``accepted`` without the digests no node publishes (never emptied: a rule needs one)."""
    kept = [digest for digest in accepted if digest in published.values()]
    return kept or accepted


def controller_accepted(digest, published, holders):
    """What the controller's rule accepts: the digest of the declared secrets, and the digest
    published by each node in ``holders`` (where a guarded resource is placed): the rotation
    never bans a node where something runs. Others holding an older digest become ineligible
    until their own run."""
    return sorted({digest} | {published[node] for node in holders if published.get(node)})


def secret_locations(parsed, attribute):
    """The locations of the CIB whose rules are a secrets rule on ``attribute``."""
    return [obj for (tag, _oid), obj in sorted(parsed["objects"].items())
            if tag == "location" and secrets_rule_attribute(obj) == attribute]


def with_accepted_digests(desired, parsed, holders):
    """``desired`` with each ``secrets_of`` location accepting ``controller_accepted``.
    ``holders(resources)``: the nodes where any of those resources is placed, called only when
    a node publishes a digest other than the declared one (a rotation in progress)."""
    result = []
    for obj in desired:
        if obj["tag"] == "location" and obj.get("secrets_digest"):
            published = published_digests(parsed, obj["secrets_attribute"])
            digests = [obj["secrets_digest"]]
            if set(published.values()) - {obj["secrets_digest"]}:
                guarded = sorted({o["rsc"] for o in desired if o.get("secrets_attribute") == obj["secrets_attribute"]}
                                 | {obj["secrets_of"]})
                digests = controller_accepted(obj["secrets_digest"], published, holders(guarded))
            obj = dict(obj, accepted=digests, rules=secrets_rules(obj["secrets_attribute"], digests))
        result.append(obj)
    return result


def node_publication(parsed, attribute, node, digest):
    """What a node publishing ``digest`` as its ``attribute`` writes, in ONE CIB patch:
    ``(objects, eligible)``. Its attribute, and each secrets rule on ``attribute`` that does
    not accept ``digest`` yet, extended with it when the node is eligible now (its current
    digest accepted by every such rule): it stays eligible through the rotation. A node not
    eligible now extends nothing: it publishes, and waits for the controller to accept it.
    Digests no node publishes any more leave the rules. ``eligible``: the node is eligible
    once the patch is in."""
    published = published_digests(parsed, attribute)
    current = published.get(node)
    locations = secret_locations(parsed, attribute)
    eligible_now = current is not None and all(current in accepted_digests(loc) for loc in locations)
    after = dict(published, **{node: digest})
    objects, eligible = [node_attribute(node, attribute, digest)], True
    for location in locations:
        accepted = accepted_digests(location)
        if digest not in accepted:
            if eligible_now:
                accepted = accepted + [digest]
            else:
                eligible = False
        accepted = _still_published(accepted, after)
        if accepted != accepted_digests(location):
            objects.append(dict(location, rules=secrets_rules(attribute, accepted)))
    return objects, eligible


def resolve_pillar_refs(values, where, get):
    """``values`` with each ``{"pillar": "a:b:c"}`` replaced by ``get("a:b:c")`` (the states pass
    an unmasked pillar read): a secret named this way never appears in the rendered SLS.
    Raises ModelError naming the key whose pillar value is not set."""
    resolved = {}
    for key, value in (values or {}).items():
        if isinstance(value, dict) and set(value) == {"pillar"}:
            found = get(value["pillar"])
            if found is None:
                raise ModelError(f"{where} {key}: pillar key {value['pillar']} is not set")
            value = found
        resolved[key] = value
    return resolved


def mask(text, secrets):
    """``text`` with every secret value replaced by ``***`` (longest first)."""
    text = text or ""
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text


def duration_ms(value):
    """'30s' -> 30000, '10' (Pacemaker: seconds) -> 10000; None when not a plain duration."""
    match = DURATION_RE.match(str(value))
    if not match:
        return None
    unit = match.group(2).lower() if match.group(2) else None
    return int(match.group(1)) * DURATION_UNITS[unit]


def _time_text(value):
    ms = duration_ms(value)
    return str(value) if ms is None else f"{ms}ms"


def _text(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def parse_agent(agent):
    """'IPaddr2' -> ('ocf', 'heartbeat', 'IPaddr2'); 'ocf:openstack:cinder-api'; 'lsb:foo'."""
    parts = str(agent or "").split(":")
    if len(parts) == 1 and parts[0]:
        return "ocf", "heartbeat", parts[0]
    if len(parts) == 3 and parts[0] == "ocf" and all(parts):
        return tuple(parts)
    if len(parts) == 2 and parts[0] != "ocf" and all(parts):
        return parts[0], None, parts[1]
    raise ModelError(f"agent {agent!r}: expected class:provider:type (ocf:heartbeat:IPaddr2), "
                     "class:type (lsb:foo) or an ocf:heartbeat type (IPaddr2)")


def agent_name(obj):
    parts = [obj["class"], obj.get("provider"), obj["type"]]
    return ":".join(p for p in parts if p)


def agent_path(obj):
    """Where an OCF agent's script lives (named in 'agent not found' errors)."""
    return f"{OCF_ROOT}/{obj.get('provider')}/{obj['type']}"


def _op_key(name, attrs):
    return f"{name}:{attrs.get('interval', '0ms')}"


def _normalize_ops(rsc, ops, errors):
    result = {}
    items = []
    for name, spec in (ops or {}).items():
        for attrs in (spec if isinstance(spec, list) else [spec]):
            items.append((name, attrs or {}))
    for name, attrs in items:
        if not isinstance(attrs, dict):
            errors.append(f"{rsc}: op {name}: expected a mapping of attributes, got {attrs!r}")
            continue
        clean = {}
        for key, value in attrs.items():
            clean[key] = _time_text(value) if key in TIME_ATTRS else _text(value)
        clean.setdefault("interval", "0ms")
        result[_op_key(name, clean)] = dict(clean, name=name)
    return result


def normalize_objects(objects, digest=secrets_digest):
    """The formula's list of objects -> list of normalized objects. Raises ModelError.
    ``digest(rsc, secrets)`` makes the ``secrets_of`` rules' digest (default: ``secrets_digest``;
    the crm module passes its memoized one)."""
    errors = []
    result = []
    seen = set()
    if not isinstance(objects, list):
        raise ModelError(f"objects: expected a list, got {type(objects).__name__}")
    for index, raw in enumerate(objects):
        if not isinstance(raw, dict):
            errors.append(f"objects[{index}]: expected a mapping, got {raw!r}")
            continue
        kinds = [k for k in KINDS if k in raw]
        if len(kinds) != 1:
            errors.append(f"objects[{index}]: give exactly one of {', '.join(KINDS)}")
            continue
        kind = kinds[0]
        try:
            obj = _NORMALIZERS[kind](raw, errors)
        except ModelError as exc:
            errors.append(str(exc))
            continue
        if obj is None:
            continue
        key = (obj["tag"], obj["id"])
        if key in seen and obj["tag"] != "property":
            errors.append(f"{obj['id']}: declared twice")
        seen.add(key)
        result.append(obj)
    _expand_secret_rules(result, errors, digest)
    if errors:
        raise ModelError(errors)
    return _merge_properties(result)


def _merge_properties(objs):
    merged = []
    by_set = {}
    for obj in objs:
        if obj["tag"] == "property":
            if obj["id"] in by_set:
                by_set[obj["id"]]["values"].update(obj["values"])
                continue
            by_set[obj["id"]] = obj
        merged.append(obj)
    return merged


def _check_id(value, what):
    if not isinstance(value, str) or not re.match(r"^[A-Za-z_][A-Za-z0-9_.:-]*$", value):
        raise ModelError(f"{what} id {value!r}: letters, digits, '_', '.', '-' and ':' only, "
                         "starting with a letter or '_'")
    return value


def _normalize_primitive(raw, errors):
    rsc = _check_id(raw["primitive"], "primitive")
    cls, provider, rtype = parse_agent(raw.get("agent"))
    params = {str(k): _text(v) for k, v in (raw.get("params") or {}).items()}
    mode = raw.get("secret_mode", "plain") or "plain"
    if mode not in ("lrm", "plain"):
        errors.append(f"{rsc}: secret_mode must be lrm or plain, got {mode!r}")
    secret_params = sorted(set(raw.get("secret_params") or []))
    for name in secret_params:
        if name not in params:
            errors.append(f"{rsc}: secret parameter {name} has no value in params")
    for name, value in params.items():
        in_file = mode == "lrm" and name in secret_params
        if "\n" in value and not in_file:
            # Pacemaker 2.1 writes a newline in an attribute as the two characters "\n": lossy.
            what = "secret parameter" if name in secret_params else "parameter"
            hint = " (use secret_mode: lrm)" if name in secret_params else ""
            errors.append(f"{rsc}: {what} {name} contains a newline, which the CIB cannot store{hint}")
        if value == LRM_VALUE and name in secret_params:
            errors.append(f"{rsc}: parameter {name}: give the secret itself, not {LRM_VALUE}")
        elif in_file:
            problem = secret_value_problem(rsc, name, value)
            if problem:
                errors.append(problem)
    return {
        "tag": "primitive", "id": rsc, "class": cls, "provider": provider, "type": rtype,
        "params": params, "ops": _normalize_ops(rsc, raw.get("ops"), errors),
        "meta": {str(k): _text(v) for k, v in (raw.get("meta") or {}).items()},
        "secret_params": secret_params, "secret_mode": mode,
    }


def _normalize_group(raw, errors):
    gid = _check_id(raw["group"], "group")
    members = raw.get("resources") or []
    if not members or not all(isinstance(m, str) for m in members):
        errors.append(f"{gid}: resources must be a non-empty list of resource ids")
    return {"tag": "group", "id": gid, "resources": list(members),
            "meta": {str(k): _text(v) for k, v in (raw.get("meta") or {}).items()}}


def _normalize_clone(raw, errors):
    cid = _check_id(raw["clone"], "clone")
    child = raw.get("resource")
    if not isinstance(child, str) or not child:
        errors.append(f"{cid}: resource (the id of the primitive or group to clone) is required")
        child = None
    elif child == cid:
        errors.append(f"{cid}: a clone and its resource need different ids")
    meta = {str(k): _text(v) for k, v in (raw.get("meta") or {}).items()}
    for name in CLONE_COUNTS:
        if name in meta and not re.fullmatch(r"\d{1,4}", meta[name]):
            errors.append(f"{cid}: meta {name} must be a non-negative integer, got {meta[name]!r}")
    if "clone-max" in meta and "clone-min" in meta and meta["clone-min"].isdigit() \
            and meta["clone-max"].isdigit() and int(meta["clone-min"]) > int(meta["clone-max"]):
        errors.append(f"{cid}: meta clone-min ({meta['clone-min']}) is above clone-max ({meta['clone-max']})")
    return {"tag": "clone", "id": cid, "resource": child, "meta": meta}


def _normalize_colocation(raw, errors):
    cid = _check_id(raw["colocation"], "colocation")
    members = raw.get("resources") or []
    if len(members) != 2:
        errors.append(f"{cid}: resources must list exactly two ids: [placed, placed_with]")
    return {"tag": "colocation", "id": cid, "score": _text(raw.get("score", "INFINITY")),
            "resources": list(members)}


def _normalize_order(raw, errors):
    oid = _check_id(raw["order"], "order")
    if not raw.get("first") or not raw.get("then"):
        errors.append(f"{oid}: first and then are required")
    kind = raw.get("kind", "Mandatory")
    if kind not in ("Mandatory", "Optional", "Serialize"):
        errors.append(f"{oid}: kind must be Mandatory, Optional or Serialize, got {kind!r}")
    return {"tag": "order", "id": oid, "kind": kind, "first": raw.get("first"), "then": raw.get("then"),
            "symmetrical": _text(raw.get("symmetrical", True))}


def _normalize_property(raw, errors):
    values = raw["property"]
    if not isinstance(values, dict) or not values:
        errors.append(f"property: expected a mapping of name: value, got {values!r}")
        return None
    set_id = _check_id(raw.get("set", PROPERTY_SET), "property set")
    return {"tag": "property", "id": set_id, "values": {str(k): _text(v) for k, v in values.items()}}


def _normalize_alert(raw, errors):
    aid = _check_id(raw["alert"], "alert")
    path = raw.get("path")
    if not path or not str(path).startswith("/"):
        errors.append(f"{aid}: path must be the absolute path of the alert agent")
    select = sorted(set(raw.get("select") or []))
    unknown = [s for s in select if s not in ALERT_SELECTS]
    if unknown:
        errors.append(f"{aid}: select {unknown} not in {', '.join(ALERT_SELECTS)}")
    return {"tag": "alert", "id": aid, "path": _text(path), "select": select,
            "attributes": {str(k): _text(v) for k, v in (raw.get("attributes") or {}).items()},
            "recipient": _text(raw["recipient"]) if raw.get("recipient") is not None else None}


def normalize_score(value):
    """'inf', '+INFINITY' -> 'INFINITY'; '-inf' -> '-INFINITY'; other scores as text."""
    text = _text(value).strip()
    lowered = text.lower()
    if lowered in ("inf", "+inf", "infinity", "+infinity"):
        return "INFINITY"
    if lowered in ("-inf", "-infinity"):
        return "-INFINITY"
    return text


def _normalize_rule(lid, index, raw, errors):
    if not isinstance(raw, dict):
        errors.append(f"{lid}: rules[{index}]: expected a mapping, got {raw!r}")
        return None
    boolean_op = raw.get("boolean_op", "and")
    if boolean_op not in ("and", "or"):
        errors.append(f"{lid}: rules[{index}]: boolean_op must be and or or, got {boolean_op!r}")
    expressions = []
    for number, expr in enumerate(raw.get("expressions") or []):
        if not isinstance(expr, dict) or not expr.get("attribute"):
            errors.append(f"{lid}: rules[{index}].expressions[{number}]: attribute and operation are required")
            continue
        operation = expr.get("operation")
        if operation not in RULE_OPERATIONS:
            errors.append(f"{lid}: rules[{index}].expressions[{number}]: operation {operation!r} "
                          f"not in {', '.join(RULE_OPERATIONS)}")
        value = expr.get("value")
        if operation not in ("defined", "not_defined") and value is None:
            errors.append(f"{lid}: rules[{index}].expressions[{number}]: {operation} needs a value")
        expressions.append({"attribute": _text(expr["attribute"]), "operation": operation,
                            "value": None if value is None else _text(value),
                            "type": None if expr.get("type") is None else _text(expr["type"])})
    if not expressions:
        errors.append(f"{lid}: rules[{index}]: at least one expression is required")
    return {"score": normalize_score(raw.get("score", "INFINITY")), "boolean_op": boolean_op,
            "expressions": expressions}


def _normalize_location(raw, errors):
    lid = _check_id(raw["location"], "location")
    rsc = raw.get("resource")
    if not isinstance(rsc, str) or not rsc:
        errors.append(f"{lid}: resource is required")
    discovery = _text(raw.get("resource_discovery", "always"))
    if discovery not in DISCOVERY_MODES:
        errors.append(f"{lid}: resource_discovery must be one of {', '.join(DISCOVERY_MODES)}, got {discovery!r}")
    forms = [key for key in ("node", "rules", "secrets_of") if raw.get(key)]
    if len(forms) != 1:
        errors.append(f"{lid}: give exactly one of node (with score), rules or secrets_of")
        return None
    obj = {"tag": "location", "id": lid, "rsc": rsc, "discovery": discovery, "node": None, "score": None,
           "rules": []}
    if forms[0] == "node":
        if raw.get("score") is None:
            errors.append(f"{lid}: node needs a score")
        obj.update(node=_text(raw["node"]), score=normalize_score(raw.get("score", "")))
    elif forms[0] == "rules":
        rules = raw["rules"] if isinstance(raw["rules"], list) else [raw["rules"]]
        obj["rules"] = [r for r in (_normalize_rule(lid, i, rule, errors) for i, rule in enumerate(rules)) if r]
    else:
        obj["secrets_of"] = _text(raw["secrets_of"])  # rule filled in by _expand_secret_rules
    return obj


def _expand_secret_rules(objects, errors, digest=secrets_digest):
    """``secrets_of: p_y`` -> the rule on p_y's current secrets (digest of the declared values)."""
    primitives = {obj["id"]: obj for obj in objects if obj["tag"] == "primitive"}
    digests = {}  # the digest's PBKDF2 costs ~25 ms: once per primitive, not once per rule naming it
    for obj in objects:
        if obj["tag"] != "location" or not obj.get("secrets_of"):
            continue
        owner = primitives.get(obj["secrets_of"])
        if owner is None:
            errors.append(f"{obj['id']}: secrets_of {obj['secrets_of']}: that primitive must be declared "
                          "in the same list (its secret values make the expected digest)")
            continue
        secrets = {name: owner["params"][name] for name in owner["secret_params"] if name in owner["params"]}
        if owner["secret_mode"] != "lrm" or not secrets:
            errors.append(f"{obj['id']}: secrets_of {owner['id']}: it keeps no secret_mode lrm parameter "
                          "(no rule is needed)")
            continue
        if owner["id"] not in digests:
            digests[owner["id"]] = digest(owner["id"], secrets)
        obj["secrets_digest"] = digests[owner["id"]]
        obj["secrets_attribute"] = secrets_attribute(owner["id"])
        obj["rules"] = secrets_rules(obj["secrets_attribute"], [obj["secrets_digest"]])


def node_attribute(node, name, value):
    """A permanent node attribute (``<nodes><node uname=...><instance_attributes>``) to set."""
    return {"tag": "node_attr", "id": f"{name}@{node}", "node": node, "name": name, "value": value}


_NORMALIZERS = {"primitive": _normalize_primitive, "group": _normalize_group, "clone": _normalize_clone,
                "colocation": _normalize_colocation, "order": _normalize_order,
                "property": _normalize_property, "alert": _normalize_alert,
                "location": _normalize_location}


# ---------------------------------------------------------------- reading the CIB

def _nvpairs(element, set_tag):
    values = {}
    for attr_set in element.findall(set_tag):
        for nvpair in attr_set.findall("nvpair"):
            values[nvpair.get("name")] = nvpair.get("value", "")
    return values


def _read_primitive(element):
    ops = {}
    for op in element.findall("operations/op"):
        attrs = {k: (_time_text(v) if k in TIME_ATTRS else v) for k, v in op.attrib.items()
                 if k not in ("id", "name")}
        attrs.setdefault("interval", "0ms")
        attrs.update(_nvpairs(op, "meta_attributes"))
        ops[_op_key(op.get("name"), attrs)] = dict(attrs, name=op.get("name"))
    return {
        "tag": "primitive", "id": element.get("id"), "class": element.get("class"),
        "provider": element.get("provider"), "type": element.get("type"),
        "params": _nvpairs(element, "instance_attributes"), "ops": ops,
        "meta": _nvpairs(element, "meta_attributes"),
    }


def _read_location(element):
    rules = []
    for rule in element.findall("rule"):
        rules.append({
            "score": normalize_score(rule.get("score")) if rule.get("score") is not None else None,
            "boolean_op": rule.get("boolean-op", "and"),
            "expressions": [{"attribute": expr.get("attribute"), "operation": expr.get("operation"),
                             "value": expr.get("value"), "type": expr.get("type")}
                            for expr in rule.findall("expression")]})
    score = element.get("score")
    return {"tag": "location", "id": element.get("id"), "rsc": element.get("rsc"),
            "discovery": element.get("resource-discovery", "always"), "node": element.get("node"),
            "score": normalize_score(score) if score is not None else None, "rules": rules}


def parse_cib(text):
    """CIB XML -> {"version": (admin_epoch, epoch, num_updates), "objects": {(tag, id): obj}}."""
    root = ET.fromstring(text)
    version = tuple(int(root.get(k, "0")) for k in ("admin_epoch", "epoch", "num_updates"))
    objects = {}
    config = root.find("configuration")
    if config is None:
        return {"version": version, "objects": objects, "root": root}
    for element in config.iter("primitive"):
        objects[("primitive", element.get("id"))] = _read_primitive(element)
    for element in config.iter("group"):
        objects[("group", element.get("id"))] = {
            "tag": "group", "id": element.get("id"),
            "resources": [child.get("id") for child in element if child.tag == "primitive"],
            "meta": _nvpairs(element, "meta_attributes")}
    for element in config.iter("clone"):
        child = next((c for c in element if c.tag in ("primitive", "group")), None)
        objects[("clone", element.get("id"))] = {
            "tag": "clone", "id": element.get("id"), "resource": child.get("id") if child is not None else None,
            "meta": _nvpairs(element, "meta_attributes")}
    for element in config.findall("constraints/rsc_colocation"):
        objects[("colocation", element.get("id"))] = {
            "tag": "colocation", "id": element.get("id"), "score": element.get("score", ""),
            "resources": [element.get("rsc"), element.get("with-rsc")]}
    for element in config.findall("constraints/rsc_order"):
        objects[("order", element.get("id"))] = {
            "tag": "order", "id": element.get("id"), "kind": element.get("kind", "Mandatory"),
            "first": element.get("first"), "then": element.get("then"),
            "symmetrical": element.get("symmetrical", "true")}
    for element in config.findall("constraints/rsc_location"):
        objects[("location", element.get("id"))] = _read_location(element)
    for node in config.findall("nodes/node"):
        for name, value in _nvpairs(node, "instance_attributes").items():
            attr = node_attribute(node.get("uname"), name, value)
            objects[("node_attr", attr["id"])] = attr
    for element in config.findall("crm_config/cluster_property_set"):
        objects[("property", element.get("id"))] = {
            "tag": "property", "id": element.get("id"), "values": _nvpairs(element, ".")}
    for element in config.findall("alerts/alert"):
        recipient = element.find("recipient")
        objects[("alert", element.get("id"))] = {
            "tag": "alert", "id": element.get("id"), "path": element.get("path"),
            "select": sorted(child.tag[len("select_"):] for child in element.findall("select/*")),
            "attributes": _nvpairs(element, "instance_attributes"),
            "recipient": recipient.get("value") if recipient is not None else None}
    return {"version": version, "objects": objects, "root": root}


def find_object(parsed, object_id):
    """The normalized object with this id, whatever its kind (None when absent)."""
    for (_tag, oid), obj in parsed["objects"].items():
        if oid == object_id:
            return obj
    return None


# ---------------------------------------------------------------- comparing

def effective_meta(desired, current):
    """The meta attributes to write: declared ones, plus run-time ones the state does not manage."""
    meta = dict(desired.get("meta") or {})
    for name in RUNTIME_META:
        if name not in meta and name in (current or {}).get("meta", {}):
            meta[name] = current["meta"][name]
    return meta


def _is_secret(desired, name):
    return name in desired.get("secret_params", ())


def _cib_value(desired, name):
    """The value the CIB should hold for a parameter (lrm:// for a secret kept in a file)."""
    if _is_secret(desired, name) and desired.get("secret_mode") == "lrm":
        return LRM_VALUE
    return desired["params"][name]


def _param_changes(desired, current, secret_signs):
    changes = {}
    current_params = current["params"] if current else {}
    for name in sorted(set(desired["params"]) | set(current_params)):
        old = current_params.get(name)
        secret = _is_secret(desired, name)
        # shown masked whatever the mode: declared secret, or named like one (a password that
        # is no longer declared secret, or removed in plain mode, is still a password)
        shown_secret = secret or is_secret_name(name)
        if name not in desired["params"]:
            changes[f"params.{name}"] = {"old": MASK if shown_secret or old == LRM_VALUE else old, "new": None}
            continue
        new = _cib_value(desired, name)
        if secret and desired.get("secret_mode") == "lrm":
            sign = (secret_signs or {}).get((desired["id"], name))
            if old != LRM_VALUE:
                changes[f"params.{name}"] = {"old": None if old is None else MASK,
                                             "new": f"{MASK} (stored in {LRM_VALUE})"}
            elif sign != md5_hex(desired["params"][name]):
                # Only the secret file changes: the CIB already says lrm://.
                changes[f"secret.{name}"] = {"old": None if sign is None else MASK, "new": MASK}
        elif old != new:
            changes[f"params.{name}"] = {"old": MASK if shown_secret and old is not None else old,
                                         "new": MASK if shown_secret else new}
    return changes


def _dict_changes(prefix, desired, current):
    changes = {}
    for name in sorted(set(desired) | set(current)):
        if desired.get(name) != current.get(name):
            changes[f"{prefix}.{name}"] = {"old": current.get(name), "new": desired.get(name)}
    return changes


def _shown_time(name, value):
    return _seconds_text(value) if name in TIME_ATTRS and value is not None else value


def _op_changes(desired, current):
    changes = {}
    current_ops = current["ops"] if current else {}
    for key in sorted(set(desired["ops"]) | set(current_ops)):
        want, have = desired["ops"].get(key), current_ops.get(key)
        label = f"ops.{key.split(':')[0]}"
        if want and have:
            for name in sorted(set(want) | set(have)):
                if want.get(name) != have.get(name):
                    changes[f"{label}.{name}"] = {"old": _shown_time(name, have.get(name)),
                                                  "new": _shown_time(name, want.get(name))}
        elif want or have:
            def shown(op):
                return None if op is None else {k: _shown_time(k, v) for k, v in op.items() if k != "name"}

            label = f"{label}[{_seconds_text((want or have)['interval'])}]"
            changes[label] = {"old": shown(have), "new": shown(want)}
    return changes


def diff_object(desired, current, secret_signs=None):
    """{"path": {"old", "new"}} for one object; {} when the CIB already matches. Secrets masked."""
    tag = desired["tag"]
    if tag == "primitive":
        changes = {}
        if current is None or agent_name(current) != agent_name(desired):
            changes["agent"] = {"old": agent_name(current) if current else None, "new": agent_name(desired)}
        changes.update(_param_changes(desired, current, secret_signs))
        changes.update(_op_changes(desired, current))
        changes.update(_dict_changes("meta", effective_meta(desired, current),
                                     current["meta"] if current else {}))
        return changes
    if tag == "property":
        have = current["values"] if current else {}
        return {f"property.{name}": {"old": have.get(name), "new": value}
                for name, value in desired["values"].items() if have.get(name) != value}
    if tag == "group":
        changes = {}
        have = current or {"resources": [], "meta": {}}
        if desired["resources"] != have["resources"]:
            changes["resources"] = {"old": have["resources"] or None, "new": desired["resources"]}
        changes.update(_dict_changes("meta", effective_meta(desired, current), have["meta"]))
        return changes
    if tag == "clone":
        changes = {}
        have = current or {"resource": None, "meta": {}}
        if desired["resource"] != have["resource"]:
            changes["resource"] = {"old": have["resource"], "new": desired["resource"]}
        changes.update(_dict_changes("meta", effective_meta(desired, current), have["meta"]))
        return changes
    if tag == "location":
        return _location_changes(desired, current)
    if tag == "node_attr":
        old = current["value"] if current else None
        return {} if old == desired["value"] else {"value": {"old": old, "new": desired["value"]}}
    have = current or {}
    return {key: {"old": have.get(key), "new": value}
            for key, value in desired.items() if key not in ("tag", "id") and have.get(key) != value}


LOCATION_FIELDS = ("rsc", "discovery", "node", "score", "rules")


def rule_text(rule):
    """A rule as one line, crm-like: '-INFINITY: not_defined a or a ne v'."""
    parts = []
    for expr in rule["expressions"]:
        if expr["operation"] in ("defined", "not_defined"):
            parts.append(f"{expr['operation']} {expr['attribute']}")
        else:
            typed = f"{expr['type']}:" if expr.get("type") else ""
            parts.append(f"{expr['attribute']} {expr['operation']} {typed}{expr['value']}")
    return f"{rule['score']}: " + f" {rule['boolean_op']} ".join(parts)


def _location_changes(desired, current):
    changes = {}
    have = current or {}
    labels = {"rsc": "resource", "discovery": "resource-discovery"}
    for field in LOCATION_FIELDS:
        want, got = desired.get(field), have.get(field)
        if field == "rules":
            want = [rule_text(r) for r in want or []] or None
            got = [rule_text(r) for r in got or []] or None
        if want != got:
            changes[labels.get(field, field)] = {"old": got, "new": want}
    return changes


def plan(desired_objects, parsed, secret_signs=None):
    """Per object: {"id", "tag", "action": create|update, "changes"}; unchanged objects left out."""
    steps = []
    for desired in desired_objects:
        current = parsed["objects"].get((desired["tag"], desired["id"]))
        changes = diff_object(desired, current, secret_signs)
        if changes:
            steps.append({"id": desired["id"], "tag": desired["tag"],
                          "action": "update" if current else "create", "changes": changes,
                          "cib": any(not path.startswith("secret.") for path in changes)})
    for tag, object_id, why in implicit_removals(desired_objects, parsed):
        step = {"id": object_id, "tag": tag, "action": "delete", "cib": True,
                "changes": {"removed": {"old": why, "new": None}}}
        if tag == "clone":
            step["unwraps"] = parsed["objects"][("clone", object_id)]["resource"]
        steps.append(step)
    return steps


def expected_verify_errors(steps, errors, warnings):
    """(errors, warnings) with what a planned unwrap causes on purpose moved to the warnings:
    the instances of a clone that becomes one primitive again are, for a moment, "active on N
    nodes" (Pacemaker then stops all but one; with multiple-active=stop_unexpected it keeps the
    one it places and stops only the others). A clone removed with its primitive (``crm.purge``)
    is the same message for orphans, which Pacemaker stops everywhere."""
    unwrapped = [step["unwraps"] for step in steps if step.get("unwraps")]
    if not unwrapped:
        return errors, warnings
    pattern = re.compile(r"resource (%s) might be active on \d+ nodes" % "|".join(map(re.escape, unwrapped)))
    expected = [e for e in errors if pattern.search(e)]
    return ([e for e in errors if e not in expected],
            warnings + [f"{e} (expected: its clone is unwrapped or removed in this change)" for e in expected])


def clone_of(parsed, resource_id):
    """Id of the clone that holds ``resource_id`` in the parsed CIB (None when it is not cloned)."""
    for (tag, oid), obj in parsed["objects"].items():
        if tag == "clone" and obj["resource"] == resource_id:
            return oid
    return None


def _names(obj):
    """The resource ids a constraint names."""
    if obj["tag"] == "colocation":
        return list(obj["resources"])
    if obj["tag"] == "order":
        return [obj["first"], obj["then"]]
    if obj["tag"] == "location":
        return [obj["rsc"]]
    return []


def implicit_removals(desired_objects, parsed):
    """
    [(tag, id, why)] the desired objects remove from the CIB without naming them, so that a
    switch between a plain primitive and a clone of it is ONE transaction:

    - a clone that holds a declared primitive (or group) when no declared clone adopts it:
      the primitive is declared on its own, so it leaves the clone, and the clone goes, with
      the constraints naming it;
    - a constraint (not declared) naming a primitive that a declared clone adopts, or a
      clone that another declared clone replaces: Pacemaker would read it as a constraint on
      the clone (an order from the VIP to the clone and one from the clone to the VIP is a loop).
    """
    declared = {(obj["tag"], obj["id"]) for obj in desired_objects}
    adopted = {obj["resource"]: obj["id"] for obj in desired_objects if obj["tag"] == "clone"}
    removals = []
    gone = set()
    for obj in desired_objects:
        if obj["tag"] not in ("primitive", "group"):
            continue
        holder = clone_of(parsed, obj["id"])
        if holder and adopted.get(obj["id"]) != holder and ("clone", holder) not in declared:
            removals.append(("clone", holder, f"{obj['id']} taken out of clone {holder}"))
            gone.add(holder)
    for resource, clone_id in adopted.items():
        holder = clone_of(parsed, resource)
        if holder and holder != clone_id and ("clone", holder) not in declared and holder not in gone:
            removals.append(("clone", holder, f"{resource} moves from clone {holder} to {clone_id}"))
            gone.add(holder)
    stale = set(adopted) | gone
    for (tag, oid), obj in sorted(parsed["objects"].items()):
        if tag not in ("colocation", "order", "location") or (tag, oid) in declared:
            continue
        named = [name for name in _names(obj) if name in stale]
        if named:
            if named[0] in gone:
                why = f"names clone {named[0]}, which is removed"
            else:
                why = f"names {named[0]}, now inside clone {adopted[named[0]]}"
            removals.append((tag, oid, why))
    return removals


# ---------------------------------------------------------------- rendering

def _attr_set(parent, tag, owner_id, values):
    if not values:
        return
    attr_set = ET.SubElement(parent, tag, id=f"{owner_id}-{tag}")
    for name, value in values.items():
        ET.SubElement(attr_set, "nvpair", id=f"{owner_id}-{tag}-{name}", name=name, value=value)


def _interval_label(interval):
    ms = duration_ms(interval)
    if ms is None:
        return re.sub(r"[^A-Za-z0-9]", "", interval)
    return f"{ms // 1000}s" if ms % 1000 == 0 else f"{ms}ms"


def _seconds_text(value):
    """Normalized '30000ms' back to what crm writes ('30s') when it is whole seconds."""
    ms = duration_ms(value)
    if ms is None:
        return value
    return f"{ms // 1000}s" if ms % 1000 == 0 else f"{ms}ms"


def render_primitive(desired, current=None):
    attrs = {"id": desired["id"], "class": desired["class"], "type": desired["type"]}
    if desired.get("provider"):
        attrs["provider"] = desired["provider"]
    element = ET.Element("primitive", attrs)
    _attr_set(element, "instance_attributes", desired["id"],
              {name: _cib_value(desired, name) for name in desired["params"]})
    _attr_set(element, "meta_attributes", desired["id"], effective_meta(desired, current))
    if desired["ops"]:
        operations = ET.SubElement(element, "operations")
        for op in desired["ops"].values():
            op_attrs = {"id": f"{desired['id']}-{op['name']}-{_interval_label(op['interval'])}",
                        "name": op["name"]}
            for name, value in op.items():
                if name != "name":
                    op_attrs[name] = _seconds_text(value) if name in TIME_ATTRS else value
            ET.SubElement(operations, "op", op_attrs)
    return element


def _render_constraint(desired):
    if desired["tag"] == "colocation":
        return ET.Element("rsc_colocation", {"id": desired["id"], "score": desired["score"],
                                             "rsc": desired["resources"][0],
                                             "with-rsc": desired["resources"][1]})
    return ET.Element("rsc_order", {"id": desired["id"], "kind": desired["kind"], "first": desired["first"],
                                    "then": desired["then"], "symmetrical": desired["symmetrical"]})


def render_location(desired):
    attrs = {"id": desired["id"], "rsc": desired["rsc"]}
    if desired.get("node"):
        attrs.update(node=desired["node"], score=desired["score"])
    if desired["discovery"] != "always":
        attrs["resource-discovery"] = desired["discovery"]
    element = ET.Element("rsc_location", attrs)
    for index, rule in enumerate(desired.get("rules") or []):
        rule_id = f"{desired['id']}-rule" + (f"-{index}" if index else "")
        rule_element = ET.SubElement(element, "rule", {"id": rule_id, "score": rule["score"],
                                                       "boolean-op": rule["boolean_op"]})
        for number, expr in enumerate(rule["expressions"]):
            expr_attrs = {"id": f"{rule_id}-expr-{number}", "attribute": expr["attribute"],
                          "operation": expr["operation"]}
            if expr.get("value") is not None:
                expr_attrs["value"] = expr["value"]
            if expr.get("type"):
                expr_attrs["type"] = expr["type"]
            ET.SubElement(rule_element, "expression", expr_attrs)
    return element


def _apply_node_attr(root, desired):
    nodes = root.find("configuration/nodes")
    node = None if nodes is None else next(
        (n for n in nodes.findall("node") if n.get("uname") == desired["node"]), None)
    if node is None:
        raise ModelError(f"node {desired['node']} is not in the CIB's nodes section: it cannot carry "
                         f"attribute {desired['name']} (is it a member of this cluster?)")
    attr_set = node.find("instance_attributes")
    if attr_set is None:
        attr_set = ET.SubElement(node, "instance_attributes", id=f"nodes-{node.get('id')}")
    nvpair = next((n for n in attr_set.findall("nvpair") if n.get("name") == desired["name"]), None)
    if nvpair is None:
        ET.SubElement(attr_set, "nvpair", id=f"{attr_set.get('id')}-{desired['name']}", name=desired["name"],
                      value=desired["value"])
    else:
        nvpair.set("value", desired["value"])


def render_alert(desired):
    element = ET.Element("alert", {"id": desired["id"], "path": desired["path"]})
    if desired["select"]:
        select = ET.SubElement(element, "select")
        for kind in desired["select"]:
            ET.SubElement(select, f"select_{kind}")
    _attr_set(element, "instance_attributes", desired["id"], desired["attributes"])
    if desired["recipient"] is not None:
        ET.SubElement(element, "recipient", id=f"{desired['id']}-recipient", value=desired["recipient"])
    return element


def _parents(root):
    return {child: parent for parent in root.iter() for child in parent}


def _find(root, tag, object_id):
    for element in root.iter(tag):
        if element.get("id") == object_id:
            return element
    return None


def _section(root, name):
    config = root.find("configuration")
    section = config.find(name)
    if section is None:
        section = ET.SubElement(config, name)
    return section


def _replace(root, old, new, section):
    if old is None:
        section.append(new)
        return
    parent = _parents(root)[old]
    index = list(parent).index(old)
    parent.remove(old)
    parent.insert(index, new)


def apply_objects(root, desired_objects, parsed):
    """A copy of the CIB element ``root`` with the desired objects written in (epoch + 1)."""
    root = copy.deepcopy(root)
    for desired in desired_objects:
        current = parsed["objects"].get((desired["tag"], desired["id"]))
        tag = desired["tag"]
        if tag == "primitive":
            _replace(root, _find(root, "primitive", desired["id"]), render_primitive(desired, current),
                     _section(root, "resources"))
        elif tag in ("colocation", "order"):
            xml_tag = "rsc_colocation" if tag == "colocation" else "rsc_order"
            _replace(root, _find(root, xml_tag, desired["id"]), _render_constraint(desired),
                     _section(root, "constraints"))
        elif tag == "property":
            _apply_property(root, desired)
        elif tag == "alert":
            _replace(root, _find(root, "alert", desired["id"]), render_alert(desired), _section(root, "alerts"))
        elif tag == "location":
            _replace(root, _find(root, "rsc_location", desired["id"]), render_location(desired),
                     _section(root, "constraints"))
        elif tag == "node_attr":
            _apply_node_attr(root, desired)
    for desired in desired_objects:  # groups last: they adopt primitives written above
        if desired["tag"] == "group":
            _apply_group(root, desired, parsed["objects"].get(("group", desired["id"])))
    removals = implicit_removals(desired_objects, parsed)
    for tag, object_id, _why in removals:
        if tag == "clone":
            _unwrap_clone(root, object_id)
    for desired in desired_objects:  # clones after groups: they may hold one
        if desired["tag"] == "clone":
            _apply_clone(root, desired, parsed["objects"].get(("clone", desired["id"])))
    doomed = {object_id for tag, object_id, _why in removals if tag != "clone"}
    constraints = root.find("configuration/constraints")
    for element in list(constraints if constraints is not None else []):
        if element.get("id") in doomed:
            constraints.remove(element)
    root.set("epoch", str(int(root.get("epoch", "0")) + 1))
    root.set("num_updates", "0")
    return root


def _apply_property(root, desired):
    crm_config = _section(root, "crm_config")
    prop_set = _find(crm_config, "cluster_property_set", desired["id"])
    if prop_set is None:
        prop_set = ET.SubElement(crm_config, "cluster_property_set", id=desired["id"])
    for name, value in desired["values"].items():
        nvpair = next((n for n in prop_set.findall("nvpair") if n.get("name") == name), None)
        if nvpair is None:
            ET.SubElement(prop_set, "nvpair", id=f"{desired['id']}-{name}", name=name, value=value)
        else:
            nvpair.set("value", value)


def _apply_group(root, desired, current):
    resources = _section(root, "resources")
    old = _find(root, "group", desired["id"])
    group = ET.Element("group", id=desired["id"])
    _attr_set(group, "meta_attributes", desired["id"], effective_meta(desired, current))
    parents = _parents(root)
    for member in desired["resources"]:
        element = _find(root, "primitive", member)
        if element is None:
            raise ModelError(f"group {desired['id']}: member {member} is not a primitive in the CIB "
                             "or in this state")
        parents[element].remove(element)
        group.append(element)
    if old is not None:
        for leftover in [c for c in old if c.tag == "primitive"]:
            resources.append(leftover)  # members dropped from the group stay as plain primitives
    _replace(root, old, group, resources)


def _unwrap_clone(root, clone_id):
    """Replace clone ``clone_id`` by the resource it holds (same place in the resources section)."""
    element = _find(root, "clone", clone_id)
    if element is None:
        return
    parent = _parents(root)[element]
    index = list(parent).index(element)
    parent.remove(element)
    for child in [c for c in element if c.tag in ("primitive", "group")]:
        parent.insert(index, child)
        index += 1


def _apply_clone(root, desired, current):
    resources = _section(root, "resources")
    old = _find(root, "clone", desired["id"])
    clone = ET.Element("clone", id=desired["id"])
    _attr_set(clone, "meta_attributes", desired["id"], effective_meta(desired, current))
    child = next((e for tag in ("primitive", "group") for e in [_find(root, tag, desired["resource"])]
                  if e is not None), None)
    if child is None:
        raise ModelError(f"clone {desired['id']}: resource {desired['resource']} is not a primitive or group "
                         "in the CIB or in this state")
    parents = _parents(root)
    holder = parents.get(child)
    if holder is not None and holder.tag == "group":
        raise ModelError(f"clone {desired['id']}: {desired['resource']} is a member of group "
                         f"{holder.get('id')}; clone the group instead")
    if holder is not None and holder.tag == "clone" and holder is not old:
        raise ModelError(f"clone {desired['id']}: {desired['resource']} is held by clone {holder.get('id')}")
    if old is not None:
        for leftover in [c for c in old if c.tag in ("primitive", "group") and c is not child]:
            old.remove(leftover)
            resources.append(leftover)  # a resource the clone no longer holds stays, uncloned
        index = list(parents[old]).index(old)
        old_parent = parents[old]
        if holder is not old:
            parents[child].remove(child)
        else:
            old.remove(child)
        clone.append(child)
        old_parent.remove(old)
        old_parent.insert(index, clone)
        return
    index = list(holder).index(child)
    holder.remove(child)
    clone.append(child)
    holder.insert(index, clone)


def references(parsed, object_id):
    """Ids of constraints that name ``object_id`` (deleted with it, as crm does)."""
    found = []
    for (tag, oid), obj in parsed["objects"].items():
        if tag == "colocation" and object_id in obj["resources"]:
            found.append(oid)
        if tag == "order" and object_id in (obj["first"], obj["then"]):
            found.append(oid)
        if tag == "location" and obj["rsc"] == object_id:
            found.append(oid)
    return found


def deletion_steps(parsed, object_ids):
    """The steps of deleting ``object_ids`` (all present in ``parsed``) with the constraints that
    name them, sorted by id. A deleted clone takes its resource along: its step says which
    (``unwraps``), for ``expected_verify_errors``, as ``plan`` does for an unwrapped clone."""
    gone = set(object_ids)
    for object_id in object_ids:
        gone.update(references(parsed, object_id))
    steps = []
    for object_id in sorted(gone):
        step = {"id": object_id, "tag": find_object(parsed, object_id)["tag"], "action": "delete",
                "changes": {"removed": True}}
        if step["tag"] == "clone":  # its instances, orphans now, are "active on N nodes": all stop
            step["unwraps"] = parsed["objects"][("clone", object_id)]["resource"]
        steps.append(step)
    return steps


def remove_objects(root, object_ids):
    """A copy of ``root`` without the objects (and the constraints naming them), epoch + 1."""
    root = copy.deepcopy(root)
    parsed = parse_cib(ET.tostring(root, encoding="unicode"))
    ids = set(object_ids)
    for object_id in object_ids:
        ids.update(references(parsed, object_id))
    config = root.find("configuration")
    parents = _parents(root)
    for element in list(config.iter()):
        if element.get("id") in ids and element.tag in ("primitive", "group", "rsc_colocation",
                                                        "rsc_order", "rsc_location", "clone"):
            if element in parents and element.tag == "group":
                for child in [c for c in element if c.tag == "primitive" and c.get("id") not in ids]:
                    parents[element].append(child)
            if element in parents:
                parents[element].remove(element)
    root.set("epoch", str(int(root.get("epoch", "0")) + 1))
    root.set("num_updates", "0")
    return root


def to_xml(root):
    return ET.tostring(root, encoding="unicode")


# ---------------------------------------------------------------- tool output

def parse_metadata(text):
    """Agent meta-data XML -> {"parameters": [names], "required": [names]}."""
    root = ET.fromstring(text)
    params = root.findall("parameters/parameter")
    return {"parameters": [p.get("name") for p in params],
            "required": [p.get("name") for p in params if p.get("required") in ("1", "true")]}


SUMMARY_RE = re.compile(r"^\s*\*\s+(\w+)\s+(\S+)\s+\((.*?)\)\s*(.*)$")


def transition_summary(text):
    """crm_simulate output -> ['restart p_x on node1', 'start p_ip on node1 (blocked)', ...]."""
    lines = strip_ansi(text).splitlines()
    actions = []
    inside = False
    for line in lines:
        if line.startswith("Transition Summary:"):
            inside = True
            continue
        if inside and not line.strip():
            if actions:
                break
            continue
        if inside:
            if not line.startswith(" "):
                break
            match = SUMMARY_RE.match(line)
            if not match:
                continue
            verb, rsc, where, why = match.groups()
            where = where.strip().replace("->", "to").replace("  ", " ")
            sentence = f"{verb.lower()} {rsc} on {where}" if "to" not in where.split() else \
                f"{verb.lower()} {rsc} from {where}"
            if why:
                sentence += f" ({why.strip()})"
            actions.append(sentence)
    return actions


VERIFY_PREFIX_RE = re.compile(r"^\([\w ]+\)\s*")


def verify_messages(text, path=None):
    """crm_verify output -> (errors, warnings): ANSI and '(function)' prefixes stripped, unique."""
    errors, warnings = [], []
    for line in strip_ansi(text).splitlines():
        line = VERIFY_PREFIX_RE.sub("", line.strip())
        if path:
            line = line.replace(path, "candidate CIB")
        lowered = line.lower()
        if not line or lowered.startswith(("crm_verify:", "-v may provide")):
            continue
        if lowered.startswith("error:") or "validity error" in lowered:
            target = errors
        elif lowered.startswith("warning:"):
            target = warnings
        else:
            continue
        if line not in target:
            target.append(line)
    return errors, warnings


def _instance_entry(element, clone=False):
    entry = {"agent": None, "role": None, "active": False, "failed": False, "managed": True, "nodes": []}
    if clone:
        entry.update(clone=True, instances=[])
    return entry


def _merge_instance(resources, key, element, clone=False):
    """Add one ``<resource>`` of crm_mon's XML to ``resources[key]``: a clone shows one per
    instance, all with the primitive's id; nodes, active and failed add up."""
    nodes = [n.get("name") for n in element.findall("node")]
    entry = resources.get(key)
    if entry is None:
        entry = resources[key] = _instance_entry(element, clone=clone)
        entry.update(agent=element.get("resource_agent"), role=element.get("role"),
                     managed=element.get("managed") == "true")
    elif entry["role"] != element.get("role") and element.get("active") == "true":
        entry["role"] = "Started" if "Started" in (entry["role"], element.get("role")) else element.get("role")
    if entry["agent"] is None:
        entry["agent"] = element.get("resource_agent")
    entry["active"] = entry["active"] or element.get("active") == "true"
    entry["failed"] = entry["failed"] or element.get("failed") == "true"
    entry["nodes"] = entry["nodes"] + [n for n in nodes if n not in entry["nodes"]]
    if clone:
        entry["instances"].append({"role": element.get("role"), "active": element.get("active") == "true",
                                   "failed": element.get("failed") == "true", "nodes": nodes})


def current_dc(text):
    """The DC's node name from CIB XML (``cibadmin --query``): the ``dc-uuid`` the DC writes
    on the CIB's root, looked up among the configured nodes; None without one (an election).
    crm_mon's ``current_dc`` comes from the same attribute."""
    root = ET.fromstring(text)
    dc_id = root.get("dc-uuid")
    if not dc_id:
        return None
    return next((node.get("uname") for node in root.iterfind("configuration/nodes/node") if node.get("id") == dc_id),
                None)


def crm_mon_status(text):
    """crm_mon --output-as=xml -> {"dc", "nodes": {name: {...}}, "resources": {id: {...}}}."""
    root = ET.fromstring(text)
    summary = root.find("summary")
    dc = summary.find("current_dc") if summary is not None else None
    nodes = {}
    for node in root.findall("nodes/node"):
        nodes[node.get("name")] = {key: node.get(key) for key in ("online", "standby", "maintenance",
                                                                 "is_dc", "resources_running")}
    resources = {}
    for element in root.iter("resource"):
        _merge_instance(resources, element.get("id"), element)
    for clone in root.iter("clone"):
        # one entry per instance, all under the primitive's id (anonymous clone): the clone's own
        # entry sums them up, with where each instance runs
        for element in clone.iter("resource"):
            _merge_instance(resources, clone.get("id"), element, clone=True)
        entry = resources.setdefault(clone.get("id"), _instance_entry(None, clone=True))
        entry["failed"] = entry["failed"] or clone.get("failed") == "true"
        first = clone.find("resource")
        entry["resource"] = first.get("id") if first is not None else None  # the primitive it clones
    failures = [dict(f.attrib) for f in root.findall("failures/failure")]
    return {"dc": dc.get("name") if dc is not None and dc.get("present") == "true" else None,
            "nodes": nodes, "resources": resources, "failures": failures}
