"""Result conversion between spec versions, as libcni does it."""

import pytest

from podnet.cni.errors import CNIError
from podnet.cni.types import convert, to_current

R110 = {
    "cniVersion": "1.1.0",
    "interfaces": [{"name": "eth0", "mac": "aa:bb:cc:dd:ee:ff", "mtu": 1400, "sandbox": "/var/run/netns/x"}],
    "ips": [
        {"address": "10.1.0.5/24", "gateway": "10.1.0.1", "interface": 0},
        {"address": "10.2.0.5/24", "interface": 0},
        {"address": "fd00::5/64", "gateway": "fd00::1", "interface": 0},
    ],
    "routes": [{"dst": "0.0.0.0/0", "gw": "10.1.0.1", "mtu": 1300, "priority": 10, "table": 100},
               {"dst": "fd00::/8"}],
    "dns": {"nameservers": ["10.96.0.10"]},
}


def test_to_040_adds_version_and_drops_110_fields():
    r = convert(R110, "0.4.0")
    assert [ip["version"] for ip in r["ips"]] == ["4", "4", "6"]
    assert r["routes"][0] == {"dst": "0.0.0.0/0", "gw": "10.1.0.1"}
    assert "mtu" not in r["interfaces"][0]
    assert r["cniVersion"] == "0.4.0"


def test_to_100_keeps_layout_without_version():
    r = convert(R110, "1.0.0")
    assert all("version" not in ip for ip in r["ips"])
    assert r["ips"][0]["interface"] == 0  # interface index 0 must survive
    assert "priority" not in r["routes"][0]


def test_110_route_fields_survive_110():
    assert convert(R110, "1.1.0")["routes"][0]["table"] == 100


def test_to_020_takes_first_address_per_family_and_splits_routes():
    r = convert(R110, "0.2.0")
    assert r["ip4"] == {"ip": "10.1.0.5/24", "gateway": "10.1.0.1", "routes": [{"dst": "0.0.0.0/0", "gw": "10.1.0.1"}]}
    assert r["ip6"] == {"ip": "fd00::5/64", "gateway": "fd00::1", "routes": [{"dst": "fd00::/8"}]}
    assert "interfaces" not in r and "ips" not in r


def test_to_020_without_addresses_is_an_error():
    with pytest.raises(CNIError) as e:
        convert({"cniVersion": "1.0.0", "interfaces": [{"name": "lo"}]}, "0.1.0")
    assert e.value.code == 1


def test_020_up_to_current():
    old = {"cniVersion": "0.2.0", "ip4": {"ip": "10.1.0.5/24", "gateway": "10.1.0.1", "routes": [{"dst": "0.0.0.0/0"}]},
           "dns": {}}
    cur = to_current(old)
    assert cur["ips"] == [{"address": "10.1.0.5/24", "gateway": "10.1.0.1"}]
    assert cur["routes"] == [{"dst": "0.0.0.0/0"}]
    assert convert(old, "0.3.1")["ips"][0]["version"] == "4"


def test_round_trip_040_100_040_is_identity():
    r040 = convert(R110, "0.4.0")
    assert convert(convert(r040, "1.0.0"), "0.4.0") == r040


@pytest.mark.parametrize("bad", ["2.0.0", "0.5.0", "x"])
def test_unknown_target_version(bad):
    with pytest.raises(CNIError) as e:
        convert(R110, bad)
    assert e.value.code == 1
