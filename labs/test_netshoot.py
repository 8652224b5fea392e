"""Lab 4 — netshoot on Fargate (document 002, "fargate에 netshoot 디플로이먼트 배포 › 실습"; document 003,
"Fargate 배포 실습" netshoot part and its sample-app companion).

Documented steps::

    kubectl create ns study-aews
    cat <<EOF | kubectl apply -f -   (netshoot.yaml, sample-app.yaml)
    kubectl get pod -n study-aews -o jsonpath='{.items[0].metadata.annotations.CapacityProvisioned}'
    kubectl exec -it deploy/netshoot -n study-aews -- zsh   (ip -c a, cat /etc/resolv.conf, ping, curl, df -hT /)

Replay renames the namespace to ``study-aews-netshoot-<run id>`` (one namespace per module, so modules that
share the documented ``study-aews`` never meet when pytest-xdist runs them side by side) and gives it a
Fargate profile of the same name: document 002's ``study_wildcard`` profile (``study-*``) is Lab 1's.
The in-pod probes type the documented commands into netshoot's zsh through the real kubectl
(``kubectl exec deploy/netshoot -- zsh -c '<command>'``) wherever pods really run.
"""

from __future__ import annotations

import ipaddress
import re
import shlex
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import pytest

from fargatelab import Capability, Lab, ModuleLab, Ran, expect
from fargatelab import conditions as cond
from fargatelab.eks.vpc import cluster_subnets

pytestmark = [
    pytest.mark.lab("Lab 4 — netshoot probes", "002"),
    # --dist loadgroup: the module stays on one worker, and never runs beside the logging lab,
    # which switches the cluster-wide aws-logging ConfigMap this lab's Logging annotation depends on.
    pytest.mark.xdist_group("aws-observability"),
]

NAMESPACE = "study-aews"
PROFILE_LABEL = "eks.amazonaws.com/fargate-profile"
LOGGING_ENABLED = "LoggingEnabled"
LOGGING_NOT_FOUND = "LoggingDisabled: LOGGING_CONFIGMAP_NOT_FOUND"
DOCUMENTED_APPLY = "cat <<EOF | kubectl apply -f -   # {manifest}, namespace study-aews"


@dataclass
class Netshoot:
    namespace: str
    #: the profile this module created (replay), or None: check mode takes whatever profile the student made
    profile: str | None
    #: the Logging annotation the cluster's aws-logging state gives new pods, or None if it changed meanwhile
    logging: str | None


def _apply(lab: Lab, manifest: str) -> None:
    """The documented ``kubectl apply`` (replay: into this module's own namespace)."""
    lab.ensure(manifest, DOCUMENTED_APPLY.format(manifest=manifest))


def _logging_annotation_now(lab: Lab) -> str:
    present = lab.kube.exists("/api/v1/namespaces/aws-observability/configmaps/aws-logging")
    return LOGGING_ENABLED if present else LOGGING_NOT_FOUND


def _wait_replicas(lab: Lab, namespace: str, deployment: str, selector: str) -> None:
    """As many pods Running as the Deployment asks for (a changed replica count fails its own fact, not here)."""
    replicas = lab.kube.deployment(namespace, deployment)["spec"].get("replicas", 1)
    lab.wait(lab.conditions.pods_running(namespace, selector, replicas))


@pytest.fixture(scope="module")
def netshoot(module_lab: ModuleLab) -> Iterator[Netshoot]:
    with module_lab() as setup:
        setup.step("kubectl create ns study-aews")
        if setup.replay:
            namespace = setup.profiled_namespace(setup.scoped(NAMESPACE))
            profile: str | None = namespace  # the profile is named after its namespace
        else:
            namespace, profile = setup.namespace(NAMESPACE), None
        # Shared hold on the cluster's aws-logging state while pods are admitted (test_logging holds it exclusively).
        with setup.cluster_lock("aws-observability", shared=True):
            before = _logging_annotation_now(setup)
            _apply(setup, "netshoot.yaml")
            _apply(setup, "sample-app.yaml")
            _wait_replicas(setup, namespace, "netshoot", "app=netshoot")
            _wait_replicas(setup, namespace, "sample-app", "app=nginx")
            after = _logging_annotation_now(setup)
        yield Netshoot(namespace, profile, before if before == after else None)


