"""The 2048 game of Labs 2 and 3, shared by their modules: the two documented deployments and their setup.

Two variants of the same app:

- ``fargate-game-2048 x5`` (document 000): ``kubectl apply -f fargate_2048_full.yaml`` (Namespace, 5 replicas,
  NodePort Service, ALB Ingress) after ``eksctl create fargateprofile … --name fargate-game-2048 --namespace
  fargate-game-2048``;
- ``study-aews x2`` (document 002): the heredoc ``cat <<EOF | kubectl apply -f -`` of ``game-2048-study.yaml``
  (2 replicas, ClusterIP Service, ALB Ingress) in the namespace made by ``kubectl create ns study-aews``.

Both modules use the same two deployments: the ``games`` fixture (labs/conftest.py) builds a variant on first
use (``games(FARGATE_GAME, lab)``) as one of the harness's shared setups, and it is undone when the session (or
pytest-xdist worker) ends, so Lab 2 and Lab 3 pay for one rollout, one ALB and one teardown per variant. Each
test reads the game through its own function-scoped ``lab``, which inherits the variant's setup (its steps in
the report, its namespace in the diagnostics). Lab 3's transitions end where they
started (5->3->5, 2->4->2), and each brings the deployment to its starting replicas first if it is elsewhere.
In check mode nothing is created: the objects must exist under their documented names.

Replay gives each variant a namespace of its own, ``fargate-game-2048-game-<run id>`` and
``study-aews-game-<run id>``, with a Fargate profile of the same name that selects exactly it, as the other labs
do: labs that share a documented namespace (or Lab 1's profile ``fargate-game-2048-<run id>``) never meet when
pytest-xdist runs them side by side. Every test of one variant carries the same ``xdist_group``, so with
``--dist loadgroup`` one worker builds that deployment once and runs its tests in file order (Lab 2, then
Lab 3). Document 002's ``study_wildcard`` profile (``study-*``) is Lab 1's; the per-namespace profiles sort
before it, so they take these pods.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Any, Callable

import pytest

from fargatelab import Kube, Lab, Missing, condition, expect
from fargatelab.eks.vpc import cluster_subnets

__all__ = ["Variant", "FARGATE_GAME", "STUDY", "VARIANTS", "group", "param", "Game", "Games", "deploy",
           "DEPLOYMENT", "SERVICE", "INGRESS", "APP_SELECTOR", "IMAGE", "TAG", "require_lbc"]

DEPLOYMENT = "deployment-2048"
SERVICE = "service-2048"
INGRESS = "ingress-2048"
APP_LABEL = ("app.kubernetes.io/name", "app-2048")
APP_SELECTOR = "=".join(APP_LABEL)
IMAGE = "public.ecr.aws/l6m2t8p7/docker-2048:latest"
INGRESS_CLASS = "alb"
LBC_CONTROLLER = "ingress.k8s.aws/alb"
#: replay namespaces and profiles: <documented namespace>-game-<run id>
TAG = "game"
#: how long an ALB takes to appear in the Ingress status (seconds on EKS; the emulation needs one pass)
LOAD_BALANCER_TIMEOUT = 180.0


@dataclass(frozen=True)
class Variant:
    id: str
    document: str
    manifest: str
    namespace: str  # documented
    replicas: int  # documented
    service_type: str  # documented
    apply_command: str  # documented
    rollout_command: str
    scale_command: str  # documented, with {replicas}
    profile_command: str  # documented


FARGATE_GAME = Variant(
    id="fargate-game-2048 x5", document="000", manifest="fargate_2048_full.yaml", namespace="fargate-game-2048",
    replicas=5, service_type="NodePort",
    apply_command="kubectl apply -f ~/environment/myeks/alb-controller/fargate_2048_full.yaml",
    rollout_command="kubectl -n fargate-game-2048 rollout status deployment deployment-2048",
    scale_command="kubectl -n fargate-game-2048 scale deployment deployment-2048 --replicas={replicas}",
    profile_command="eksctl create fargateprofile --cluster $EKSCLUSTER_NAME --name fargate-game-2048 "
                    "--namespace fargate-game-2048",
)
STUDY = Variant(
    id="study-aews x2", document="002", manifest="game-2048-study.yaml", namespace="study-aews",
    replicas=2, service_type="ClusterIP",
    apply_command="cat <<EOF | kubectl apply -f - (Deployment, Service and Ingress of the 2048 game) EOF",
    rollout_command="kubectl -n study-aews rollout status deployment deployment-2048",
    scale_command="kubectl scale deployment -n study-aews  deployment-2048 --replicas {replicas}",
    profile_command='fargate_profiles = { study_wildcard = { selectors = [{ namespace = "study-*" }] } }',
)
VARIANTS = (FARGATE_GAME, STUDY)


def group(variant: Variant) -> Any:
    """The xdist group of the tests of ``variant``: they share its namespace and deployment."""
    return pytest.mark.xdist_group(f"2048-{variant.namespace}")


def param(variant: Variant, *values: Any, id: str | None = None) -> Any:  # noqa: A002 - pytest's word
    """A ``pytest.param`` of ``variant`` (and more values) in the variant's xdist group."""
    return pytest.param(variant, *values, id=id or variant.id, marks=group(variant))


