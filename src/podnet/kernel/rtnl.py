"""A small rtnetlink client: links, addresses, routes and bridge ports, standard library only.

Messages are packed by hand (struct) from the uapi headers: nlmsghdr, ifinfomsg, ifaddrmsg,
rtmsg and rtattr TLVs. Every request asks for an ACK and turns a negative errno into OSError,
so callers can treat EEXIST/ENODEV like any other OS error.
"""

from __future__ import annotations

import errno as _errno
import os
import struct

# The C module directly: `import socket` costs ~11 ms (it builds IntEnums through `enum`).
import _socket as socket
from collections.abc import Iterator

NETLINK_ROUTE = 0
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_REQUEST, NLM_F_MULTI, NLM_F_ACK = 0x1, 0x2, 0x4
NLM_F_DUMP = 0x300
NLM_F_REPLACE, NLM_F_EXCL, NLM_F_CREATE = 0x100, 0x200, 0x400
NLA_F_NESTED = 0x8000

RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK, RTM_SETLINK = 16, 17, 18, 19
RTM_NEWADDR, RTM_DELADDR, RTM_GETADDR = 20, 21, 22
RTM_NEWROUTE, RTM_DELROUTE, RTM_GETROUTE = 24, 25, 26
RTM_NEWNEIGH, RTM_DELNEIGH, RTM_GETNEIGH = 28, 29, 30

AF_UNSPEC, AF_INET, AF_BRIDGE, AF_INET6 = 0, 2, 7, 10
IFF_UP, IFF_PROMISC = 0x1, 0x100

IFLA_ADDRESS, IFLA_IFNAME, IFLA_MTU, IFLA_LINK, IFLA_MASTER = 1, 3, 4, 5, 10
IFLA_TXQLEN = 13
IFLA_PROTINFO, IFLA_LINKINFO, IFLA_AF_SPEC, IFLA_NET_NS_FD, IFLA_PROMISCUITY = 12, 18, 26, 28, 30
IFLA_INFO_KIND, IFLA_INFO_DATA, IFLA_INFO_SLAVE_KIND, IFLA_INFO_SLAVE_DATA = 1, 2, 4, 5
IFLA_LINK_NETNSID = 37
IFLA_IFALIAS = 20
VETH_INFO_PEER = 1
IFLA_VLAN_ID = 1
IFLA_VXLAN_ID, IFLA_VXLAN_LINK, IFLA_VXLAN_LOCAL, IFLA_VXLAN_LEARNING, IFLA_VXLAN_PORT = 1, 3, 4, 7, 15
NDA_DST, NDA_LLADDR = 1, 2
NUD_PERMANENT = 0x80
NTF_SELF = 0x02
RTNH_F_ONLINK = 0x4
RTPROT_PODNET = 158  # routes the node agent owns carry this protocol number
IFLA_BR_VLAN_FILTERING = 7
IFLA_BRPORT_MODE = 4  # hairpin
IFLA_BRIDGE_FLAGS, IFLA_BRIDGE_VLAN_INFO = 0, 2
BRIDGE_FLAGS_SELF = 2
BRIDGE_VLAN_INFO_PVID, BRIDGE_VLAN_INFO_UNTAGGED = 0x2, 0x4

IFA_ADDRESS, IFA_LOCAL = 1, 2
RTA_DST, RTA_OIF, RTA_GATEWAY, RTA_PRIORITY, RTA_PREFSRC, RTA_METRICS, RTA_TABLE = 1, 4, 5, 6, 7, 8, 15
RTAX_MTU, RTAX_ADVMSS = 2, 8
RT_TABLE_MAIN = 254
RT_SCOPE_UNIVERSE, RT_SCOPE_LINK, RT_SCOPE_HOST, RT_SCOPE_NOWHERE = 0, 253, 254, 255
RTPROT_BOOT, RTPROT_KERNEL = 3, 2
RTN_UNICAST = 1

_NLMSGHDR = struct.Struct("=IHHII")
_IFINFOMSG = struct.Struct("=BxHiII")
_IFADDRMSG = struct.Struct("=BBBBI")
_RTMSG = struct.Struct("=BBBBBBBBI")
_RTATTR = struct.Struct("=HH")
_NDMSG = struct.Struct("=BxxxiHBB")