def _pod(lab: Lab, ns: Netshoot, selector: str = "app=netshoot") -> dict[str, Any]:
    pods = lab.live_pods(ns.namespace, selector)
    assert pods, f"no pod {selector} in {ns.namespace}"
    return pods[0]


def _container(obj: dict[str, Any]) -> dict[str, Any]:
    spec = obj["spec"]["template"]["spec"] if "template" in obj["spec"] else obj["spec"]
    container: dict[str, Any] = spec["containers"][0]
    return container


def _source(event: dict[str, Any]) -> str:
    return str(event.get("source", {}).get("component") or event.get("reportingComponent") or "")


def _profile_names(lab: Lab) -> list[str]:
    names: list[str] = lab.aws("eks").list_fargate_profiles(clusterName=lab.cluster.cluster_name)["fargateProfileNames"]
    return names


# --- the Deployment as documented, and what EKS made of its pod -------------------------------------------

# id -> (fact, what to read from (Deployment, pod), expected value; None: computed by the test)
POD_FACTS: dict[str, tuple[str, Callable[[dict[str, Any], dict[str, Any]], Any], Any]] = {
    "Deployment netshoot: 1 replica": (
        "netshoot Deployment replicas", lambda d, p: d["spec"]["replicas"], 1),
    "image nicolaka/netshoot": ("netshoot image", lambda d, p: _container(p)["image"], "nicolaka/netshoot"),
    "command tail -f /dev/null": (
        "netshoot command", lambda d, p: _container(p).get("command", []) + _container(p).get("args", []),
        ["tail", "-f", "/dev/null"]),
    "requests 500m/500Mi": (
        "netshoot requests", lambda d, p: _container(p)["resources"].get("requests"),
        {"cpu": "500m", "memory": "500Mi"}),
    "limits 2/2Gi": (
        "netshoot limits", lambda d, p: _container(p)["resources"].get("limits"), {"cpu": "2", "memory": "2Gi"}),
    "terminationGracePeriodSeconds 0": (
        "netshoot terminationGracePeriodSeconds", lambda d, p: p["spec"].get("terminationGracePeriodSeconds"), 0),
    "CapacityProvisioned: 0.5vCPU 1GB (limits do not count)": (
        "pod annotation CapacityProvisioned", lambda d, p: p["metadata"]["annotations"].get("CapacityProvisioned"),
        "0.5vCPU 1GB"),
    "Logging annotation": (
        "pod annotation Logging", lambda d, p: p["metadata"]["annotations"].get("Logging"), None),
    "pod schedulerName fargate-scheduler": (
        "pod schedulerName", lambda d, p: p["spec"].get("schedulerName"), "fargate-scheduler"),
    "template schedulerName stays default-scheduler": (
        "Deployment template schedulerName", lambda d, p: d["spec"]["template"]["spec"].get("schedulerName"),
        "default-scheduler"),
    "priorityClassName system-node-critical": (
        "pod priorityClassName", lambda d, p: p["spec"].get("priorityClassName"), "system-node-critical"),
    "priority 2000001000": ("pod priority", lambda d, p: p["spec"].get("priority"), 2000001000),
    "preemptionPolicy PreemptLowerPriority": (
        "pod preemptionPolicy", lambda d, p: p["spec"].get("preemptionPolicy"), "PreemptLowerPriority"),
    "qosClass Burstable": ("pod qosClass", lambda d, p: p["status"].get("qosClass"), "Burstable"),
    "label eks.amazonaws.com/fargate-profile": (
        "pod label eks.amazonaws.com/fargate-profile", lambda d, p: p["metadata"]["labels"].get(PROFILE_LABEL), None),
}


@pytest.mark.parametrize("fact_id", list(POD_FACTS), ids=list(POD_FACTS))
def test_netshoot_pod(lab: Lab, netshoot: Netshoot, fact_id: str) -> None:
    lab.step("kubectl get pod -n study-aews -l app=netshoot -o yaml; kubectl get deploy -n study-aews netshoot -o yaml")
    pod = _pod(lab, netshoot)
    deployment = lab.kube.deployment(netshoot.namespace, "netshoot")
    fact, read, expected = POD_FACTS[fact_id]
    actual = read(deployment, pod)
    if fact_id == "Logging annotation":
        # The documents show LoggingEnabled because their clusters had the aws-logging ConfigMap (terraform
        # created it). Without it EKS writes LoggingDisabled: LOGGING_CONFIGMAP_NOT_FOUND, so the expectation
        # follows the cluster's state when the pod was admitted; test_logging covers both states.
        if netshoot.logging is None:
            pytest.skip("the aws-logging ConfigMap changed while the pod was admitted")
        expected = netshoot.logging
    if fact_id == "label eks.amazonaws.com/fargate-profile":
        if netshoot.profile is None:  # check mode: a profile of the student's, e.g. study_wildcard
            names = _profile_names(lab)
            assert actual in names, (
                f"{fact}\n  expected: one of the cluster's Fargate profiles {names}\n  actual:   {actual!r}")
            return
        expected = netshoot.profile
    expect(fact, actual, expected)


