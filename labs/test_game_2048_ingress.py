"""Lab 2 — the 2048 game behind an ALB Ingress (document 000 "Application 배포", document 002 "AWS ALB (Ingress) 실습").

Documented steps (000): ``eksctl create fargateprofile … --name fargate-game-2048 --namespace fargate-game-2048``,
``kubectl apply -f …/fargate_2048_full.yaml``, ``kubectl -n fargate-game-2048 rollout status deployment
deployment-2048``, ``kubectl get nodes -o wide``. (002): the same app in ``study-aews`` with 2 replicas and a
ClusterIP Service, then ``kubectl get targetgroupbindings -n study-aews`` and the Ingress hostname.
Every test runs for both variants: ``[fargate-game-2048 x5]`` and ``[study-aews x2]``.
"""

from __future__ import annotations

import ipaddress
import re
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from fargatelab import Capability, Lab, expect, find_browser, open_page
from fargatelab import conditions as cond
from fargatelab.eks.vpc import cluster_subnets
from labs._game import (APP_SELECTOR, DEPLOYMENT, IMAGE, INGRESS, LOAD_BALANCER_TIMEOUT, SERVICE, VARIANTS, Games,
                        Variant, param, require_lbc)


pytestmark = [pytest.mark.lab("Lab 2 — the 2048 game behind an ALB Ingress", "000, 002")]

BY_VARIANT = pytest.mark.parametrize("variant", [param(v) for v in VARIANTS])


def _table(text: str) -> list[dict[str, str]]:
    """Rows of a kubectl table, cut at the header's column starts (values such as ``Amazon Linux 2`` keep spaces)."""
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        return []
    header = lines[0]
    columns = list(re.finditer(r"\S+(?: \S+)*", header))  # "NOMINATED NODE" is one column
    starts = [m.start() for m in columns]
    names = [m.group() for m in columns]
    rows = []
    for line in lines[1:]:
        cells = [line[a:b].strip() for a, b in zip(starts, starts[1:] + [len(line) + 1])]
        rows.append(dict(zip(names, cells)))
    return rows


def _slug(text: str) -> str:
    return re.sub(r"[^0-9A-Za-z]", "", text)[:8]


@BY_VARIANT
def test_manifest(lab: Lab, games: Games, variant: Variant) -> None:
    """The objects in the cluster carry what the documents give the game (image, port, Service, Ingress)."""
    game = games(variant, lab)
    deployment = lab.kube.deployment(game.namespace, DEPLOYMENT)
    if lab.replay:  # a student may have scaled it since (Lab 3)
        expect(f"replicas of {DEPLOYMENT} ({variant.document})", deployment["spec"].get("replicas"), variant.replicas)
    template = deployment["spec"]["template"]
    (container,) = template["spec"]["containers"]
    expect("pod label", template["metadata"].get("labels", {}).get("app.kubernetes.io/name"), "app-2048")
    expect("Deployment selector", deployment["spec"]["selector"].get("matchLabels"),
           {"app.kubernetes.io/name": "app-2048"})
    expect("container name", container["name"], "app-2048")
    expect("image", container["image"], IMAGE)
    expect("imagePullPolicy", container.get("imagePullPolicy"), "Always")
    expect("container port", [p["containerPort"] for p in container.get("ports", [])], [80])

    service = lab.kube.get(f"/api/v1/namespaces/{game.namespace}/services/{SERVICE}")
    expect(f"type of Service {SERVICE}", service["spec"]["type"], variant.service_type)
    expect(f"ports of Service {SERVICE}", [(p["port"], p["targetPort"], p["protocol"]) for p in service["spec"]["ports"]],
           [(80, 80, "TCP")])
    expect(f"selector of Service {SERVICE}", service["spec"].get("selector"), {"app.kubernetes.io/name": "app-2048"})

    ingress = game.ingress()
    annotations = ingress["metadata"].get("annotations") or {}
    expect("Ingress class (spec.ingressClassName)", ingress["spec"].get("ingressClassName"), "alb")
    expect("annotation alb.ingress.kubernetes.io/scheme", annotations.get("alb.ingress.kubernetes.io/scheme"),
           "internet-facing")
    expect("annotation alb.ingress.kubernetes.io/target-type (ip: required for Fargate pods)",
           annotations.get("alb.ingress.kubernetes.io/target-type"), "ip")
    expect("Ingress rules", [(p["path"], p["pathType"], p["backend"]["service"]["name"],
                              p["backend"]["service"]["port"].get("number"))
                             for r in ingress["spec"]["rules"] for p in r["http"]["paths"]],
           [("/", "Prefix", SERVICE, 80)])


