"""crm states on the live cluster: the guide's primitive + VIP + constraints through our agent.

Ids are prefixed crm_, the VIP is 127.0.0.114, cinder-api listens on 127.0.0.114:8714 with a copy
of cinder.conf under /srv/cinder-ha/crm-instance. Everything is removed in teardown, even on failure.
"""
import json
import os
import pathlib
import shutil
import subprocess
import urllib.request

import pytest

from tests.conftest import SANDBOX
from tests.support import crm as cib

pytestmark = pytest.mark.skipif(os.environ.get("CIB_file"), reason="needs the live cluster")

WORK = SANDBOX / "crm-instance"
VIP, PORT = "127.0.0.114", 8714
IDS = ("crm_c_api_with_ip", "crm_o_ip_before_api", "crm_c2", "crm_api", "crm_ip", "crm_dummy")

SLS = """\
{%- set facts = salt['file.read']('/srv/cinder-ha/sandbox.json') | load_json %}
crm cluster objects:
  crm.configured:
    - objects:
      - primitive: crm_ip
        agent: ocf:heartbeat:IPaddr2
        params: {ip: VIP, cidr_netmask: 32, nic: lo}
        ops: {monitor: {interval: 10s, timeout: 20s}}
      - primitive: crm_api
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
      - colocation: crm_c_api_with_ip
        score: INFINITY
        resources: [crm_api, crm_ip]
      - order: crm_o_ip_before_api
        kind: Mandatory
        first: crm_ip
        then: crm_api
"""

CONCURRENT_SLS = """\
crm concurrent objects:
  crm.configured:
    - objects:
      - primitive: crm_dummy
        agent: ocf:pacemaker:Dummy
        params: {fake: same-for-both}
        ops: {monitor: {interval: 20s, timeout: 20s}}
      - colocation: crm_c2
        resources: [crm_dummy, crm_ip]
"""


def sls_text(extra=""):
    return (SLS.replace("VIP", VIP).replace("CONFIG", str(WORK / "cinder.conf"))
            .replace("EXTRA", extra or "# no extra parameter"))


def remove_crm_objects():
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
    """/etc/cinder/cinder.conf listening on the test VIP and port.

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
    (root / "file_roots" / "crm_test.sls").write_text(sls)
    (root / "minion").write_text(
        f"id: {name}\nfile_client: local\nroot_dir: {root}\n"
        f"file_roots:\n  base:\n    - {root / 'file_roots'}\nlog_file: {root / 'minion.log'}\n")
    return [str(SANDBOX / "venv" / "salt" / "bin" / "salt-call"), "--local", "-c", str(root),
            "--out=json", "state.sls", "crm_test"]


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
    remove_crm_objects()
    cinder_conf_copy(sandbox_facts)
    path = tmp_path_factory.mktemp("crmsls") / "crm_test.sls"
    path.write_text(sls_text())
    try:
        ret = salt_call_cli.run("state.template", str(path))
        yield {"ret": ret, "password": sandbox_facts["keystone_admin_password"], "sls": path}
    finally:
        remove_crm_objects()
        shutil.rmtree(WORK, ignore_errors=True)


def test_guide_objects_start_cinder_api_on_the_vip(applied, salt_call_cli):
    ret = applied["ret"]
    assert ret.returncode == 0, ret.stdout
    [state] = ret.data.values()
    assert state["result"] is True, state["comment"]
    assert set(state["changes"]["objects"]) == {"crm_ip", "crm_api", "crm_c_api_with_ip", "crm_o_ip_before_api"}
    assert any("start crm_api" in action for action in state["changes"]["cluster"])
    assert salt_call_cli.run("crm.wait", "timeout=120s").data is True
    assert salt_call_cli.run("crm.locate", "crm_api").data == ["node1"]
    assert salt_call_cli.run("crm.locate", "crm_ip").data == ["node1"]
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
    cib.assert_no_secret(password, cib.crm_configuration(), "the crm_ objects of cibadmin -Q")
    assert cib.param("crm_api", "os_password") == "lrm://"
    stored = pathlib.Path("/var/lib/pacemaker/lrm/secrets/crm_api/os_password").read_text() == password
    assert stored, "the secret file does not hold the password"
    cib.assert_no_secret(password, applied["ret"].data, "the state return")
    check = subprocess.run(["cibsecret", "check"], capture_output=True, text=True, env=cib.env(), timeout=60)
    assert "crm_api" not in check.stdout + check.stderr  # no mismatch reported for our secret


def test_dry_run_after_a_parameter_change_says_restart(applied, tmp_path):
    epoch = cib.epoch()
    minion = local_minion(tmp_path, "crm-dry", sls_text(extra="os_user_domain_name: Default"))
    proc = run_local(minion, "test=True")
    [state] = state_returns(proc)
    assert state["result"] is None, state["comment"]
    assert "params.os_user_domain_name: None -> 'Default'" in state["comment"]
    status = subprocess.run(["crm_mon", "-1"], capture_output=True, text=True, env=cib.env(), timeout=30).stdout
    assert "restart crm_api on node1" in state["comment"], status
    cib.assert_no_secret(applied["password"], proc.stdout + proc.stderr, "salt-call output")
    assert cib.epoch() == epoch


def test_two_minions_applying_at_once_leave_one_copy(applied, tmp_path):
    commands = [local_minion(tmp_path, f"crm-m{n}", CONCURRENT_SLS) for n in (1, 2)]
    env = dict(os.environ)
    env.pop("CIB_file", None)
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for cmd in commands]
    outputs = [proc.communicate(timeout=300) for proc in procs]
    for proc, (out, err) in zip(procs, outputs):
        assert proc.returncode == 0, out + err
        [state] = json.loads(out)["local"].values()
        assert state["result"] is True, state["comment"]
    assert cib.count_ids("crm_dummy") == 1 and cib.count_ids("crm_c2") == 1
    changed = [json.loads(out)["local"] for out, _ in outputs]
    assert sum(1 for data in changed if list(data.values())[0]["changes"]) >= 1


def test_a_noop_run_reads_the_cib_once_and_runs_crm_mon_once(applied, tmp_path):
    """What the formula does in one run on the controller, against the live cluster: crm.role at
    render (cinder_ha.controller), crm.configured, cinder_ha.restarted_through_cluster; no-op here."""
    reads = ("{%- set role = salt['crm.role'](for_state_run=True) %}\n" + sls_text() + """
crm restart check:
  cinder_ha.restarted_through_cluster:
    - name: crm_ip
    - pid_file: /nonexistent/crm_ip.pid
    - require:
      - crm: crm cluster objects

crm cluster reads:
  module.run:
    - crm.subprocess_count:
      - by_tool: true
    - require:
      - cinder_ha: crm restart check
""")
    epoch = cib.epoch()
    proc = run_local(local_minion(tmp_path, "crm-reads", reads))
    states = {state["__id__"]: state for state in state_returns(proc)}
    assert all(state["result"] is True for state in states.values()), states
    assert states["crm cluster objects"]["changes"] == {}
    assert "runs on node1" not in states["crm restart check"]["comment"]  # it does run here: restart question asked
    assert states["crm cluster reads"]["changes"]["crm.subprocess_count"] == {
        "crm_node --name": 1, "crm_mon --one-shot": 1, "cibadmin --query": 1}, states["crm cluster reads"]
    assert cib.epoch() == epoch
