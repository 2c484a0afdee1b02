"""Every kind of object podnet knows, one record each: its names on the command line, its
apiVersion, how a manifest is parsed and validated into the stored object, where it is stored,
and the columns `get` prints (and `-o wide` adds). The CLI loops over this table, so a new kind
(Ingress, IPPool, ...) is one record here plus its parser.
"""

from __future__ import annotations

import calendar
import time
from dataclasses import dataclass, field
from typing import Callable

from . import keys
from .deployment import parse_deployment
from .ingress import parse_ingress, parse_ingress_class
from .ippool import parse_bgp_configuration, parse_ippool
from .networkpolicy import parse_namespace, parse_network_policy
from .pod import parse_pod
from .secret import parse_secret
from .service import parse_service

Row = Callable[[dict], str]


@dataclass(frozen=True)
class Column:
    header: str
    value: Row


@dataclass(frozen=True)
class Kind:
    kind: str
    api_version: str
    plural: str                     # as in `get pods`, and in "pods "x" not found"
    names: tuple[str, ...]          # every name the CLI accepts: singular, plural, short names
    prefix: str                     # where objects of this kind live in the store
    namespaced: bool = True
    parse: Callable[[dict, str, str], dict] | None = None  # (doc, source, default namespace) -> stored object
    rank: int = 1                   # apply order: lower first (namespaces, then what pods see, then pods)
    group: str = ""                 # API group, as kubectl prints `deployment.apps/web`
    columns: tuple[Column, ...] = ()
    wide: tuple[Column, ...] = ()
    writable: bool = True           # False: written by controllers and agents only (nodes, endpoints)
    labels_column: bool = field(default=True)

    @property
    def singular(self) -> str:
        return self.names[0]

    @property
    def qualified(self) -> str:
        """`deployment.apps`, `networkpolicy.networking.k8s.io`, or `pod` for the core group."""
        return f"{self.singular}.{self.group}" if self.group else self.singular

    def key(self, namespace: str, name: str) -> str:
        return f"{self.prefix}{namespace}/{name}" if self.namespaced else f"{self.prefix}{name}"


# -- how columns read objects (pure: the object in, text out) ---------------------------------
def epoch(ts: str) -> float:
    """Seconds since the epoch of an API timestamp (UTC, RFC 3339 with a Z)."""
    return calendar.timegm(time.strptime(ts, "%Y-%m-%dT%H:%M:%SZ"))


def age(obj: dict) -> str:
    try:
        return since(obj["metadata"]["creationTimestamp"])
    except (KeyError, TypeError):
        return "<unknown>"


def since(ts: str) -> str:
    """How long ago an API timestamp was, as kubectl prints ages (5s, 3m, 2h, 1d)."""
    try:
        secs = int(time.time() - epoch(ts))
    except (ValueError, TypeError):
        return "<unknown>"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if secs >= size:
            return f"{secs // size}{unit}"
    return f"{max(secs, 0)}s"


def labels_text(obj: dict) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted((obj["metadata"].get("labels") or {}).items())) or "<none>"


def pod_status_text(pod: dict) -> str:
    """The STATUS column as kubectl's printPod has it: Terminating while being deleted; else the
    first init container that failed or is not done (Init:Error, Init:CrashLoopBackOff, Init:1/2);
    else the reason a container is waiting or terminated with (CrashLoopBackOff, Error, Completed,
    ContainerCreating, ...), the first container's winning; else the pod's reason or phase."""
    if pod.get("metadata", {}).get("deletionTimestamp"):
        return "Terminating"
    status = pod.get("status") or {}
    text = status.get("reason") or status.get("phase", "")
    init = _init_status_text(status.get("initContainerStatuses") or [], len(pod.get("spec", {}).get("initContainers") or []))
    if init:
        return init
    running = False
    for c in reversed(status.get("containerStatuses") or []):  # reversed, as kubectl: the first container wins
        state = c.get("state") or {}
        if (state.get("waiting") or {}).get("reason"):
            text = state["waiting"]["reason"]
        elif "terminated" in state:
            text = (state["terminated"] or {}).get("reason") or _exit_text(state["terminated"] or {})
        elif "running" in state:
            running = True
    # a pod whose finished container says Completed while another still runs is running (kubectl's hasRunning)
    return "Running" if text == "Completed" and running else text


