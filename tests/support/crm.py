"""Helpers for the crm tests: reading a CIB with the real tools, a throw-away OCF agent."""
import datetime
import os
import pathlib
import shutil
import subprocess
import xml.etree.ElementTree as ET

from cinder_ha_lib import cib

TEST_PROVIDER = pathlib.Path("/usr/lib/ocf/resource.d/cinderhatest")
# A tiny agent that declares os_password; its start records what it received (never runs it).
TEST_AGENT = r"""#!/bin/sh
: ${OCF_ROOT=/usr/lib/ocf}
STATE="${OCF_RESKEY_state:-/run/resource-agents/cinderhatest-${OCF_RESOURCE_INSTANCE}.state}"
meta_data() {
cat <<END
<?xml version="1.0"?>
<resource-agent name="secretive" version="1.0">
<version>1.0</version>
<shortdesc lang="en">test agent with a password</shortdesc>
<longdesc lang="en">Records the password it is given, for the cinder-ha crm tests.</longdesc>
<parameters>
<parameter name="os_password"><shortdesc lang="en">password</shortdesc><content type="string"/></parameter>
<parameter name="os_username"><shortdesc lang="en">user</shortdesc><content type="string"/></parameter>
<parameter name="state"><shortdesc lang="en">state file</shortdesc><content type="string"/></parameter>
</parameters>
<actions>
<action name="start" timeout="20s"/><action name="stop" timeout="20s"/>
<action name="monitor" timeout="20s" interval="10s"/><action name="meta-data" timeout="5s"/>
</actions>
</resource-agent>
END
}
case "$1" in
  meta-data) meta_data; exit 0;;
  start) printf '%s' "$OCF_RESKEY_os_password" > "$STATE.password"; touch "$STATE"; exit 0;;
  stop) rm -f "$STATE" "$STATE.password"; exit 0;;
  monitor) [ -f "$STATE" ] && exit 0; exit 7;;
  validate-all) exit 0;;
  *) exit 3;;
esac
"""


def env(**extra):
    result = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C"}
    result.update(extra)
    return result


def cib_env():
    """Tool environment that follows the CIB_file the test set (live cluster otherwise)."""
    extra = {"CIB_file": os.environ["CIB_file"]} if os.environ.get("CIB_file") else {}
    return env(**extra)


def query():
    return subprocess.run(["cibadmin", "--query"], capture_output=True, text=True, check=True,
                          env=cib_env(), timeout=30).stdout


def epoch():
    root = ET.fromstring(query())
    return int(root.get("admin_epoch")), int(root.get("epoch"))


def element(object_id):
    root = ET.fromstring(query())
    for found in root.iter():
        if found.get("id") == object_id and found.tag in ("primitive", "group", "rsc_colocation",
                                                          "rsc_order", "alert"):
            return found
    return None


def param(rsc, name):
    """A parameter's value as the CIB holds it (None when absent)."""
    for nvpair in element(rsc).findall("instance_attributes/nvpair"):
        if nvpair.get("name") == name:
            return nvpair.get("value")
    return None


def count_ids(object_id):
    """Elements of the configuration (not the status section) with this id."""
    config = ET.fromstring(query()).find("configuration")
    return sum(1 for found in config.iter() if found.get("id") == object_id)


def strings(value):
    """Every string (keys and values) in a nested return, joined: JSON would escape newlines."""
    if isinstance(value, dict):
        return "\x00".join(strings(k) + "\x00" + strings(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return "\x00".join(strings(v) for v in value)
    return str(value)


def assert_no_secret(secret, found_in, where):
    """Fail without printing either value (pytest would show both in its explanation)."""
    leaked = secret in strings(found_in)
    assert not leaked, f"the secret appears in {where}"


def crm_configuration():
    """XML of every crm_ object in the configuration (other engineers' objects left out)."""
    config = ET.fromstring(query()).find("configuration")
    return "".join(ET.tostring(found, encoding="unicode") for found in config.iter()
                   if (found.get("id") or "").startswith("crm_"))


def install_test_agent():
    TEST_PROVIDER.mkdir(exist_ok=True)
    path = TEST_PROVIDER / "secretive"
    path.write_text(TEST_AGENT)
    path.chmod(0o755)
    return "ocf:cinderhatest:secretive"


def remove_test_agent():
    shutil.rmtree(TEST_PROVIDER, ignore_errors=True)


def crm_load(text):
    """Write objects the way an operator would, through crm itself (stdin, no shell)."""
    return subprocess.run(["crm", "configure", "load", "update", "-"], input=text, capture_output=True,
                          text=True, env=cib_env(), timeout=60)


def sandbox_conf_copy(facts, work, vip, port):
    """The text of /etc/cinder/cinder.conf listening on (vip, port), logging under work/log,
    with the sandbox's MariaDB and Keystone settings if the file lacks them: the cinder.conf of
    a test resource beside the sandbox's own."""
    def literal(value):
        return str(value).replace("$", "$$")  # oslo.config interpolates $

    lines = []
    for line in pathlib.Path("/etc/cinder/cinder.conf").read_text().splitlines():
        if line.split("=")[0].strip() in ("osapi_volume_listen", "osapi_volume_listen_port", "log_dir"):
            continue
        lines.append(line)
        if line.strip() == "[DEFAULT]":
            lines += [f"osapi_volume_listen = {vip}", f"osapi_volume_listen_port = {port}",
                      f"log_dir = {pathlib.Path(work) / 'log'}"]
    if "[database]" not in lines:  # the seeded file has only the guide's ignored sql_connection
        lines += ["[database]", "connection = " + literal(facts["cinder_db_url"])]
    if "[keystone_authtoken]" not in lines:  # the agent's monitor sends an authenticated GET
        lines += ["[keystone_authtoken]", f"www_authenticate_uri = {facts['keystone_url']}",
                  f"auth_url = {facts['keystone_url']}", "auth_type = password",
                  f"username = {facts['keystone_admin_user']}",
                  f"password = {literal(facts['keystone_admin_password'])}",
                  f"project_name = {facts['keystone_admin_project']}", "user_domain_name = Default",
                  "project_domain_name = Default"]
    return "\n".join(lines) + "\n"


def crash_reports(rsc, since):
    """The failures the agents' leader watcher reported for ``rsc`` (``crm_resource --fail``
    shows as a failed ``asyncmon``) at or after ``since`` (epoch seconds), from crm_mon."""
    out = subprocess.run(["crm_mon", "--output-as=xml"], capture_output=True, text=True, env=env(), timeout=30).stdout

    def when(failure):
        stamp = datetime.datetime.strptime(failure.get("last-rc-change", "").rstrip("Z"), "%Y-%m-%d %H:%M:%S")
        return stamp.replace(tzinfo=datetime.UTC).timestamp()

    return [failure for failure in cib.crm_mon_status(out)["failures"]
            if failure.get("op_key") == f"{rsc}_asyncmon_0" and when(failure) >= int(since)]
