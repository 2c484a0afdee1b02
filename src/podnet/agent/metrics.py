"""The agent's metrics in Prometheus' text format, as kube-proxy exposes its own
(`podnet agent --metrics 127.0.0.1:10249`, then GET /metrics).

    podnet_proxy_sync_proxy_rules_duration_seconds      histogram: one proxy sync
    podnet_proxy_network_programming_duration_seconds    histogram: a change's trigger time (the
        EndpointSlice's endpoints.kubernetes.io/last-change-trigger-time, as kube-proxy) until
        the kernel has it
    podnet_proxy_sync_proxy_rules_last_timestamp_seconds the last successful sync
    podnet_proxy_services / podnet_proxy_endpoints       what the table holds now
    podnet_proxy_full_syncs_total                        whole-table builds (start, error, drift)
"""

from __future__ import annotations

import bisect
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class Histogram:
    def __init__(self, name: str, help_text: str, buckets: tuple[float, ...] = BUCKETS) -> None:
        self.name, self.help, self.buckets = name, help_text, buckets
        self.counts = [0] * (len(buckets) + 1)  # the last: above every bucket
        self.sum = 0.0
        self.lock = threading.Lock()

    def observe(self, value: float) -> None:
        with self.lock:
            self.counts[bisect.bisect_left(self.buckets, value)] += 1
            self.sum += value

    @property
    def count(self) -> int:
        return sum(self.counts)

    def render(self) -> str:
        with self.lock:
            lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} histogram"]
            running = 0
            for bound, n in zip(self.buckets, self.counts):
                running += n
                lines.append(f'{self.name}_bucket{{le="{bound:g}"}} {running}')
            lines.append(f'{self.name}_bucket{{le="+Inf"}} {running + self.counts[-1]}')
            lines.append(f"{self.name}_sum {self.sum:.6f}")
            lines.append(f"{self.name}_count {running + self.counts[-1]}")
        return "\n".join(lines) + "\n"


def gauge(name: str, help_text: str, value: float, kind: str = "gauge") -> str:
    return f"# HELP {name} {help_text}\n# TYPE {name} {kind}\n{name} {number(value)}\n"


def number(value: float) -> str:
    """Every digit that matters (a Unix timestamp must not lose its seconds to %g)."""
    return str(int(value)) if float(value).is_integer() else f"{value:.6f}"


def serve(address: str, render) -> ThreadingHTTPServer:
    """Serve GET /metrics (render() -> text) on HOST:PORT from a daemon thread."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"--metrics {address!r}: expected HOST:PORT, such as 127.0.0.1:10249")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
            if self.path.split("?")[0] != "/metrics":
                self.send_error(404, "only /metrics is served here")
                return
            body = render().encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args) -> None:  # no access log on stderr
            pass

    server = ThreadingHTTPServer((host.strip("[]"), int(port)), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    return server