def test_sample_app_pods(lab: Lab, netshoot: Netshoot) -> None:
    """sample-app: 2 nginx replicas with the same requests, so each is 0.5vCPU 1GB on its own Fargate node."""
    pods = lab.live_pods(netshoot.namespace, "app=nginx")
    expect("sample-app replicas", len(pods), 2)
    expect("sample-app CapacityProvisioned",
           sorted(p["metadata"]["annotations"].get("CapacityProvisioned") for p in pods),
           ["0.5vCPU 1GB", "0.5vCPU 1GB"])
    nodes = lab.kube.fargate_nodes()
    expect("sample-app pods on their own Fargate nodes",
           len({lab.kube.fargate_node_name(p, nodes) for p in pods} - {None}), 2)
    service = lab.kube.get(f"/api/v1/namespaces/{netshoot.namespace}/services/sample-app")
    expect("Service sample-app type", service["spec"]["type"], "ClusterIP")
    expect("Service sample-app port", [p["port"] for p in service["spec"]["ports"]], [80])


@pytest.mark.replay_only  # events expire after an hour, so a student's cluster may no longer have them
@pytest.mark.needs(Capability.NODE_PER_POD)
def test_netshoot_events(lab: Lab, netshoot: Netshoot) -> None:
    """fargate-scheduler: Logging* then Scheduled; then the node's kubelet: Pulling, Pulled, Created, Started."""
    lab.step("kubectl describe pod -n study-aews -l app=netshoot | grep Events: -A 10")
    pod = _pod(lab, netshoot)
    uid, name = pod["metadata"]["uid"], pod["metadata"]["name"]
    lab.wait(cond.EventRecorded(lab.kube, netshoot.namespace, uid, "Started"), 30)
    events = [(_source(e), e["type"], e["reason"], e["message"]) for e in lab.kube.events(netshoot.namespace, uid=uid)]
    logging = (("fargate-scheduler", "Normal", "LoggingEnabled", "Successfully enabled logging for pod")
               if pod["metadata"]["annotations"].get("Logging") == LOGGING_ENABLED else
               ("fargate-scheduler", "Warning", "LoggingDisabled",
                'Disabled logging because aws-logging configmap was not found. configmap "aws-logging" not found'))
    node = pod["spec"]["nodeName"]
    expect("events from fargate-scheduler, in order",
           [e for e in events if e[0] == "fargate-scheduler"],
           [logging, ("fargate-scheduler", "Normal", "Scheduled",
                      f"Successfully assigned {netshoot.namespace}/{name} to {node}")])
    assert re.fullmatch(r"fargate-ip-\d+-\d+-\d+-\d+\..+", node), (
        f"Scheduled target\n  expected: fargate-ip-…\n  actual:   {node}")
    kubelet = [(e[2], e[3]) for e in events if e[0] == "kubelet"]
    expect("kubelet events, in order", [reason for reason, _ in kubelet], ["Pulling", "Pulled", "Created", "Started"])
    patterns = [r'Pulling image "nicolaka/netshoot"', r'Successfully pulled image "nicolaka/netshoot".*',
                r"Created container:? netshoot", r"Started container:? netshoot"]
    for (reason, message), pattern in zip(kubelet, patterns):
        assert re.fullmatch(pattern, message), f"kubelet {reason} message\n  expected: {pattern}\n  actual:   {message}"
    scheduled_at = [i for i, e in enumerate(events) if e[2] == "Scheduled"][0]
    first_kubelet = [i for i, e in enumerate(events) if e[0] == "kubelet"][0]
    assert scheduled_at < first_kubelet, f"kubelet events come after Scheduled\n  actual: {events}"