@BY_VARIANT
def test_rollout(lab: Lab, games: Games, variant: Variant) -> None:
    """``rollout status`` completes; every replica runs on a Fargate node of its own."""
    game = games(variant, lab)
    if lab.replay:  # before waiting for them (a student may have scaled it since: check mode takes it as it is)
        expect(f"replicas of {DEPLOYMENT} ({variant.document})", game.replicas(), variant.replicas)
    lab.step(variant.rollout_command)
    timeout = int(lab.timing.pod_ready_timeout + 30)
    result = lab.kube.kubectl(*game.documented(variant.rollout_command).split()[1:], f"--timeout={timeout}s",
                              timeout=timeout + 30)
    expect("rollout status", result.stdout.strip().splitlines()[-1],
           f'deployment "{DEPLOYMENT}" successfully rolled out')
    replicas = game.replicas()
    pods = game.wait_running(lab, replicas)
    expect(f"Running pods of {DEPLOYMENT}", len(pods), replicas)
    nodes = lab.kube.fargate_nodes()
    hosts = [lab.kube.fargate_node_name(p, nodes) for p in pods]
    expect("one pod per Fargate node (distinct nodes)", len(set(hosts) - {None}), len(hosts))
    expect(f"Fargate nodes of {DEPLOYMENT}", len(game.fargate_nodes()), replicas)
    expect("scheduler of the pods", sorted({p["spec"].get("schedulerName") for p in pods}), ["fargate-scheduler"])


def _not_ready_tainted(lab: Lab, pods: list[dict[str, Any]]) -> tuple[bool, str]:
    listed = lab.kube.fargate_nodes()
    hosts = {lab.kube.fargate_node_name(pod, listed) for pod in pods}
    tainted = sorted(n["metadata"]["name"] for n in listed if n["metadata"]["name"] in hosts and any(
        t["key"] == "node.kubernetes.io/not-ready" for t in n["spec"].get("taints") or []))
    return not tainted, f"still tainted: {tainted}"


