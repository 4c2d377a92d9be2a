"""Test data and helpers for the cinder.conf state (unit, functional, integration, bench)."""
import difflib
import os
import subprocess

SANDBOX = os.environ.get("CINDER_HA_SANDBOX", "/srv/cinder-ha")
CINDER_PYTHON = os.path.join(SANDBOX, "venv", "cinder", "bin", "python")

DB_PASSWORD = "CINDER_DBPASS-9f3c"
RABBIT_PASSWORD = "RABBIT_PASS-77ab"

# Step 3 of the 2014 HA guide ("Highly available Block Storage API"), literally, under the
# [DEFAULT] header a real cinder.conf has, between unrelated operator keys and comments.
GUIDE_CONF = f"""\
# cinder.conf of controller 1 -- edited by hand, keep this header
[DEFAULT]
verbose = True
# We have to use MySQL connection to store data:
sql_connection = mysql://cinder:{DB_PASSWORD}@192.168.42.101/cinder
# Alternatively, you can switch to pymysql,
# a new Python 3 compatible library and use
# sql_connection = mysql+pymysql://cinder:{DB_PASSWORD}@192.168.42.101/cinder
# and be ready when everything moves to Python 3.
# Ref: https://wiki.openstack.org/wiki/PyMySQL_evaluation

# We bind Block Storage API to the VIP:
osapi_volume_listen = 192.168.42.103

# We send notifications to High Available RabbitMQ:
notifier_strategy = rabbit
rabbit_host = 192.168.42.102
rabbit_password = {RABBIT_PASSWORD}
enabled_backends=lvm ; not a comment for oslo.config
\tcontinued line

[lvm]
volume_driver = cinder.volume.drivers.lvm.LVMVolumeDriver
volume_group = cinder-volumes

[filter]
# repeated key: a multi-valued option, kept in order
scheduler_default_filters = AvailabilityZoneFilter
scheduler_default_filters = CapacityFilter
"""

LEGACY_LINES = ("sql_connection = mysql://", "notifier_strategy = rabbit", "rabbit_host = ", "rabbit_password = ")


def only_legacy_lines_removed(old_text, new_text):
    """True when new_text is old_text minus the guide's legacy key lines plus added lines:
    every other byte (comments, blank lines, unrelated keys, their order) survived."""
    matcher = difflib.SequenceMatcher(a=old_text.splitlines(True), b=new_text.splitlines(True), autojunk=False)
    for tag, i1, i2, _j1, _j2 in matcher.get_opcodes():
        if tag in ("delete", "replace"):
            for line in matcher.a[i1:i2]:
                if not line.startswith(LEGACY_LINES):
                    return False
    return True


def oslo_read(path, options):
    """Values as cinder's own oslo.config reads them: {(group, key): value} for StrOpts."""
    script = (
        "import json, sys\n"
        "from oslo_config import cfg\n"
        "conf = cfg.ConfigOpts()\n"
        "wanted = json.loads(sys.argv[2])\n"
        "for group, key in wanted:\n"
        "    conf.register_opt(cfg.StrOpt(key), group=None if group == 'DEFAULT' else group)\n"
        "conf(['--config-file', sys.argv[1]], project='t5')\n"
        "out = {}\n"
        "for group, key in wanted:\n"
        "    node = conf if group == 'DEFAULT' else conf[group]\n"
        "    out[group + ' ' + key] = node[key]\n"
        "print(json.dumps(out))\n"
    )
    import json

    result = subprocess.run([CINDER_PYTHON, "-c", script, str(path), json.dumps(options)], capture_output=True,
                            text=True, timeout=60, env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"})
    if result.returncode:
        raise AssertionError(f"oslo.config could not read {path}: {result.stderr[-2000:]}")
    return json.loads(result.stdout)


def sample_conf(lines=300):
    """A cinder.conf of about ``lines`` lines, shaped like the generated sample (mostly comments)."""
    out = ["[DEFAULT]\n"]
    n = 0
    sections = ["DEFAULT", "database", "keystone_authtoken", "oslo_messaging_rabbit", "oslo_concurrency",
                "oslo_messaging_notifications", "lvm", "backend_defaults"]
    for index, section in enumerate(sections):
        if index:
            out.append(f"\n[{section}]\n")
        for _ in range(lines // len(sections) // 4):
            n += 1
            out.append("\n")
            out.append(f"# Help text of option_{n}, explaining what it does (string value)\n")
            out.append(f"#option_{n} = default_{n}\n")
            out.append(f"option_{n} = value_{n}\n")
    return "".join(out)
