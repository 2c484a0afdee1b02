"""The built-in backends' pure renderers, and what the registry says of them."""

from tests.agent.test_leases_render import lease


def test_render_vxlan_and_host_gw():
    from podnet.agent import backends
    from podnet.agent.backends import host_gw, vxlan

    me = lease("10.244.1.0/24", "a", "172.31.0.11", "aa:00:00:00:00:01")
    others = [me, lease("10.244.2.0/24", "b", "172.31.0.12", "aa:00:00:00:00:02"),
              lease("10.244.3.0/24", "c", "172.31.0.13")]  # c has not published its VTEP yet
    d = vxlan.render(me, others)
    assert d.routes == {("10.244.2.0/24", "10.244.2.0", True)}
    assert d.neighbours == {("10.244.2.0", "aa:00:00:00:00:02")}
    assert d.fdb == {("aa:00:00:00:00:02", "172.31.0.12")}
    assert host_gw.render(me, others).routes == {("10.244.2.0/24", "172.31.0.12", False), ("10.244.3.0/24", "172.31.0.13", False)}
    assert backends.get("vxlan").overhead == 50 and backends.get("host-gw").overhead == 0  # pod MTU 1450 and 1500
    assert backends.get("host-gw").one_segment and not backends.get("vxlan").one_segment