@pytest.mark.replay_only
@pytest.mark.needs(Capability.NODE_PER_POD)
def test_fargate_node_events(lab: Lab, netshoot: Netshoot) -> None:
    """The new node's kubelet: Starting, the three Node* conditions, NodeAllocatableEnforced, NodeReady, in that
    order; then the node controller's RegisteredNode. Where a real kubelet runs the node (not KWOK), also what
    003 records beside them: kube-proxy's own Starting, and kubelet's Warning InvalidDiskCapacity where its
    start races it (see below)."""
    lab.step("kubectl describe node <fargate-ip-…> | grep Events: -A 10")
    node = _pod(lab, netshoot)["spec"]["nodeName"]
    documented = ["Starting", "NodeHasSufficientMemory", "NodeHasNoDiskPressure", "NodeHasSufficientPID",
                  "NodeAllocatableEnforced", "NodeReady"]
    real = lab.cluster.can(Capability.POD_NETWORK)

    def by_source() -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for event in lab.kube.events("default", name=node):
            reasons = out.setdefault(_source(event), [])
            if event["reason"] not in reasons:
                reasons.append(event["reason"])
        return out

    lab.wait(cond.condition(f"events of node {node}", lambda: (
        set(documented) <= set(by_source().get("kubelet", [])) and "RegisteredNode" in sum(by_source().values(), [])
        and (not real or "Starting" in by_source().get("kube-proxy", [])), f"{by_source()}")), 30)
    kubelet = by_source().get("kubelet", [])
    # A newer kubelet adds warnings of its own (CgroupV1 on a cgroup v1 host), and records
    # NodeAllocatableEnforced when its container manager starts, which a current one may do before the first
    # NodeHas* event (003's kubelet did it after): the rest keeps 003's order.
    ordered = [r for r in kubelet if r in documented and r != "NodeAllocatableEnforced"]
    expect("node events from kubelet, in order (those 003 records)", ordered,
           [r for r in documented if r != "NodeAllocatableEnforced"])
    expect("kubelet's NodeAllocatableEnforced between Starting and NodeReady",
           kubelet.index("Starting") < kubelet.index("NodeAllocatableEnforced") < kubelet.index("NodeReady"), True)
    expect("node event RegisteredNode", "RegisteredNode" in sum(by_source().values(), []), True)
    if real:
        expect("kube-proxy's Starting (003: the second Starting)", by_source().get("kube-proxy"), ["Starting"])
        # 003's Warning InvalidDiskCapacity is a race the kubelet has with itself: its first image garbage
        # collection, at start, emits it when the image filesystem's stats are not known yet (capacity 0).
        # Where it comes, it is the warning 003 shows.
        found = [(e["type"], e["message"]) for e in lab.kube.events("default", name=node)
                 if e["reason"] == "InvalidDiskCapacity"]
        expect("kubelet's InvalidDiskCapacity events, where the race gives one (003)", found[:1],
               [("Warning", "invalid capacity 0 on image filesystem")] if found else [])


# --- the Fargate node the pod got -------------------------------------------------------------------------

@dataclass
class NodeView:
    lab: Lab
    pod: dict[str, Any]
    node: dict[str, Any]

    @property
    def name(self) -> str:
        return str(self.node["metadata"]["name"])

    @property
    def ip(self) -> str:
        return str(self.pod["status"].get("podIP") or "")

    @property
    def labels(self) -> dict[str, str]:
        labels: dict[str, str] = self.node["metadata"].get("labels", {})
        return labels

    @property
    def info(self) -> dict[str, str]:
        info: dict[str, str] = self.node["status"].get("nodeInfo", {})
        return info

    @property
    def zone(self) -> str:
        return self.labels.get("topology.kubernetes.io/zone", "")

    @property
    def domain(self) -> str:
        return self.lab.cluster.node_domain

    def addresses(self, kind: str) -> list[str]:
        return [a["address"] for a in self.node["status"].get("addresses", []) if a["type"] == kind]

    def subnet_zones(self) -> list[str]:
        """Zones of the cluster's private subnets that hold the pod IP."""
        ec2 = self.lab.aws("ec2")
        private, _ = cluster_subnets(self.lab.aws("eks"), ec2, self.lab.cluster.cluster_name)
        return [s["AvailabilityZone"] for s in ec2.describe_subnets(SubnetIds=private)["Subnets"]
                if self.ip and ipaddress.ip_address(self.ip) in ipaddress.ip_network(s["CidrBlock"])]

    def kubelet(self) -> tuple[bool, list[str]]:
        version = self.info.get("kubeletVersion", "")
        return bool(re.fullmatch(r"v\d+\.\d+\.\d+-eks-[0-9a-f]+", version)), version.split(".")[:2]

    def cluster_minor(self) -> tuple[bool, list[str]]:
        version = self.lab.kube.get("/version")
        return True, [f"v{version['major']}", version["minor"].rstrip("+")]

    def pods_on_node(self) -> int:
        return len(self.lab.kube.get("/api/v1/pods", fieldSelector=f"spec.nodeName={self.name}")["items"])


