"""HAProxy in front of cinder-api (cinder_ha_lib.haproxy): the haproxy.cfg of balanced mode, its
refusal of any value that could add a directive, and the runtime API's answers as HAProxy 2.6
(Debian's 2.6.12) wrote them: captured from a real run (stats socket, show info and show stat with
one server draining with a request under way, then in maintenance, and one down)."""
import re

import pytest

from cinder_ha_lib import haproxy
from cinder_ha_lib.errors import CinderHaError, HaproxyError

SOCKET = "/run/cinder-ha/haproxy.sock"
NODES = [("node1", "192.0.2.11", 8776), ("node2", "192.0.2.12", 8776), ("node3", "192.0.2.13", 8776)]
# What each line of a rendered config may be: nothing else ever reaches the file.
LINE_SHAPES = re.compile(
    r"(#[^\n]*|global|defaults|frontend cinder_api_(internal|public)|backend cinder_api|"
    r"    (master-worker|stats socket /\S+ mode 600 level admin expose-fd listeners|hard-stop-after \d+s|"
    r"log stderr format short daemon [a-z]+|user [\w.-]+|group [\w.-]+|server-state-file /\S+|mode http|"
    r"log global|option (httplog|forwardfor|redispatch 1)|retries 3|retry-on conn-failure empty-response|"
    r"timeout [a-z-]+ \d+s|"
    r"http-request disable-l7-retry unless METH_GET \|\| METH_HEAD \|\| METH_OPTIONS \|\| \{ method PUT DELETE \}|"
    r"load-server-state-from-file global|bind \S+:\d+( ssl crt /\S+)?( transparent)?|"
    r"http-request set-header X-Forwarded-Proto https?|default_backend cinder_api|balance leastconn|"
    r"option httpchk GET /healthcheck|http-check expect status 200|"
    r"server [\w.-]+ \S+:\d+ check inter \d+s fastinter 500ms downinter 1s fall \d+ rise \d+)|)")


def rendered(**overrides):
    arguments = {"servers": NODES, "vip": "192.0.2.10", "runtime_socket": SOCKET, **overrides}
    return haproxy.render_config(**arguments)


def section(text, name):
    """The lines of one section (its header line excluded)."""
    lines = text.splitlines()
    start = lines.index(name) + 1
    end = next((i for i in range(start, len(lines)) if lines[i] and not lines[i].startswith(" ")), len(lines))
    return [line.strip() for line in lines[start:end] if line.strip()]


def refused(**overrides):
    with pytest.raises(HaproxyError) as caught:
        rendered(**overrides)
    return caught.value.problems


# ---------------------------------------------------------------- the config

def test_plain_config_structure():
    text = rendered()
    assert all(LINE_SHAPES.fullmatch(line) for line in text.splitlines())
    assert [line for line in text.splitlines() if line and not line.startswith((" ", "#"))] == [
        "global", "defaults", "frontend cinder_api_internal", "backend cinder_api"]
    assert section(text, "global") == [
        "master-worker", f"stats socket {SOCKET} mode 600 level admin expose-fd listeners", "hard-stop-after 600s",
        "log stderr format short daemon notice"]
    assert section(text, "defaults") == [
        "mode http", "log global", "option httplog", "option forwardfor", "option redispatch 1", "retries 3",
        "retry-on conn-failure empty-response", "timeout connect 5s", "timeout client 600s", "timeout server 600s",
        "timeout http-request 30s", "timeout http-keep-alive 10s", "timeout check 5s"]
    assert section(text, "frontend cinder_api_internal") == [
        "bind 192.0.2.10:8776", "http-request set-header X-Forwarded-Proto http", "default_backend cinder_api"]
    assert section(text, "backend cinder_api") == [
        "balance leastconn", "option httpchk GET /healthcheck", "http-check expect status 200",
        "http-request disable-l7-retry unless METH_GET || METH_HEAD || METH_OPTIONS || { method PUT DELETE }",
        "server node1 192.0.2.11:8776 check inter 2s fastinter 500ms downinter 1s fall 3 rise 2",
        "server node2 192.0.2.12:8776 check inter 2s fastinter 500ms downinter 1s fall 3 rise 2",
        "server node3 192.0.2.13:8776 check inter 2s fastinter 500ms downinter 1s fall 3 rise 2"]


