"""crm states on the live cluster: the guide's primitive + VIP + constraints through our agent.

Ids are prefixed t4_, the VIP is 127.0.0.114, cinder-api listens on 127.0.0.114:8714 with a copy
of cinder.conf under /srv/cinder-ha/t4. Everything is removed in teardown, even on failure.
"""
import json
import os
import pathlib
import shutil
import subprocess
import time
import urllib.request

import pytest

from tests import crm_support as cib
from tests.conftest import SANDBOX

pytestmark = pytest.mark.skipif(os.environ.get("CIB_file"), reason="needs the live cluster")

WORK = SANDBOX / "t4"
VIP, PORT = "127.0.0.114", 8714
IDS = ("t4_c_api_with_ip", "t4_o_ip_before_api", "t4_c2", "t4_api", "t4_ip", "t4_dummy")

SLS = """\
{%- set facts = salt['file.read']('/srv/cinder-ha/sandbox.json') | load_json %}
t4 cluster objects:
  crm.configured:
    - objects:
      - primitive: t4_ip
        agent: ocf:heartbeat:IPaddr2
        params: {ip: VIP, cidr_netmask: 32, nic: lo}
        ops: {monitor: {interval: 10s, timeout: 20s}}
      - primitive: t4_api
        agent: ocf:openstack:cinder-api
        params:
          binary: {{ facts.cinder_api }}
          user: root
          config: CONFIG
          os_auth_url: {{ facts.keystone_url }}
          os_username: {{ facts.keystone_admin_user }}
          os_password: {{ facts.keystone_admin_password | json }}
          os_project_name: {{ facts.keystone_admin_project }}
          EXTRA
        secret_params: [os_password]
        secret_mode: lrm
        ops: {monitor: {interval: 30s, timeout: 30s}, start: {timeout: 60s}, stop: {timeout: 90s}}
      - colocation: t4_c_api_with_ip
        score: INFINITY
        resources: [t4_api, t4_ip]
      - order: t4_o_ip_before_api
        kind: Mandatory
        first: t4_ip
        then: t4_api
"""

CONCURRENT_SLS = """\
t4 concurrent objects:
  crm.configured:
    - objects:
      - primitive: t4_dummy
        agent: ocf:pacemaker:Dummy
        params: {fake: same-for-both}
        ops: {monitor: {interval: 20s, timeout: 20s}}
      - colocation: t4_c2
        resources: [t4_dummy, t4_ip]
"""


def sls_text(extra=""):
    return (SLS.replace("VIP", VIP).replace("CONFIG", str(WORK / "cinder.conf"))
            .replace("EXTRA", extra or "# no extra parameter"))


def remove_t4_objects():
    for object_id in IDS:
        for section, tag in (("constraints", "rsc_colocation"), ("constraints", "rsc_order"),
                             ("resources", "primitive")):
            subprocess.run(["cibadmin", "--delete", "--scope", section, "--xml-text", f'<{tag} id="{object_id}"/>'],
                           capture_output=True, env=cib.env(), timeout=30)
    subprocess.run(["crm_resource", "--wait", "--timeout=90s"], capture_output=True, env=cib.env(), timeout=120)
    for object_id in IDS:
        subprocess.run(["crm_resource", "--cleanup", "--resource", object_id], capture_output=True,
                       env=cib.env(), timeout=60)
        shutil.rmtree(f"/var/lib/pacemaker/lrm/secrets/{object_id}", ignore_errors=True)


def cinder_conf_copy(facts):
    """/etc/cinder/cinder.conf listening on the t4 VIP and port.

    The sandbox's cinder venv runs on a Python under /root (mode 0700), so cinder-api runs as
    root here (agent parameter user=root).
    """
    WORK.mkdir(mode=0o755, exist_ok=True)
    (WORK / "log").mkdir(exist_ok=True)
    shutil.chown(WORK / "log", "cinder", "cinder")
    path = WORK / "cinder.conf"
    path.write_text(cib.sandbox_conf_copy(facts, WORK, VIP, PORT))
    path.chmod(0o640)
    shutil.chown(path, "root", "cinder")


def local_minion(tmp_path, name, sls):
    """A masterless minion (its own root and file_roots) that loads this project in pip mode."""
    root = tmp_path / name
    (root / "file_roots").mkdir(parents=True)
    (root / "file_roots" / "t4.sls").write_text(sls)
    (root / "minion").write_text(
        f"id: {name}\nfile_client: local\nroot_dir: {root}\n"
        f"file_roots:\n  base:\n    - {root / 'file_roots'}\nlog_file: {root / 'minion.log'}\n")
    return [str(SANDBOX / "venv" / "salt" / "bin" / "salt-call"), "--local", "-c", str(root),
            "--out=json", "state.sls", "t4"]


