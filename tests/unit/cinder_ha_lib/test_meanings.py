"""Every key of the pillar, checked by what its value means (pillar.MEANINGS, volume.MEANINGS).

The hostile corpus grows by category, not by case: for each key, valid and invalid values are
generated from its declared meaning (one generator per meaning type, below). Every invalid value
is refused with an error naming its key, never echoing a secret; a valid value is never refused.
The inputs that must stay valid whatever changes (the guide's literal names, IPv6 and loopback
VIPs, special-character passwords) are listed at the end."""
import copy
import pathlib
import re
import string

import pytest
import yaml

from cinder_ha_lib import meanings as m
from cinder_ha_lib import pillar, secret_rule, volume

ROOT = pathlib.Path(__file__).resolve().parents[3]
BASE = {
    # .101: its last two bits are 01, so it is neither a network nor a broadcast address under
    # any prefix length: every generated netmask stays valid with it
    "vip": {"address": "127.0.0.101"},
    "database": {"host": "127.0.0.1", "user": "cinder", "password": "pw"},
    "rabbitmq": {"hosts": ["127.0.0.1:5672"], "user": "openstack", "password": "pw"},
    "keystone": {"auth_url": "http://127.0.0.1:5000/v3", "username": "admin", "password": "pw",
                 "project_name": "admin"},
}
BACKEND = "lvm1"  # a backend's name where a path says "*"
VOLUME = {"backends": {BACKEND: {"driver": "cinder.volume.drivers.lvm.LVMVolumeDriver"}}}
ACTIVE_ACTIVE = dict(VOLUME, mode="active_active", cluster="cinder-ha-cluster",
                     coordination={"backend_url": "etcd3+http://127.0.0.1:2379"})
CLONED = {"cluster": {"mode": "cloned"}}


def context(path, value):
    """What else the pillar needs for ``path`` to apply (or for a valid value to stay valid)."""
    key = ":".join(path)
    if path[0] == "cluster" and path[1] in pillar.CLONED_ONLY:
        return CLONED
    if key == "cluster:mode" and value == "balanced":  # each node's own address
        return {"cluster": {"nodes": {"n1": "192.168.42.11", "n2": "192.168.42.12"}}}
    if key == "public_vip:address":  # both VIPs of one IP version
        return {"vip": {"address": value}} if isinstance(value, str) and ":" in value else {}
    if key in ("public_vip:netmask", "public_vip:nic"):  # they mean something only with an address
        return {"public_vip": BASE["vip"]}
    if key == "agent:source":  # a URL source needs its hash
        return {"agent": {"source_hash": "sha256=" + "0" * 64}}
    if key == "agent:os_password":  # what Pacemaker's lrm secrets can hold: test_pillar's
        return {"agent": {"secret_mode": "plain"}}
    if key == "volume:mode" and value == "active_active":
        return {"volume": ACTIVE_ACTIVE}
    if key in ("volume:cluster", "volume:coordination:backend_url"):
        return {"volume": ACTIVE_ACTIVE}
    if key == "volume:report_interval":  # service_down_time stays at least twice it
        return {"volume": dict(VOLUME, service_down_time=86400)}
    if key == "volume:service_down_time":
        return {"volume": dict(VOLUME, report_interval=1)}
    if path[0] == "volume":
        return {"volume": VOLUME}
    return {}