def test_tls_public_frontend_beside_a_plain_internal_one():
    text = rendered(public_vip="203.0.113.10", public_port=443, public_cert="/etc/ssl/private/cinder-api.pem")
    assert section(text, "frontend cinder_api_internal")[:2] == [
        "bind 192.0.2.10:8776", "http-request set-header X-Forwarded-Proto http"]
    assert section(text, "frontend cinder_api_public") == [
        "bind 203.0.113.10:443 ssl crt /etc/ssl/private/cinder-api.pem",
        "http-request set-header X-Forwarded-Proto https", "default_backend cinder_api"]
    # the public port defaults to the internal one; a cert on the internal frontend makes it TLS too
    both = rendered(public_vip="203.0.113.10", cert="/etc/ssl/private/internal.pem")
    assert section(both, "frontend cinder_api_public")[0] == "bind 203.0.113.10:8776"
    assert section(both, "frontend cinder_api_internal")[:2] == [
        "bind 192.0.2.10:8776 ssl crt /etc/ssl/private/internal.pem", "http-request set-header X-Forwarded-Proto https"]


def test_ipv6_addresses_in_brackets_ipv4_bare():
    text = rendered(vip="2001:db8::10", servers=[("node1", "2001:db8::11", 8776), ("node2", "192.0.2.12", 18776)],
                    public_vip="::1", public_port=18872)
    assert "    bind [2001:db8::10]:8776" in text.splitlines()
    assert "    bind [::1]:18872" in text.splitlines()
    assert "    server node1 [2001:db8::11]:8776 check inter 2s fastinter 500ms downinter 1s fall 3 rise 2" in text.splitlines()
    assert "    server node2 192.0.2.12:18776 check inter 2s fastinter 500ms downinter 1s fall 3 rise 2" in text.splitlines()


def test_options_no_log_user_state_file_checks_and_timeouts():
    text = rendered(log_level=None, user="haproxy", state_file="/var/lib/haproxy/cinder-ha.state", inter=5, fall=2,
                    rise=4, check_timeout=3, timeout=900, servers=[("n1", "192.0.2.11", "8776")])
    assert "log" not in " ".join(section(text, "global") + section(text, "defaults"))
    assert "option httplog" not in text
    assert {"user haproxy", "group haproxy", "server-state-file /var/lib/haproxy/cinder-ha.state",
            "hard-stop-after 900s"} <= set(section(text, "global"))
    assert {"load-server-state-from-file global", "timeout check 3s", "timeout client 900s",
            "timeout server 900s"} <= set(section(text, "defaults"))
    assert section(text, "backend cinder_api")[-1] == "server n1 192.0.2.11:8776 check inter 5s fastinter 500ms downinter 1s fall 2 rise 4"
    assert "group staff" in rendered(user="haproxy", group="staff")


