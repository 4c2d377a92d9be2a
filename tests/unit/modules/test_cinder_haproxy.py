"""cinder_haproxy: the runtime API spoken to over a real unix socket, answered by a stand-in that
gives HAProxy 2.6's captured answers (tests.unit.cinder_ha_lib.test_haproxy), and check_config
with a stand-in haproxy program that reports what it was given. The real HAProxy is
tests/functional/test_haproxy_agent.py's."""
import os
import pathlib
import shutil
import socket
import subprocess
import tempfile
import threading
import time

import pytest
from salt.exceptions import CommandExecutionError

from _modules import cinder_haproxy
from tests.unit.cinder_ha_lib.test_haproxy import SHOW_STAT_DRAINING, SHOW_STAT_MAINT, _with_status


@pytest.fixture
def configure_loader_modules():
    return {cinder_haproxy: {}}


class FakeRuntimeApi:
    """A unix socket answering each command as ``answers`` says: a string, a list of strings
    (one per call, the last one kept), or None (never answers). Records the commands it read."""

    def __init__(self, path, answers):
        self.path, self.answers, self.commands = path, answers, []
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(path)
        self.server.listen(8)
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self.done.is_set():
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            with conn:
                data = b""
                while chunk := conn.recv(4096):  # the client shuts its side down after its command
                    data += chunk
                command = data.decode().rstrip("\n")
                self.commands.append(command)
                answer = self.answers.get(command.split(" ")[0] + " " + command.split(" ")[1])
                if isinstance(answer, list):
                    answer = answer.pop(0) if len(answer) > 1 else answer[0]
                if answer is None:
                    self.done.wait(5)
                    continue
                conn.sendall(answer.encode())

    def close(self):
        self.done.set()
        self.server.shutdown(socket.SHUT_RDWR)  # wakes the accept (a close alone does not)
        self.server.close()
        self.thread.join(10)


@pytest.fixture
def runtime_api():
    folder = tempfile.mkdtemp(prefix="chx-", dir="/tmp")  # a unix socket's path is short
    made = []

    def make(answers):
        made.append(FakeRuntimeApi(os.path.join(folder, "rt.sock"), answers))
        return made[-1]

    yield make
    for api in made:
        api.close()
    shutil.rmtree(folder)


def test_server_states_reads_show_stat(runtime_api):
    api = runtime_api({"show stat": SHOW_STAT_DRAINING})
    states = cinder_haproxy.server_states(api.path)
    assert api.commands == ["show stat"]
    assert {name: (s["state"], s["sessions"]) for name, s in states["cinder_api"].items()} == {
        "n1": ("UP", 1), "n2": ("DRAIN", 1), "n3": ("DOWN", 0)}


def test_set_server_state_sends_one_command_and_returns_the_server(runtime_api):
    api = runtime_api({"set server": "\n", "show stat": SHOW_STAT_DRAINING})
    server = cinder_haproxy.set_server_state(api.path, "cinder_api", "n2", "drain")
    assert api.commands == ["set server cinder_api/n2 state drain", "show stat"]
    assert server["state"] == "DRAIN"


def test_what_haproxy_refuses_is_an_error_naming_it(runtime_api):
    api = runtime_api({"set server": "No such server.\n\n"})
    with pytest.raises(CommandExecutionError, match=r"refused 'set server cinder_api/n9 state maint': No such server\.$"):
        cinder_haproxy.set_server_state(api.path, "cinder_api", "n9", "maint")


@pytest.mark.parametrize("server, state", [("n1; shutdown sessions server cinder_api/n2", "drain"),
                                           ("n1", "drain\nset server cinder_api/n2 state maint")])
def test_a_second_command_never_reaches_the_socket(runtime_api, server, state):
    api = runtime_api({"set server": "\n"})
    with pytest.raises(CommandExecutionError, match="refused runtime API command"):
        cinder_haproxy.set_server_state(api.path, "cinder_api", server, state)
    assert api.commands == []


def test_wait_drained_returns_once_the_last_request_ends(runtime_api):
    draining = _with_status("DRAIN", scur="1")
    api = runtime_api({"show stat": [draining, draining, _with_status("DRAIN", scur="0")]})
    left = cinder_haproxy.wait_drained(api.path, "cinder_api", "n2", timeout=10, interval=0.01)
    assert left == {"drained": True, "state": "DRAIN", "sessions": 0, "queued": 0, "waited": left["waited"],
                    "problem": None}
    assert api.commands == ["show stat"] * 3 and left["waited"] < 5


