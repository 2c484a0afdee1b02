"""The udp backend's pure parts: config, the forwarder's table from the leases, and the commands
that move the forwarder from one table to the next (one lease changed: one line)."""

from __future__ import annotations

import ipaddress

import pytest

from podnet.agent import backends
from podnet.agent.backends import udp
from podnet.agent.backends.udp.forwarder import Forwarder, table_diff
from podnet.api.errors import ValidationError
from tests.agent.test_leases_render import lease


def test_config():
    assert udp.parse({}, "t") == {"Port": 8285}
    assert udp.parse({"Port": 9000}, "t") == {"Port": 9000}
    for fields, field in (({"Port": 0}, "Backend.Port"), ({"Port": "8285"}, "Backend.Port"), ({"VNI": 1}, "Backend.VNI")):
        with pytest.raises(ValidationError) as e:
            udp.parse(fields, "t")
        assert e.value.field == field
    b = backends.get("udp")
    assert b.overhead == 28 and not b.one_segment and b.leased


def test_the_table_sends_every_other_subnet_to_its_node():
    me = lease("10.244.1.0/24", "a", "172.31.0.11")
    others = [me, lease("10.244.2.0/24", "b", "172.31.0.12"), lease("10.244.3.0/24", "c", "172.31.0.13")]
    assert udp.table(udp.render(me, others)) == {"10.244.2.0/24": "172.31.0.12", "10.244.3.0/24": "172.31.0.13"}
    assert udp.tun_address(ipaddress.ip_network("10.244.1.0/24"), ipaddress.ip_network("10.244.0.0/16")) == "10.244.1.0/16"


def test_table_diff_sends_only_what_changed():
    old = {"10.244.2.0/24": "172.31.0.12", "10.244.3.0/24": "172.31.0.13"}
    assert table_diff(old, old) == []
    assert table_diff({}, old) == ["add 10.244.2.0/24 172.31.0.12", "add 10.244.3.0/24 172.31.0.13"]
    assert table_diff(old, {"10.244.2.0/24": "172.31.0.12"}) == ["del 10.244.3.0/24"]
    assert table_diff(old, {**old, "10.244.3.0/24": "172.31.0.99"}) == ["add 10.244.3.0/24 172.31.0.99"]


class FakeProc:
    def __init__(self):
        import io

        self.stdin = io.BytesIO()
        self.stdin.close = lambda: None

    def poll(self):
        return None


def test_a_running_forwarder_gets_one_line_per_changed_lease(tmp_path):
    fwd = Forwarder(str(tmp_path))
    assert fwd.set_table({"10.244.2.0/24": "172.31.0.12"}) == (0, 0)  # none runs yet: it gets all at start
    fwd.proc = FakeProc()
    assert fwd.set_table({"10.244.2.0/24": "172.31.0.12", "10.244.3.0/24": "172.31.0.13"}) == (2, 0)
    assert fwd.set_table({"10.244.3.0/24": "172.31.0.13"}) == (0, 1)
    assert fwd.proc.stdin.getvalue().decode().splitlines() == [
        "add 10.244.2.0/24 172.31.0.12", "add 10.244.3.0/24 172.31.0.13", "del 10.244.2.0/24"]
