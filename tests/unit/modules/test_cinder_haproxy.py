"""cinder_haproxy: the runtime API spoken to over a real unix socket, answered by a stand-in that
gives HAProxy 2.6's captured answers (tests.unit.cinder_ha_lib.test_haproxy), and check_config
with a stand-in haproxy program that reports what it was given. The real HAProxy is
tests/functional/test_haproxy_agent.py's."""
import os
import pathlib
import shutil
import socket
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