def test_wait_drained_stops_at_its_bound_saying_what_was_left(runtime_api):
    api = runtime_api({"show stat": [_with_status("MAINT", scur="2", qcur="1")]})
    left = cinder_haproxy.wait_drained(api.path, "cinder_api", "n2", timeout=0.3, interval=0.05)
    assert (left["drained"], left["state"], left["sessions"], left["queued"]) == (False, "MAINT", 2, 1)
    assert 0.3 <= left["waited"] < 3 and left["problem"] is None


def test_wait_drained_does_not_wait_for_a_server_that_takes_requests(runtime_api):
    api = runtime_api({"show stat": SHOW_STAT_MAINT})
    left = cinder_haproxy.wait_drained(api.path, "cinder_api", "n1", timeout=30)
    assert left["drained"] is False and left["state"] == "UP" and left["waited"] < 5
    assert left["problem"] == "cinder_api/n1 is UP, not draining: set its state to drain first"
    with pytest.raises(CommandExecutionError, match="has no server cinder_api/n7"):
        cinder_haproxy.wait_drained(api.path, "cinder_api", "n7")


def test_a_runtime_api_that_does_not_answer_is_an_error_within_the_timeout(runtime_api):
    api = runtime_api({"show stat": None})
    started = time.monotonic()
    with pytest.raises(CommandExecutionError, match="did not answer 'show stat': timed out"):
        cinder_haproxy.server_states(api.path, timeout=0.3)
    assert time.monotonic() - started < 3
    with pytest.raises(CommandExecutionError, match=r"chx-.*/gone\.sock did not answer"):
        cinder_haproxy.server_states(os.path.join(os.path.dirname(api.path), "gone.sock"))


def test_an_answer_that_is_not_show_stat_is_an_error(runtime_api):
    api = runtime_api({"show stat": "Permission denied\n"})
    with pytest.raises(CommandExecutionError, match="not an answer to show stat: 'Permission denied'"):
        cinder_haproxy.server_states(api.path)


# ---------------------------------------------------------------- check_config

FAKE_HAPROXY = """#!/bin/bash
# stands in for haproxy -c -f FILE: records what it was given, answers as HAProxy 2.6 does
{ echo "args=$*"; stat -c 'file=%a' -- "$3"; stat -c 'folder=%a' -- "$(dirname -- "$3")"; echo "cwd=$PWD"
  echo "env=$(env | cut -d= -f1 | sort | tr '\\n' ' ')"; } > "$RECORD_TO" 2>&1 || true
cp -- "$3" "$RECORD_TO.text"
echo "[NOTICE]   (123) : haproxy version is 2.6.12-1+deb12u4" >&2
echo "[NOTICE]   (123) : path to executable is /usr/sbin/haproxy" >&2
if grep -q bogus -- "$3"; then
  echo "[ALERT]    (123) : config : parsing [$3:2] : unknown keyword 'bogus' in 'global' section" >&2
  echo "[ALERT]    (123) : config : Fatal errors found in configuration." >&2
  exit 1
fi
grep -q slow -- "$3" && exec sleep 5
echo "Configuration file is valid"
"""


@pytest.fixture
def fake_haproxy(tmp_path):
    program = tmp_path / "haproxy"
    record = tmp_path / "record"
    program.write_text(FAKE_HAPROXY.replace("$RECORD_TO", str(record)))
    program.chmod(0o755)
    return str(program), record