NODE_LABELS = ("eks.amazonaws.com/compute-type", "kubernetes.io/os", "kubernetes.io/arch",
               "topology.kubernetes.io/region", "topology.kubernetes.io/zone", "kubernetes.io/hostname")
FARGATE_TAINT = {"key": "eks.amazonaws.com/compute-type", "value": "fargate", "effect": "NoSchedule"}

# id -> (fact, actual, expected), both read from the node view
NODE_FACTS: dict[str, tuple[str, Callable[[NodeView], Any], Callable[[NodeView], Any]]] = {
    "name fargate-ip-<pod IP>.<region>.compute.internal": (
        "node name", lambda v: v.name, lambda v: f"fargate-ip-{v.ip.replace('.', '-')}.{v.domain}"),
    "InternalIP = podIP = hostIP": (
        "node InternalIP, pod IP, pod hostIP",
        lambda v: (v.addresses("InternalIP"), v.ip, v.pod["status"].get("hostIP")), lambda v: ([v.ip], v.ip, v.ip)),
    "no ExternalIP": ("node ExternalIP", lambda v: v.addresses("ExternalIP"), lambda v: []),
    "pod IP in a private subnet, zone label = its zone": (
        "zone of the private subnet holding the pod IP", lambda v: v.subnet_zones(), lambda v: [v.zone]),
    "labels compute-type, os, arch, region, zone, hostname": (
        "node labels", lambda v: {k: v.labels.get(k) for k in NODE_LABELS[:4]} | {k + " set": bool(v.labels.get(k))
                                                                                   for k in NODE_LABELS[4:]},
        lambda v: {"eks.amazonaws.com/compute-type": "fargate", "kubernetes.io/os": "linux",
                   "kubernetes.io/arch": "amd64", "topology.kubernetes.io/region": v.lab.cluster.region}
        | {k + " set": True for k in NODE_LABELS[4:]}),
    "taint eks.amazonaws.com/compute-type=fargate:NoSchedule": (
        "node taints", lambda v: [{k: t.get(k) for k in FARGATE_TAINT} for t in v.node["spec"].get("taints", [])],
        lambda v: [FARGATE_TAINT]),
    "capacity pods: 1": (
        "node capacity pods", lambda v: v.node["status"].get("capacity", {}).get("pods"), lambda v: "1"),
    "providerID aws:///<zone>/<id>/<node>": (
        "node providerID",
        lambda v: re.sub(r"^aws:///([^/]+)/[^/]+/", r"aws:///\1/<id>/", v.node["spec"].get("providerID", "")),
        lambda v: f"aws:///{v.zone}/<id>/{v.name}"),
    "kubelet v<cluster minor>.<patch>-eks-<hash>": (
        "node kubelet version (form v<major>.<minor>.<patch>-eks-<hash>, the cluster's minor)",
        lambda v: v.kubelet(), lambda v: v.cluster_minor()),
    "osImage Amazon Linux 2": ("node osImage", lambda v: v.info.get("osImage"), lambda v: "Amazon Linux 2"),
    "runtime containerd": (
        "node container runtime", lambda v: v.info.get("containerRuntimeVersion", "").split("://")[0],
        lambda v: "containerd"),
    "Ready": ("node Ready",
              lambda v: [c["status"] for c in v.node["status"].get("conditions", []) if c["type"] == "Ready"],
              lambda v: ["True"]),
    "one pod per node": ("pods on the node", lambda v: v.pods_on_node(), lambda v: 1),
}
NODE_FACT_IDS = list(NODE_FACTS)
#: the facts of a node that is the pod's own host (elsewhere a shadow Fargate node carries the rest)
HOST_FACTS = {"InternalIP = podIP = hostIP", "one pod per node"}


