"""Pods with several containers, init containers, probes, lifecycle hooks and pod-level network
fields: what parse_pod keeps (defaults filled in) and the field each error names; and the STATUS
and RESTARTS columns as kubectl prints them."""

import copy

import pytest

from podnet.api.errors import ValidationError
from podnet.api.kinds import pod_ready_text, pod_restarts, pod_status_text
from podnet.api.pod import Container, Pod, parse_pod

WEB = {"name": "web", "command": ["python3", "-m", "http.server", "8080"],
       "ports": [{"name": "http", "containerPort": 8080}]}
GOOD = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": [WEB]}}


def pod(**spec) -> dict:
    """GOOD with spec fields replaced (None deletes one)."""
    doc = copy.deepcopy(GOOD)
    for k, v in spec.items():
        if v is None:
            doc["spec"].pop(k, None)
        else:
            doc["spec"][k] = copy.deepcopy(v)
    return doc


def web(**fields) -> dict:
    """The web container with fields added or replaced."""
    return {**copy.deepcopy(WEB), **fields}


def refused(doc: dict, field: str, words: str = "") -> ValidationError:
    with pytest.raises(ValidationError) as e:
        parse_pod(doc, "pod.yaml")
    assert e.value.field == field and str(e.value).startswith(f"pod.yaml: {field}: ")
    assert words in e.value.problem
    return e.value


# -- what is kept ---------------------------------------------------------------------------------
def test_defaults_of_a_plain_pod():
    p = parse_pod(GOOD, "x")
    assert (p.init_containers, p.hostname, p.subdomain, p.host_network, p.dns_policy, p.dns_config, p.host_aliases,
            p.grace) == ([], "", "", False, "ClusterFirst", {}, [], 30.0)
    c = p.containers[0]
    assert (c.probes, c.pre_stop, c.post_start) == ({}, [], [])
    assert c.ports == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]


def test_old_constructors_still_work():
    c = Container("c", ["true"])
    p = Pod("p", "default", {}, "", [c], {})
    assert (p.restart_policy, p.grace, p.init_containers, c.probes) == ("Always", 30.0, [], {})


def test_several_containers_and_init_containers():
    side = {"name": "side", "command": ["sleep", "inf"]}
    init = [{"name": "setup", "command": ["true"]}, {"name": "migrate", "command": ["sh", "-c", "exit 0"]}]
    p = parse_pod(pod(containers=[WEB, side], initContainers=init), "x")
    assert [c.name for c in p.containers] == ["web", "side"]
    assert [(c.name, c.command) for c in p.init_containers] == [("setup", ["true"]), ("migrate", ["sh", "-c", "exit 0"])]
    assert p.to_object()["spec"]["initContainers"] == init  # stored as written


def test_probes_get_their_defaults_and_named_ports_their_numbers():
    c = web(readinessProbe={"httpGet": {"port": "http"}},
            livenessProbe={"tcpSocket": {"port": 8080, "host": "127.0.0.1"}, "periodSeconds": 5, "failureThreshold": 1,
                           "terminationGracePeriodSeconds": 3},
            startupProbe={"exec": {"command": ["test", "-e", "/tmp/up"]}, "initialDelaySeconds": 2})
    probes = parse_pod(pod(containers=[c]), "x").containers[0].probes
    numbers = {"initialDelaySeconds": 0, "periodSeconds": 10, "timeoutSeconds": 1, "successThreshold": 1,
               "failureThreshold": 3}
    assert probes == {
        "readinessProbe": {"httpGet": {"path": "/", "port": 8080, "scheme": "HTTP"}, **numbers},
        "livenessProbe": {"tcpSocket": {"port": 8080, "host": "127.0.0.1"}, **numbers, "periodSeconds": 5,
                          "failureThreshold": 1, "terminationGracePeriodSeconds": 3},
        "startupProbe": {"exec": {"command": ["test", "-e", "/tmp/up"]}, **numbers, "initialDelaySeconds": 2},
    }


