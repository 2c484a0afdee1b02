"""The mesh's encryption, with a password shared by all peers (Weave's WEAVE_PASSWORD).

A key is drawn from the password once, with scrypt (slow on purpose: a password has little
entropy). TCP: both peers send a random nonce in their hello; the connection's key is HKDF of
the password's key and both nonces, so no two connections share one; every message after the
hello is sealed with ChaCha20-Poly1305 under a counter nonce per direction, and the first one
proves the peer knows the password (a wrong one fails the handshake). The sleeve: each frame
sealed with the mesh's sleeve key and a random nonce, the source and destination peer names
bound to it as associated data (relays forward it without opening it). Not covered: replay of
a captured sleeve datagram (Weave's sleeve keeps a window of seen nonces per peer).
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

NONCE = 12


class CryptoError(ValueError):
    pass


def password_key(password: bytes) -> bytes:
    if not password:
        raise CryptoError("the mesh password is empty")
    return Scrypt(salt=b"podnet-mesh-v1", length=32, n=2 ** 14, r=8, p=1).derive(password)


def _hkdf(key: bytes, salt: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=info).derive(key)


class Channel:
    """One TCP connection's sealing: a key of its own, a counter nonce per direction."""

    def __init__(self, key: bytes, my_nonce: bytes, their_nonce: bytes) -> None:
        self.aead = ChaCha20Poly1305(_hkdf(key, b"".join(sorted((my_nonce, their_nonce))), b"tcp"))
        self.out_dir = b"\x00" if my_nonce < their_nonce else b"\x01"
        self.in_dir = b"\x01" if my_nonce < their_nonce else b"\x00"
        self.sent = self.received = 0

    def seal(self, data: bytes) -> bytes:
        nonce = self.out_dir + b"\x00" * 3 + self.sent.to_bytes(8, "big")
        self.sent += 1
        return self.aead.encrypt(nonce, data, None)

    def open(self, data: bytes) -> bytes:
        nonce = self.in_dir + b"\x00" * 3 + self.received.to_bytes(8, "big")
        try:
            out = self.aead.decrypt(nonce, data, None)
        except InvalidTag:
            raise CryptoError("a message does not open with our password (a different password, or tampering)") from None
        self.received += 1
        return out


class Sleeve:
    """The sleeve's sealing of frames."""

    def __init__(self, key: bytes) -> None:
        self.aead = ChaCha20Poly1305(_hkdf(key, b"", b"sleeve"))

    def seal(self, frame: bytes, header: bytes) -> bytes:
        nonce = os.urandom(NONCE)
        return nonce + self.aead.encrypt(nonce, frame, header)

    def open(self, data: bytes, header: bytes) -> bytes:
        try:
            return self.aead.decrypt(data[:NONCE], data[NONCE:], header)
        except InvalidTag:
            raise CryptoError("a sleeve datagram does not open with our password") from None