@pytest.mark.parametrize("overrides, where", [
    ({"servers": [("node1\nlisten x", "192.0.2.11", 8776)]}, "servers:0:name"),
    ({"servers": [("node 1", "192.0.2.11", 8776)]}, "servers:0:name"),
    ({"servers": [("node1;x", "192.0.2.11", 8776)]}, "servers:0:name"),
    ({"servers": [("-node1", "192.0.2.11", 8776)]}, "servers:0:name"),
    ({"servers": [("node1", "192.0.2.11\n    server evil 198.51.100.1:80", 8776)]}, "servers:0:address"),
    ({"servers": [("node1", "192.0.2.11\n", 8776)]}, "servers:0:address"),
    ({"servers": [("node1", "controller1", 8776)]}, "servers:0:address"),
    ({"servers": [("node1", "0.0.0.0", 8776)]}, "servers:0:address"),
    ({"servers": [("node1", "fe80::1%eth0", 8776)]}, "servers:0:address"),
    ({"servers": [("node1", "192.0.2.11", 0)]}, "servers:0:port"),
    ({"servers": [("node1", "192.0.2.11", 65536)]}, "servers:0:port"),
    ({"servers": [("node1", "192.0.2.11", True)]}, "servers:0:port"),
    ({"servers": [("node1", "192.0.2.11", "8776 backup")]}, "servers:0:port"),
    ({"vip": "0.0.0.0"}, "vip"),
    ({"vip": "::"}, "vip"),
    ({"vip": "224.0.0.1"}, "vip"),
    ({"vip": "192.0.2.10:8776"}, "vip"),
    ({"vip": "192.0.2.10 ssl crt /x"}, "vip"),
    ({"vip": 3221225994}, "vip"),  # ipaddress would take an int
    ({"port": 0}, "port"),
    ({"port": 65536}, "port"),
    ({"public_vip": "203.0.113.10", "public_port": -1}, "public_port"),
    ({"public_vip": "0.0.0.0"}, "public_vip"),
    ({"runtime_socket": "run/haproxy.sock"}, "runtime_socket"),
    ({"runtime_socket": "/run/ha proxy.sock"}, "runtime_socket"),
    ({"runtime_socket": "/run/haproxy.sock level admin"}, "runtime_socket"),
    ({"runtime_socket": "/run/" + "x" * 90}, "runtime_socket"),
    ({"cert": "/etc/ssl/a.pem\n    bind 0.0.0.0:80"}, "cert"),
    ({"cert": "/etc/ssl/a.pem#x"}, "cert"),
    ({"cert": "/etc/ssl/\"a\".pem"}, "cert"),
    ({"cert": "/etc/ssl/${HOME}.pem"}, "cert"),
    ({"cert": "/etc/ssl/../a.pem"}, "cert"),
    ({"public_vip": "203.0.113.10", "public_cert": "cert.pem"}, "public_cert"),
    ({"state_file": "/var/lib/haproxy/state\tx"}, "state_file"),
    ({"log_level": "info\n    stats socket /tmp/open.sock level admin"}, "log_level"),
    ({"log_level": "loud"}, "log_level"),
    ({"user": "root\n    chroot /"}, "user"),
    ({"user": "haproxy", "group": "1staff x"}, "group"),
    ({"inter": 0}, "inter"),
    ({"fall": 0}, "fall"),
    ({"rise": 101}, "rise"),
    ({"check_timeout": "5s"}, "check_timeout"),
    ({"timeout": 0}, "timeout"),
])
def test_a_value_that_could_add_a_directive_or_cannot_work_is_refused(overrides, where):
    problems = refused(**overrides)
    assert len(problems) == 1 and problems[0].startswith(f"{where}: "), problems


# What HAProxy would read as the end of a word or a line, a comment, a quote, an escape or a variable
UNSAFE_CHARACTERS = "\n\r\t\x00\x7f #'\"\\$"
TEXT_KEYS = {"vip": "192.0.2.10", "runtime_socket": SOCKET, "cert": "/etc/ssl/private/a.pem",
             "state_file": "/var/lib/haproxy/cinder-ha.state", "log_level": "notice", "user": "haproxy",
             "group": "haproxy"}


@pytest.mark.parametrize("char", list(UNSAFE_CHARACTERS), ids=repr)
def test_no_unsafe_character_reaches_the_config_whatever_the_value(char):
    """By category, not by case: the character inside every text value, and a control character
    at either end too (an address is read without the spaces around it)."""
    control = char in "\n\r\t\x00\x7f"
    for key, good in TEXT_KEYS.items():
        for value in [good[:3] + char + good[3:]] + ([good + char, char + good] if control else []):
            assert refused(**{key: value})[0].startswith(f"{key}: ")
    for index, key in enumerate(("name", "address", "port")):
        server = list(NODES[0])
        server[index] = str(server[index])[:2] + char + str(server[index])[2:]
        assert refused(servers=[tuple(server)])[0].startswith(f"servers:0:{key}: ")