@pytest.fixture
def temp_folder(tmp_path, monkeypatch):
    """The temp folder check_config makes its own in: the test's, so that what is left there is
    this test's alone."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def test_check_config_gives_haproxy_a_private_copy_and_leaves_nothing(fake_haproxy, temp_folder, monkeypatch):
    program, record = fake_haproxy
    monkeypatch.setenv("CINDER_HA_CANARY", "not for haproxy")
    ok, message = cinder_haproxy.check_config("global\n    master-worker\n", binary=program)
    assert (ok, message) == (True, "Configuration file is valid")
    seen = dict(line.split("=", 1) for line in record.read_text().splitlines())
    args = seen["args"].split()
    assert args[:2] == ["-c", "-f"] and args[2].endswith("/haproxy.cfg")
    assert (seen["file"], seen["folder"], seen["cwd"]) == ("600", "700", "/")
    assert {"LANG", "PATH"} <= set(seen["env"].split()) and "CINDER_HA_CANARY" not in seen["env"]
    assert pathlib.Path(f"{record}.text").read_text() == "global\n    master-worker\n"
    assert os.path.dirname(os.path.dirname(args[2])) == str(temp_folder)
    assert os.path.basename(os.path.dirname(args[2])).startswith("cinder-haproxy-")
    assert os.listdir(temp_folder) == []


def test_check_config_refusal_names_the_config_not_the_temp_file(fake_haproxy):
    program, _record = fake_haproxy
    ok, message = cinder_haproxy.check_config("global\n    bogus\n", binary=program)
    assert ok is False
    assert message.splitlines() == [
        "[ALERT]    (123) : config : parsing [<config>:2] : unknown keyword 'bogus' in 'global' section",
        "[ALERT]    (123) : config : Fatal errors found in configuration."]


def test_check_config_bounded_and_without_a_program(fake_haproxy, temp_folder, tmp_path):
    program, _record = fake_haproxy
    assert cinder_haproxy.check_config("slow\n", binary=program, timeout=0.5) == (
        False, f"{program} -c did not answer within 0.5s")
    assert cinder_haproxy.check_config("", binary=str(tmp_path / "none")) == (
        False, f"{tmp_path / 'none'} cannot be run: No such file or directory")
    assert os.listdir(temp_folder) == []


def test_virtual_needs_haproxy(monkeypatch):
    monkeypatch.setattr(cinder_haproxy.shutil, "which", lambda name, path=None: None)
    ok, reason = cinder_haproxy.__virtual__()
    assert ok is False and "haproxy is not installed" in reason
    monkeypatch.setattr(cinder_haproxy.shutil, "which", lambda name, path=None: "/usr/sbin/haproxy")
    assert cinder_haproxy.__virtual__() == "cinder_haproxy"


# ---------------------------------------------------------------- config_file, install_config

GOOD = "global\n    master-worker\n"


def test_config_file_reads_the_text_or_none(tmp_path):
    path = tmp_path / "cinder-ha.cfg"
    assert cinder_haproxy.config_file(str(path)) is None
    path.write_text(GOOD)
    assert cinder_haproxy.config_file(str(path)) == GOOD
    (tmp_path / "link.cfg").symlink_to(path)  # reading follows a link
    assert cinder_haproxy.config_file(str(tmp_path / "link.cfg")) == GOOD
    with pytest.raises(CommandExecutionError, match="cannot be read"):
        cinder_haproxy.config_file(str(tmp_path))


def test_install_config_writes_atomically_with_owner_and_mode(fake_haproxy, tmp_path):
    program, record = fake_haproxy
    path = tmp_path / "etc" / "haproxy" / "cinder-ha.cfg"  # the folder is made
    assert cinder_haproxy.install_config(str(path), GOOD, binary=program, mode="0640", user="root",
                                         group="root") is True
    assert path.read_text() == GOOD and pathlib.Path(f"{record}.text").read_text() == GOOD  # checked first
    found = path.stat()
    assert (found.st_mode & 0o777, found.st_uid, found.st_gid) == (0o640, 0, 0)
    assert path.parent.stat().st_mode & 0o777 == 0o755
    inode = found.st_ino
    assert cinder_haproxy.install_config(str(path), GOOD, binary=program, group="root") is False
    assert path.stat().st_ino == inode  # the same content: not rewritten
    path.chmod(0o666)
    assert cinder_haproxy.install_config(str(path), GOOD, binary=program, group="root") is False
    assert path.stat().st_mode & 0o777 == 0o640  # the mode set right all the same
    assert cinder_haproxy.install_config(str(path), GOOD + "    nbthread 2\n", binary=program, group="root") is True
    assert path.read_text() == GOOD + "    nbthread 2\n"
    assert sorted(os.listdir(path.parent)) == ["cinder-ha.cfg"]  # no temp file left


def test_install_config_group_defaults_to_haproxy_when_it_exists(fake_haproxy, tmp_path, monkeypatch):
    program, _record = fake_haproxy
    groups = {"haproxy": 113, "root": 0}
    monkeypatch.setattr(cinder_haproxy.grp, "getgrnam",
                        lambda name: type("G", (), {"gr_gid": groups[name]}) if name in groups else
                        (_ for _ in ()).throw(KeyError(name)))
    monkeypatch.setattr(cinder_haproxy.os, "fchown", lambda fd, uid, gid: seen.append((uid, gid)))
    seen = []
    cinder_haproxy.install_config(str(tmp_path / "a.cfg"), GOOD, binary=program)
    del groups["haproxy"]
    cinder_haproxy.install_config(str(tmp_path / "b.cfg"), GOOD, binary=program)
    assert seen == [(0, 113), (0, 0)]


def test_install_config_refuses_what_haproxy_refuses_and_writes_nothing(fake_haproxy, tmp_path):
    program, _record = fake_haproxy
    path = tmp_path / "cinder-ha.cfg"
    path.write_text(GOOD)
    with pytest.raises(CommandExecutionError, match=r"HAProxy refuses the config for .*cinder-ha\.cfg \(nothing "
                                                    r"written\): .*unknown keyword 'bogus'"):
        cinder_haproxy.install_config(str(path), "global\n    bogus\n", binary=program, group="root")
    assert path.read_text() == GOOD
    assert [name for name in os.listdir(tmp_path) if name.startswith(".")] == []  # no temp file left


def test_install_config_refuses_a_link_or_not_a_file(fake_haproxy, tmp_path):
    program, _record = fake_haproxy
    target = tmp_path / "target"
    target.write_text("elsewhere\n")
    link = tmp_path / "cinder-ha.cfg"
    link.symlink_to(target)
    with pytest.raises(CommandExecutionError, match="is a symbolic link or not a regular file"):
        cinder_haproxy.install_config(str(link), GOOD, binary=program, group="root")
    assert link.is_symlink() and target.read_text() == "elsewhere\n"
    (tmp_path / "folder.cfg").mkdir()
    with pytest.raises(CommandExecutionError, match="is a symbolic link or not a regular file"):
        cinder_haproxy.install_config(str(tmp_path / "folder.cfg"), GOOD, binary=program, group="root")
    with pytest.raises(CommandExecutionError, match="not usable"):
        cinder_haproxy.install_config(str(tmp_path / "x.cfg"), GOOD, binary=program, user="no-such-user-here")


# ---------------------------------------------------------------- running, reload

def test_running_is_a_live_process_of_the_binary(tmp_path):
    pid_file = tmp_path / "haproxy.pid"
    assert cinder_haproxy.running(str(pid_file)) is False  # no pid file
    sleeper = subprocess.Popen(["/bin/sleep", "30"])
    try:
        pid_file.write_text(f"{sleeper.pid}\n")
        assert cinder_haproxy.running(str(pid_file), binary="/bin/sleep") is True
        assert cinder_haproxy.running(str(pid_file)) is False  # alive, but not haproxy: a recycled pid
    finally:
        sleeper.kill()
        sleeper.wait()
    assert cinder_haproxy.running(str(pid_file), binary="/bin/sleep") is False  # gone
    pid_file.write_text("garbage\n")
    assert cinder_haproxy.running(str(pid_file)) is False


FAKE_AGENT = """#!/bin/bash
env | sort > "$0.env"
echo "$*" > "$0.args"
[ "$OCF_RESKEY_fail" = yes ] || exit 0
for n in 1 2 3 4 5 6 7; do echo "haproxy[1]: ERROR: line $n" >&2; done
exit 1
"""


@pytest.fixture
def fake_agent(tmp_path):
    agent = tmp_path / "haproxy"
    agent.write_text(FAKE_AGENT)
    agent.chmod(0o755)
    return agent


def test_reload_runs_the_agent_as_pacemaker_would(fake_agent, monkeypatch):
    monkeypatch.setenv("CINDER_HA_CANARY", "not for the agent")
    assert cinder_haproxy.reload(str(fake_agent), {"config": "/etc/haproxy/cinder-ha.cfg", "pid": "/run/x.pid"},
                                 "p_haproxy", timeout=30) is True
    assert pathlib.Path(f"{fake_agent}.args").read_text() == "reload\n"
    seen = dict(line.split("=", 1) for line in pathlib.Path(f"{fake_agent}.env").read_text().splitlines())
    assert {key: seen[key] for key in ("OCF_ROOT", "OCF_RESOURCE_INSTANCE", "OCF_RESOURCE_TYPE",
                                       "OCF_RESOURCE_PROVIDER", "OCF_RESKEY_config", "OCF_RESKEY_pid",
                                       "OCF_RESKEY_CRM_meta_timeout")} == {
        "OCF_ROOT": "/usr/lib/ocf", "OCF_RESOURCE_INSTANCE": "p_haproxy", "OCF_RESOURCE_TYPE": "haproxy",
        "OCF_RESOURCE_PROVIDER": "openstack", "OCF_RESKEY_config": "/etc/haproxy/cinder-ha.cfg",
        "OCF_RESKEY_pid": "/run/x.pid", "OCF_RESKEY_CRM_meta_timeout": "30000"}
    assert "CINDER_HA_CANARY" not in seen


def test_a_failed_reload_is_an_error_with_the_agents_last_words(fake_agent):
    with pytest.raises(CommandExecutionError) as caught:
        cinder_haproxy.reload(str(fake_agent), {"fail": "yes"}, "p_haproxy")
    message = str(caught.value)
    assert "reload of p_haproxy failed (rc 1)" in message
    assert "line 7" in message and "line 3" in message and "line 2" not in message
    with pytest.raises(CommandExecutionError, match="is not a parameter name"):
        cinder_haproxy.reload(str(fake_agent), {"config; x": "y"}, "p_haproxy")