@BY_VARIANT
def test_fargate_nodes(lab: Lab, games: Games, variant: Variant) -> None:
    """``kubectl get nodes -o wide``: one Ready ``fargate-ip-…`` node per pod, named after its pod IP."""
    game = games(variant, lab)
    pods = game.wait_running(lab)
    domain = lab.cluster.node_domain
    networks = game.private_networks()
    zones = {s["SubnetId"]: s["AvailabilityZone"]
             for s in lab.aws("ec2").describe_subnets(SubnetIds=sorted(networks))["Subnets"]}

    # The node lifecycle controller lifts a new node's not-ready taint within a second of its NodeReady.
    lab.wait(cond.condition("the pods' Fargate nodes without the node.kubernetes.io/not-ready taint",
                            lambda: _not_ready_tainted(lab, pods)), 15)
    lab.step("kubectl get nodes -o wide")
    table = {row["NAME"]: row for row in _table(lab.kube.kubectl("get", "nodes", "-o", "wide").stdout)}
    listed = lab.kube.fargate_nodes()
    nodes = {n["metadata"]["name"]: n for n in listed}

    for pod in pods:
        name, ip = pod["metadata"]["name"], pod["status"].get("podIP")
        expected = f"fargate-ip-{ip.replace('.', '-')}.{domain}"
        expect(f"Fargate node of pod {name} (fargate-ip-<pod IP>.{domain})",
               lab.kube.fargate_node_name(pod, listed), expected)
        subnet = [s for s, net in networks.items() if ipaddress.ip_address(ip) in net]
        expect(f"pod IP {ip} in one of the private subnets {sorted(map(str, networks.values()))}", len(subnet), 1)

        node = nodes.get(expected)
        assert node is not None, f"Fargate node {expected}\n  expected: a node labelled eks.amazonaws.com/compute-type=fargate\n  actual:   none"
        addresses = {a["type"]: a["address"] for a in node["status"].get("addresses", [])}
        expect(f"node {expected}: InternalIP = pod IP", addresses.get("InternalIP"), ip)
        expect(f"node {expected}: no ExternalIP", addresses.get("ExternalIP"), None)
        expect(f"node {expected}: zone = its subnet's zone", node["metadata"]["labels"].get("topology.kubernetes.io/zone"),
               zones[subnet[0]])
        ready = [c["status"] for c in node["status"].get("conditions", []) if c["type"] == "Ready"]
        expect(f"node {expected}: Ready", ready, ["True"])
        expect(f"node {expected}: taint", [(t["key"], t.get("value"), t["effect"]) for t in node["spec"].get("taints", [])],
               [("eks.amazonaws.com/compute-type", "fargate", "NoSchedule")])

        row = table.get(expected)
        assert row is not None, f"`kubectl get nodes -o wide` row of {expected}\n  expected: present\n  actual:   {sorted(table)}"
        expect(f"{expected}: STATUS", row["STATUS"], "Ready")
        assert re.fullmatch(r"v\d+\.\d+\.\d+-eks-[0-9a-f]{7}", row["VERSION"]), (
            f"{expected}: kubelet VERSION (documented v1.23.17-eks-f4dc2c0)\n"
            f"  expected: v<major>.<minor>.<patch>-eks-<7 hex>\n  actual:   {row['VERSION']}")
        expect(f"{expected}: INTERNAL-IP", row["INTERNAL-IP"], ip)
        expect(f"{expected}: EXTERNAL-IP", row["EXTERNAL-IP"], "<none>")
        expect(f"{expected}: OS-IMAGE", row["OS-IMAGE"], "Amazon Linux 2")
        assert row["CONTAINER-RUNTIME"].startswith("containerd://"), (
            f"{expected}: CONTAINER-RUNTIME\n  expected: containerd://…\n  actual:   {row['CONTAINER-RUNTIME']}")

    ips = sorted(p["status"]["podIP"] for p in pods)
    reservations = lab.aws("ec2").describe_instances(
        Filters=[{"Name": "private-ip-address", "Values": ips}])["Reservations"]
    expect("EC2 instances with the Fargate nodes' IPs (Fargate nodes are not EC2 instances)",
           [i["InstanceId"] for r in reservations for i in r["Instances"]], [])


@BY_VARIANT
@pytest.mark.needs(Capability.NODE_PER_POD)
def test_pods_on_their_nodes(lab: Lab, games: Games, variant: Variant) -> None:
    """``kubectl get pod -o wide``: each pod's NODE is the Fargate node named after its IP, and hostIP = pod IP."""
    game = games(variant, lab)
    pods = game.wait_running(lab)
    domain = lab.cluster.node_domain
    lab.step(f"kubectl -n {variant.namespace} get pod -o wide")
    pod_rows = {row["NAME"]: row for row in _table(
        lab.kube.kubectl("-n", game.namespace, "get", "pod", "-o", "wide", "-l", APP_SELECTOR).stdout)}
    for pod in pods:
        name, ip = pod["metadata"]["name"], pod["status"].get("podIP")
        expected = f"fargate-ip-{ip.replace('.', '-')}.{domain}"
        expect(f"node of pod {name} (fargate-ip-<pod IP>.{domain})", pod["spec"].get("nodeName"), expected)
        expect(f"pod {name}: hostIP = podIP", pod["status"].get("hostIP"), ip)
        expect(f"`get pod -o wide` of {name}: IP, NODE", (pod_rows[name]["IP"], pod_rows[name]["NODE"]), (ip, expected))