def test_every_problem_is_listed_at_once_as_a_value_error():
    with pytest.raises(ValueError) as caught:
        rendered(vip="0.0.0.0", port=65536, servers=[("a b", "x", 0)], log_level="x")
    assert isinstance(caught.value, HaproxyError) and isinstance(caught.value, CinderHaError)
    assert [problem.split(":")[0] for problem in caught.value.problems] == [
        "servers", "servers", "servers", "log_level", "vip", "port"]
    assert str(caught.value).startswith("refused HAProxy config:")


@pytest.mark.parametrize("overrides, expected", [
    ({"servers": []}, "servers: a non-empty list"),
    ({"servers": "node1"}, "servers: a non-empty list"),
    ({"servers": [("node1", "192.0.2.11")]}, "servers:0: not a (name, address, port) triple"),
    ({"servers": [("node1", "192.0.2.11", 8776), ("node1", "192.0.2.12", 8776)]}, "servers:1:name: 'node1' names two"),
    ({"servers": [("node1", "2001:db8::1", 8776), ("node2", "2001:db8:0::1", 8776)]},
     "servers:1: [2001:db8:0::1]:8776 is there twice"),
    ({"public_vip": "192.0.2.10"}, "public_vip: 192.0.2.10:8776 is the internal frontend's too"),
    ({"public_port": 443}, "public_port, public_cert: given without public_vip"),
    ({"servers": [("node1", "192.0.2.10", 8776)]}, "servers: node1's 192.0.2.10:8776 is a frontend's: requests would loop"),
])
def test_a_config_that_cannot_work_is_refused(overrides, expected):
    problems = refused(**overrides)
    assert any(problem.startswith(expected) for problem in problems), problems


def test_transparent_binds_every_frontend_and_nothing_else():
    plain = rendered(public_vip="2001:db8::10", public_port=443, public_cert="/etc/ssl/private/cinder-api.pem")
    text = rendered(public_vip="2001:db8::10", public_port=443, public_cert="/etc/ssl/private/cinder-api.pem",
                    transparent=True)
    assert all(LINE_SHAPES.fullmatch(line) for line in text.splitlines())
    assert section(text, "frontend cinder_api_internal")[0] == "bind 192.0.2.10:8776 transparent"
    assert section(text, "frontend cinder_api_public")[0] == (
        "bind [2001:db8::10]:443 ssl crt /etc/ssl/private/cinder-api.pem transparent")
    # only the bind lines differ
    assert [line for line in text.splitlines() if line not in plain.splitlines()] == [
        "    bind 192.0.2.10:8776 transparent",
        "    bind [2001:db8::10]:443 ssl crt /etc/ssl/private/cinder-api.pem transparent"]
    assert "transparent" not in rendered() and "transparent" not in rendered(transparent=False)


@pytest.mark.parametrize("value", ["yes", 1, None, "true"])
def test_transparent_is_true_or_false_only(value):
    assert refused(transparent=value) == [f"transparent: {value!r} is not true or false"]


def test_a_vip_on_another_port_and_a_loopback_vip_are_fine():
    rendered(public_vip="192.0.2.10", public_port=443)
    rendered(vip="127.0.0.131", servers=[("n1", "127.0.0.131", 18881)], port=18871)


# ---------------------------------------------------------------- the runtime API's answers

