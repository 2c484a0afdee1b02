"""`podnet mesh router`: one per node, in the node's network namespace (Weave's `weaver`).

It connects over TCP to the peers it is given and to every peer it learns of by gossip (a full
mesh where the underlay allows), and keeps the topology: every peer's own entry (name,
incarnation, version, address, established connections), merged by version. Each change is
gossiped to every connection at once, and everything again every few seconds as a repair.

IPAM is the ring (podnet.ipam.ring): seeded alike by the initial peers, merged from gossip; an
allocation takes from this peer's own ranges, and with none free asks the peer with the most
free space, which gives part of its range away. The ring and this peer's allocations are
written to DIR/ipam.json at every change, so a restarted router comes back with its ranges.

The sleeve carries pod frames: read from a TAP device on the node's bridge, sent in UDP to the
next hop towards the peer that has the destination MAC (learnt from the frames it sent), or to
every reachable peer when the MAC is unknown or broadcast; a router forwards a datagram for
another peer on towards it (relay), so two peers without a direct path talk through a third.

With a password (--password-file), every TCP message and every frame is sealed
(podnet.mesh.crypto); a peer with another password, or none, fails the handshake.

A control socket (DIR/control.sock, one JSON request and reply per line) serves status,
allocate, release, lookup, allocations, rmpeer (podnet.mesh.client).
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import os
import signal
import socket
import sys
import time

from ..ipam.ring import Ring, RingError, ip_str
from ..kernel import rtnl
from ..ipam.ringalloc import RingAllocator
from . import crypto, fastdp, protocol, tap
from .topology import PeerEntry, Topology, uid

GOSSIP_EVERY = 5.0
HEARTBEAT_EVERY, HEARTBEAT_TIMEOUT = 1.0, 5.0  # a connection that hears nothing for this long is dead
RETRY_INITIAL, RETRY_MAX = 1.0, 15.0
TAP_NAME = "podnet-sleeve"


def log(msg: str) -> None:
    print(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {msg}", file=sys.stderr, flush=True)


class Connection:
    def __init__(self, address: str, outbound: bool) -> None:
        self.address = address           # "ip:port" dialled, or the remote end of an accepted one
        self.outbound = outbound
        self.state = "pending"
        self.reason = ""
        self.peer = ""
        self.writer: asyncio.StreamWriter | None = None
        self.channel: crypto.Channel | None = None  # with a password: this connection's sealing
        self.fastdp = False                          # both ends can: frames go through the kernel's VXLAN
        self.peer_address = ""                       # the peer's underlay address
        self.since = time.time()

    def send(self, msg: dict) -> None:
        if self.writer is not None and not self.writer.is_closing():
            self.writer.write(protocol.encode(msg, self.channel))


class Router:
    def __init__(self, name: str, address: str, port: int, peers: list[str], cidr: str, seed: list[str],
                 bridge: str, state_dir: str, mtu: int, password: bytes | None = None, fastdp_port: int = 6784) -> None:
        self.name, self.address, self.port = name, address, port
        # fastdp between peers that connect directly, unless off (0) or encrypted (it cannot be)
        self.fastdp = fastdp.FastDP(bridge, address, fastdp_port, mtu, TAP_NAME) if fastdp_port and not password else None
        self.fastdp_why = "off (--fastdp-port 0)" if not fastdp_port else "off: encryption covers the sleeve only" if password else ""
        self.key = crypto.password_key(password) if password else None
        self.box = crypto.Sleeve(self.key) if self.key else None
        self.initial = [p if ":" in p else f"{p}:{port}" for p in peers]
        self.seed, self.bridge, self.dir, self.mtu = seed, bridge, state_dir, mtu
        self.me = PeerEntry(name, time.time_ns(), 1, address, port)
        self.topology = Topology(self.me)
        self.ring = Ring(cidr, name)
        self.alloc = RingAllocator(self.ring)
        self.ring_changed = asyncio.Event()
        self.ipam_error = ""
        self.by_address: dict[str, Connection] = {}   # dialled targets
        self.inbound: list[Connection] = []
        self.established: dict[str, Connection] = {}  # peer name -> its connection
        self.fast: set[str] = set()                   # peers reached through fastdp
        self.macs: dict[bytes, str] = {}              # MAC -> peer that has it
        self.udp: socket.socket | None = None
        self.tap_fd = -1
        self.stats = {"frames_out": 0, "frames_in": 0, "relayed": 0, "dropped": 0}
        self.ipam_path = os.path.join(state_dir, "ipam.json")

    # -- IPAM ------------------------------------------------------------------------------------
    def load_ipam(self) -> None:
        try:
            with open(self.ipam_path) as f:
                data = json.load(f)
        except FileNotFoundError:
            return
        except (OSError, ValueError) as e:
            log(f"ipam: cannot read {self.ipam_path} ({e}): starting empty")
            return
        try:
            ring = Ring.from_dict(data.get("ring") or {}, self.name)
            if ring.cidr != self.ring.cidr:
                log(f"ipam: {self.ipam_path} is for {ring.cidr}, not {self.ring.cidr}: starting empty")
                return
            self.ring = ring
            self.alloc = RingAllocator.from_dict(data.get("allocator") or {}, ring)
            log(f"ipam: restored {len(self.alloc.allocations())} allocations and ranges "
                f"{', '.join(f'{ip_str(a)}-{ip_str(b - 1)}' for a, b in ring.ranges())}")
        except RingError as e:
            log(f"ipam: {self.ipam_path}: {e}: starting empty")

    def save_ipam(self) -> None:
        tmp = f"{self.ipam_path}.tmp"
        with open(tmp, "w") as f:
            json.dump({"ring": self.ring.to_dict(), "allocator": self.alloc.to_dict()}, f)
        os.replace(tmp, self.ipam_path)

    def ipam_changed(self) -> None:
        self.alloc.sync_free()
        self.save_ipam()
        self.ring_changed.set()
        self.gossip()

    async def allocate(self, handle: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        asked: set[str] = set()
        while True:
            if not self.ring.is_empty():
                ip = self.alloc.allocate(handle)
                if ip is not None:
                    self.ipam_changed()
                    return ip
                donor = self.ring.donor(exclude=asked | set(self.topology.unreachable()))
                if donor is not None:
                    asked.add(donor)
                    self.route_message({"type": "space", "from": self.name, "to": donor})
            left = deadline - time.monotonic()
            if left <= 0:
                why = ("the ring is not known yet (no seed given here, and no peer has told it)" if self.ring.is_empty()
                       else "no free address here, and no reachable peer gave space")
                raise TimeoutError(f"IPAM not ready: {why}")
            self.ring_changed.clear()
            try:
                await asyncio.wait_for(self.ring_changed.wait(), min(left, 1.0))
            except asyncio.TimeoutError:
                asked.clear()  # ask again: a request or its answer may have been lost with a connection

    def on_space_request(self, requester: str) -> None:
        given = self.alloc.donate(requester)
        if given:
            log(f"ipam: gave {ip_str(given[0])}-{ip_str(given[1] - 1)} to {requester}")
            self.ipam_changed()

    def merge_ring(self, data: dict | None) -> None:
        if not data:
            return
        try:
            other = Ring.from_dict(data, self.name)
            if self.ring.merge(other):
                self.ipam_error = ""
                orphans = self.alloc.orphans()
                if orphans:
                    log(f"ipam: allocations outside my ranges after a merge: {orphans}")
                self.ipam_changed()
        except RingError as e:
            if str(e) != self.ipam_error:
                log(f"ipam: refusing a ring update: {e}")
            self.ipam_error = str(e)

    # -- topology and gossip ------------------------------------------------------------------------
    def connections_changed(self) -> None:
        if self.fastdp is not None:
            fast = {name for name, c in self.established.items() if c.fastdp}
            self.fastdp.set_peers({c.peer_address for c in self.established.values() if c.fastdp})
            for peer in fast - self.fast:  # its MACs were learnt on the sleeve's port: fastdp from now on
                self.fastdp.forget_on(TAP_NAME, [rtnl.mac_str(m) for m, p in self.macs.items() if p == peer])
            self.fast = fast
        if self.topology.set_my_connections(set(self.established)):
            self.gossip()

    def gossip(self, exclude: Connection | None = None) -> None:
        msg = {"type": "gossip", "peers": [p.to_dict() for p in self.topology.peers.values()],
               "ring": None if self.ring.is_empty() else self.ring.to_dict()}
        for conn in list(self.established.values()):
            if conn is not exclude:
                conn.send(msg)

    def on_gossip(self, conn: Connection, msg: dict) -> None:
        try:
            entries = [PeerEntry.from_dict(p) for p in msg.get("peers", [])]
        except (KeyError, TypeError, ValueError) as e:
            log(f"gossip from {conn.peer}: bad peer entry ({e})")
            return
        changed = self.topology.merge(entries)
        self.merge_ring(msg.get("ring"))
        if changed:
            self.gossip(exclude=conn)
            self.dial_known()

    def route_message(self, msg: dict) -> None:
        """Send a message for peer msg["to"] towards it, hop by hop over TCP."""
        hop = self.topology.routes().get(msg["to"])
        conn = self.established.get(hop) if hop else None
        if conn is not None:
            conn.send(msg)

    # -- connections -----------------------------------------------------------------------------------
    def dial_known(self) -> None:
        targets = set(self.initial)
        for p in self.topology.peers.values():
            if p.name != self.name and p.name not in self.established:
                targets.add(f"{p.address}:{p.port}")
        for target in targets:
            if target.split(":")[0] == self.address:
                continue
            if target not in self.by_address:
                conn = Connection(target, outbound=True)
                self.by_address[target] = conn
                asyncio.get_running_loop().create_task(self.dial_loop(conn))

    async def dial_loop(self, conn: Connection) -> None:
        delay = RETRY_INITIAL
        host, _, port = conn.address.rpartition(":")
        while True:
            known = next((p for p in self.topology.peers.values() if f"{p.address}:{p.port}" == conn.address), None)
            if known is not None and known.name in self.established and self.established[known.name] is not conn:
                await asyncio.sleep(GOSSIP_EVERY)  # reached through a connection it made to us
                continue
            conn.state, conn.reason = "pending", ""
            try:
                reader, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port)), 5)
            except asyncio.TimeoutError:
                conn.state, conn.reason = "failed", "connect: timed out"
            except OSError as e:
                conn.state, conn.reason = "failed", f"connect: {e.strerror or e}"
            else:
                await self.run_connection(conn, reader, writer)
                delay = RETRY_INITIAL
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX)

    async def accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        host, port = writer.get_extra_info("peername")[:2]
        conn = Connection(f"{host}:{port}", outbound=False)
        self.inbound.append(conn)
        try:
            await self.run_connection(conn, reader, writer)
        finally:
            self.inbound.remove(conn)

    async def run_connection(self, conn: Connection, reader, writer) -> None:
        conn.writer = writer
        nonce = os.urandom(16)
        try:
            writer.write(protocol.encode({"type": "hello", "name": self.name, "incarnation": self.me.incarnation,
                                          "version": protocol.VERSION, "port": self.port, "nonce": nonce.hex(),
                                          "encryption": self.key is not None, "fastdp": self.fastdp is not None}))
            hello = await asyncio.wait_for(protocol.read_message(reader), 10)
            problem = self.refuse(hello)
            if problem:
                conn.state, conn.reason = "failed", problem
                return
            conn.peer = hello["name"]
            if self.key is not None:
                conn.channel = crypto.Channel(self.key, nonce, bytes.fromhex(str(hello.get("nonce", ""))))
                conn.send({"type": "auth"})
                try:
                    auth = await asyncio.wait_for(protocol.read_message(reader, conn.channel), 10)
                except crypto.CryptoError as e:
                    conn.state, conn.reason = "failed", f"encryption: {e}"
                    log(f"connection to {conn.peer} ({conn.address}) refused: encryption: {e}")
                    return
                if auth.get("type") != "auth":
                    conn.state, conn.reason = "failed", "encryption: no auth message"
                    return
            old = self.established.get(conn.peer)
            if old is not None:
                # two connections between the same pair: keep the one the lower name dialled
                keep_new = (conn.outbound and self.name < conn.peer) or (not conn.outbound and conn.peer < self.name)
                if not keep_new:
                    conn.state, conn.reason = "failed", f"duplicate connection to {conn.peer}"
                    return
                old.state, old.reason = "failed", "replaced by a duplicate"
                if old.writer:
                    old.writer.close()
            conn.state, conn.reason, conn.since = "established", "", time.time()
            conn.fastdp = bool(hello.get("fastdp")) and self.fastdp is not None
            conn.peer_address = str(writer.get_extra_info("peername")[0])  # where its VXLAN packets come from
            self.established[conn.peer] = conn
            log(f"connection to {conn.peer} ({conn.address}) established")
            self.connections_changed()
            self.gossip()
            while True:
                try:
                    msg = await asyncio.wait_for(protocol.read_message(reader, conn.channel), HEARTBEAT_TIMEOUT)
                except asyncio.TimeoutError:
                    raise ConnectionError(f"heartbeat: nothing from {conn.peer} for {HEARTBEAT_TIMEOUT:g} s") from None
                kind = msg["type"]
                if kind == "gossip":
                    self.on_gossip(conn, msg)
                elif kind == "space":
                    if msg.get("to") == self.name:
                        self.on_space_request(str(msg.get("from")))
                    else:
                        self.route_message(msg)
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.TimeoutError, protocol.ProtocolError, OSError,
                crypto.CryptoError) as e:
            if conn.state == "established":
                log(f"connection to {conn.peer} ({conn.address}) lost: {e.__class__.__name__} {e}")
            conn.state, conn.reason = "failed", f"{e.__class__.__name__}: {e}".rstrip(": ")
        finally:
            if self.established.get(conn.peer) is conn:
                del self.established[conn.peer]
                self.connections_changed()
            writer.close()

    def refuse(self, hello: dict) -> str:
        if hello.get("type") != "hello":
            return "handshake: no hello"
        if hello.get("version") != protocol.VERSION:
            return f"handshake: protocol version {hello.get('version')}, this router speaks {protocol.VERSION}"
        if hello.get("name") == self.name:
            return f"handshake: the peer is called {self.name} too (a peer cannot connect to itself)"
        if not isinstance(hello.get("name"), str) or not hello["name"]:
            return "handshake: no peer name"
        if bool(hello.get("encryption")) != (self.key is not None):
            return ("encryption: this router has a password and the peer has none" if self.key is not None
                    else "encryption: the peer has a password and this router has none")
        if self.key is not None:
            try:
                if len(bytes.fromhex(str(hello.get("nonce", "")))) != 16:
                    raise ValueError
            except ValueError:
                return "encryption: the peer sent no nonce"
        return ""

    # -- the sleeve ---------------------------------------------------------------------------------------
    def peer_address(self, name: str) -> tuple[str, int] | None:
        p = self.topology.peers.get(name)
        return (p.address, p.port) if p else None

    def send_frame(self, dst: str, data: bytes, routes: dict[str, str]) -> None:
        hop = routes.get(dst)
        addr = self.peer_address(hop) if hop else None
        if addr is None:
            self.stats["dropped"] += 1
            return
        try:
            self.udp.sendto(data, addr)
        except OSError:
            self.stats["dropped"] += 1

    def on_tap(self) -> None:
        for _ in range(64):
            try:
                frame = os.read(self.tap_fd, 65536)
            except BlockingIOError:
                return
            except OSError:
                return
            if len(frame) < 14:
                continue
            routes = self.topology.routes()
            owner = self.macs.get(frame[:6]) if not frame[0] & 1 else None
            targets = [owner] if owner in routes else sorted(p for p in routes if p not in self.fast)
            for peer in targets:
                self.send_frame(peer, protocol.sleeve(self.name, peer, frame, box=self.box), routes)
                self.stats["frames_out"] += 1

    def on_udp(self) -> None:
        known = {(p.address) for p in self.topology.peers.values() if p.name != self.name}
        for _ in range(64):
            try:
                data, (host, _) = self.udp.recvfrom(65535)
            except (BlockingIOError, InterruptedError):
                return
            if host not in known:
                self.stats["dropped"] += 1
                continue
            try:
                src, dst, hops, frame = protocol.parse_sleeve(data)
            except protocol.ProtocolError:
                self.stats["dropped"] += 1
                continue
            if dst == self.name:
                if self.box is not None:
                    try:
                        frame = self.box.open(frame, protocol.bound(src, dst))
                    except crypto.CryptoError:
                        self.stats["dropped"] += 1
                        continue
                self.macs[frame[6:12]] = src
                try:
                    os.write(self.tap_fd, frame)
                    self.stats["frames_in"] += 1
                except OSError:
                    self.stats["dropped"] += 1
            elif hops > 1:  # a relay: sent on as it came (a sealed frame stays sealed: no box here)
                self.send_frame(dst, protocol.sleeve(src, dst, frame, hops - 1), self.topology.routes())
                self.stats["relayed"] += 1

    # -- control -------------------------------------------------------------------------------------------
    async def control(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                try:
                    req = json.loads(line)
                    reply = {"ok": True, **(await self.answer(req))}
                except Exception as e:  # noqa: BLE001 - every request gets an answer
                    reply = {"ok": False, "error": f"{e}"}
                writer.write((json.dumps(reply) + "\n").encode())
                await writer.drain()
        finally:
            writer.close()

    async def answer(self, req: dict) -> dict:
        op = req.get("op")
        if op == "status":
            return {"status": self.status()}
        if op == "allocate":
            return {"ip": await self.allocate(str(req["handle"]), float(req.get("wait", 10)))}
        if op == "release":
            released = self.alloc.release(str(req["handle"]))
            if released:
                self.ipam_changed()
            return {"released": released}
        if op == "lookup":
            return {"ip": self.alloc.address_of(str(req["handle"]))}
        if op == "allocations":
            return {"allocations": self.alloc.allocations()}
        if op == "rmpeer":
            return {"reclaimed": self.rmpeer(str(req["peer"]), bool(req.get("force")))}
        raise ValueError(f"unknown op {op!r} (status, allocate, release, lookup, allocations, rmpeer)")

    def rmpeer(self, peer: str, force: bool) -> int:
        if peer == self.name:
            raise ValueError(f"{peer} is this router: run rmpeer on another peer")
        if peer in self.topology.routes() and not force:
            raise ValueError(f"{peer} is reachable (connected to the mesh): stop it first, or use --force")
        taken = self.ring.reclaim(peer)
        self.topology.remove(peer)
        log(f"rmpeer {peer}: {taken} addresses are now {self.name}'s")
        self.ipam_changed()
        return taken

    def status(self) -> dict:
        routes = self.topology.routes()
        conns = []
        for conn in list(self.by_address.values()) + list(self.inbound):
            if not conn.outbound and conn.state != "established":
                continue
            if conn.outbound and conn.peer and self.established.get(conn.peer) not in (None, conn) \
                    and conn.state != "established":
                continue  # this peer is reached through the connection it made to us
            conns.append({"direction": "->" if conn.outbound else "<-", "address": conn.address, "state": conn.state,
                          "peer": conn.peer,
                          "encapsulation": ("fastdp" if conn.fastdp else "sleeve") if conn.state == "established" else "",
                          "reason": conn.reason})
        shares = self.ring.shares()
        size = self.ring.end - self.ring.start
        ranges = [{"peer": e.peer, "start": ip_str(e.token), "end": ip_str(end), "size": end - e.token}
                  for e, end in self.ring.spans()]
        return {
            "name": self.name, "uid": uid(self.me), "address": f"{self.address}:{self.port}",
            "encryption": self.key is not None,
            "fastdp": self.fastdp_why or "on",  # (a failed setup sets fastdp_why and drops fastdp)
            "peers": [{"name": p.name, "uid": uid(p), "address": p.address, "reachable": p.name in routes or p.name == self.name,
                       "via": routes.get(p.name) if routes.get(p.name) != p.name else None,
                       "connections": len(p.connections)} for p in sorted(self.topology.peers.values(), key=lambda p: p.name)],
            "connections": sorted(conns, key=lambda c: (c["peer"] or "~", c["address"])),
            "unreachable": self.topology.unreachable(),
            "ipam": {"status": "ready" if not self.ring.is_empty() else "awaiting the ring", "range": self.ring.cidr,
                     "error": self.ipam_error,
                     "shares": {p: round(100 * n / size, 1) for p, n in sorted(shares.items())},
                     "ranges": ranges, "allocations": self.alloc.allocations(), "free": self.alloc.free_count()},
            "sleeve": dict(self.stats),
        }

    # -- the process -------------------------------------------------------------------------------------------
    async def run(self) -> None:
        os.makedirs(self.dir, exist_ok=True)
        self.load_ipam()
        if self.ring.is_empty() and self.seed:
            self.ring.seed(self.seed)
            log(f"ipam: seeded {self.ring.cidr} among {', '.join(sorted(set(self.seed)))}")
            self.alloc = RingAllocator(self.ring, self.alloc.allocations())
            self.save_ipam()
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        # a frame that does not fit the underlay's MTU after all (very long peer names) is fragmented, not lost
        self.udp.setsockopt(socket.IPPROTO_IP, 10, 0)  # IP_MTU_DISCOVER = IP_PMTUDISC_DONT
        self.udp.bind((self.address, self.port))
        self.udp.setblocking(False)
        loop.add_reader(self.udp.fileno(), self.on_udp)
        self.tap_fd = tap.open_tap(TAP_NAME, self.bridge, self.mtu)
        loop.add_reader(self.tap_fd, self.on_tap)
        if self.fastdp is not None and not self.fastdp.setup():
            log(f"fastdp: {self.fastdp.problem}; everything goes through the sleeve")
            self.fastdp_why, self.fastdp = self.fastdp.problem, None
        server = await asyncio.start_server(self.accept, self.address, self.port)
        sock = os.path.join(self.dir, "control.sock")
        if os.path.exists(sock):
            os.unlink(sock)
        control = await asyncio.start_unix_server(self.control, sock)
        log(f"router {self.name} ({uid(self.me)}) on {self.address}:{self.port}, range {self.ring.cidr}, "
            f"bridge {self.bridge}, peers {', '.join(self.initial) or 'none given'}")
        self.dial_known()

        async def repair() -> None:
            while True:
                await asyncio.sleep(GOSSIP_EVERY)
                self.gossip()
                self.dial_known()

        async def heartbeat() -> None:
            while True:
                await asyncio.sleep(HEARTBEAT_EVERY)
                for conn in list(self.established.values()):
                    conn.send({"type": "heartbeat"})

        task = loop.create_task(repair())
        beat = loop.create_task(heartbeat())
        await stop.wait()
        task.cancel()
        beat.cancel()
        server.close()
        control.close()
        log("router stopping")


def main(name: str, address: str, port: int, peers: list[str], cidr: str, seed: list[str], bridge: str,
         state_dir: str, mtu: int, password: bytes | None = None, fastdp_port: int = 6784) -> None:
    ipaddress.IPv4Address(address)
    router = Router(name, address, port, peers, cidr, seed, bridge, state_dir, mtu, password, fastdp_port)
    asyncio.run(router.run())
