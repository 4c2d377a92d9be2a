"""Helpers for the reactor tests and bench (issue 8): a test cinder.conf state and its file_roots.

The real ``cinder_ha.config`` state (cinder_conf.managed) records the sha256 of what it writes
in ``<cachedir>/cinder_ha/digests.json`` BEFORE its atomic rename; the test state here keeps
that contract with a small script, so the engine and reactor are tested on their own.
Its behaviour is chosen by a mode file next to the watched cinder.conf:
``normal`` (write the wanted content), ``churn`` (write new content and a new sibling file on
every run), ``long`` (``normal`` then sleep 5 s).
"""
import hashlib
import importlib.machinery
import importlib.util
import os
import pathlib

PROJECT = pathlib.Path(__file__).resolve().parents[2]
WANTED = "[DEFAULT]\n# managed by the reactor test state\ndebug = false\n"
REACTOR = [{"cinder_ha/*": ["salt://cinder_ha/reactor/dispatch.sls"]}]

WRITE_CONF = r'''
import hashlib, json, os, sys, time
path, content, cachedir = sys.argv[1], sys.argv[2], sys.argv[3]
data = content.replace("@NOW@", str(time.time_ns())).encode()
record = os.path.join(cachedir, "cinder_ha", "digests.json")
os.makedirs(os.path.dirname(record), exist_ok=True)
try:
    digests = json.load(open(record))
except (OSError, ValueError):
    digests = {}
try:
    current = open(path, "rb").read()
except FileNotFoundError:
    current = None
digests[path] = hashlib.sha256(data).hexdigest()
tmp = record + ".tmp"
with open(tmp, "w") as f:
    json.dump(digests, f)
os.replace(tmp, record)          # the record first ...
if current != data:
    tmp = path + ".t8tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)        # ... then the atomic rename
print("changed" if current != data else "unchanged")
'''

CONFIG_SLS = '''
{%- set conf = "@CONF@" %}
{%- set mode = salt["file.read"](conf ~ ".mode").strip() if salt["file.file_exists"](conf ~ ".mode") else "normal" %}
{%- set content = @WANTED@ %}
{%- if mode == "churn" %}{% set content = content ~ "# run @NOW@\\n" %}{% endif %}
reactor_cinder_conf:
  cmd.run:
    - name: {{ ([grains["pythonexecutable"], "@SCRIPT@", conf, content, opts["cachedir"]] | map("quote") | join(" ")) | json }}
{%- if mode == "churn" %}
reactor_sibling:
  file.managed:
    - name: {{ conf }}.stamp
    - contents: {{ ("now " ~ salt["test.random_hash"]()) | json }}
{%- endif %}
{%- if mode == "long" %}
reactor_long:
  cmd.run:
    - name: sleep 5
    - require:
      - cmd: reactor_cinder_conf
{%- endif %}
'''

INIT_SLS = '''
reactor_reconfigured:
  cmd.run:
    - name: echo reconfigured >> {{ "@CONF@" ~ ".reconfigured" }}
'''


def make_file_roots(root, conf_path):
    """A file_roots folder shadowing cinder_ha.config and cinder_ha (init) with test states."""
    root = pathlib.Path(root)
    (root / "cinder_ha").mkdir(parents=True, exist_ok=True)
    script = root / "reactor_write_conf.py"
    script.write_text(WRITE_CONF)
    import json

    (root / "cinder_ha" / "config.sls").write_text(
        CONFIG_SLS.replace("@CONF@", str(conf_path)).replace("@SCRIPT@", str(script))
        .replace("@WANTED@", json.dumps(WANTED)))
    (root / "cinder_ha" / "init.sls").write_text(INIT_SLS.replace("@CONF@", str(conf_path)))
    return root


# The reactor starts a job only for an event signed with the accepted key of an allowed minion
# (runner cinder_ha_reactor.react): the minions sign (minion_sign_messages), and the master
# needs the same signing_algorithm (Salt 3008.4 has no master default for it).
SIGNING = "PKCS1v15-SHA224"


def master_overrides(file_roots, pillar_root, allow=None, **extra):
    """allow: the minion ids the reactor acts for (default: the controllers by pillar)."""
    overrides = {
        "interface": "127.0.0.1",
        "file_roots": {"base": [str(file_roots), str(PROJECT / "salt"), str(PROJECT)]},
        "pillar_roots": {"base": [str(pillar_root)]},
        "auto_accept": True,
        "open_mode": True,
        "reactor": REACTOR,
        "signing_algorithm": SIGNING,
        # the tests edit the file many times a minute: the rate limit is not what they test
        "cinder_ha_reactor": {"max_jobs": 1000, "window": 60},
    }
    if allow:
        overrides["cinder_ha_reactor"]["allow"] = list(allow)
    overrides.update(extra)
    return overrides


def minion_overrides(conf_path, alert_spool=None, **extra):
    engine = {"paths": [str(conf_path)]}
    if alert_spool:
        engine["alert_spool"] = str(alert_spool)
    overrides = {"state_queue": True, "engines": [{"cinder_ha_watch": engine}],
                 "minion_sign_messages": True, "signing_algorithm": SIGNING}
    overrides.update(extra)
    return overrides


def sha256(path):
    return hashlib.sha256(pathlib.Path(path).read_bytes()).hexdigest()


def wanted_digest():
    return hashlib.sha256(WANTED.encode()).hexdigest()


def edit_in_place(path, line="debug = true\n"):
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(line)


def edit_rename_over(path, line="debug = true\n"):
    """What sed -i, vim and file.managed do: a new file renamed over the old one."""
    tmp = f"{path}.sedtmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(pathlib.Path(path).read_text() + line)
    os.replace(tmp, path)


def load(name, path):
    """A Python file that is not importable by name (engine, alert agent) as a module."""
    loader = importlib.machinery.SourceFileLoader(name, str(path))
    spec = importlib.util.spec_from_loader(name, loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module