def _init_status_text(statuses: list[dict], total: int) -> str:
    """What the init containers say, in order, until one is not done: Init:<reason> for a failed
    or waiting (backing off) one, Init:<done>/<total> for one still to run; '' when all are done."""
    for done, c in enumerate(statuses):
        state = c.get("state") or {}
        terminated = state.get("terminated")
        if terminated is not None and terminated.get("exitCode") == 0:
            continue
        if terminated is not None:
            return "Init:" + (terminated.get("reason") or _exit_text(terminated))
        reason = (state.get("waiting") or {}).get("reason")
        if reason and reason != "PodInitializing":
            return f"Init:{reason}"
        return f"Init:{done}/{total}"
    if statuses and len(statuses) < total:  # the kubelet has not reported the ones after the last done
        return f"Init:{len(statuses)}/{total}"
    return ""


def _exit_text(terminated: dict) -> str:
    """A terminated state without a reason, as kubectl prints it: Signal:N or ExitCode:N."""
    return f"Signal:{terminated['signal']}" if terminated.get("signal") else f"ExitCode:{terminated.get('exitCode')}"


def pod_ready_text(pod: dict) -> str:
    statuses = pod.get("status", {}).get("containerStatuses", [])
    total = len(pod.get("spec", {}).get("containers", [])) or 1
    return f"{sum(1 for c in statuses if c.get('ready'))}/{total}"


def pod_restarts(pod: dict) -> str:
    """Restarts of the pod's containers and init containers, summed."""
    status = pod.get("status") or {}
    return str(sum(int(c.get("restartCount", 0))
                   for key in ("initContainerStatuses", "containerStatuses") for c in status.get(key) or []))


def service_external(svc: dict) -> str:
    spec = svc["spec"]
    ingress = ",".join(i["ip"] for i in svc.get("status", {}).get("loadBalancer", {}).get("ingress", []))
    return ingress or spec.get("externalName") or ("<pending>" if spec["type"] == "LoadBalancer" else "<none>")


def service_ports(svc: dict) -> str:
    return ",".join(f"{p['port']}:{p['nodePort']}/{p['protocol']}" if p.get("nodePort") else f"{p['port']}/{p['protocol']}"
                    for p in svc["spec"].get("ports", [])) or "<none>"


def selector_text(selector: dict) -> str:
    """A label selector as kubectl prints it: `pod=a,tier in (web,api)`; `<none>` selects all."""
    parts = [f"{k}={v}" for k, v in sorted(selector.get("matchLabels", {}).items())]
    for e in selector.get("matchExpressions", []):
        op = e["operator"]
        if op in ("In", "NotIn"):
            parts.append(f"{e['key']} {'in' if op == 'In' else 'notin'} ({','.join(e['values'])})")
        else:
            parts.append(e["key"] if op == "Exists" else f"!{e['key']}")
    return ",".join(parts) or "<none>"


def node_ready(node: dict, now: float | None = None) -> bool:
    """Ready, and its agent's heartbeat is less than 30 s old."""
    for c in node.get("status", {}).get("conditions", []):
        if c.get("type") == "Ready":
            try:
                beat = epoch(c["lastHeartbeatTime"])
            except (KeyError, ValueError, TypeError):
                return False
            return c.get("status") == "True" and (now or time.time()) - beat < 30
    return False


def node_proxy_text(node: dict) -> str:
    """The node's service proxy: services in its table and how long ago it last synced."""
    proxy = node.get("status", {}).get("podnet", {}).get("proxy") or {}
    if not proxy.get("lastSync"):
        return "<none>"
    return f"{proxy.get('services', 0)} svc, synced {since(proxy['lastSync'])} ago"


def node_address(node: dict) -> str:
    return next((a["address"] for a in node.get("status", {}).get("addresses", []) if a.get("type") == "InternalIP"), "")


def endpoints_text(slices: dict) -> str:
    """The ready endpoints, as `kubectl get endpoints` lists them (terminating ones are not)."""
    addrs = [f"{a}:{sl['ports'][0]['port']}" if sl.get("ports") else a
             for sl in slices.get("items", []) for ep in sl.get("endpoints", [])
             if (ep.get("conditions") or {}).get("ready") is not False for a in ep.get("addresses", [])]
    return ",".join(addrs) or "<none>"


def ingress_class_name(ing: dict) -> str:
    return (ing.get("spec") or {}).get("ingressClassName") or "<none>"


