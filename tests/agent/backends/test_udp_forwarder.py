"""The udp backend's forwarder (forwarder.c) on real packets: two namespaces joined by a veth
pair stand for two nodes, each with its TUN device and forwarder. Checks what flannel's UDP
backend does: the whole inner IPv4 packet as the UDP payload on port 8285, the TTL decremented
with a valid checksum, ICMP net unreachable for a cluster address nobody leases, datagrams from
addresses that are no node dropped."""

from __future__ import annotations

import errno
import socket
import struct
import subprocess
import threading
import time

import pytest

from podnet.agent.backends import udp
from podnet.agent.backends.udp import native
from podnet.kernel import netns as kns
from podnet.kernel import rtnl
from tests.conftest import ns_path

pytestmark = pytest.mark.root

A_IP, B_IP, STRANGER = "172.31.250.1", "172.31.250.2", "172.31.250.3"


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


@pytest.fixture
def pair(netns):
    try:
        binary = native.binary()
    except native.BuildError as e:
        pytest.skip(str(e))
    a, b = netns.new("udpa"), netns.new("udpb")
    b_fd = kns.open_netns(ns_path(b))
    procs = []
    try:
        with kns.entered(ns_path(a)):
            nl = rtnl.Netlink()
            nl.add_veth("pnua", "pnub", peer_netns_fd=b_fd)
            nl.set_link(nl.link("pnua").index, up=True)
            nl.add_address(nl.link("pnua").index, f"{A_IP}/24")
            tun = udp.ensure_tun(nl, udp.DEVICE, 1472)
            nl.add_address(tun.index, "10.244.1.0/16")
            nl.close()
        with kns.entered(ns_path(b)):
            nl = rtnl.Netlink()
            nl.set_link(nl.link("pnub").index, up=True)
            nl.add_address(nl.link("pnub").index, f"{B_IP}/24")
            nl.add_address(nl.link("pnub").index, f"{STRANGER}/24")
            tun = udp.ensure_tun(nl, udp.DEVICE, 1472)
            nl.add_address(tun.index, "10.244.2.0/16")
            nl.close()
        for ns, me, peer_subnet, peer in ((a, A_IP, "10.244.2.0/24", B_IP), (b, B_IP, "10.244.1.0/24", A_IP)):
            p = subprocess.Popen(["ip", "netns", "exec", ns, binary, udp.DEVICE, me, "8285", "10.244.0.0/16"],
                                 stdin=subprocess.PIPE, stderr=subprocess.PIPE)
            p.stdin.write(f"add {peer_subnet} {peer}\n".encode())
            p.stdin.flush()
            procs.append(p)
        time.sleep(0.3)
        yield a, b, procs
    finally:
        for p in procs:
            if p.poll() is None:
                p.stdin.close()
                p.wait(5)
        import os
        os.close(b_fd)


def stats(proc) -> str:
    proc.stdin.close()  # end of stdin: it prints its counters and exits
    proc.wait(5)
    return proc.stderr.read().decode().strip().splitlines()[-1]


def test_packets_cross_whole_inside_udp_with_the_ttl_decremented(pair):
    a, b, procs = pair
    seen: list[bytes] = []
    with kns.entered(ns_path(b)):
        raw = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(0x0800))
    raw.bind(("pnub", 0x0800))
    raw.settimeout(3)

    def sniff():
        try:
            while len(seen) < 10:
                seen.append(raw.recv(65535))
        except OSError:
            pass

    t = threading.Thread(target=sniff)
    t.start()
    out = subprocess.run(["ip", "netns", "exec", a, "busybox", "ping", "-c", "2", "-W", "2", "10.244.2.0"],
                         capture_output=True, text=True).stdout
    t.join()
    raw.close()
    assert "ttl=63" in out, out  # B's reply (TTL 64) lost one at B's forwarder
    requests = []
    for pkt in seen:
        ihl = (pkt[0] & 0xF) * 4
        if pkt[9] != socket.IPPROTO_UDP:
            continue
        sport, dport = struct.unpack("!HH", pkt[ihl:ihl + 4])
        inner = pkt[ihl + 8:]
        if dport == 8285 and socket.inet_ntoa(pkt[12:16]) == A_IP:
            requests.append(inner)
    assert requests, "no datagram to port 8285 from node A"
    inner = requests[0]
    assert inner[0] >> 4 == 4 and len(inner) == struct.unpack("!H", inner[2:4])[0]  # the whole IPv4 packet
    assert socket.inet_ntoa(inner[12:16]) == "10.244.1.0" and socket.inet_ntoa(inner[16:20]) == "10.244.2.0"
    assert inner[9] == socket.IPPROTO_ICMP and inner[8] == 63  # sent with 64, one hop: A's forwarder
    assert checksum(inner[:20]) == 0  # the header checksum still holds after the TTL changed


def test_a_cluster_address_nobody_leases_is_net_unreachable(pair):
    a, _, procs = pair
    with kns.entered(ns_path(a)):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with s:
        s.settimeout(2)
        s.setsockopt(socket.IPPROTO_IP, 11, 1)  # IP_RECVERR: net unreachable is a soft error for UDP
        s.connect(("10.244.9.9", 9))
        s.send(b"anyone?")
        with pytest.raises(OSError) as e:
            s.recv(100)  # the ICMP error from the forwarder surfaces on the connected socket
        assert e.value.errno == errno.ENETUNREACH
    assert "no-route 1" in stats(procs[0])


def test_datagrams_from_addresses_that_are_no_node_are_dropped(pair):
    a, b, procs = pair
    # an echo request for A's TUN address, as B's forwarder would send it, but from another address
    icmp = struct.pack("!BBHHH", 8, 0, 0, 1, 1) + b"forged"
    icmp = icmp[:2] + struct.pack("!H", checksum(icmp)) + icmp[4:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(icmp), 1, 0, 64, 1, 0, socket.inet_aton("10.244.2.0"),
                     socket.inet_aton("10.244.1.0"))
    ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
    with kns.entered(ns_path(b)):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with s:
        s.bind((STRANGER, 0))
        s.sendto(ip + icmp, (A_IP, 8285))
    time.sleep(0.3)
    line = stats(procs[0])
    assert "foreign 1" in line and "received 0" in line, line


def test_a_bulk_tcp_transfer_arrives_whole(pair):
    """The kernel hands the forwarder 64 KiB TCP segments (TSO), cut here into datagrams of the
    TUN's MTU and joined again on the other side (GRO): every byte must arrive, in order."""
    import hashlib
    import os

    a, b, procs = pair
    data = os.urandom(8_000_000)
    with kns.entered(ns_path(b)):
        srv = socket.socket()
    srv.bind(("10.244.2.0", 9998))
    srv.listen(1)
    got = hashlib.sha256()
    size = [0]

    def serve():
        conn, _ = srv.accept()
        with conn:
            conn.settimeout(10)
            while chunk := conn.recv(1 << 20):
                got.update(chunk)
                size[0] += len(chunk)

    t = threading.Thread(target=serve)
    t.start()
    with kns.entered(ns_path(a)):
        c = socket.socket()
    with c:
        c.settimeout(10)
        c.connect(("10.244.2.0", 9998))
        c.sendall(data)
    t.join(15)
    srv.close()
    assert size[0] == len(data) and got.hexdigest() == hashlib.sha256(data).hexdigest()
    line = stats(procs[0])
    sent = int(line.split()[1])
    assert sent >= len(data) // 1432, line  # one datagram per MTU-sized packet, however the kernel batched them
