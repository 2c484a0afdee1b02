"""The mesh's wire formats.

TCP (port 6783): messages of a 4-byte big-endian length and a JSON object with a "type":
  hello        {name, incarnation, version: 1, port}: the first message each way; a peer with my
               name or another protocol version is refused with the reason
  gossip       {peers: [PeerEntry...], ring: Ring.to_dict() | null}: what I know, merged by receivers
  space        {from, to}: `from` asks `to` for address space (routed hop by hop)
  heartbeat    {}: every second; a connection that hears nothing for 5 s is closed (a cut path
               is noticed in seconds, not after TCP's retransmissions give up)

UDP (the same port number), the sleeve: "PM", version 1, a hop limit, the source and destination
peer names (one length byte each), then the Ethernet frame (with a password: a nonce and the
sealed frame, podnet.mesh.crypto).

With a password, every TCP message after the hellos is sealed (podnet.mesh.crypto.Channel),
and the first one each way is {"type": "auth"}: a peer that cannot open it has another password. A router forwards a datagram that is
not for it towards its destination (relay), with the hop limit decremented.
"""

from __future__ import annotations

import json
import struct

VERSION = 1
MAX_MESSAGE = 16 << 20
MAGIC = b"PM"
HOPS = 8


class ProtocolError(ValueError):
    pass


def encode(msg: dict, channel=None) -> bytes:
    """A message; sealed by `channel` (podnet.mesh.crypto.Channel) when the mesh has a password."""
    body = json.dumps(msg, separators=(",", ":")).encode()
    if channel is not None:
        body = channel.seal(body)
    return struct.pack("!I", len(body)) + body


async def read_message(reader, channel=None) -> dict:
    head = await reader.readexactly(4)
    (size,) = struct.unpack("!I", head)
    if size > MAX_MESSAGE:
        raise ProtocolError(f"message of {size} bytes (at most {MAX_MESSAGE})")
    body = await reader.readexactly(size)
    if channel is not None:
        body = channel.open(body)  # CryptoError (a ValueError) when it does not open
    try:
        msg = json.loads(body)
    except ValueError as e:
        raise ProtocolError(f"not JSON: {e}") from None
    if not isinstance(msg, dict) or not isinstance(msg.get("type"), str):
        raise ProtocolError("a message must be an object with a type")
    return msg


def sleeve(src: str, dst: str, frame: bytes, hops: int = HOPS, box=None) -> bytes:
    """A sleeve datagram; with `box` (podnet.mesh.crypto.Sleeve) the frame is sealed, bound to
    the source and destination (not the hop limit, which relays lower)."""
    s, d = src.encode(), dst.encode()
    if box is not None:
        frame = box.seal(frame, bound(src, dst))
    return MAGIC + bytes([VERSION, hops, len(s)]) + s + bytes([len(d)]) + d + frame


def bound(src: str, dst: str) -> bytes:
    """What a sealed frame is bound to (associated data)."""
    return f"{src}>{dst}".encode()


def parse_sleeve(data: bytes) -> tuple[str, str, int, bytes]:
    """(source, destination, hops left, frame); ProtocolError if it is not a sleeve datagram."""
    if len(data) < 6 or data[:2] != MAGIC or data[2] != VERSION:
        raise ProtocolError("not a sleeve datagram")
    hops, n = data[3], data[4]
    src = data[5:5 + n]
    at = 5 + n
    if len(data) < at + 1:
        raise ProtocolError("truncated sleeve header")
    m = data[at]
    dst = data[at + 1:at + 1 + m]
    frame = data[at + 1 + m:]
    if len(src) != n or len(dst) != m or len(frame) < 14:  # (a sealed frame is longer still)
        raise ProtocolError("truncated sleeve datagram")
    return src.decode(errors="replace"), dst.decode(errors="replace"), hops, frame