# Captured from HAProxy 2.6.12 (Debian 2.6.12-1+deb12u4), n2 draining with a 3 s request under way, n3
# down (nothing listens), then n2 in maintenance and idle: the strings are cut at commas only to fit the
# lines, their text is HAProxy's to the byte.
STAT_HEADER = (
    "# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status,weight,"
    "act,bck,chkfail,chkdown,lastchg,downtime,qlimit,pid,iid,sid,throttle,lbtot,tracked,type,rate,rate_lim,"
    "rate_max,check_status,check_code,check_duration,hrsp_1xx,hrsp_2xx,hrsp_3xx,hrsp_4xx,hrsp_5xx,hrsp_other,"
    "hanafail,req_rate,req_rate_max,req_tot,cli_abrt,srv_abrt,comp_in,comp_out,comp_byp,comp_rsp,lastsess,last_chk,"
    "last_agt,qtime,ctime,rtime,ttime,agent_status,agent_code,agent_duration,check_desc,agent_desc,check_rise,"
    "check_fall,check_health,agent_rise,agent_fall,agent_health,addr,cookie,mode,algo,conn_rate,conn_rate_max,"
    "conn_tot,intercepted,dcon,dses,wrew,connect,reuse,cache_lookups,cache_hits,srv_icur,src_ilim,qtime_max,"
    "ctime_max,rtime_max,ttime_max,eint,idle_conn_cur,safe_conn_cur,used_conn_cur,need_conn_est,uweight,"
    "agg_server_status,agg_server_check_status,agg_check_status,-,ssl_sess,ssl_reused_sess,ssl_failed_handshake,"
    "h2_headers_rcvd,h2_data_rcvd,h2_settings_rcvd,h2_rst_stream_rcvd,h2_goaway_rcvd,"
    "h2_detected_conn_protocol_errors,h2_detected_strm_protocol_errors,h2_rst_stream_resp,h2_goaway_resp,"
    "h2_open_connections,h2_backend_open_streams,h2_total_connections,h2_backend_total_streams,h1_open_connections,"
    "h1_open_streams,h1_total_connections,h1_total_streams,h1_bytes_in,h1_bytes_out,h1_spliced_bytes_in,"
    "h1_spliced_bytes_out,\n"
)
SHOW_STAT_DRAINING = STAT_HEADER + (
    "cinder_api_internal,FRONTEND,,,2,2,9978,2,0,0,0,0,0,,,,,OPEN,,,,,,,,,1,2,0,,,,0,2,0,2,,,,0,0,0,0,0,0,,2,2,2,,,"
    "0,0,0,0,,,,,,,,,,,,,,,,,,,,,http,,2,2,2,0,0,0,0,,,0,0,,,,,,,0,,,,,,,,,-,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,2,2,2,"
    "2,170,0,0,0,\n"
    "cinder_api,n1,0,0,1,1,,1,0,0,,0,,0,0,0,0,UP,1,1,0,0,0,4,0,,1,3,1,,1,,2,1,,1,L7OK,200,1,0,0,0,0,0,0,,,,0,0,0,,,"
    ",,1,,,0,0,0,0,,,,Layer7 check passed,,2,3,4,,,,127.0.0.131:18881,,http,,,,,,,,0,1,0,,,0,,0,0,0,0,0,0,0,1,2,1,,"
    ",,-,0,0,0,,,,,,,,,,,,,,,,,,,,,,\n"
    "cinder_api,n2,0,0,1,1,,1,0,0,,0,,0,0,0,0,DRAIN,1,1,0,0,0,0,0,,1,3,2,,1,,2,1,,1,L7OK,200,1,0,0,0,0,0,0,,,,0,0,"
    "0,,,,,1,,,0,0,0,0,,,,Layer7 check passed,,2,3,4,,,,127.0.0.131:18882,,http,,,,,,,,0,1,0,,,0,,0,0,0,0,0,0,0,1,"
    "1,1,,,,-,0,0,0,,,,,,,,,,,,,,,,,,,,,,\n"
    "cinder_api,n3,0,0,0,0,,0,0,0,,0,,0,0,0,0,DOWN,1,1,0,1,1,3,3,,1,3,3,,0,,2,0,,0,L4CON,,0,0,0,0,0,0,0,,,,0,0,0,,,"
    ",,-1,Connection refused,,0,0,0,0,,,,Layer4 connection problem,,2,1,0,,,,127.0.0.131:18883,,http,,,,,,,,0,0,0,,"
    ",0,,0,0,0,0,0,0,0,0,1,1,,,,-,0,0,0,,,,,,,,,,,,,,,,,,,,,,\n"
    "cinder_api,BACKEND,0,0,2,2,998,2,0,0,0,0,,0,0,0,0,UP,1,1,0,,0,4,0,,1,3,0,,2,,1,2,,2,,,,0,0,0,0,0,0,,,,0,0,0,0,"
    "0,0,0,1,,,0,0,0,0,,,,,,,,,,,,,,http,leastconn,,,,,,,0,2,0,0,0,,,0,0,0,0,0,,,,,1,0,0,0,-,0,0,0,0,0,0,0,0,0,0,0,"
    "0,0,0,0,0,2,2,8,8,351,363,0,0,\n"
    "\n"
)

