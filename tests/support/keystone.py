"""Helpers for the Keystone catalog tests: admin access to the shared Keystone, own regions and
services cleaned up even on failure, a tiny HTTP server standing in for cinder-api, and a
counter of the HTTP requests keystoneauth1 sends.

Keystone is shared with the other engineers and the formula: tests only ever create and
delete regions named ``t6-<random>`` and services named ``t6-<random>...``.
"""
import contextlib
import http.server
import json
import pathlib
import secrets
import socket
import threading
import urllib.parse

from keystoneauth1 import session as ks_session
from keystoneauth1.identity import v3 as ks_v3

SANDBOX_JSON = pathlib.Path("/srv/cinder-ha/sandbox.json")
PROBE_HOST, PROBE_PORT = "127.0.0.116", 18766


def admin_auth(facts=None):
    """The ``auth`` dict of the cinder_keystone functions, from sandbox.json."""
    facts = facts or json.loads(SANDBOX_JSON.read_text())
    return {"auth_url": facts["keystone_url"], "username": facts["keystone_admin_user"],
            "password": facts["keystone_admin_password"], "project_name": facts["keystone_admin_project"],
            "user_domain_name": "Default", "project_domain_name": "Default",
            "region": facts["keystone_region"], "timeout": 10}


def closed_port():
    """A TCP port on 127.0.0.1 nobody listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class KeystoneAdmin:
    """Direct admin calls (not through the module under test) for seeding and checking."""

    def __init__(self, auth):
        self.url = auth["auth_url"].rstrip("/")
        plugin = ks_v3.Password(auth_url=self.url, username=auth["username"], password=auth["password"],
                                project_name=auth["project_name"], user_domain_name="Default",
                                project_domain_name="Default")
        self.session = ks_session.Session(auth=plugin, timeout=10)
        self.regions, self.services = [], []

    def call(self, method, path, body=None, **params):
        resp = self.session.request(self.url + path, method, json=body, params=params or None)
        return resp.json() if resp.content else {}

    def region(self):
        rid = "t6-" + secrets.token_hex(4)
        self.call("POST", "/regions", {"region": {"id": rid, "description": "cinder-ha issue 6 test"}})
        self.regions.append(rid)
        return rid

    def service(self, stype, name, description="test"):
        svc = self.call("POST", "/services", {"service": {"type": stype, "name": name, "description": description}})
        self.services.append(svc["service"]["id"])
        return svc["service"]

    def adopt_service(self, stype, name):
        """Remember for cleanup a service the code under test created."""
        for svc in self.call("GET", "/services", type=stype, name=name)["services"]:
            if svc["id"] not in self.services:
                self.services.append(svc["id"])

    def endpoint(self, service_id, interface, url, region):
        return self.call("POST", "/endpoints", {"endpoint": {"service_id": service_id, "interface": interface,
                                                             "url": url, "region_id": region}})["endpoint"]

    def endpoints(self, service_id=None, region=None):
        params = {k: v for k, v in (("service_id", service_id), ("region_id", region)) if v}
        return self.call("GET", "/endpoints", **params)["endpoints"]

    def service_exists(self, service_id):
        return self.session.get(f"{self.url}/services/{service_id}", raise_exc=False).status_code == 200

    def cleanup(self):
        """Delete our services (their endpoints go with them), then our regions' remaining endpoints and regions."""
        for sid in self.services:
            self.session.delete(f"{self.url}/services/{sid}", raise_exc=False)
        for rid in self.regions:
            for endpoint in self.endpoints(region=rid):
                self.session.delete(f"{self.url}/endpoints/{endpoint['id']}", raise_exc=False)
            self.session.delete(f"{self.url}/regions/{rid}", raise_exc=False)


class _Answer(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server's name)
        body = json.dumps({"versions": [], "path": self.path}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@contextlib.contextmanager
def probe_server(host=PROBE_HOST, port=PROBE_PORT):
    """A tiny HTTP server standing in for cinder-api; yields the list of paths it was asked for."""
    server = http.server.ThreadingHTTPServer((host, port), _Answer)
    seen = []
    original = _Answer.do_GET

    def recording(handler):
        seen.append(handler.path)
        original(handler)

    server.RequestHandlerClass = type("Recording", (_Answer,), {"do_GET": recording})
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield seen
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def count_requests():
    """Every HTTP request keystoneauth1 sends in this process, as (method, url), the url with
    its query string (parameters sorted) as it goes on the wire: ``.../endpoints?region_id=R&service_id=S``."""
    seen = []
    original = ks_session.Session.request

    def counting(self, url, method, *args, **kwargs):
        params = kwargs.get("params")
        seen.append((method, url + ("?" + urllib.parse.urlencode(sorted(params.items())) if params else "")))
        return original(self, url, method, *args, **kwargs)

    ks_session.Session.request = counting
    try:
        yield seen
    finally:
        ks_session.Session.request = original