def _align(n: int) -> int:
    return (n + 3) & ~3


def attr(kind: int, payload: bytes) -> bytes:
    length = _RTATTR.size + len(payload)
    return _RTATTR.pack(length, kind) + payload + b"\0" * (_align(length) - length)


def attr_str(kind: int, value: str) -> bytes:
    return attr(kind, value.encode() + b"\0")


def attr_u32(kind: int, value: int) -> bytes:
    return attr(kind, struct.pack("=I", value))


def attr_u8(kind: int, value: int) -> bytes:
    return attr(kind, struct.pack("=B", value))


def nested(kind: int, *children: bytes) -> bytes:
    return attr(kind | NLA_F_NESTED, b"".join(children))


def parse_attrs(data: bytes) -> dict[int, bytes]:
    out: dict[int, bytes] = {}
    pos = 0
    while pos + _RTATTR.size <= len(data):
        length, kind = _RTATTR.unpack_from(data, pos)
        if length < _RTATTR.size:
            break
        out[kind & ~NLA_F_NESTED] = data[pos + _RTATTR.size: pos + length]
        pos += _align(length)
    return out


def _cstr(b: bytes) -> str:
    return b.split(b"\0", 1)[0].decode()


def _u32(b: bytes) -> int:
    return struct.unpack("=I", b[:4])[0]


def mac_str(b: bytes) -> str:
    """aa:bb:cc:dd:ee:ff of 6 bytes."""
    return ":".join(f"{x:02x}" for x in b)


def ip_bytes(ip: str) -> tuple[int, bytes]:
    if ":" in ip:
        return AF_INET6, socket.inet_pton(socket.AF_INET6, ip)
    return AF_INET, socket.inet_pton(socket.AF_INET, ip)


def _ip_str(family: int, b: bytes) -> str:
    return socket.inet_ntop(socket.AF_INET6 if family == AF_INET6 else socket.AF_INET, b)


class Link:
    __slots__ = ("index", "name", "flags", "mtu", "mac", "master", "kind", "promiscuity", "hairpin",
                 "vlan_filtering", "link_netnsid", "peer_index", "alias")

    def __init__(self, index: int, name: str, flags: int) -> None:
        self.index = index
        self.name = name
        self.flags = flags
        self.mtu = 0
        self.mac = ""
        self.master = 0
        self.kind = ""
        self.promiscuity = 0
        self.hairpin: bool | None = None
        self.vlan_filtering: bool | None = None
        self.link_netnsid: int | None = None
        self.peer_index = 0
        self.alias = ""

    @property
    def up(self) -> bool:
        return bool(self.flags & IFF_UP)

    def __repr__(self) -> str:
        return f"Link({self.index}, {self.name!r}, kind={self.kind!r}, master={self.master}, mac={self.mac})"


class Address:
    __slots__ = ("index", "family", "address", "prefixlen", "scope")

    def __init__(self, index: int, family: int, address: str, prefixlen: int, scope: int) -> None:
        self.index = index
        self.family = family
        self.address = address
        self.prefixlen = prefixlen
        self.scope = scope

    @property
    def cidr(self) -> str:
        return f"{self.address}/{self.prefixlen}"

    def __repr__(self) -> str:
        return f"Address({self.cidr} on {self.index})"


class Route:
    """A route as read back from the kernel; dst is a CIDR ("0.0.0.0/0" for default)."""

    __slots__ = ("family", "dst", "gateway", "oif", "table", "scope", "priority", "protocol", "prefsrc", "metrics")

    def __init__(self, family: int, dst: str, table: int, scope: int, protocol: int) -> None:
        self.family = family
        self.dst = dst
        self.gateway = ""
        self.oif = 0
        self.table = table
        self.scope = scope
        self.priority: int | None = None
        self.protocol = protocol
        self.prefsrc = ""
        self.metrics: dict = {}

    def __repr__(self) -> str:
        return f"Route({self.dst} via {self.gateway or '-'} oif {self.oif} table {self.table})"


def random_mac() -> bytes:
    """A random unicast, locally administered MAC address."""
    raw = bytearray(os.urandom(6))
    raw[0] = (raw[0] & 0xFE) | 0x02
    return bytes(raw)


