"""The probes, once each, against real servers in a private network namespace."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from podnet.kernel import netns as kns
from podnet.runtime import probes

pytestmark = pytest.mark.root

SERVER = """import http.server
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(s):
        code = 200 if s.path == '/ok' else 302 if s.path == '/moved' else 500
        s.send_response(code); s.send_header('Location', '/ok'); s.end_headers(); s.wfile.write(s.headers.get('X-Probe', '').encode())
    def log_message(s, *a): pass
http.server.HTTPServer(('127.0.0.1', 8080), H).serve_forever()"""


@pytest.fixture
def server_ns(netns):
    ns = netns.new("probe")
    proc = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", SERVER])
    with kns.entered(f"/var/run/netns/{ns}"):
        for _ in range(100):
            if probes.run_tcp("127.0.0.1", 8080, 1)[0]:
                break
            time.sleep(0.05)
    yield ns
    proc.kill()
    proc.wait()


def test_tcp_and_http_probes(server_ns):
    with kns.entered(f"/var/run/netns/{server_ns}"):
        assert probes.run_tcp("127.0.0.1", 8080, 1) == (True, "")
        ok, message = probes.run_tcp("127.0.0.1", 8081, 1)
        assert not ok and "127.0.0.1:8081" in message
        assert probes.run({"httpGet": {"path": "/ok", "port": 8080, "scheme": "HTTP"}, "timeoutSeconds": 1}, "127.0.0.1", {}) \
            == (True, "")
        assert probes.run({"httpGet": {"path": "/moved", "port": 8080}}, "127.0.0.1", {})[0]  # 3xx counts as success
        ok, message = probes.run({"httpGet": {"path": "/broken", "port": 8080}}, "127.0.0.1", {})
        assert not ok and "500" in message
        assert not probes.run({"httpGet": {"path": "/ok", "port": 8081}}, "127.0.0.1", {})[0]
        assert probes.run({"tcpSocket": {"port": 8080}}, "127.0.0.1", {})[0]  # host defaults to the pod's IP


def test_exec_probe_exit_code_and_timeout():
    assert probes.run({"exec": {"command": ["true"]}}, "", {"PATH": "/usr/bin:/bin"}) == (True, "")
    ok, message = probes.run({"exec": {"command": ["sh", "-c", "echo nope; exit 3"]}}, "", {"PATH": "/usr/bin:/bin"})
    assert not ok and "exited with 3" in message and "nope" in message
    ok, message = probes.run({"exec": {"command": ["sleep", "5"]}, "timeoutSeconds": 0.3}, "", {"PATH": "/usr/bin:/bin"})
    assert not ok and "timed out" in message
    assert not probes.run({"exec": {"command": ["no-such-binary-here"]}}, "", {"PATH": "/usr/bin:/bin"})[0]
