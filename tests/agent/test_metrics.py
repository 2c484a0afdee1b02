"""The agent's metrics: Prometheus text, served over HTTP (in a private namespace)."""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest

from podnet.agent import metrics
from podnet.kernel import netns as kns


def test_histogram_is_cumulative_with_sum_and_count():
    h = metrics.Histogram("x_seconds", "A test.", buckets=(0.1, 1.0))
    for v in (0.05, 0.1, 0.5, 3.0):
        h.observe(v)
    text = h.render()
    assert 'x_seconds_bucket{le="0.1"} 2\n' in text and 'x_seconds_bucket{le="1"} 3\n' in text
    assert 'x_seconds_bucket{le="+Inf"} 4\n' in text and "x_seconds_count 4\n" in text and "x_seconds_sum 3.650000\n" in text
    assert text.startswith("# HELP x_seconds A test.\n# TYPE x_seconds histogram\n")
    assert metrics.gauge("g", "G.", 3) == "# HELP g G.\n# TYPE g gauge\ng 3\n"
    assert metrics.gauge("t", "T.", 1795460878.376) == "# HELP t T.\n# TYPE t gauge\nt 1795460878.376000\n"


def test_a_bad_address_is_named():
    with pytest.raises(ValueError, match="expected HOST:PORT"):
        metrics.serve("10249", lambda: "")


@pytest.mark.root
def test_served_on_metrics_only(netns):
    ns = netns.new("metric")
    with kns.entered(f"/var/run/netns/{ns}"):
        server = metrics.serve("127.0.0.1:10249", lambda: metrics.gauge("up", "Up.", 1))
        try:
            direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never an http_proxy from the env
            body = direct.open("http://127.0.0.1:10249/metrics", timeout=5).read().decode()
            assert body == "# HELP up Up.\n# TYPE up gauge\nup 1\n"
            with pytest.raises(urllib.error.HTTPError, match="404"):
                direct.open("http://127.0.0.1:10249/other", timeout=5)
        finally:
            server.shutdown()
            server.server_close()