def test_http_get_probe_keeps_path_scheme_host_and_headers():
    get = {"path": "/healthz", "port": 8443, "host": "localhost", "scheme": "HTTPS",
           "httpHeaders": [{"name": "X-Probe", "value": "1"}, {"name": "Accept"}]}
    probe = parse_pod(pod(containers=[web(readinessProbe={"httpGet": get, "successThreshold": 2})]), "x") \
        .containers[0].probes["readinessProbe"]
    assert probe["httpGet"] == {**get, "httpHeaders": [{"name": "X-Probe", "value": "1"}, {"name": "Accept", "value": ""}]}
    assert probe["successThreshold"] == 2  # readiness probes may ask for more than one success


def test_lifecycle_hooks_become_argv():
    c = web(lifecycle={"preStop": {"sleep": {"seconds": 5}}, "postStart": {"exec": {"command": ["touch", "/tmp/s"]}}})
    c2 = {"name": "b", "command": ["true"], "lifecycle": {"preStop": {"exec": {"command": ["kill", "-USR1", "1"]}}}}
    p = parse_pod(pod(containers=[c, c2]), "x")
    assert (p.containers[0].pre_stop, p.containers[0].post_start) == (["sleep", "5"], ["touch", "/tmp/s"])
    assert (p.containers[1].pre_stop, p.containers[1].post_start) == (["kill", "-USR1", "1"], [])


def test_host_ports_and_host_network():
    p = parse_pod(pod(hostNetwork=True, containers=[web(ports=[{"containerPort": 8080, "hostPort": 8080}])]), "x")
    assert p.host_network and p.containers[0].ports == [{"containerPort": 8080, "protocol": "TCP", "hostPort": 8080}]
    p = parse_pod(pod(containers=[web(ports=[{"containerPort": 8080, "hostPort": 9090, "protocol": "UDP"}])]), "x")
    assert p.containers[0].ports == [{"containerPort": 8080, "protocol": "UDP", "hostPort": 9090}]