def ingress_hosts(ing: dict, most: int = 3) -> str:
    """The rules' hosts as kubectl's formatHosts lists them: `*` when no rule names one; when a
    rule follows the third host, `a,b,c + N more...` (N: the rules beyond the first three)."""
    rules = (ing.get("spec") or {}).get("rules") or []
    hosts: list[str] = []
    more = False
    for rule in rules:
        more = more or len(hosts) == most
        if not more and rule.get("host"):
            hosts.append(rule["host"])
    if not hosts:
        return "*"
    return ",".join(hosts) + (f" + {len(rules) - most} more..." if more else "")


def load_balancer_text(obj: dict) -> str:
    """status.loadBalancer.ingress as kubectl's ADDRESS: IPs (or hostnames), comma-joined; '' when none."""
    entries = ((obj.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    return ",".join(filter(None, (e.get("ip") or e.get("hostname") for e in entries)))


def ingress_ports(ing: dict) -> str:
    return "80, 443" if (ing.get("spec") or {}).get("tls") else "80"


def ingress_problems(ing: dict) -> str:
    """What the Ingress controller found wrong (it records it in status.podnet), else <none>."""
    recorded = ((ing.get("status") or {}).get("podnet") or {}).get("problems") or []
    return "; ".join(str(p) for p in recorded) or "<none>"


def ingress_class_parameters(cls: dict) -> str:
    """`Kind.apiGroup/name` of spec.parameters, as kubectl prints it; <none> when absent."""
    params = (cls.get("spec") or {}).get("parameters")
    if not params:
        return "<none>"
    group = f".{params['apiGroup']}" if params.get("apiGroup") else ""
    return f"{params.get('kind', '')}{group}/{params.get('name', '')}"


def _pod(doc: dict, source: str, namespace: str) -> dict:
    return parse_pod(doc, source, namespace).to_object()


def _namespace(doc: dict, source: str, _default: str) -> dict:
    return parse_namespace(doc, source)


def _ingress_class(doc: dict, source: str, _default: str) -> dict:
    return parse_ingress_class(doc, source)


NAME = Column("NAME", lambda o: o["metadata"]["name"])
AGE = Column("AGE", age)

KINDS: tuple[Kind, ...] = (
    Kind("Namespace", "v1", "namespaces", ("namespace", "namespaces", "ns"), keys.NAMESPACES, namespaced=False,
         parse=_namespace, rank=0,
         columns=(NAME, Column("STATUS", lambda o: o.get("status", {}).get("phase", "Active")), AGE)),
    Kind("Service", "v1", "services", ("service", "services", "svc"), keys.SERVICES, parse=parse_service, rank=1,
         columns=(NAME, Column("TYPE", lambda o: o["spec"]["type"]),
                  Column("CLUSTER-IP", lambda o: o["spec"].get("clusterIP") or "<none>"),
                  Column("EXTERNAL-IP", service_external), Column("PORT(S)", service_ports), AGE),
         wide=(Column("SELECTOR", lambda o: ",".join(f"{k}={v}" for k, v in o["spec"].get("selector", {}).items())
                      or "<none>"),), labels_column=False),
    Kind("NetworkPolicy", "networking.k8s.io/v1", "networkpolicies", ("networkpolicy", "networkpolicies", "netpol"),
         keys.NETWORK_POLICIES, parse=parse_network_policy, rank=1, group="networking.k8s.io",
         columns=(NAME, Column("POD-SELECTOR", lambda o: selector_text(o["spec"]["podSelector"])), AGE),
         wide=(Column("POLICY-TYPES", lambda o: ",".join(o["spec"]["policyTypes"])),), labels_column=False),
    Kind("Secret", "v1", "secrets", ("secret", "secrets"), keys.SECRETS, parse=parse_secret, rank=1,
         columns=(NAME, Column("TYPE", lambda o: o.get("type", "Opaque")),
                  Column("DATA", lambda o: str(len(o.get("data") or {}))), AGE), labels_column=False),
    Kind("IngressClass", "networking.k8s.io/v1", "ingressclasses", ("ingressclass", "ingressclasses"), keys.INGRESS_CLASSES,
         namespaced=False, parse=_ingress_class, rank=1, group="networking.k8s.io",
         columns=(NAME, Column("CONTROLLER", lambda o: o["spec"]["controller"]),
                  Column("PARAMETERS", ingress_class_parameters), AGE), labels_column=False),
    Kind("Ingress", "networking.k8s.io/v1", "ingresses", ("ingress", "ingresses", "ing"), keys.INGRESSES,
         parse=parse_ingress, rank=2, group="networking.k8s.io",
         columns=(NAME, Column("CLASS", ingress_class_name), Column("HOSTS", ingress_hosts),
                  Column("ADDRESS", load_balancer_text), Column("PORTS", ingress_ports), AGE),
         wide=(Column("PROBLEMS", ingress_problems),), labels_column=False),
    Kind("Deployment", "apps/v1", "deployments", ("deployment", "deployments", "deploy"), keys.DEPLOYMENTS,
         parse=parse_deployment, rank=2, group="apps",
         columns=(NAME, Column("READY", lambda o: f"{o.get('status', {}).get('readyReplicas', 0)}/{o['spec']['replicas']}"),
                  Column("UP-TO-DATE", lambda o: str(o.get("status", {}).get("updatedReplicas", 0))),
                  Column("AVAILABLE", lambda o: str(o.get("status", {}).get("availableReplicas", 0))), AGE),
         wide=(Column("SELECTOR", lambda o: ",".join(f"{k}={v}" for k, v in o["spec"]["selector"]["matchLabels"].items())),),
         labels_column=False),
    Kind("Pod", "v1", "pods", ("pod", "pods", "po"), keys.PODS, parse=_pod, rank=3,
         columns=(NAME, Column("READY", pod_ready_text), Column("STATUS", pod_status_text),
                  Column("RESTARTS", pod_restarts), AGE),
         wide=(Column("IP", lambda o: o.get("status", {}).get("podIP") or "<none>"),
               Column("NODE", lambda o: o["spec"].get("nodeName") or "<none>"))),
    Kind("Node", "v1", "nodes", ("node", "nodes", "no"), keys.NODES, namespaced=False, writable=False,
         columns=(NAME, Column("STATUS", lambda o: "Ready" if node_ready(o) else "NotReady"),
                  Column("ROLES", lambda o: "<none>"), AGE, Column("VERSION", lambda o: "podnet")),
         wide=(Column("INTERNAL-IP", node_address), Column("POD-CIDR", lambda o: o["spec"].get("podCIDR", "")),
               Column("BACKEND", lambda o: o.get("status", {}).get("podnet", {}).get("backend", "")),
               Column("PROXY", node_proxy_text))),
    Kind("IPPool", "podnet.io/v1", "ippools", ("ippool", "ippools", "ipp"), keys.IPPOOLS,
         namespaced=False, parse=parse_ippool, rank=0, group="podnet.io",
         columns=(NAME, Column("CIDR", lambda o: o["spec"]["cidr"]),
                  Column("SELECTOR", lambda o: o["spec"].get("nodeSelector", "all()")), AGE),
         wide=(Column("BLOCKSIZE", lambda o: str(o["spec"]["blockSize"])), Column("VXLANMODE", lambda o: o["spec"]["vxlanMode"]),
               Column("IPIPMODE", lambda o: o["spec"]["ipipMode"]),
               Column("NAT", lambda o: str(o["spec"]["natOutgoing"]).lower()),
               Column("DISABLED", lambda o: str(o["spec"]["disabled"]).lower())), labels_column=False),
    Kind("BGPConfiguration", "podnet.io/v1", "bgpconfigurations", ("bgpconfiguration", "bgpconfigurations", "bgpconfig"),
         keys.BGP_CONFIGURATIONS, namespaced=False, parse=parse_bgp_configuration, rank=0, group="podnet.io",
         columns=(NAME, Column("ASNUMBER", lambda o: str(o["spec"]["asNumber"])),
                  Column("MESH", lambda o: str(o["spec"]["nodeToNodeMeshEnabled"]).lower()),
                  Column("ROUTE-REFLECTORS", lambda o: o["spec"]["routeReflectorSelector"]), AGE), labels_column=False),
    Kind("Endpoints", "v1", "endpoints", ("endpoints", "ep", "endpointslices"), keys.ENDPOINT_SLICES, writable=False,
         columns=(NAME, Column("ENDPOINTS", endpoints_text)), labels_column=False),
)

BY_NAME = {name: k for k in KINDS for name in k.names}
BY_KIND = {k.kind: k for k in KINDS}
WRITABLE = ", ".join(k.kind for k in KINDS if k.writable)


def lookup(word: str) -> Kind | None:
    """The kind a command-line word names (`pods`, `svc`, `deployment.apps`), or None."""
    return BY_NAME.get(word.lower()) or BY_NAME.get(word.lower().split(".", 1)[0])