@BY_VARIANT
def test_ingress_hostname(lab: Lab, games: Games, variant: Variant) -> None:
    """The Ingress gets the ALB's DNS name: ``k8s-<ns 8>-<ingress 8>-<10 hex>-<digits>.<region>.elb.amazonaws.com``."""
    game = games(variant, lab)
    require_lbc(lab.kube)
    game.wait_hostname(lab)
    command = (f"kubectl get ingress -n {variant.namespace} {INGRESS} "
               "-o jsonpath='{.status.loadBalancer.ingress[0].hostname}'")
    lab.step(command)
    hostname = lab.kube.kubectl("get", "ingress", "-n", game.namespace, INGRESS, "-o",
                                "jsonpath={.status.loadBalancer.ingress[0].hostname}").stdout.strip()
    pattern = (rf"k8s-{_slug(game.namespace)}-{_slug(INGRESS)}-[0-9a-f]{{10}}-\d+"
               rf"\.{re.escape(lab.cluster.region)}\.elb\.amazonaws\.com")
    assert re.fullmatch(pattern, hostname), (
        f"Ingress hostname (internet-facing: no internal- prefix)\n  expected: {pattern}\n  actual:   {hostname}")
    expect("IngressClass of the Ingress", game.ingress()["spec"].get("ingressClassName"), "alb")
    # One load balancer, one name: the Ingress shows the DNSName the ELBv2 API gives it.
    expect("DNSName of the ALB (aws elbv2 describe-load-balancers)", game.load_balancer(lab)["DNSName"], hostname)


@BY_VARIANT
def test_target_group_bindings(lab: Lab, games: Games, variant: Variant) -> None:
    """``kubectl get targetgroupbindings -n <ns>``: one binding for service-2048:80, target type ip."""
    game = games(variant, lab)
    require_lbc(lab.kube)
    game.wait_hostname(lab)

    def probe() -> tuple[bool, str]:
        mine = [b for b in game.bindings() if (b["spec"].get("serviceRef") or {}).get("name") == SERVICE]
        return bool(mine), f"{len(mine)} bindings for {SERVICE}"

    lab.wait(cond.condition(f"a TargetGroupBinding for {SERVICE}", probe), LOAD_BALANCER_TIMEOUT)
    lab.step(f"kubectl get targetgroupbindings -n {variant.namespace}")
    rows = [r for r in _table(lab.kube.kubectl("get", "targetgroupbindings", "-n", game.namespace).stdout)
            if r.get("SERVICE-NAME") == SERVICE]
    expect(f"`kubectl get targetgroupbindings` rows for {SERVICE} (SERVICE-NAME, SERVICE-PORT, TARGET-TYPE)",
           [(r["SERVICE-NAME"], r["SERVICE-PORT"], r["TARGET-TYPE"]) for r in rows], [(SERVICE, "80", "ip")])
    (binding,) = [b for b in game.bindings() if b["spec"]["serviceRef"]["name"] == SERVICE]
    expect("TargetGroupBinding apiVersion", binding["apiVersion"], "elbv2.k8s.aws/v1beta1")
    tg = lab.aws("elbv2").describe_target_groups(TargetGroupArns=[binding["spec"]["targetGroupARN"]])["TargetGroups"][0]
    expect("target group of the binding: name", tg["TargetGroupName"], binding["metadata"]["name"])
    expect("target group of the binding: load balancer",
           tg["LoadBalancerArns"], [game.load_balancer(lab)["LoadBalancerArn"]])


@BY_VARIANT
def test_load_balancer(lab: Lab, games: Games, variant: Variant) -> None:
    """An internet-facing ALB in the public subnets, ip targets = the pods' IPs on port 80."""
    game = games(variant, lab)
    require_lbc(lab.kube)
    game.wait_running(lab)
    lb = game.load_balancer(lab)
    expect("load balancer type", lb["Type"], "application")
    expect("load balancer scheme", lb["Scheme"], "internet-facing")
    _private, public = cluster_subnets(lab.aws("eks"), lab.aws("ec2"), lab.cluster.cluster_name)
    subnets = sorted(z["SubnetId"] for z in lb["AvailabilityZones"])
    expect("load balancer subnets = the cluster's public subnets", subnets, public)
    assert len({z["ZoneName"] for z in lb["AvailabilityZones"]}) >= 2, (
        f"load balancer zones\n  expected: at least 2\n  actual:   {lb['AvailabilityZones']}")
    expect("load balancer DNS name in the Ingress", game.hostname().startswith(f"{lb['LoadBalancerName']}-"), True)
    groups = lab.aws("elbv2").describe_target_groups(LoadBalancerArn=lb["LoadBalancerArn"])["TargetGroups"]
    expect("target groups (one per service port): target type", [g["TargetType"] for g in groups], ["ip"])
    expect("target group port", [g["Port"] for g in groups], [80])
    pods = {(p["status"]["podIP"], 80) for p in game.pods()}
    targets = game.wait_targets_are_pods(lab)
    expect("registered targets = the pod IPs", sorted(targets), sorted(pods))