SHOW_STAT_MAINT = STAT_HEADER + (
    "cinder_api_internal,FRONTEND,,,1,2,9978,3,176,244,0,0,0,,,,,OPEN,,,,,,,,,1,2,0,,,,0,1,0,2,,,,0,2,0,0,0,0,,1,2,"
    "3,,,0,0,0,0,,,,,,,,,,,,,,,,,,,,,http,,1,2,3,0,0,0,0,,,0,0,,,,,,,0,,,,,,,,,-,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,1,"
    "1,3,3,255,238,0,0,\n"
    "cinder_api,n1,0,0,1,1,,2,88,122,,0,,0,0,0,0,UP,1,1,0,0,0,7,0,,1,3,1,,2,,2,1,,1,L7OK,200,1,0,1,0,0,0,0,,,,1,0,"
    "0,,,,,1,,,0,0,3001,3002,,,,Layer7 check passed,,2,3,4,,,,127.0.0.131:18881,,http,,,,,,,,0,2,0,,,1,,0,0,3001,"
    "3002,0,1,0,1,2,1,,,,-,0,0,0,,,,,,,,,,,,,,,,,,,,,,\n"
    "cinder_api,n2,0,0,0,1,,1,88,122,,0,,0,0,0,0,MAINT,1,1,0,0,1,3,3,,1,3,2,,1,,2,0,,1,,,,0,1,0,0,0,0,,,,1,0,0,,,,,"
    "4,,,0,0,3001,3001,,,,,,,,,,,,127.0.0.131:18882,,http,,,,,,,,0,1,0,,,1,,0,0,3001,3001,0,1,0,0,1,1,,,,-,0,0,0,,,"
    ",,,,,,,,,,,,,,,,,,,\n"
    "cinder_api,n3,0,0,0,0,,0,0,0,,0,,0,0,0,0,DOWN,1,1,0,1,1,6,6,,1,3,3,,0,,2,0,,0,L4CON,,0,0,0,0,0,0,0,,,,0,0,0,,,"
    ",,-1,Connection refused,,0,0,0,0,,,,Layer4 connection problem,,2,1,0,,,,127.0.0.131:18883,,http,,,,,,,,0,0,0,,"
    ",0,,0,0,0,0,0,0,0,0,1,1,,,,-,0,0,0,,,,,,,,,,,,,,,,,,,,,,\n"
    "cinder_api,BACKEND,0,0,1,2,998,3,176,244,0,0,,0,0,0,0,UP,1,1,0,,0,7,0,,1,3,0,,3,,1,1,,2,,,,0,2,0,0,0,0,,,,2,0,"
    "0,0,0,0,0,1,,,0,0,3001,3002,,,,,,,,,,,,,,http,leastconn,,,,,,,0,3,0,0,0,,,0,0,3001,3002,0,,,,,1,0,0,0,-,0,0,0,"
    "0,0,0,0,0,0,0,0,0,0,0,0,0,3,1,13,13,716,530,0,0,\n"
    "\n"
)