def require_lbc(kube: Kube, fail: bool = True) -> None:
    """The AWS Load Balancer Controller must be installed: its IngressClass ``alb`` names its controller."""
    try:
        alb = kube.get(f"/apis/networking.k8s.io/v1/ingressclasses/{INGRESS_CLASS}")
    except LookupError:
        what = "IngressClass alb: the AWS Load Balancer Controller is not installed"
        fix = "helm install aws-load-balancer-controller eks/aws-load-balancer-controller (the documents' step)"
        if fail:
            raise Missing(what, fix) from None
        pytest.skip(f"no {what} (the documents install it before this lab)")
    expect("controller of IngressClass alb", alb["spec"].get("controller"), LBC_CONTROLLER)


@dataclass
class Game:
    """One deployed variant: its namespace and what the tests read from it."""

    variant: Variant
    owner: Lab  # the lab that made it (and undoes it)
    namespace: str

    @property
    def kube(self) -> Kube:
        return self.owner.kube

    def documented(self, command: str) -> str:
        """A documented command as it runs here (the namespace renamed in replay mode)."""
        return re.sub(rf"(-n\s+){re.escape(self.variant.namespace)}(?=\s|$)", rf"\g<1>{self.namespace}", command)

    # --- reads --------------------------------------------------------------------------------

    def pods(self) -> list[dict[str, Any]]:
        return self.kube.live_pods(self.namespace, APP_SELECTOR)

    def replicas(self) -> int:
        return int(self.kube.deployment(self.namespace, DEPLOYMENT)["spec"].get("replicas", 1))

    def ingress(self) -> dict[str, Any]:
        return self.kube.get(f"/apis/networking.k8s.io/v1/namespaces/{self.namespace}/ingresses/{INGRESS}")

    def hostname(self) -> str:
        status = ((self.ingress().get("status") or {}).get("loadBalancer") or {}).get("ingress") or [{}]
        return str(status[0].get("hostname") or "")

    def bindings(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.kube.get(
            f"/apis/elbv2.k8s.aws/v1beta1/namespaces/{self.namespace}/targetgroupbindings")["items"]
        return items

    def fargate_nodes(self) -> dict[str, dict[str, Any]]:
        """The Fargate nodes that host this deployment's pods, by name."""
        nodes = self.kube.fargate_nodes()
        hosts = [self.kube.fargate_node_of(p, nodes) for p in self.pods()]
        return {n["metadata"]["name"]: n for n in hosts if n}

    def private_networks(self) -> dict[str, ipaddress.IPv4Network | ipaddress.IPv6Network]:
        """The cluster's private subnets (those a Fargate profile may use), by id."""
        eks, ec2 = self.owner.aws("eks"), self.owner.aws("ec2")
        private, _ = cluster_subnets(eks, ec2, self.owner.cluster.cluster_name)
        return {s["SubnetId"]: ipaddress.ip_network(s["CidrBlock"])
                for s in ec2.describe_subnets(SubnetIds=private)["Subnets"]}

    # --- waits --------------------------------------------------------------------------------

    def wait_running(self, lab: Lab, count: int | None = None) -> list[dict[str, Any]]:
        """``count`` (default: the replicas) pods Running, each on its own Fargate node, no orphan node."""
        count = self.replicas() if count is None else count
        timeout = lab.timing.pod_ready_timeout + 30
        lab.wait(lab.conditions.pods_running(self.namespace, APP_SELECTOR, count), timeout)
        lab.wait(lab.conditions.fargate_nodes_for(self.namespace, APP_SELECTOR, count), timeout)
        return self.pods()

    def wait_hostname(self, lab: Lab) -> str:
        lab.wait(condition(f"hostname of Ingress {self.namespace}/{INGRESS}",
                                lambda: (bool(h := self.hostname()), h or "no hostname in status.loadBalancer")),
                 LOAD_BALANCER_TIMEOUT)
        return self.hostname()

    def load_balancer(self, lab: Lab) -> dict[str, Any]:
        """The ALB behind the Ingress hostname (``<name>-<digits>.<region>.elb.amazonaws.com``)."""
        hostname = self.wait_hostname(lab)
        name = re.sub(r"^internal-", "", hostname).split(".")[0].rsplit("-", 1)[0]
        lbs: list[dict[str, Any]] = lab.aws("elbv2").describe_load_balancers(Names=[name])["LoadBalancers"]
        expect(f"one load balancer named {name}", len(lbs), 1)
        return lbs[0]

    def targets(self, lab: Lab) -> dict[str, set[tuple[str, int]]]:
        """Registered (not draining) targets of every target group of the Ingress's ALB, by target group ARN."""
        elbv2 = lab.aws("elbv2")
        lb = self.load_balancer(lab)
        out = {}
        for tg in elbv2.describe_target_groups(LoadBalancerArn=lb["LoadBalancerArn"])["TargetGroups"]:
            health = elbv2.describe_target_health(TargetGroupArn=tg["TargetGroupArn"])["TargetHealthDescriptions"]
            out[tg["TargetGroupArn"]] = {(h["Target"]["Id"], int(h["Target"]["Port"])) for h in health
                                         if (h.get("TargetHealth") or {}).get("State") != "draining"}
        return out

    def wait_targets_are_pods(self, lab: Lab) -> set[tuple[str, int]]:
        """The ALB's ip targets become exactly the Running pods' IPs on port 80."""
        lb = self.load_balancer(lab)
        groups = lab.aws("elbv2").describe_target_groups(LoadBalancerArn=lb["LoadBalancerArn"])["TargetGroups"]
        # Fail now rather than wait: instance targets never become the pods (Fargate nodes are not EC2 instances).
        expect("target type of the ALB's target groups (ip: required for Fargate pods)",
               sorted({g["TargetType"] for g in groups}), ["ip"])

        def probe() -> tuple[bool, str]:
            ips = {(p["status"].get("podIP"), 80) for p in self.pods() if p["status"].get("phase") == "Running"}
            by_group = self.targets(lab)
            ok = len(ips) == self.replicas() and bool(by_group) and all(t == ips for t in by_group.values())
            return ok, f"pods={sorted(ips)} targets={ {k.rsplit('/', 2)[-2]: sorted(v) for k, v in by_group.items()} }"

        lab.wait(condition(f"ALB targets of {self.namespace}/{INGRESS} = the pod IPs", probe),
                 LOAD_BALANCER_TIMEOUT)
        return {(p["status"]["podIP"], 80) for p in self.pods()}


#: the ``games`` fixture: ``games(FARGATE_GAME, lab)`` is that variant's deployment
Games = Callable[[Variant, Lab], Game]


def deploy(lab: Lab, variant: Variant) -> Game:
    """The variant as the documents build it: the Fargate profile (and namespace) first, then the manifest.

    ``lab`` is the variant's own (scope ``game``): replay puts it in ``<documented namespace>-game-<run id>``.
    """
    key = lab.scoped(variant.namespace)
    namespace = lab.name(key)
    if not lab.replay:
        lab.ensure(variant.manifest, variant.apply_command)
        lab.namespace_for(variant.namespace)
        return Game(variant, lab, namespace)
    # Created before the namespace, so cleanup deletes the namespace (and its pods) first.
    lab.step(variant.profile_command, f"CreateFargateProfile {namespace}: selector namespace {namespace}")
    lab.create_profile(key, [{"namespace": namespace}])
    if variant is STUDY:
        lab.step("kubectl create ns study-aews", f"namespace {namespace}")
        lab.namespace(variant.namespace)
    lab.apply(variant.manifest, variant.apply_command)
    return Game(variant, lab, namespace)