@BY_VARIANT
def test_reconciled_event(lab: Lab, games: Games, variant: Variant) -> None:
    """The controller reports ``Normal SuccessfullyReconciled`` on the Ingress."""
    game = games(variant, lab)
    require_lbc(lab.kube)
    game.wait_hostname(lab)
    ingress = game.ingress()
    lab.step(f"kubectl describe ingress -n {variant.namespace} {INGRESS}")
    lab.wait(cond.EventRecorded(lab.kube, game.namespace, ingress["metadata"]["uid"], "SuccessfullyReconciled"),
             LOAD_BALANCER_TIMEOUT)
    events = lab.kube.events(game.namespace, uid=ingress["metadata"]["uid"])  # in the order they were written
    last = max(i for i, e in enumerate(events) if e["reason"] == "SuccessfullyReconciled")
    expect("SuccessfullyReconciled event (type, message)", (events[last]["type"], events[last]["message"]),
           ("Normal", "Successfully reconciled"))
    # A warning while the ALB was being made may be followed by success; none may come after it.
    expect("Warning events on the Ingress after SuccessfullyReconciled",
           [f"{e['reason']}: {e['message']}" for e in events[last + 1:] if e["type"] == "Warning"], [])


def _wait_page(lab: Lab, hostname: str) -> None:
    """Until ``http://<hostname>/`` serves the 2048 page."""

    def probe() -> tuple[bool, str]:
        # Where the name is not in public DNS (the local backend's ALBs), connect where the backend serves
        # it, asking for the hostname, as `curl --resolve` does.
        address = lab.cluster.load_balancer_address(hostname)
        request = urllib.request.Request(f"http://{address or hostname}/", headers={"Host": hostname})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                body: Any = response.read().decode(errors="replace")
                return response.status == 200 and "2048" in body, f"HTTP {response.status}, {len(body)} bytes"
        except urllib.error.HTTPError as exc:
            return False, f"HTTP {exc.code}"
        except (urllib.error.URLError, OSError) as exc:
            return False, str(exc)

    # DNS of a new ALB takes a few minutes to resolve.
    lab.wait(cond.condition(f"the 2048 page at http://{hostname}/", probe), 300, interval=1)


@pytest.mark.needs(Capability.LOAD_BALANCER_HTTP)
@BY_VARIANT
def test_game_page(lab: Lab, games: Games, variant: Variant) -> None:
    """Opening ``http://<hostname>`` shows the game."""
    game = games(variant, lab)
    hostname = game.wait_hostname(lab)
    lab.step(f"open http://{hostname}")
    _wait_page(lab, hostname)


@pytest.mark.needs(Capability.LOAD_BALANCER_HTTP)
@BY_VARIANT
def test_game_in_a_browser(lab: Lab, games: Games, variant: Variant, tmp_path: Path) -> None:
    """A browser opens the game through the ALB: the board comes up with its first two tiles (the picture
    goes into the report)."""
    browser = find_browser()
    if browser is None:
        pytest.skip("needs a browser: no Chromium found; install Debian's chromium or set FARGATE_LABS_CHROMIUM")
    game = games(variant, lab)
    hostname = game.wait_hostname(lab)
    lab.step(f"open http://{hostname} in a browser")
    _wait_page(lab, hostname)
    def tiles(dom: str) -> int:
        return len(re.findall(r'class="tile tile-\d+', dom))

    page = open_page(f"http://{hostname}/", hostname, lab.cluster.load_balancer_address(hostname),
                     tmp_path / "2048.png", browser, ready=lambda dom: tiles(dom) > 0)
    lab.picture(str(page.screenshot), f"the 2048 game at http://{hostname}/ ({variant.namespace})")
    expect("tiles on the 2048 board as the game starts", tiles(page.dom), 2)