SHOW_INFO = (
    "Name: HAProxy\n"
    "Version: 2.6.12-1+deb12u4\n"
    "Release_date: 2026/10/17\n"
    "Nbthread: 2\n"
    "Nbproc: 1\n"
    "Process_num: 1\n"
    "Pid: 4760\n"
    "Uptime: 0d 0h00m06s\n"
    "Uptime_sec: 6\n"
    "Memmax_MB: 0\n"
    "PoolAlloc_MB: 0\n"
    "PoolUsed_MB: 0\n"
    "PoolFailed: 0\n"
    "Ulimit-n: 19999\n"
    "Maxsock: 19999\n"
    "Maxconn: 9978\n"
    "Hard_maxconn: 9978\n"
    "CurrConns: 1\n"
    "CumConns: 19\n"
    "CumReq: 9\n"
    "MaxSslConns: 0\n"
    "CurrSslConns: 0\n"
    "CumSslConns: 0\n"
    "Maxpipes: 0\n"
    "PipesUsed: 0\n"
    "PipesFree: 0\n"
    "ConnRate: 1\n"
    "ConnRateLimit: 0\n"
    "MaxConnRate: 2\n"
    "SessRate: 1\n"
    "SessRateLimit: 0\n"
    "MaxSessRate: 2\n"
    "SslRate: 0\n"
    "SslRateLimit: 0\n"
    "MaxSslRate: 0\n"
    "SslFrontendKeyRate: 0\n"
    "SslFrontendMaxKeyRate: 0\n"
    "SslFrontendSessionReuse_pct: 0\n"
    "SslBackendKeyRate: 0\n"
    "SslBackendMaxKeyRate: 0\n"
    "SslCacheLookups: 0\n"
    "SslCacheMisses: 0\n"
    "CompressBpsIn: 0\n"
    "CompressBpsOut: 0\n"
    "CompressBpsRateLim: 0\n"
    "Tasks: 22\n"
    "Run_queue: 0\n"
    "Idle_pct: 100\n"
    "node: vm\n"
    "Stopping: 0\n"
    "Jobs: 5\n"
    "Unstoppable Jobs: 1\n"
    "Listeners: 3\n"
    "ActivePeers: 0\n"
    "ConnectedPeers: 0\n"
    "DroppedLogs: 0\n"
    "BusyPolling: 0\n"
    "FailedResolutions: 0\n"
    "TotalBytesOut: 7187\n"
    "TotalSplicdedBytesOut: 0\n"
    "BytesOutRate: 3008\n"
    "DebugCommandsIssued: 0\n"
    "CumRecvLogs: 0\n"
    "Build info: 2.6.12-1+deb12u4\n"
    "Memmax_bytes: 0\n"
    "PoolAlloc_bytes: 134712\n"
    "PoolUsed_bytes: 134712\n"
    "Start_time_sec: 1796679880\n"
    "Tainted: 0\n"
    "\n"
)


def test_show_info_is_read_as_keys_and_values():
    info = haproxy.parse_info(SHOW_INFO)
    assert info["Name"] == "HAProxy" and info["Version"] == "2.6.12-1+deb12u4"
    assert info["Pid"] == "4760" and info["Stopping"] == "0" and info["CurrConns"] == "1"
    assert info["Unstoppable Jobs"] == "1" and info["Build info"] == "2.6.12-1+deb12u4"


@pytest.mark.parametrize("answer", ["", "Unknown command, but maybe one of the following ones is a better match:\n",
                                    "Permission denied\n", SHOW_STAT_MAINT])
def test_what_is_not_an_answer_to_show_info_is_refused(answer):
    with pytest.raises(HaproxyError, match="not an answer to show info"):
        haproxy.parse_info(answer)


