"""A probe, run once: exec, tcpSocket or httpGet, as the kubelet's prober does it. The probe
is the Kubernetes shape with its defaults filled in (podnet.api.pod validated it and resolved
named ports to numbers); the answer is (success, what failed)."""

from __future__ import annotations

import http.client
import socket
import ssl

from .container import run_exec

USER_AGENT = "kube-probe/podnet"


def run(probe: dict, pod_ip: str, env: dict[str, str]) -> tuple[bool, str]:
    timeout = float(probe.get("timeoutSeconds", 1))
    if "exec" in probe:  # success: the command exits 0 within the timeout
        return run_exec(probe["exec"]["command"], env, timeout)
    if "tcpSocket" in probe:
        tcp = probe["tcpSocket"]
        return run_tcp(tcp.get("host") or pod_ip, int(tcp["port"]), timeout)
    if "httpGet" in probe:
        get = probe["httpGet"]
        headers = {h["name"]: h["value"] for h in get.get("httpHeaders") or []}
        return run_http(get.get("scheme", "HTTP"), get.get("host") or pod_ip, int(get["port"]), get.get("path", "/"),
                        headers, timeout)
    return False, "the probe has no handler"


def run_tcp(host: str, port: int, timeout: float) -> tuple[bool, str]:
    """Success: a TCP connection is accepted within the timeout."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True, ""
    except OSError as e:
        return False, f"dial tcp {host}:{port}: {e.strerror or e}"


def run_http(scheme: str, host: str, port: int, path: str, headers: dict[str, str], timeout: float) -> tuple[bool, str]:
    """Success: an answer with status 200-399 (redirects are not followed), as the kubelet has it."""
    if scheme.upper() == "HTTPS":
        context = ssl.create_default_context()
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE  # the kubelet does not verify either
        conn: http.client.HTTPConnection = http.client.HTTPSConnection(host, port, timeout=timeout, context=context)
    else:
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", path or "/", headers={"User-Agent": USER_AGENT, "Accept": "*/*", **headers})
        status = conn.getresponse().status
    except (OSError, http.client.HTTPException) as e:
        return False, f'Get "{scheme.lower()}://{host}:{port}{path}": {e}'
    finally:
        conn.close()
    if 200 <= status < 400:
        return True, ""
    return False, f"HTTP probe failed with statuscode: {status}"