class Netlink:
    """One NETLINK_ROUTE socket, bound to the network namespace it was opened in."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_ROUTE)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        self.sock.bind((0, 0))
        self.seq = 0

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> "Netlink":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- transport ---------------------------------------------------------------------------
    def _send(self, msg_type: int, flags: int, body: bytes) -> int:
        self.seq += 1
        header = _NLMSGHDR.pack(_NLMSGHDR.size + len(body), msg_type, flags | NLM_F_REQUEST, self.seq, 0)
        self.sock.send(header + body)
        return self.seq

    def _replies(self, seq: int) -> Iterator[tuple[int, bytes]]:
        while True:
            data = self.sock.recv(1 << 16)
            pos = 0
            while pos + _NLMSGHDR.size <= len(data):
                length, msg_type, flags, mseq, _ = _NLMSGHDR.unpack_from(data, pos)
                body = data[pos + _NLMSGHDR.size: pos + length]
                pos += _align(length)
                if mseq != seq:
                    continue
                if msg_type == NLMSG_DONE:
                    return
                if msg_type == NLMSG_ERROR:
                    code = struct.unpack_from("=i", body)[0]
                    if code:
                        raise OSError(-code, os.strerror(-code))
                    return
                yield msg_type, body
                if not flags & NLM_F_MULTI:
                    return

    def request(self, msg_type: int, body: bytes, flags: int = 0) -> None:
        for _ in self._replies(self._send(msg_type, flags | NLM_F_ACK, body)):
            pass

    def dump(self, msg_type: int, body: bytes) -> list[bytes]:
        return [b for _, b in self._replies(self._send(msg_type, NLM_F_DUMP, body))]

    # -- links -------------------------------------------------------------------------------
    @staticmethod
    def _parse_link(body: bytes) -> Link:
        family, _, index, flags, _ = _IFINFOMSG.unpack_from(body)
        a = parse_attrs(body[_IFINFOMSG.size:])
        link = Link(index=index, name=_cstr(a.get(IFLA_IFNAME, b"")), flags=flags)
        if IFLA_MTU in a:
            link.mtu = _u32(a[IFLA_MTU])
        if IFLA_ADDRESS in a:
            link.mac = mac_str(a[IFLA_ADDRESS])
        if IFLA_MASTER in a:
            link.master = _u32(a[IFLA_MASTER])
        if IFLA_PROMISCUITY in a:
            link.promiscuity = _u32(a[IFLA_PROMISCUITY])
        if IFLA_LINK in a:
            link.peer_index = _u32(a[IFLA_LINK])
        if IFLA_IFALIAS in a:
            link.alias = _cstr(a[IFLA_IFALIAS])
        if IFLA_LINK_NETNSID in a:
            link.link_netnsid = struct.unpack("=i", a[IFLA_LINK_NETNSID][:4])[0]
        if IFLA_LINKINFO in a:
            info = parse_attrs(a[IFLA_LINKINFO])
            link.kind = _cstr(info.get(IFLA_INFO_KIND, b""))
            if link.kind == "bridge" and IFLA_INFO_DATA in info:
                data = parse_attrs(info[IFLA_INFO_DATA])
                if IFLA_BR_VLAN_FILTERING in data:
                    link.vlan_filtering = bool(data[IFLA_BR_VLAN_FILTERING][0])
            if _cstr(info.get(IFLA_INFO_SLAVE_KIND, b"")) == "bridge" and IFLA_INFO_SLAVE_DATA in info:
                port = parse_attrs(info[IFLA_INFO_SLAVE_DATA])
                if IFLA_BRPORT_MODE in port:
                    link.hairpin = bool(port[IFLA_BRPORT_MODE][0])
        return link

    def link(self, name: str) -> Link | None:
        return self._get_link(_IFINFOMSG.pack(AF_UNSPEC, 0, 0, 0, 0) + attr_str(IFLA_IFNAME, name))

    def link_by_index(self, index: int) -> Link | None:
        return self._get_link(_IFINFOMSG.pack(AF_UNSPEC, 0, index, 0, 0))

    def _get_link(self, body: bytes) -> Link | None:
        try:
            replies = list(self._replies(self._send(RTM_GETLINK, 0, body)))
        except OSError as e:
            if e.errno in (_errno.ENODEV, _errno.ENOENT):
                return None
            raise
        return self._parse_link(replies[0][1]) if replies else None

    def links(self) -> list[Link]:
        return [self._parse_link(b) for b in self.dump(RTM_GETLINK, _IFINFOMSG.pack(AF_UNSPEC, 0, 0, 0, 0))]

    def add_bridge(self, name: str, mtu: int = 0, vlan_filtering: bool = False, mac: str = "") -> None:
        """A bridge with a MAC of its own (`mac`, else a random locally administered one), given
        when it is made: the kernel then never changes it. A bridge left to choose takes the
        lowest MAC of its ports, which changes as pods come and go; the pods' ARP entries for
        their gateway then point at a MAC nobody answers to, and their traffic through it is
        lost for seconds (containernetworking/cni#285, moby#3414)."""
        data = attr_u8(IFLA_BR_VLAN_FILTERING, 1) if vlan_filtering else b""
        info = attr_str(IFLA_INFO_KIND, "bridge") + (nested(IFLA_INFO_DATA, data) if data else b"")
        attrs = attr_str(IFLA_IFNAME, name) + nested(IFLA_LINKINFO, info)
        attrs += attr(IFLA_ADDRESS, bytes(int(x, 16) for x in mac.split(":")) if mac else random_mac())
        if mtu:
            attrs += attr_u32(IFLA_MTU, mtu)
        self.request(RTM_NEWLINK, _IFINFOMSG.pack(AF_UNSPEC, 0, 0, 0, 0) + attrs, NLM_F_CREATE | NLM_F_EXCL)

    def set_bridge_vlan_filtering(self, index: int, on: bool) -> None:
        info = attr_str(IFLA_INFO_KIND, "bridge") + nested(IFLA_INFO_DATA, attr_u8(IFLA_BR_VLAN_FILTERING, int(on)))
        self.request(RTM_NEWLINK, _IFINFOMSG.pack(AF_UNSPEC, 0, index, 0, 0) + nested(IFLA_LINKINFO, info))

    def add_vlan(self, name: str, parent_index: int, vid: int, mtu: int = 0) -> None:
        """An 802.1Q sub-interface `name` of `parent_index` (used for a bridge's VLAN gateway)."""
        info = attr_str(IFLA_INFO_KIND, "vlan") + nested(IFLA_INFO_DATA, attr(IFLA_VLAN_ID, struct.pack("=H", vid)))
        attrs = attr_str(IFLA_IFNAME, name) + attr_u32(IFLA_LINK, parent_index) + nested(IFLA_LINKINFO, info)
        if mtu:
            attrs += attr_u32(IFLA_MTU, mtu)
        self.request(RTM_NEWLINK, _IFINFOMSG.pack(AF_UNSPEC, 0, 0, 0, 0) + attrs, NLM_F_CREATE | NLM_F_EXCL)

    def add_veth(self, name: str, peer: str, mtu: int = 0, peer_netns_fd: int | None = None, mac: str = "") -> None:
        """Create a veth pair `name` here (with MAC `mac` when given) and `peer` in the
        namespace open at `peer_netns_fd`."""
        peer_attrs = attr_str(IFLA_IFNAME, peer)
        if mtu:
            peer_attrs += attr_u32(IFLA_MTU, mtu)
        if peer_netns_fd is not None:
            peer_attrs += attr_u32(IFLA_NET_NS_FD, peer_netns_fd)
        peer_info = _IFINFOMSG.pack(AF_UNSPEC, 0, 0, 0, 0) + peer_attrs
        info = attr_str(IFLA_INFO_KIND, "veth") + nested(IFLA_INFO_DATA, nested(VETH_INFO_PEER, peer_info))
        attrs = attr_str(IFLA_IFNAME, name) + nested(IFLA_LINKINFO, info)
        if mtu:
            attrs += attr_u32(IFLA_MTU, mtu)
        if mac:
            attrs += attr(IFLA_ADDRESS, bytes(int(x, 16) for x in mac.split(":")))
        self.request(RTM_NEWLINK, _IFINFOMSG.pack(AF_UNSPEC, 0, 0, 0, 0) + attrs, NLM_F_CREATE | NLM_F_EXCL)

    def set_link(self, index: int, *, up: bool | None = None, promisc: bool | None = None,
                 master: int | None = None, mtu: int | None = None, netns_fd: int | None = None,
                 name: str | None = None, alias: str | None = None, txqlen: int | None = None) -> None:
        """Change a link (the kernel takes an ifalias only here, not when the link is made)."""
        flags = change = 0
        if up is not None:
            change |= IFF_UP
            flags |= IFF_UP if up else 0
        if promisc is not None:
            change |= IFF_PROMISC
            flags |= IFF_PROMISC if promisc else 0
        attrs = b""
        if master is not None:
            attrs += attr_u32(IFLA_MASTER, master)
        if mtu:
            attrs += attr_u32(IFLA_MTU, mtu)
        if netns_fd is not None:
            attrs += attr_u32(IFLA_NET_NS_FD, netns_fd)
        if name is not None:
            attrs += attr_str(IFLA_IFNAME, name)
        if alias is not None:
            attrs += attr_str(IFLA_IFALIAS, alias)
        if txqlen is not None:
            attrs += attr_u32(IFLA_TXQLEN, txqlen)
        self.request(RTM_NEWLINK, _IFINFOMSG.pack(AF_UNSPEC, 0, index, flags, change) + attrs)

    def set_bridge_port(self, index: int, *, hairpin: bool) -> None:
        info = attr_str(IFLA_INFO_SLAVE_KIND, "bridge") + nested(IFLA_INFO_SLAVE_DATA, attr_u8(IFLA_BRPORT_MODE, int(hairpin)))
        self.request(RTM_NEWLINK, _IFINFOMSG.pack(AF_UNSPEC, 0, index, 0, 0) + nested(IFLA_LINKINFO, info))

    def add_bridge_vlan(self, index: int, vid: int, *, pvid: bool = False, untagged: bool = False, self_: bool = False) -> None:
        """`bridge vlan add dev X vid V [pvid] [untagged] [self]`."""
        flags = (BRIDGE_VLAN_INFO_PVID if pvid else 0) | (BRIDGE_VLAN_INFO_UNTAGGED if untagged else 0)
        spec = attr(IFLA_BRIDGE_VLAN_INFO, struct.pack("=HH", flags, vid))
        if self_:
            spec = attr(IFLA_BRIDGE_FLAGS, struct.pack("=H", BRIDGE_FLAGS_SELF)) + spec
        self.request(RTM_SETLINK, _IFINFOMSG.pack(AF_BRIDGE, 0, index, 0, 0) + nested(IFLA_AF_SPEC, spec))

    def delete_link(self, index: int) -> None:
        self.request(RTM_DELLINK, _IFINFOMSG.pack(AF_UNSPEC, 0, index, 0, 0))

    # -- addresses ---------------------------------------------------------------------------
    def add_address(self, index: int, cidr: str, replace: bool = False) -> None:
        ip, _, plen = cidr.partition("/")
        family, raw = ip_bytes(ip)
        prefixlen = int(plen) if plen else (128 if family == AF_INET6 else 32)
        body = _IFADDRMSG.pack(family, prefixlen, 0, RT_SCOPE_UNIVERSE, index) + attr(IFA_LOCAL, raw) + attr(IFA_ADDRESS, raw)
        self.request(RTM_NEWADDR, body, NLM_F_CREATE | (NLM_F_REPLACE if replace else NLM_F_EXCL))

    def delete_address(self, index: int, cidr: str) -> None:
        ip, _, plen = cidr.partition("/")
        family, raw = ip_bytes(ip)
        body = _IFADDRMSG.pack(family, int(plen), 0, 0, index) + attr(IFA_LOCAL, raw) + attr(IFA_ADDRESS, raw)
        self.request(RTM_DELADDR, body)

    def addresses(self, index: int = 0, family: int = AF_UNSPEC) -> list[Address]:
        out = []
        for body in self.dump(RTM_GETADDR, _IFADDRMSG.pack(family, 0, 0, 0, 0)):
            fam, plen, _, scope, idx = _IFADDRMSG.unpack_from(body)
            if index and idx != index:
                continue
            a = parse_attrs(body[_IFADDRMSG.size:])
            raw = a.get(IFA_LOCAL) or a.get(IFA_ADDRESS)
            if raw:
                out.append(Address(idx, fam, _ip_str(fam, raw), plen, scope))
        return out

    # -- routes ------------------------------------------------------------------------------
    def _route_body(self, dst: str, gateway: str, oif: int, scope: int | None, table: int,
                    priority: int | None, mtu: int, advmss: int, protocol: int, flags: int = 0) -> bytes:
        net, _, plen = dst.partition("/")
        family, raw_dst = ip_bytes(net)
        dst_len = int(plen) if plen else (128 if family == AF_INET6 else 32)
        if scope is None:
            scope = RT_SCOPE_UNIVERSE if gateway else RT_SCOPE_LINK
        body = _RTMSG.pack(family, dst_len, 0, 0, table if table < 256 else 0, protocol, scope, RTN_UNICAST, flags)
        attrs = attr(RTA_DST, raw_dst) if dst_len else b""
        if gateway:
            attrs += attr(RTA_GATEWAY, ip_bytes(gateway)[1])
        if oif:
            attrs += attr_u32(RTA_OIF, oif)
        if priority is not None:
            attrs += attr_u32(RTA_PRIORITY, priority)
        if table >= 256:
            attrs += attr_u32(RTA_TABLE, table)
        metrics = (attr_u32(RTAX_MTU, mtu) if mtu else b"") + (attr_u32(RTAX_ADVMSS, advmss) if advmss else b"")
        if metrics:
            attrs += attr(RTA_METRICS, metrics)
        return body + attrs

    def add_route(self, dst: str, gateway: str = "", oif: int = 0, *, scope: int | None = None,
                  table: int = RT_TABLE_MAIN, priority: int | None = None, mtu: int = 0, advmss: int = 0,
                  replace: bool = False, protocol: int = RTPROT_BOOT, onlink: bool = False) -> None:
        body = self._route_body(dst, gateway, oif, scope, table, priority, mtu, advmss, protocol,
                                RTNH_F_ONLINK if onlink else 0)
        self.request(RTM_NEWROUTE, body, NLM_F_CREATE | (NLM_F_REPLACE if replace else NLM_F_EXCL))

    def delete_route(self, dst: str, gateway: str = "", oif: int = 0, table: int = RT_TABLE_MAIN) -> None:
        body = self._route_body(dst, gateway, oif, RT_SCOPE_NOWHERE, table, None, 0, 0, 0)
        self.request(RTM_DELROUTE, body)

    def routes(self, family: int = AF_UNSPEC, table: int = RT_TABLE_MAIN) -> list[Route]:
        out = []
        for body in self.dump(RTM_GETROUTE, _RTMSG.pack(family, 0, 0, 0, 0, 0, 0, 0, 0)):
            fam, dst_len, _, _, tbl, proto, scope, rtype, _ = _RTMSG.unpack_from(body)
            a = parse_attrs(body[_RTMSG.size:])
            tbl = _u32(a[RTA_TABLE]) if RTA_TABLE in a else tbl
            if (table and tbl != table) or rtype != RTN_UNICAST:
                continue
            zero = "::" if fam == AF_INET6 else "0.0.0.0"
            dst = _ip_str(fam, a[RTA_DST]) if RTA_DST in a else zero
            r = Route(family=fam, dst=f"{dst}/{dst_len}", table=tbl, scope=scope, protocol=proto)
            if RTA_GATEWAY in a:
                r.gateway = _ip_str(fam, a[RTA_GATEWAY])
            if RTA_OIF in a:
                r.oif = _u32(a[RTA_OIF])
            if RTA_PRIORITY in a:
                r.priority = _u32(a[RTA_PRIORITY])
            if RTA_PREFSRC in a:
                r.prefsrc = _ip_str(fam, a[RTA_PREFSRC])
            if RTA_METRICS in a:
                r.metrics = {k: _u32(v) for k, v in parse_attrs(a[RTA_METRICS]).items()}
            out.append(r)
        return out

    # -- vxlan, neighbours and the bridge FDB --------------------------------------------------
    def add_vxlan(self, name: str, vni: int, local: str, port: int, underlay_index: int, mtu: int = 0,
                  learning: bool = False) -> None:
        data = (attr_u32(IFLA_VXLAN_ID, vni) + attr(IFLA_VXLAN_LOCAL, ip_bytes(local)[1])
                + attr(IFLA_VXLAN_PORT, struct.pack("!H", port)) + attr_u8(IFLA_VXLAN_LEARNING, int(learning))
                + attr_u32(IFLA_VXLAN_LINK, underlay_index))
        info = attr_str(IFLA_INFO_KIND, "vxlan") + nested(IFLA_INFO_DATA, data)
        attrs = attr_str(IFLA_IFNAME, name) + nested(IFLA_LINKINFO, info)
        if mtu:
            attrs += attr_u32(IFLA_MTU, mtu)
        self.request(RTM_NEWLINK, _IFINFOMSG.pack(AF_UNSPEC, 0, 0, 0, 0) + attrs, NLM_F_CREATE | NLM_F_EXCL)

    def vxlan_info(self, index: int) -> dict:
        """VNI, local address and port of a vxlan device (to notice a changed config)."""
        for body in self.dump(RTM_GETLINK, _IFINFOMSG.pack(AF_UNSPEC, 0, 0, 0, 0)):
            if _IFINFOMSG.unpack_from(body)[2] != index:
                continue
            info = parse_attrs(parse_attrs(body[_IFINFOMSG.size:]).get(IFLA_LINKINFO, b""))
            data = parse_attrs(info.get(IFLA_INFO_DATA, b""))
            out = {}
            if IFLA_VXLAN_ID in data:
                out["vni"] = _u32(data[IFLA_VXLAN_ID])
            if IFLA_VXLAN_LOCAL in data:
                out["local"] = _ip_str(AF_INET, data[IFLA_VXLAN_LOCAL])
            if IFLA_VXLAN_PORT in data:
                out["port"] = struct.unpack("!H", data[IFLA_VXLAN_PORT][:2])[0]
            return out
        return {}

    def _neigh(self, msg: int, family: int, index: int, dst: str, mac: str, flags: int, nl_flags: int) -> None:
        body = _NDMSG.pack(family, index, NUD_PERMANENT, flags, 0)
        if dst:
            body += attr(NDA_DST, ip_bytes(dst)[1])
        if mac:
            body += attr(NDA_LLADDR, bytes(int(x, 16) for x in mac.split(":")))
        self.request(msg, body, nl_flags)

    def set_neighbour(self, index: int, ip: str, mac: str) -> None:
        """A permanent ARP/ND entry (`ip neigh replace IP lladdr MAC dev X nud permanent`)."""
        family = AF_INET6 if ":" in ip else AF_INET
        self._neigh(RTM_NEWNEIGH, family, index, ip, mac, 0, NLM_F_CREATE | NLM_F_REPLACE)

    def delete_neighbour(self, index: int, ip: str) -> None:
        self._neigh(RTM_DELNEIGH, AF_INET6 if ":" in ip else AF_INET, index, ip, "", 0, 0)

    def set_fdb(self, index: int, mac: str, dst: str) -> None:
        """`bridge fdb replace MAC dev X dst DST self permanent` (where a vxlan sends MAC)."""
        self._neigh(RTM_NEWNEIGH, AF_BRIDGE, index, dst, mac, NTF_SELF, NLM_F_CREATE | NLM_F_REPLACE)

    def delete_fdb(self, index: int, mac: str, dst: str) -> None:
        self._neigh(RTM_DELNEIGH, AF_BRIDGE, index, dst, mac, NTF_SELF, 0)

    def neighbours(self, index: int, family: int) -> list[tuple[str, str, int]]:
        """(ip, mac, state) of one device's neighbours; for AF_BRIDGE, (dst, mac, state) FDB rows."""
        out = []
        for body in self.dump(RTM_GETNEIGH, _NDMSG.pack(family, 0, 0, 0, 0)):
            fam, idx, state, _, _ = _NDMSG.unpack_from(body)
            if idx != index or fam != family:
                continue
            a = parse_attrs(body[_NDMSG.size:])
            dst = a.get(NDA_DST)
            ip = _ip_str(AF_INET6 if dst and len(dst) == 16 else AF_INET, dst) if dst else ""
            out.append((ip, mac_str(a[NDA_LLADDR]) if NDA_LLADDR in a else "", state))
        return out