def merged(base, extra):
    out = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merged(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def pillar_with(path, value):
    raw = merged(BASE, context(path, value))
    if path == ("volume", "backends", "*"):  # the meaning of a backend's name: the key itself
        raw["volume"]["backends"] = {value: VOLUME["backends"][BACKEND]}
        return raw
    node = raw
    for part in path[:-1]:
        part = BACKEND if part == "*" else part
        node = node.setdefault(part, {})
    node[path[-1]] = value
    return raw


def where(path, value):
    if path == ("volume", "backends", "*"):
        return f"volume:backends:{value}"
    return ":".join(BACKEND if p == "*" else p for p in path)


# ---------------------------------------------------------------- generators, one per meaning type

WRONG_KIND = {m.TEXT: [5, True, ["a"], {"a": 1}], m.SCALAR: [True, ["a"], {"a": 1}],
              m.LIST: [5, True, [{"a": 1}], {"a": 1}], m.BOOL: ["yes", "true", 1, 0],
              m.NUMBER: ["ten", True, [1]], m.MAPPING: ["x", [1], 5, True], m.ANY: []}
# every printable character, and a few that are not ASCII
CHARACTERS = string.ascii_letters + string.digits + string.punctuation + " é€\u200b"


def _in(char_class, char):
    return re.fullmatch(f"[{char_class}]", char) is not None


def word(mn):
    first = [c for c in CHARACTERS if _in(mn.first, c)]
    rest = [c for c in CHARACTERS if _in(mn.rest, c)]
    valid = [first[0], first[-1] + "".join(rest)[:mn.max_len - 1], first[0] * mn.max_len]
    invalid = ["", first[0] * (mn.max_len + 1)]
    invalid += [c + "a" for c in CHARACTERS if not _in(mn.first, c)]
    invalid += [f"{first[0]}{c}b" for c in CHARACTERS if not _in(mn.rest, c)]
    invalid += [r.upper() for r in mn.reserved]
    return [v for v in valid if v.lower() not in mn.reserved], invalid


def text(mn):
    valid = ["a", "Default", "with space", "Région Un", "p@ss:w/rd%#?", "x" * (mn.max_len or 300)]
    valid = [v for v in valid if not set(v) & set(mn.forbid)] + ([""] if mn.min_len == 0 else [])
    invalid = ["a\nb", "a\tb", "a\x00b"] + [f"a{c}b" for c in mn.forbid]
    invalid += [""] * (mn.min_len > 0) + (["x" * (mn.max_len + 1)] if mn.max_len else [])
    invalid += [" ", " a", "a "] * mn.exact
    return valid, invalid


def enum(mn):
    invalid = ["", "x"] + [c + "x" for c in mn.choices] + [" " + c for c in mn.choices]
    invalid += [c.upper() for c in mn.choices if c.upper() != c]
    return list(mn.choices), invalid


def integer(mn):
    return [mn.lo, mn.hi, (mn.lo + mn.hi) // 2, str(mn.hi)], [mn.lo - 1, mn.hi + 1, "x", 1.5, "1e3", "", "0x10"]


def seconds(mn):
    return [mn.hi, mn.lo + 0.5, str(mn.hi), 1], [mn.lo, mn.lo - 1, mn.hi + 1, "nan", "inf", "-inf", "ten"]


def duration(mn):
    lowest = int(mn.minimum_s)
    valid = [f"{lowest}s", lowest, str(lowest), f"{lowest * 1000}ms", "1min", "2m", "1h", "24h", "576h"]
    invalid = ["0", 0, "0s", "0ms", f"{lowest * 1000 - 1}ms", "-1s", "1d", "10 sec", "s", "", "1.5s", "10S",
               f"{m.DURATION_MAX_S + 1}s", "577h", "PT10S"]
    return valid, invalid


def score(_mn):
    return ([0, 100, -100, "INFINITY", "+INFINITY", "-INFINITY", "infinity", m.SCORE_MAX, f"-{m.SCORE_MAX}"],
            ["garbage", "", "INF", "1.5", 1.5, m.SCORE_MAX + 1, f"-{m.SCORE_MAX + 1}", "100s", "++1", "IN FINITY"])


def host_address(_mn):
    return (["127.0.0.103", "127.0.0.1", "::1", "198.18.0.100", "192.168.42.103", "2001:db8::10", "fd00::103",
             "10.0.0.1"],
            ["0.0.0.0", "::", "224.0.0.1", "239.255.255.250", "ff02::1", "ff05::2", "255.255.255.255", "240.0.0.1",
             "169.254.1.1", "fe80::1", "fe80::1%eth0", "::ffff:10.0.0.1", "0.1.2.3", "10.0.0.300", "host.example",
             "", "10.0.0.1/24", "10.0.0.1 10.0.0.2"])


def prefix_length(_mn):  # the IPv4 ones (IPv6 prefixes: test_ipv6_vips_stay_valid)
    return ([1, 24, 32, "24", "255.255.255.0", "255.0.0.0", "255.255.255.255", "128.0.0.0"],
            [0, "0", 129, -1, "0.0.0.0", "0.0.0.255", "255.0.255.0", "255.255.255.1", "x", 1.5, "/24", "", 33])


def host(_mn):
    return (["127.0.0.1", "db.example.com", "controller-1", "::1", "[::1]", "host_1", "a" * 63],
            ["", "0.0.0.0", "224.0.0.1", "a b", "-host", "host-", "a..b", "a" * 64, "h/x", "10.0.0.300", "[host]",
             "::"])


def broker(_mn):
    return (["127.0.0.1", "127.0.0.1:5672", "[::1]:5672", "[::1]", "rabbit.example:5671", "h"],
            ["h:0", "h:65536", "h:x", "::1", "u@h", "h/v", "0.0.0.0:5672", "", "h:5672:1", "h:"])


def url(mn):
    valid, invalid = [], ["", "nothing", "://h/x", f"zz{mn.schemes[0]}://h/x"]
    for scheme in mn.schemes:
        if scheme in mn.hostless:
            valid.append(f"{scheme}:////var/lib/x" if scheme == "sqlite" else f"{scheme}://")
        else:
            valid += [f"{scheme}://u:p%40ss@host.example:1234/x", f"{scheme}://127.0.0.1/x", f"{scheme}://[::1]:80/"]
            invalid += [f"{scheme}:///x", f"{scheme}://h:99999/", f"{scheme}://h/ x", f"{scheme}://h/x\ty"]
    invalid += [f"{scheme}://h/" for scheme in mn.refused]
    if isinstance(mn, m.KeystoneUrl):
        invalid += ["http://h:5000/v2.0", "https://h/identity/v2.0/"]
    return valid, invalid


def absolute_path(_mn):
    return (["/", "/etc/cinder/cinder.conf", "/a b/c", "/x.d/..x", "/" + "a" * 4000],
            ["", "etc/x", "./x", "/etc/../x", "/..", "~/x", "/a/..", "/" + "a" * 4095])


def formula_path(_mn):
    return (["files/ocf/cinder-api", "salt://x/y", "a"], ["", "/abs", "../x", "a/../b", "salt://../x", "a b", "salt://"])


def source(_mn):
    return (["salt://cinder_ha/files/x", "https://mirror.example/x", "ftp://h/x", "/srv/x"],
            ["x", "file:///x", "http:///x", "/a/../b", "s3://b/x", "https://h/a b"])


def source_hash(_mn):
    return (["sha256=" + "a" * 64, "md5=" + "0" * 32, "sha512=" + "F" * 128, "a" * 40, "https://h/x.sha256"],
            ["sha256=abc", "sha256=" + "g" * 64, "md5=" + "0" * 64, "x", "", "sha3=" + "0" * 64])


def dotted_name(_mn):
    return (["a.B", "cinder.volume.drivers.rbd.RBDDriver", "_x.y_1"],
            ["RBDDriver", "a..b", "1a.b", "a.b-c", ".a.b", "a.b.", "a b.c", ""])


def boolean(_mn):
    return [True, False], []


def conf_value(_mn):
    return ["x", 1, True, ["a", 1], ""], [{"a": 1}, [["a"]], [{"a": 1}]]


def backend_option(_mn):
    return (["x", 1, ["a", "b"], {"pillar": "secrets:array"}],
            [{"pillar": ""}, {"x": 1}, {"pillar": "a", "x": 1}, [["a"]], [None], None])


def list_of(mn):
    items_valid, items_invalid = samples(mn.item)
    strings = [v for v in items_valid if isinstance(v, str) and not re.search(r"[,\s]", v)]
    valid = [[v] for v in items_valid[:4]] + [strings[:2]] + [",".join(strings[:2])]
    invalid = [[], "", [v for v in items_invalid if isinstance(v, str) and v][:1]]
    invalid += [[strings[0], bad] for bad in items_invalid if isinstance(bad, str) and bad and not bad.isspace()]
    if mn.unique:
        invalid.append([strings[0], strings[0]])
    return valid, invalid


def mapping_of(mn):
    keys_valid, keys_invalid = samples(mn.key)
    values_valid, values_invalid = samples(mn.value)
    valid = [{k: v} for k in keys_valid[:3] for v in values_valid[:3]]
    invalid = [{k: values_valid[0]} for k in keys_invalid if isinstance(k, str)]
    invalid += [{keys_valid[0]: v} for v in values_invalid]
    invalid += [{}] * mn.nonempty
    return valid, invalid


def node_address(_mn):
    valid, invalid = host_address(_mn)
    return ([v for v in valid if not v.startswith("127.") and v != "::1"],
            invalid + ["127.0.0.1", "127.0.0.103", "::1"])


def nodes(mn):
    """A list of names (ListOf's samples), or a mapping of names to node addresses (MappingOf's)."""
    names_valid, names_invalid = list_of(mn.names)
    map_valid, map_invalid = mapping_of(mn.addresses)
    return names_valid + map_valid, names_invalid + map_invalid + [True, 5]


GENERATORS = {m.Word: word, m.Text: text, m.Enum: enum, m.Integer: integer, m.Seconds: seconds,
              m.Duration: duration, m.Score: score, m.HostAddress: host_address, m.PrefixLength: prefix_length,
              m.Host: host, m.Broker: broker, m.Url: url, m.KeystoneUrl: url, m.AbsolutePath: absolute_path,
              m.FormulaPath: formula_path, m.Source: source, m.SourceHash: source_hash, m.DottedName: dotted_name,
              m.Boolean: boolean, m.ConfValue: conf_value, volume.BackendOption: backend_option,
              m.ListOf: list_of, m.MappingOf: mapping_of, m.NodeAddress: node_address, m.Nodes: nodes}


def samples(mn):
    """(valid, invalid) values of meaning ``mn``: its type's generator, plus values of the wrong shape."""
    valid, invalid = GENERATORS[type(mn)](mn)
    return valid, invalid + WRONG_KIND[mn.kind]


def cases(which):
    for path, mn in pillar.MEANINGS.items():
        values = samples(mn)[which]
        if path[-1] == "*":  # a mapping's key: YAML reads it as a string
            values = GENERATORS[type(mn)](mn)[which]
        for value in values:
            yield pytest.param(path, value, id=f"{':'.join(path)}={value!r}"[:100])


def errors_of(path, value):
    settings, errors, _ = pillar.normalize(pillar_with(path, value))
    return settings, errors


@pytest.mark.parametrize("path,value", list(cases(1)))
def test_every_invalid_value_is_refused_naming_its_key(path, value):
    settings, errors = errors_of(path, value)
    key = where(path, value)
    assert settings is None, f"{key}={value!r} passed"
    assert any(e.startswith(key) for e in errors), errors
    if secret_rule.is_secret_name(path[-1]) and isinstance(value, str) and len(value) > 2:
        assert not any(value in e for e in errors), errors


@pytest.mark.parametrize("path,value", list(cases(0)))
def test_a_valid_value_is_never_refused(path, value):
    settings, errors = errors_of(path, value)
    assert errors == [] and settings is not None, f"{where(path, value)}={value!r}: {errors}"


def test_every_meaning_has_a_generator_and_every_key_a_meaning():
    def types(mn):
        yield type(mn)
        for inner in (getattr(mn, "item", None), getattr(mn, "key", None), getattr(mn, "value", None)):
            if isinstance(inner, m.Meaning):
                yield from types(inner)

    used = {t for mn in pillar.MEANINGS.values() for t in types(mn)}
    assert used <= set(GENERATORS), used - set(GENERATORS)
    declared = {path[:2] for path in pillar.MEANINGS if path[0] not in pillar.VOLUME_SECTIONS}
    schema = {(k,) if sub is None else (k, s) for k, sub in pillar.SCHEMA.items() for s in (sub or [None])}
    assert schema - {("volume",), ("scheduler",)} == declared


def test_the_generated_corpus_is_large():
    assert len(list(cases(1))) > 1000 and len(list(cases(0))) > 300


def test_netmask_is_read_against_the_address():
    for address, netmask, problem in (("10.0.0.0", 24, "network address of 10.0.0.0/24"),
                                      ("10.0.0.255", "255.255.255.0", "broadcast address of 10.0.0.0/24"),
                                      ("10.0.0.1", 33, "longer than an IPv4 address"),
                                      ("2001:db8::1", 129, "vip:netmask: a prefix length")):
        errors = pillar.normalize(merged(BASE, {"vip": {"address": address, "netmask": netmask}}))[1]
        assert any(e.startswith("vip:") and problem in e for e in errors), (address, netmask, errors)


def test_the_same_garbage_is_refused_wherever_a_score_goes():
    for path in (("cluster", "stickiness"), ("cluster", "vip_stickiness")):
        assert pillar.MEANINGS[path] is pillar.SCORE
        assert any(e.startswith(":".join(path) + ": a score") for e in errors_of(path, "garbage")[1])


def test_the_notification_drivers_are_oslo_messagings():
    """Frozen from cinder's venv (entry points oslo.messaging.notify.drivers); re-read when it is here."""
    venv = pathlib.Path("/srv/cinder-ha/venv/cinder")
    if venv.exists():
        import subprocess
        names = subprocess.run([str(venv / "bin" / "python"), "-c", "from importlib.metadata import entry_points; "
                                "print(' '.join(sorted(e.name for e in entry_points(group='oslo.messaging.notify.drivers'))))"],
                               capture_output=True, text=True, check=True).stdout.split()
        assert tuple(names) == pillar.NOTIFICATION_DRIVERS
    assert pillar.MEANINGS[("notifications", "driver")].choices == pillar.NOTIFICATION_DRIVERS


def test_the_readme_lists_every_meaning():
    assert pillar.docs_table() in (ROOT / "README.md").read_text()


# ---------------------------------------------------------------- what must stay valid

GUIDE_2014 = {
    "vip": {"address": "192.168.42.103", "netmask": 24, "nic": "eth0"},
    "sql_connection": "mysql://cinder:CINDER_DBPASS@10.0.0.10/cinder",
    "rabbit_host": "10.0.0.11", "rabbit_port": 5672, "rabbit_userid": "guest", "rabbit_password": "RABBIT_PASS",
    "notifier_strategy": "rabbit",
    "keystone": {"auth_url": "http://192.168.42.103:5000/v3", "username": "admin", "password": "ADMIN_PASS",
                 "project_name": "admin"},
    # the guide's p_cinder-api primitive
    "agent": {"config": "/etc/cinder/cinder.conf", "os_password": "secretsecret", "os_username": "admin",
              "os_tenant_name": "admin", "keystone_get_token_url": "http://192.168.42.103:5000/v2.0/tokens",
              "monitor_interval": "30s", "monitor_timeout": "30s", "secret_mode": "plain"},
    "cluster": {"primitive_id": "p_cinder-api", "vip_id": "p_ip_cinder-api"},
}


def test_the_guides_literal_inputs_stay_valid():
    settings, errors, warnings = pillar.normalize(GUIDE_2014)
    assert errors == [], errors
    assert settings["database_connection"] == "mysql+pymysql://cinder:CINDER_DBPASS@10.0.0.10/cinder"
    assert settings["transport_url"] == "rabbit://guest:RABBIT_PASS@10.0.0.11:5672/"
    assert len(warnings) >= 4


def test_pillar_example_with_its_commented_keys_stays_valid():
    """pillar.example as shipped, and with its commented-out keys of the API's sections given."""
    text = (ROOT / "pillar.example").read_text()
    example = yaml.safe_load(text)["cinder_ha"]
    assert pillar.normalize(example)[1] == []
    more = merged(example, {"controller": "controller1", "agent": {
        "os_auth_url": "http://192.168.42.103:5000/v3", "os_username": "admin", "os_password": "ADMIN_PASS",
        "os_project_name": "admin", "os_user_domain_name": "Default", "os_project_domain_name": "Default",
        "pid": "/var/run/cinder/cinder-api.pid", "url": "http://192.168.42.103:8776/healthcheck",
        "additional_parameters": "--debug"}, "keystone": {"cacert": "/etc/ssl/certs/ca-certificates.crt",
                                                           "insecure": False, "timeout": 10},
        "notifications": {"topics": ["notifications"]}, "cluster": {"stickiness": 100},
        "lookup": yaml.safe_load(re.sub(r"(?m)^ {4}# ", "    ", text.split("  lookup:\n", 1)[1].split("\n\n")[0]))})
    assert pillar.normalize(more)[1] == []


@pytest.mark.parametrize("address,netmask", [("2001:db8::103", 64), ("fd00::103", 128), ("::1", 128),
                                             ("2001:db8::103", None), ("fd00:0:0:1::10", 48)])
def test_ipv6_vips_stay_valid(address, netmask):
    vip = {"address": address} if netmask is None else {"address": address, "netmask": netmask}
    settings, errors, _ = pillar.normalize(merged(BASE, {"vip": vip}))
    assert errors == []
    assert settings["endpoint_urls"]["public"].startswith(f"http://[{address}]:8776")


@pytest.mark.parametrize("address", ["127.0.0.103", "127.0.0.1", "127.255.255.254", "::1"])
def test_loopback_vips_stay_valid(address):
    assert pillar.normalize(merged(BASE, {"vip": {"address": address}}))[1] == []


@pytest.mark.parametrize("password", ["p@ss:w/rd%#?", "a b", "é€", "'\"$`\\", "x" * 254, "[]{}&=;+,~"])
def test_special_character_passwords_stay_valid(password):
    raw = merged(BASE, {"database": {"password": password}, "keystone": {"password": password},
                        "agent": {"os_password": password}})
    if "/" not in password:  # anything but '/' for RabbitMQ (kombu)
        raw["rabbitmq"]["password"] = password
    settings, errors, _ = pillar.normalize(raw)
    assert errors == []
    assert settings["database_connection"].startswith("mysql+pymysql://cinder:")