@pytest.mark.parametrize("fact_id", [pytest.param(f, marks=pytest.mark.needs(Capability.NODE_PER_POD))
                                     if f in HOST_FACTS else f for f in NODE_FACT_IDS], ids=NODE_FACT_IDS)
def test_fargate_node(lab: Lab, netshoot: Netshoot, fact_id: str) -> None:
    lab.step("kubectl get nodes -o wide; kubectl describe node <fargate-ip-…>")
    pod = _pod(lab, netshoot)
    found = lab.kube.fargate_node_of(pod)
    assert found is not None, f"Fargate node of pod {pod['metadata']['name']}\n  expected: one\n  actual:   none"
    node = found
    fact, actual, expected = NODE_FACTS[fact_id]
    view = NodeView(lab, pod, node)
    expect(fact, actual(view), expected(view))


# --- inside the pod: kubectl exec -it deploy/netshoot -n study-aews -- zsh ---------------------------------

EXEC = "kubectl exec -it deploy/netshoot -n study-aews -- zsh"
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _typed(lab: Lab, netshoot: Netshoot, command: str, names: dict[str, str] | None = None) -> Ran:
    """``command`` typed at netshoot's zsh prompt, as the documents do after ``kubectl exec -it``: run as one
    line, ``kubectl exec deploy/netshoot -n <ns> -- zsh -c '<command>'`` (no terminal, so no ``-it``)."""
    lab.step(EXEC)
    return lab.run(f"kubectl exec deploy/netshoot -n study-aews -- zsh -c {shlex.quote(command)}",
                   {"study-aews": netshoot.namespace, **(names or {})}, timeout=60)


def _interfaces(ran: Ran) -> dict[str, str]:
    """``ip -c a``'s output per interface name (colours taken out)."""
    blocks = re.split(r"^\d+: ", _ANSI.sub("", ran.stdout), flags=re.MULTILINE)
    return {b.split(":", 1)[0].split("@")[0]: b for b in blocks if ":" in b}


def _probe_eth0(lab: Lab, netshoot: Netshoot) -> None:
    ip = _pod(lab, netshoot)["status"]["podIP"]
    private, _ = cluster_subnets(lab.aws("eks"), lab.aws("ec2"), lab.cluster.cluster_name)
    cidrs = [s["CidrBlock"] for s in lab.aws("ec2").describe_subnets(SubnetIds=private)["Subnets"]]
    prefix = [ipaddress.ip_network(c).prefixlen for c in cidrs if ipaddress.ip_address(ip) in ipaddress.ip_network(c)]
    ran = _typed(lab, netshoot, "ip -c a")
    lab.compared(ran, "eth0 address (pod IP / private subnet prefix)",
                 re.findall(r"inet (\S+)", _interfaces(ran).get("eth0", "")),
                 [f"{ip}/{prefix[0] if prefix else '<prefix of a private subnet>'}"])


def _probe_mtu(lab: Lab, netshoot: Netshoot) -> None:
    ran = _typed(lab, netshoot, "ip -c a")
    found = re.search(r"\bmtu (\d+)", _interfaces(ran).get("eth0", ""))
    lab.compared(ran, "ip -c a: eth0 mtu (jumbo frames in the VPC)", found.group(1) if found else None, "9001")


def _resolv(lab: Lab, netshoot: Netshoot) -> tuple[Ran, list[str]]:
    ran = _typed(lab, netshoot, "cat /etc/resolv.conf")
    return ran, [line.strip() for line in ran.stdout.splitlines() if line.strip() and not line.startswith("#")]


def _probe_search(lab: Lab, netshoot: Netshoot) -> None:
    ran, lines = _resolv(lab, netshoot)
    lab.compared(ran, "resolv.conf search list", [line for line in lines if line.startswith("search")],
                 [f"search {netshoot.namespace}.svc.cluster.local svc.cluster.local cluster.local {lab.cluster.node_domain}"])


def _probe_nameserver(lab: Lab, netshoot: Netshoot) -> None:
    dns = lab.kube.get("/api/v1/namespaces/kube-system/services/kube-dns")["spec"]["clusterIP"]
    ran, lines = _resolv(lab, netshoot)
    lab.compared(ran, "resolv.conf nameserver (the cluster DNS service IP, 172.20.0.10 on EKS in a 10.x VPC)",
                 [line for line in lines if line.startswith("nameserver")], [f"nameserver {dns}"])