def test_show_stat_with_a_server_draining_a_request_under_way():
    servers = haproxy.parse_stat(SHOW_STAT_DRAINING)
    assert list(servers) == ["cinder_api"] and list(servers["cinder_api"]) == ["n1", "n2", "n3"]
    n1, n2, n3 = (servers["cinder_api"][name] for name in ("n1", "n2", "n3"))
    assert n1 == {"status": "UP", "state": "UP", "sessions": 1, "queued": 0, "check": "L7OK",
                  "address": "127.0.0.131:18881", "weight": 1}
    assert (n2["state"], n2["sessions"], n2["check"]) == ("DRAIN", 1, "L7OK")
    assert (n3["state"], n3["sessions"], n3["check"]) == ("DOWN", 0, "L4CON")
    assert not haproxy.drained(n1) and not haproxy.drained(n2) and not haproxy.drained(n3)


def test_show_stat_once_the_server_is_in_maintenance_and_idle():
    servers = haproxy.parse_stat(SHOW_STAT_MAINT)["cinder_api"]
    assert (servers["n2"]["state"], servers["n2"]["sessions"], servers["n2"]["check"]) == ("MAINT", 0, "")
    assert haproxy.drained(servers["n2"])
    assert (servers["n1"]["state"], servers["n1"]["sessions"]) == ("UP", 1)


def _with_status(status, scur="0", qcur="0"):
    """The captured answer, n2's status, scur and qcur replaced (the other statuses HAProxy shows)."""
    header, *rows = SHOW_STAT_MAINT.splitlines()
    columns = header[2:].split(",")
    changed = []
    for row in rows:
        cells = row.split(",")
        if cells[:2] == ["cinder_api", "n2"]:
            cells[columns.index("status")] = status
            cells[columns.index("scur")], cells[columns.index("qcur")] = scur, qcur
        changed.append(",".join(cells))
    return "\n".join([header, *changed])


@pytest.mark.parametrize("status, scur, qcur, state, drained", [
    ("MAINT (via cinder_api/n1)", "0", "0", "MAINT", True),
    ("MAINT (resolution)", "0", "0", "MAINT", True),
    ("DRAIN", "0", "0", "DRAIN", True),
    ("DRAIN", "2", "0", "DRAIN", False),
    ("DRAIN", "0", "1", "DRAIN", False),
    ("no check", "0", "0", "UP", False),
    ("UP 1/3", "0", "0", "UP", False),
    ("DOWN 1/2", "0", "0", "DOWN", False),
    ("NOLB", "0", "0", "NOLB", False),
])
def test_each_status_haproxy_shows_and_whether_it_is_drained(status, scur, qcur, state, drained):
    server = haproxy.parse_stat(_with_status(status, scur, qcur))["cinder_api"]["n2"]
    assert (server["status"], server["state"], haproxy.drained(server)) == (status, state, drained)


@pytest.mark.parametrize("answer", ["", "Unknown command, but maybe one of the following ones is a better match:\n",
                                    SHOW_INFO])
def test_what_is_not_an_answer_to_show_stat_is_refused(answer):
    with pytest.raises(HaproxyError, match="not an answer to show stat"):
        haproxy.parse_stat(answer)


def test_set_server_state_command_and_its_answers():
    assert haproxy.state_command("cinder_api", "node1", "drain") == "set server cinder_api/node1 state drain"
    # the runtime API answers an empty line when it did it (captured), else why not
    assert haproxy.command_error("\n") is None
    assert haproxy.command_error("No such server.\n\n") == "No such server."
    assert haproxy.command_error("No such backend.\n\n") == "No such backend."


@pytest.mark.parametrize("backend, server, state, where", [
    ("cinder_api", "node1; shutdown sessions server cinder_api/node2", "drain", "server"),
    ("cinder_api", "node1\nset server cinder_api/node2 state maint", "drain", "server"),
    ("cinder_api;x", "node1", "drain", "backend"),
    ("cinder_api", "node1", "drain\n", "state"),
    ("cinder_api", "node1", "READY", "state"),
    ("cinder_api", "node1", "up", "state"),
])
def test_set_server_state_refuses_what_would_be_another_command(backend, server, state, where):
    with pytest.raises(HaproxyError) as caught:
        haproxy.state_command(backend, server, state)
    assert [problem.split(":")[0] for problem in caught.value.problems] == [where]
