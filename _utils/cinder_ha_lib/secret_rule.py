"""What is a secret, and how it is shown: the one rule for the whole project. Pure logic.

A key is secret when its name says so (``password``, ``os_password``, ``rabbit_password``,
``admin_token``, ``secret_key``, ``hmac_keys``, ``credentials``...), whatever its value's type
and whatever mode it is stored in; a URL's password (``scheme://user:PASSWORD@host``, several
hosts too) is secret wherever the URL appears. The CIB diff, cinder.conf's diff, the pillar
settings and the status all mask through this module.
"""
import re

MASK = "***"
# Names that hold a secret: a password or token word anywhere, or ending in key/keys.
_SECRET_WORDS = re.compile(r"pass(w(or)?d)?|secret|token|credential|hmac|private_?key|(^|[_.-])keys?$|^keys?$",
                           re.IGNORECASE)
# ...unless the name says it is where to find something rather than the thing itself.
_NOT_A_VALUE = re.compile(r"(url|uri|path|file|dir|type|mode|method|plugin|backend|ttl|expiration|rounds?)$",
                          re.IGNORECASE)


def is_secret_name(name):
    """True for a key whose value is a secret (see the module's docstring)."""
    name = str(name or "")
    return bool(_SECRET_WORDS.search(name)) and not _NOT_A_VALUE.search(name)


def mask_url(text):
    """Replace the password of every user:password@ in a URL (several hosts too) by ***.

    The authority ends at the first '/' after the LAST '@' before any '?' or '#', so an
    unescaped '@' or '/' inside a password is masked with the rest of it."""
    start = text.find("://")
    if start < 0:
        return text
    head_end = len(text)
    for stop in ("?", "#"):
        pos = text.find(stop, start + 3)
        if pos >= 0:
            head_end = min(head_end, pos)
    head = text[start + 3:head_end]
    at = head.rfind("@")
    if at < 0:
        return text
    slash = head.find("/", at)
    authority_end = len(head) if slash < 0 else slash
    # user:password@host[,user:password@host...]: a host holds no '@', so the lazy password
    # stretches over any '@' or ',' it contains
    authority = re.sub(r"([^:,@]*):(.*?)@([^@,]*)(?=,|$)", lambda m: f"{m.group(1)}:{MASK}@{m.group(3)}",
                       head[:authority_end])
    return text[:start + 3] + authority + head[authority_end:] + text[head_end:]


def mask_value(key, value):
    """A value as it may be shown: secret-named keys -> *** (numbers too), URL passwords -> ***;
    lists and mappings item by item."""
    if value is None:
        return None
    if isinstance(value, dict):
        return masked(value)
    if isinstance(value, (list, tuple)):
        return [mask_value(key, v) for v in value]
    if is_secret_name(key) and value != "" and not isinstance(value, bool):
        return MASK
    return mask_url(value) if isinstance(value, str) and "://" in value else value


def masked(node):
    """A copy of a tree (dicts, lists, scalars) with every secret masked by name and in URLs."""
    if isinstance(node, dict):
        return {key: mask_value(key, value) for key, value in node.items()}
    if isinstance(node, (list, tuple)):
        return [masked(item) for item in node]
    return mask_url(node) if isinstance(node, str) and "://" in node else node


def secret_values(tree):
    """Every secret value in a tree (by key name, numbers included, and URL passwords), longest
    first: for masking free text (log lines, tool output) that may quote them."""
    from urllib.parse import unquote, urlsplit

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
            if is_secret_name(key) and text:
                found.add(text)
            if "://" in text:
                try:
                    password = urlsplit(text).password
                except ValueError:
                    password = None
                if password:
                    found.update({password, unquote(password)})
    walk(tree)
    return sorted(found, key=len, reverse=True)