def _probe_ndots(lab: Lab, netshoot: Netshoot) -> None:
    ran, lines = _resolv(lab, netshoot)
    lab.compared(ran, "resolv.conf options", [line for line in lines if line.startswith("options")],
                 ["options ndots:5"])


def _probe_ping(lab: Lab, netshoot: Netshoot) -> None:
    other = _pod(lab, netshoot, "app=nginx")["status"]["podIP"]
    ran = _typed(lab, netshoot, "ping -c 1 <sample-app pod IP>", {"<sample-app pod IP>": other})
    lab.compared(ran, "ping: packets received", re.findall(r"(\d+) (?:packets )?received", ran.stdout), ["1"])


def _probe_curl(lab: Lab, netshoot: Netshoot) -> None:
    # The name goes through the cluster DNS: held apart from a lab that moves CoreDNS off Fargate meanwhile.
    with lab.cluster_lock("kube-system", shared=True):
        ran = _typed(lab, netshoot, "curl sample-app | grep title")
    lab.compared(ran, "curl sample-app | grep title", ran.stdout.strip(), "<title>Welcome to nginx!</title>")


def _probe_overlay(lab: Lab, netshoot: Netshoot) -> None:
    ran = _typed(lab, netshoot, "df -hT /")
    last = ran.stdout.strip().splitlines()[-1].split() if ran.stdout.strip() else []
    lab.compared(ran, "df -hT / file system type", last[1] if len(last) > 1 else ran.stdout, "overlay")


PROBES: dict[str, Callable[[Lab, Netshoot], None]] = {
    "ip -c a: eth0 holds the pod IP with the subnet prefix": _probe_eth0,
    "resolv.conf search <ns>.svc.cluster.local … compute.internal": _probe_search,
    "resolv.conf nameserver = cluster DNS IP": _probe_nameserver,
    "resolv.conf options ndots:5": _probe_ndots,
    "ip -c a: eth0 mtu 9001": _probe_mtu,
    "ping -c 1 <another pod IP>": _probe_ping,
    "curl sample-app | grep title": _probe_curl,
    "df -hT /: overlay root": _probe_overlay,
}


def _skip_without_exec(lab: Lab) -> None:
    if not lab.replay and not lab.kube.can_i("create", "pods/exec", NAMESPACE):
        # A student's self-check usually runs read-only; without exec the probes cannot look inside the pod.
        pytest.skip(f"needs create on pods/exec in {NAMESPACE}, which this identity lacks: "
                    "add that rule to its role (docs/check-mode.md) to run the probes in your netshoot pod")


@pytest.mark.needs(Capability.INTERNET_EGRESS)
@pytest.mark.needs(Capability.POD_NETWORK)
def test_outbound_through_nat(lab: Lab, request: pytest.FixtureRequest) -> None:
    """``curl ipinfo.io/ip`` from netshoot prints the public address the pod's traffic leaves by: the NAT
    gateway's (the pods sit in private subnets)."""
    _skip_without_exec(lab)
    netshoot: Netshoot = request.getfixturevalue("netshoot")
    address = _typed(lab, netshoot, "curl ipinfo.io/ip").stdout.strip()
    try:
        ipaddress.IPv4Address(address)
    except ValueError:
        expect("curl ipinfo.io/ip: a public IPv4 address", address, "<the NAT gateway's public IP>")
    vpc = lab.aws("eks").describe_cluster(name=lab.cluster.cluster_name)["cluster"]["resourcesVpcConfig"]["vpcId"]
    gateways = lab.aws("ec2").describe_nat_gateways(Filter=[{"Name": "vpc-id", "Values": [vpc]}])["NatGateways"]
    public = sorted(a["PublicIp"] for g in gateways for a in g.get("NatGatewayAddresses", []) if a.get("PublicIp"))
    if public and address not in public:
        expect("curl ipinfo.io/ip: the public IP of the cluster VPC's NAT gateway", address, " or ".join(public))


@pytest.mark.needs(Capability.POD_NETWORK)
@pytest.mark.parametrize("probe", list(PROBES), ids=list(PROBES))
def test_in_pod(lab: Lab, request: pytest.FixtureRequest, probe: str) -> None:
    _skip_without_exec(lab)
    # Asked for here, not as an argument: the lab fixture skips first when the backend has no pod network.
    netshoot: Netshoot = request.getfixturevalue("netshoot")
    PROBES[probe](lab, netshoot)