def run_local(args, *extra):
    env = dict(os.environ)
    env.pop("CIB_file", None)
    return subprocess.run(list(args) + list(extra), capture_output=True, text=True, env=env, timeout=300)


def state_returns(proc):
    data = json.loads(proc.stdout)["local"]
    assert isinstance(data, dict), data
    return list(data.values())


@pytest.fixture(scope="module")
def applied(salt_call_cli, sandbox_facts, tmp_path_factory):
    remove_t4_objects()
    cinder_conf_copy(sandbox_facts)
    path = tmp_path_factory.mktemp("t4sls") / "t4.sls"
    path.write_text(sls_text())
    try:
        ret = salt_call_cli.run("state.template", str(path))
        yield {"ret": ret, "password": sandbox_facts["keystone_admin_password"], "sls": path}
    finally:
        remove_t4_objects()
        shutil.rmtree(WORK, ignore_errors=True)


def test_guide_objects_start_cinder_api_on_the_vip(applied, salt_call_cli):
    ret = applied["ret"]
    assert ret.returncode == 0, ret.stdout
    [state] = ret.data.values()
    assert state["result"] is True, state["comment"]
    assert set(state["changes"]["objects"]) == {"t4_ip", "t4_api", "t4_c_api_with_ip", "t4_o_ip_before_api"}
    assert any("start t4_api" in action for action in state["changes"]["cluster"])
    assert salt_call_cli.run("crm.wait", "timeout=120s").data is True
    assert salt_call_cli.run("crm.locate", "t4_api").data == ["node1"]
    assert salt_call_cli.run("crm.locate", "t4_ip").data == ["node1"]
    with urllib.request.urlopen(f"http://{VIP}:{PORT}/healthcheck", timeout=10) as response:
        assert response.status == 200
    # Second run: nothing to do, CIB untouched.
    epoch = cib.epoch()
    again = salt_call_cli.run("state.template", str(applied["sls"]))
    [state] = again.data.values()
    assert state["result"] is True and state["changes"] == {}, state["comment"]
    assert cib.epoch() == epoch


def test_secret_mode_keeps_the_password_out_of_the_cib_and_output(applied):
    password = applied["password"]
    cib.assert_no_secret(password, cib.t4_configuration(), "the t4_ objects of cibadmin -Q")
    assert cib.param("t4_api", "os_password") == "lrm://"
    stored = pathlib.Path("/var/lib/pacemaker/lrm/secrets/t4_api/os_password").read_text() == password
    assert stored, "the secret file does not hold the password"
    cib.assert_no_secret(password, applied["ret"].data, "the state return")
    check = subprocess.run(["cibsecret", "check"], capture_output=True, text=True, env=cib.env(), timeout=60)
    assert "t4_api" not in check.stdout + check.stderr  # no mismatch reported for our secret


def test_dry_run_after_a_parameter_change_says_restart(applied, tmp_path):
    epoch = cib.epoch()
    minion = local_minion(tmp_path, "t4-dry", sls_text(extra="os_user_domain_name: Default"))
    proc = run_local(minion, "test=True")
    [state] = state_returns(proc)
    assert state["result"] is None, state["comment"]
    assert "params.os_user_domain_name: None -> 'Default'" in state["comment"]
    status = subprocess.run(["crm_mon", "-1"], capture_output=True, text=True, env=cib.env(), timeout=30).stdout
    assert "restart t4_api on node1" in state["comment"], status
    cib.assert_no_secret(applied["password"], proc.stdout + proc.stderr, "salt-call output")
    assert cib.epoch() == epoch


def test_two_minions_applying_at_once_leave_one_copy(applied, tmp_path):
    commands = [local_minion(tmp_path, f"t4-m{n}", CONCURRENT_SLS) for n in (1, 2)]
    env = dict(os.environ)
    env.pop("CIB_file", None)
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for cmd in commands]
    outputs = [proc.communicate(timeout=300) for proc in procs]
    for proc, (out, err) in zip(procs, outputs):
        assert proc.returncode == 0, out + err
        [state] = json.loads(out)["local"].values()
        assert state["result"] is True, state["comment"]
    assert cib.count_ids("t4_dummy") == 1 and cib.count_ids("t4_c2") == 1
    changed = [json.loads(out)["local"] for out, _ in outputs]
    assert sum(1 for data in changed if list(data.values())[0]["changes"]) >= 1
