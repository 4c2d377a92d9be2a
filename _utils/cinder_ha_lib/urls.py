"""URL building: hosts in URLs, the endpoint forms, the database and broker URLs."""
from urllib.parse import quote

DEFAULT_PORT = 8776  # cinder-api's port
DEFAULT_DATABASE_PORT = 3306
DEFAULT_BROKER_PORT = 5672
ENDPOINT_PATHS = {
    "v3": "/v3",
    "v3_project": "/v3/%(project_id)s",
    # the guide's form: accepted, warned about (cinder v1 was removed in Queens)
    "legacy_v1": "/v1/%(tenant_id)s",
}


def url_host(address):
    """An address as it appears in a URL: IPv6 in brackets (once)."""
    address = str(address)
    return f"[{address}]" if ":" in address and not address.startswith("[") else address


def endpoint_url(address, port=DEFAULT_PORT, form="v3"):
    """The Block Storage endpoint URL on ``address`` in one of ``ENDPOINT_PATHS``' forms."""
    if form not in ENDPOINT_PATHS:
        raise ValueError(f"url form {form!r}: one of {', '.join(ENDPOINT_PATHS)}")
    return f"http://{url_host(address)}:{port}{ENDPOINT_PATHS[form]}"


def _userinfo(user, password):
    return f"{quote(str(user), safe='')}:{quote(str(password), safe='')}"


def database_url(host, user, password, name="cinder", port=DEFAULT_DATABASE_PORT):
    """``mysql+pymysql://`` with every part percent-encoded (passwords may hold ``@:/%#?``)."""
    return f"mysql+pymysql://{_userinfo(user, password)}@{url_host(host)}:{port}/{quote(str(name), safe='')}"


def transport_url(hosts, user, password, virtual_host="/"):
    """
    oslo.messaging's ``rabbit://`` URL, one ``user:password@host:port`` per broker of
    ``hosts`` (``(host, port)`` pairs). The user and password are percent-encoded; kombu
    cannot use a ``/`` in them however it is encoded (the pillar refuses it).
    """
    netlocs = [f"{_userinfo(user, password)}@{url_host(host)}:{port}" for host, port in hosts]
    vhost = str(virtual_host or "/")
    return "rabbit://" + ",".join(netlocs) + "/" + ("" if vhost == "/" else quote(vhost.lstrip("/"), safe=""))