def test_pod_level_fields():
    p = parse_pod(pod(hostname="db-0", subdomain="db", dnsPolicy="None", terminationGracePeriodSeconds=0,
                      dnsConfig={"nameservers": ["10.96.0.10", "fd00::a"], "searches": ["svc.cluster.local", "example.com."],
                                 "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}]},
                      hostAliases=[{"ip": "10.1.2.3", "hostnames": ["foo.local", "bar"]}, {"ip": "::1", "hostnames": ["v6"]}]),
                  "x")
    assert (p.hostname, p.subdomain, p.dns_policy, p.grace) == ("db-0", "db", "None", 0.0)
    assert p.dns_config == {"nameservers": ["10.96.0.10", "fd00::a"], "searches": ["svc.cluster.local", "example.com."],
                            "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}]}
    assert p.host_aliases == [("10.1.2.3", ["foo.local", "bar"]), ("::1", ["v6"])]
    spec = p.to_object()["spec"]
    assert "terminationGracePeriodSeconds" in spec and spec["dnsPolicy"] == "None"  # the spec as written
    assert "dnsPolicy" not in parse_pod(GOOD, "x").to_object()["spec"]  # no defaults added but restartPolicy
    assert parse_pod(pod(dnsConfig={"searches": ["a.b"]}), "x").dns_config == {"nameservers": [], "searches": ["a.b"],
                                                                               "options": []}


@pytest.mark.parametrize("policy", ["ClusterFirst", "ClusterFirstWithHostNet", "Default"])
def test_dns_policies(policy):
    assert parse_pod(pod(dnsPolicy=policy), "x").dns_policy == policy


# -- what is refused, and the field named ---------------------------------------------------------
INIT = {"name": "setup", "command": ["true"]}
NAME_CASES = [
    ({"containers": [WEB, web()]}, "spec.containers[1].name", "'web' is used by another container of this pod"),
    ({"initContainers": [{**INIT, "name": "web"}]}, "spec.containers[0].name", "'web' is used by another container"),
    ({"initContainers": [INIT, INIT]}, "spec.initContainers[1].name", "'setup' is used by another container"),
    ({"initContainers": [{**INIT, "name": "Bad_Name"}]}, "spec.initContainers[0].name", "DNS name"),
    ({"initContainers": [{"name": "x"}]}, "spec.initContainers[0].command", "non-empty list"),
    ({"initContainers": "setup"}, "spec.initContainers", "must be a list"),
    ({"initContainers": [{**INIT, "ports": [{"containerPort": 0}]}]}, "spec.initContainers[0].ports[0].containerPort",
     "must be a port number (1-65535), not 0"),
]


@pytest.mark.parametrize("kind", ["readinessProbe", "livenessProbe", "startupProbe"])
def test_init_containers_have_no_probes(kind):
    refused(pod(initContainers=[{**INIT, kind: {"exec": {"command": ["true"]}}}]), f"spec.initContainers[0].{kind}",
            "is not allowed for init containers")


def test_init_containers_have_no_lifecycle():
    refused(pod(initContainers=[{**INIT, "lifecycle": {"preStop": {"exec": {"command": ["true"]}}}}]),
            "spec.initContainers[0].lifecycle", "is not allowed for init containers")


PORT_CASES = [
    ({"containers": [web(ports=[{"containerPort": 80, "hostPort": 0}])]}, "spec.containers[0].ports[0].hostPort",
     "must be a port number (1-65535), not 0"),
    ({"containers": [web(ports=[{"containerPort": 80, "hostPort": 65536}])]}, "spec.containers[0].ports[0].hostPort",
     "not 65536"),
    ({"containers": [web(ports=[{"containerPort": 80, "hostPort": True}])]}, "spec.containers[0].ports[0].hostPort",
     "not True"),
    ({"hostNetwork": True, "containers": [web(ports=[{"containerPort": 8080, "hostPort": 9090}])]},
     "spec.containers[0].ports[0].hostPort", "must equal containerPort (8080) when hostNetwork is true, not 9090"),
    ({"hostNetwork": "yes"}, "spec.hostNetwork", "must be true or false, not 'yes'"),
    ({"hostNetwork": 1}, "spec.hostNetwork", "must be true or false"),
]


def probe(kind="readinessProbe", **fields) -> dict:
    """GOOD with one probe on its container."""
    return pod(containers=[web(**{kind: fields})])


R = "spec.containers[0].readinessProbe"
L = "spec.containers[0].livenessProbe"
S = "spec.containers[0].startupProbe"
EXEC = {"command": ["true"]}
PROBE_CASES = [
    (probe("livenessProbe"), L, "must have a handler: exec, httpGet or tcpSocket"),
    (probe(periodSeconds=3), R, "must have a handler"),
    (probe(exec=EXEC, tcpSocket={"port": 80}), R, "may not specify more than 1 handler type (has exec and tcpSocket)"),
    (probe(exec=EXEC, httpGet={"port": 80}, tcpSocket={"port": 80}), R, "(has exec and httpGet and tcpSocket)"),
    (probe(grpc={"port": 9000}), f"{R}.grpc", "not supported here"),
    (probe(exec=EXEC, grpc={"port": 9000}), R, "(has exec and grpc)"),
    (probe(tcpSocket={"port": 70000}), f"{R}.tcpSocket.port", "must be a port number (1-65535), not 70000"),
    (probe(tcpSocket={"port": 0}), f"{R}.tcpSocket.port", "not 0"),
    (probe(tcpSocket={}), f"{R}.tcpSocket.port", "not None"),
    (probe(tcpSocket={"port": True}), f"{R}.tcpSocket.port", "not True"),
    (probe(tcpSocket={"port": 80, "host": 5}), f"{R}.tcpSocket.host", "must be a string"),
    (probe(tcpSocket=80), f"{R}.tcpSocket", "must be a mapping"),
    (probe(httpGet={"port": "metrics"}), f"{R}.httpGet.port", "'metrics' is not the name of a port of this container"),
    (probe(httpGet={"port": "8080"}), f"{R}.httpGet.port", "'8080' is not the name of a port"),
    (probe(httpGet={"port": 8080, "scheme": "https"}), f"{R}.httpGet.scheme", "must be HTTP or HTTPS"),
    (probe(httpGet={"port": 8080, "path": 5}), f"{R}.httpGet.path", "must be a string"),
    (probe(httpGet={"port": 8080, "httpHeaders": [{"name": "Bad Header", "value": "x"}]}),
     f"{R}.httpGet.httpHeaders[0].name", "HTTP header name"),
    (probe(httpGet={"port": 8080, "httpHeaders": [{"name": "X", "value": 1}]}), f"{R}.httpGet.httpHeaders[0].value",
     "must be a string"),
    (probe(httpGet={"port": 8080, "httpHeaders": {"X": "1"}}), f"{R}.httpGet.httpHeaders", "must be a list"),
    (probe(exec={"command": []}), f"{R}.exec.command", "non-empty list of strings"),
    (probe(exec={"command": "true"}), f"{R}.exec.command", "non-empty list of strings"),
    (probe(exec={"command": ["sleep", 1]}), f"{R}.exec.command", "non-empty list of strings"),
    (probe(exec=EXEC, initialDelaySeconds=-1), f"{R}.initialDelaySeconds", "must be at least 0, not -1"),
    (probe(exec=EXEC, periodSeconds=0), f"{R}.periodSeconds", "must be at least 1, not 0"),
    (probe(exec=EXEC, timeoutSeconds=0), f"{R}.timeoutSeconds", "must be at least 1"),
    (probe(exec=EXEC, successThreshold=0), f"{R}.successThreshold", "must be at least 1"),
    (probe(exec=EXEC, failureThreshold=0), f"{R}.failureThreshold", "must be at least 1"),
    (probe(exec=EXEC, periodSeconds=True), f"{R}.periodSeconds", "must be a whole number, not True"),
    (probe(exec=EXEC, timeoutSeconds=1.5), f"{R}.timeoutSeconds", "must be a whole number, not 1.5"),
    (probe(exec=EXEC, initialDelaySeconds="5"), f"{R}.initialDelaySeconds", "must be a whole number"),
    (probe("livenessProbe", exec=EXEC, successThreshold=2), f"{L}.successThreshold",
     "must be 1 for liveness and startup probes"),
    (probe("startupProbe", exec=EXEC, successThreshold=3), f"{S}.successThreshold", "must be 1 for liveness and startup"),
    (probe(exec=EXEC, terminationGracePeriodSeconds=5), f"{R}.terminationGracePeriodSeconds",
     "only allowed for liveness and startup probes"),
    (probe("livenessProbe", exec=EXEC, terminationGracePeriodSeconds=0), f"{L}.terminationGracePeriodSeconds",
     "must be at least 1"),
    (probe("startupProbe", exec=EXEC, terminationGracePeriodSeconds=False), f"{S}.terminationGracePeriodSeconds",
     "must be a whole number"),
    (probe(exec=EXEC, periodSecond=5), f"{R}.periodSecond", "is not a known field"),
    (pod(containers=[web(readinessProbe="exec true")]), R, "must be a mapping"),
]

HOOK = "spec.containers[0].lifecycle"
HOOK_CASES = [
    ({"preStop": {"httpGet": {"port": 80}}}, f"{HOOK}.preStop.httpGet", "httpGet hooks are not supported here"),
    ({"postStart": {"tcpSocket": {"port": 80}}}, f"{HOOK}.postStart.tcpSocket", "tcpSocket hooks are not supported"),
    ({"preStop": {}}, f"{HOOK}.preStop", "must have a handler: exec or sleep"),
    ({"preStop": {"exec": EXEC, "sleep": {"seconds": 1}}}, f"{HOOK}.preStop", "may not specify more than 1 handler type"),
    ({"preStop": {"exec": {"command": []}}}, f"{HOOK}.preStop.exec.command", "non-empty list of strings"),
    ({"preStop": {"sleep": {"seconds": 0}}}, f"{HOOK}.preStop.sleep.seconds", "must be at least 1"),
    ({"preStop": {"sleep": {}}}, f"{HOOK}.preStop.sleep.seconds", "must be a whole number, not None"),
    ({"preStop": {"sleep": {"seconds": 31}}}, f"{HOOK}.preStop.sleep.seconds",
     "must not exceed terminationGracePeriodSeconds (30), not 31"),
    ({"preStop": {"signal": "TERM"}}, f"{HOOK}.preStop.signal", "is not a known field"),
    ({"preStart": {"exec": EXEC}}, f"{HOOK}.preStart", "is not a known field"),
    ({"preStop": ["true"]}, f"{HOOK}.preStop", "must be a mapping"),
]

POD_CASES = [
    ({"hostname": "Db_0"}, "spec.hostname", "DNS name"),
    ({"hostname": "a" * 64}, "spec.hostname", "at most 63"),
    ({"hostname": "db.0"}, "spec.hostname", "DNS name"),
    ({"subdomain": "my.sub"}, "spec.subdomain", "DNS name"),
    ({"subdomain": 5}, "spec.subdomain", "non-empty string"),
    ({"dnsPolicy": "ClusterFirstWithHostNetwork"}, "spec.dnsPolicy",
     "must be one of ClusterFirst, ClusterFirstWithHostNet, Default, None"),
    ({"dnsPolicy": "None"}, "spec.dnsConfig.nameservers", "dnsPolicy None needs at least one nameserver"),
    ({"dnsPolicy": "None", "dnsConfig": {"searches": ["a.b"]}}, "spec.dnsConfig.nameservers", "at least one nameserver"),
    ({"dnsConfig": {"nameservers": ["1.1.1.1", "8.8.8.8", "9.9.9.9", "1.0.0.1"]}}, "spec.dnsConfig.nameservers[3]",
     "at most 3 nameservers"),
    ({"dnsConfig": {"nameservers": ["1.1.1"]}}, "spec.dnsConfig.nameservers[0]", "must be an IPv4 or IPv6 address"),
    ({"dnsConfig": {"nameservers": ["8.8.8.8", "dns.google"]}}, "spec.dnsConfig.nameservers[1]", "IPv4 or IPv6"),
    ({"dnsConfig": {"nameservers": "8.8.8.8"}}, "spec.dnsConfig.nameservers", "must be a list"),
    ({"dnsConfig": {"searches": [f"s{i}.example" for i in range(33)]}}, "spec.dnsConfig.searches[32]",
     "at most 32 search domains"),
    ({"dnsConfig": {"searches": ["Bad_Domain"]}}, "spec.dnsConfig.searches[0]", "DNS name"),
    ({"dnsConfig": {"searches": [("a" * 60 + ".") * 5 + "b"]}}, "spec.dnsConfig.searches[0]", "at most 253"),
    ({"dnsConfig": {"searches": [("a" * 60 + ".") * 4 + "com"] * 9}}, "spec.dnsConfig.searches", "2048 characters"),
    ({"dnsConfig": {"options": [{"value": "2"}]}}, "spec.dnsConfig.options[0].name", "is required"),
    ({"dnsConfig": {"options": [{"name": "ndots", "value": 2}]}}, "spec.dnsConfig.options[0].value", "must be a string"),
    ({"dnsConfig": {"nameserver": ["1.1.1.1"]}}, "spec.dnsConfig.nameserver", "is not a known field"),
    ({"dnsConfig": ["1.1.1.1"]}, "spec.dnsConfig", "must be a mapping"),
    ({"hostAliases": [{"ip": "10.0.0.300", "hostnames": ["a"]}]}, "spec.hostAliases[0].ip", "IPv4 or IPv6 address"),
    ({"hostAliases": [{"hostnames": ["a"]}]}, "spec.hostAliases[0].ip", "not None"),
    ({"hostAliases": [{"ip": "10.0.0.1", "hostnames": ["a"]}, {"ip": "10.0.0.2", "hostnames": []}]},
     "spec.hostAliases[1].hostnames", "non-empty list"),
    ({"hostAliases": [{"ip": "10.0.0.1"}]}, "spec.hostAliases[0].hostnames", "non-empty list"),
    ({"hostAliases": [{"ip": "10.0.0.1", "hostnames": ["a", ""]}]}, "spec.hostAliases[0].hostnames[1]", "non-empty"),
    ({"hostAliases": [{"ip": "10.0.0.1", "hostnames": ["a b"]}]}, "spec.hostAliases[0].hostnames[0]", "without spaces"),
    ({"hostAliases": {"ip": "10.0.0.1"}}, "spec.hostAliases", "must be a list"),
    ({"terminationGracePeriodSeconds": -1}, "spec.terminationGracePeriodSeconds", "must be at least 0, not -1"),
    ({"terminationGracePeriodSeconds": True}, "spec.terminationGracePeriodSeconds", "must be a whole number"),
    ({"terminationGracePeriodSeconds": 2.5}, "spec.terminationGracePeriodSeconds", "must be a whole number"),
]


@pytest.mark.parametrize("spec,field,words", NAME_CASES + PORT_CASES + POD_CASES)
def test_bad_pods_name_the_field(spec, field, words):
    refused(pod(**spec), field, words)


@pytest.mark.parametrize("doc,field,words", PROBE_CASES)
def test_bad_probes_name_the_field(doc, field, words):
    refused(doc, field, words)


@pytest.mark.parametrize("lifecycle,field,words", HOOK_CASES)
def test_bad_hooks_name_the_field(lifecycle, field, words):
    refused(pod(containers=[web(lifecycle=lifecycle)]), field, words)


def test_errors_in_a_later_container_name_it():
    second = {"name": "b", "command": ["true"], "livenessProbe": {"tcpSocket": {"port": "http"}}}
    refused(pod(containers=[WEB, second]), "spec.containers[1].livenessProbe.tcpSocket.port",
            "'http' is not the name of a port of this container")  # web's port is not b's


def test_sleep_hook_may_last_the_pods_grace_period():
    doc = pod(terminationGracePeriodSeconds=60, containers=[web(lifecycle={"preStop": {"sleep": {"seconds": 60}}})])
    assert parse_pod(doc, "x").containers[0].pre_stop == ["sleep", "60"]
    refused(pod(terminationGracePeriodSeconds=0, containers=[web(lifecycle={"preStop": {"sleep": {"seconds": 1}}})]),
            f"{HOOK}.preStop.sleep.seconds", "terminationGracePeriodSeconds (0)")


def test_deployment_template_errors_name_the_template_field():
    from podnet.api.deployment import parse_deployment

    doc = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
           "spec": {"selector": {"matchLabels": {"app": "d"}},
                    "template": {"metadata": {"labels": {"app": "d"}}, "spec": {"containers": [WEB, web()]}}}}
    with pytest.raises(ValidationError) as e:
        parse_deployment(doc, "d.yaml")
    assert e.value.field == "spec.template.spec.containers[1].name"


# -- the STATUS, READY and RESTARTS columns -------------------------------------------------------
def shown(init: int = 0, containers: int = 1, **status) -> dict:
    spec = {"containers": [{"name": f"c{i}"} for i in range(containers)],
            **({"initContainers": [{"name": f"i{i}"} for i in range(init)]} if init else {})}
    return {"metadata": {"name": "p"}, "spec": spec, "status": {"phase": "Pending", **status}}


def done(restarts: int = 0) -> dict:
    return {"state": {"terminated": {"exitCode": 0, "reason": "Completed"}}, "restartCount": restarts}


def waiting(reason: str, restarts: int = 0) -> dict:
    return {"state": {"waiting": {"reason": reason}}, "restartCount": restarts}


RUNNING = {"state": {"running": {"startedAt": "2024-01-01T00:00:00Z"}}, "ready": True}


@pytest.mark.parametrize("pod_,text", [
    (shown(init=2, initContainerStatuses=[waiting("PodInitializing"), waiting("PodInitializing")]), "Init:0/2"),
    (shown(init=2, initContainerStatuses=[{"state": {"running": {}}}, waiting("PodInitializing")]), "Init:0/2"),
    (shown(init=2, initContainerStatuses=[done(), {"state": {"running": {}}}]), "Init:1/2"),
    (shown(init=2, initContainerStatuses=[done()]), "Init:1/2"),
    (shown(init=2, initContainerStatuses=[waiting("CrashLoopBackOff", 3), waiting("PodInitializing")]),
     "Init:CrashLoopBackOff"),
    (shown(init=1, initContainerStatuses=[{"state": {"terminated": {"exitCode": 1, "reason": "Error"}}}]), "Init:Error"),
    (shown(init=1, initContainerStatuses=[{"state": {"terminated": {"exitCode": 2}}}]), "Init:ExitCode:2"),
    (shown(init=1, initContainerStatuses=[{"state": {"terminated": {"exitCode": 137, "signal": 9}}}]), "Init:Signal:9"),
    (shown(init=1, initContainerStatuses=[{"state": {"terminated": {"exitCode": 1, "reason": "OOMKilled"}}}]),
     "Init:OOMKilled"),
    (shown(init=2, initContainerStatuses=[done(), done()], containerStatuses=[waiting("ContainerCreating")]),
     "ContainerCreating"),
    (shown(init=2, phase="Running", initContainerStatuses=[done(), done()], containerStatuses=[RUNNING]), "Running"),
    (shown(init=2), "Pending"),  # not started: kubectl shows the phase
    ({**shown(init=2, initContainerStatuses=[waiting("PodInitializing")] * 2),
      "metadata": {"name": "p", "deletionTimestamp": "2024-01-01T00:00:00Z"}}, "Terminating"),
    ({**shown(phase="Running", containerStatuses=[RUNNING]),
      "metadata": {"name": "p", "deletionTimestamp": "2024-01-01T00:00:00Z"}}, "Terminating"),
    (shown(phase="Running", containerStatuses=[waiting("CrashLoopBackOff", 4)]), "CrashLoopBackOff"),
    (shown(phase="Succeeded", containerStatuses=[done()]), "Completed"),
    (shown(containers=2, phase="Running", containerStatuses=[done(), RUNNING]), "Running"),
    (shown(containers=2, phase="Running", containerStatuses=[RUNNING, done()]), "Running"),
    (shown(containers=2, phase="Running", containerStatuses=[waiting("CrashLoopBackOff"), RUNNING]), "CrashLoopBackOff"),
    (shown(containers=2, phase="Failed", containerStatuses=[{"state": {"terminated": {"exitCode": 1, "reason": "Error"}}},
                                                            done()]), "Error"),
    (shown(phase="Failed", containerStatuses=[{"state": {"terminated": {"exitCode": 3}}}]), "ExitCode:3"),
    (shown(phase="Failed", reason="Evicted"), "Evicted"),
    (shown(phase="Running", containerStatuses=[RUNNING]), "Running"),
])
def test_pod_status_text(pod_, text):
    assert pod_status_text(pod_) == text


def test_pod_ready_and_restarts():
    p = shown(init=1, containers=2, phase="Running", initContainerStatuses=[done(restarts=2)],
              containerStatuses=[{**RUNNING, "restartCount": 1}, waiting("CrashLoopBackOff", 4)])
    assert (pod_ready_text(p), pod_restarts(p)) == ("1/2", "7")
    assert (pod_ready_text(shown()), pod_restarts(shown())) == ("0/1", "0")
