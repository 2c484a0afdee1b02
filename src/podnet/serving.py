"""Threaded socket servers that cannot be made to pile up threads (the agent's CNI socket,
cluster DNS over TCP): at most `slots` requests are served at once, and the accept loop waits
for a free slot, so the kernel's listen backlog holds the rest."""

from __future__ import annotations

import socketserver
import threading


class BoundedThreadingMixIn(socketserver.ThreadingMixIn):
    daemon_threads = True

    def bound(self, slots: int) -> None:
        """Call before serving: how many requests may be handled at once."""
        self.slots = threading.BoundedSemaphore(slots)

    def process_request(self, request, client_address) -> None:
        self.slots.acquire()  # backpressure: the accept loop waits while every slot is busy
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.slots.release()
            raise

    def process_request_thread(self, request, client_address) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()
