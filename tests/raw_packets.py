"""Scripts that a test runs inside a pod to send what a normal socket would not: a UDP datagram
with any source address, built by hand and sent through a raw socket (the kernel fills in the IP
checksum and length)."""

SEND_UDP = """
import socket, struct, sys
src, dst, payload = sys.argv[1], sys.argv[2], sys.argv[3].encode()
udp = struct.pack("!HHHH", 40000, 9999, 8 + len(payload), 0) + payload
ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 1, 0, 64, 17, 0, socket.inet_aton(src), socket.inet_aton(dst))
socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW).sendto(ip + udp, (dst, 0))
"""
