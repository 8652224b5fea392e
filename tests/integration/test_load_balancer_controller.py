"""The load balancer controller emulation against the local environment (Lab 2 of the workshop).

Each test runs its own controller in this process (``LoadBalancerController.run`` in a thread) with
its own ingress class, controller name and finalizer, so it never touches the Ingresses of the
environment's own controller (nor they its). Pods are real API objects on Fargate nodes made by the
emulation; ELBv2 is moto's.
"""

from __future__ import annotations

import json
import re
import threading
import urllib.request
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import pytest

from fargatelab.scenario import wait
from fargatelab.emulator.kube import Clients, status_of
from fargatelab.emulator.lbc import LoadBalancerController
from fargatelab.rules.naming import dns_digits
from fargatelab.emulator.lbc_aws import read_inventory
from fargatelab.scenario.handle import ClusterHandle
from fargatelab.rules.naming import load_balancer_dns_name, load_balancer_name

pytestmark = pytest.mark.integration

IMAGE = "public.ecr.aws/l6m2t8p7/docker-2048:latest"
TGB = ("elbv2.k8s.aws", "v1beta1", "targetgroupbindings")
TIMEOUT = 90.0


def wait_for(check: Callable[[], Any], what: str, timeout: float = TIMEOUT) -> Any:
    return wait.until(check, timeout, what, interval=0.3)


@dataclass
class Controller:
    """One in-process controller life: started in a thread, stopped like a killed pod (no cleanup)."""

    make: Callable[[], LoadBalancerController]
    stop_event: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None

    def start(self) -> Controller:
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self.make().run, args=(self.stop_event,), daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stop_event.set()
        if self.thread is not None:
            self.thread.join(timeout=30)


@dataclass
class Lab:
    """The test's identity and its clients."""

    env: ClusterHandle
    kube: Clients
    elbv2: Any
    ec2: Any
    seed: dict[str, Any]
    namespace: str
    ingress_class: str
    controller_name: str
    started: list[Controller] = field(default_factory=list)

    def controller(self, vpc_id: str | None = None) -> Controller:
        def make() -> LoadBalancerController:
            return LoadBalancerController(self.kube, self.elbv2, self.ec2, self.env.region, self.env.cluster_name,
                                          self.env.run_id, ingress_class=self.ingress_class,
                                          controller=self.controller_name, finalizer=self.controller_name,
                                          vpc_id=vpc_id)

        one = Controller(make)
        self.started.append(one)
        return one

    # --- workload -----------------------------------------------------------------------------

    def deploy_app(self, name: str, replicas: int, service_type: str = "ClusterIP") -> None:
        labels = {"app.kubernetes.io/name": name}
        self.kube.apps.create_namespaced_deployment(self.namespace, {
            "metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels}, "spec": {"containers": [
                         {"name": "app", "image": IMAGE, "imagePullPolicy": "Always",
                          "ports": [{"containerPort": 80}]}]}}}})
        self.kube.core.create_namespaced_service(self.namespace, {
            "metadata": {"name": name},
            "spec": {"type": service_type, "selector": labels,
                     "ports": [{"port": 80, "targetPort": 80, "protocol": "TCP"}]}})

    def scale(self, name: str, replicas: int) -> None:
        self.kube.apps.patch_namespaced_deployment_scale(name, self.namespace, {"spec": {"replicas": replicas}})

    def create_ingress(self, name: str, service: str, annotations: dict[str, str] | None = None,
                       legacy_annotation: bool = False) -> None:
        spec: dict[str, Any] = {"rules": [{"http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": {
            "service": {"name": service, "port": {"number": 80}}}}]}}]}
        annotations = dict(annotations or {})
        if legacy_annotation:
            annotations["kubernetes.io/ingress.class"] = self.ingress_class
        else:
            spec["ingressClassName"] = self.ingress_class
        self.kube.networking.create_namespaced_ingress(self.namespace, {
            "metadata": {"name": name, "annotations": annotations}, "spec": spec})

    # --- observations -------------------------------------------------------------------------

    def ingress(self, name: str) -> Any:
        return self.kube.networking.read_namespaced_ingress(name, self.namespace)

    def hostname(self, name: str) -> str:
        lb = self.ingress(name).status.load_balancer
        return str(lb.ingress[0].hostname) if lb and lb.ingress else ""

    def load_balancers(self, ingress: str) -> list[dict[str, Any]]:
        inv = read_inventory(self.elbv2, self.env.cluster_name)
        return inv.load_balancers.get(f"{self.namespace}/{ingress}", [])

    def target_groups(self, ingress: str) -> list[dict[str, Any]]:
        inv = read_inventory(self.elbv2, self.env.cluster_name)
        return inv.target_groups.get(f"{self.namespace}/{ingress}", [])

    def bindings(self, ingress: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.kube.custom.list_namespaced_custom_object(
            *TGB[:2], self.namespace, TGB[2],
            label_selector=f"ingress.k8s.aws/stack-namespace={self.namespace},ingress.k8s.aws/stack-name={ingress}",
        )["items"]
        return items

    def targets(self, tg_arn: str) -> set[tuple[str, int]]:
        health = self.elbv2.describe_target_health(TargetGroupArn=tg_arn)["TargetHealthDescriptions"]
        return {(h["Target"]["Id"], int(h["Target"]["Port"])) for h in health}

    def pod_ips(self, app: str) -> set[str]:
        pods = self.kube.core.list_namespaced_pod(self.namespace, label_selector=f"app.kubernetes.io/name={app}")
        return {p.status.pod_ip for p in pods.items
                if p.status.pod_ip and not p.metadata.deletion_timestamp and p.status.phase == "Running"}

    def events(self, name: str, reason: str) -> list[Any]:
        found = self.kube.core.list_namespaced_event(
            self.namespace, field_selector=f"involvedObject.name={name},reason={reason}")
        return list(found.items)

    def wait_targets_are_pods(self, ingress: str, app: str, count: int) -> set[tuple[str, int]]:
        def check() -> set[tuple[str, int]] | None:
            ips = self.pod_ips(app)
            (tg,) = self.target_groups(ingress)
            targets = self.targets(tg["TargetGroupArn"])
            return targets if len(ips) == count and targets == {(ip, 80) for ip in ips} else None

        result: set[tuple[str, int]] = wait_for(check, f"{count} pod IPs of {app} registered as targets")
        return result


@pytest.fixture(scope="module")
def namespace(fargate_namespace: Callable[[str], str]) -> str:
    return fargate_namespace("lbc")


@pytest.fixture
def lab(environment: ClusterHandle, kube: Clients, aws: Callable[[str], Any], seed: dict[str, Any],
        namespace: str) -> Iterator[Lab]:
    tag = uuid.uuid4().hex[:6]
    one = Lab(environment, kube, aws("elbv2"), aws("ec2"), seed, namespace, f"alb-t{tag}",
              f"fargate-labs.test/alb-t{tag}")
    yield one
    # Delete this test's Ingresses through a controller so no load balancer outlives the test.
    one.controller().start()
    try:
        for ing in kube.networking.list_namespaced_ingress(namespace).items:
            if ing.spec.ingress_class_name == one.ingress_class or \
                    (ing.metadata.annotations or {}).get("kubernetes.io/ingress.class") == one.ingress_class:
                kube.networking.delete_namespaced_ingress(ing.metadata.name, namespace)
                wait_for(lambda: _gone(kube, ing.metadata.name, namespace), "Ingress cleanup", 60)
    finally:
        for started in one.started:
            started.stop()
        try:
            kube.networking.delete_ingress_class(one.ingress_class)
        except Exception as exc:
            if status_of(exc) != 404:
                raise


def _gone(kube: Clients, name: str, namespace: str) -> bool:
    try:
        kube.networking.read_namespaced_ingress(name, namespace)
    except Exception as exc:
        return status_of(exc) == 404
    return False


def test_ip_targets_hostname_binding_and_event(lab: Lab) -> None:
    lab.deploy_app("game", 2)
    lab.controller().start()
    lab.create_ingress("ingress-2048", "game", {"alb.ingress.kubernetes.io/scheme": "internet-facing",
                                                "alb.ingress.kubernetes.io/target-type": "ip"})
    hostname = wait_for(lambda: lab.hostname("ingress-2048"), "the Ingress hostname")
    (lb,) = lab.load_balancers("ingress-2048")
    name = load_balancer_name(lab.env.cluster_name, lab.namespace, "ingress-2048", "internet-facing")
    assert lb["LoadBalancerName"] == name and lb["Scheme"] == "internet-facing"
    assert hostname == load_balancer_dns_name(name, lab.env.region, "internet-facing", dns_digits(lb["LoadBalancerArn"]))
    assert hostname == lb["DNSName"], "the ELBv2 API and the Ingress must carry one name for the load balancer"
    assert re.fullmatch(rf"{name}-\d{{9,10}}\.{lab.env.region}\.elb\.amazonaws\.com", hostname)
    assert sorted(z["SubnetId"] for z in lb["AvailabilityZones"]) == sorted(lab.seed["public_subnet_ids"])
    assert lab.controller_name in (lab.ingress("ingress-2048").metadata.finalizers or [])

    (tg,) = lab.target_groups("ingress-2048")
    assert tg["TargetType"] == "ip"
    (binding,) = wait_for(lambda: lab.bindings("ingress-2048"), "the TargetGroupBinding")
    assert binding["metadata"]["name"] == tg["TargetGroupName"]
    assert binding["spec"]["serviceRef"] == {"name": "game", "port": 80}
    assert (binding["spec"]["targetGroupARN"], binding["spec"]["targetType"]) == (tg["TargetGroupArn"], "ip")

    lab.wait_targets_are_pods("ingress-2048", "game", 2)
    (event,) = wait_for(lambda: lab.events("ingress-2048", "SuccessfullyReconciled"), "the success event")
    assert (event.type, event.message, event.source.component) == ("Normal", "Successfully reconciled", "ingress")


def test_targets_follow_scaling(lab: Lab) -> None:
    lab.deploy_app("scaled", 2)
    lab.controller().start()
    lab.create_ingress("scaled", "scaled", {"alb.ingress.kubernetes.io/target-type": "ip"})
    first = lab.wait_targets_are_pods("scaled", "scaled", 2)
    lab.scale("scaled", 4)
    more = lab.wait_targets_are_pods("scaled", "scaled", 4)
    assert first < more
    lab.scale("scaled", 2)
    fewer = lab.wait_targets_are_pods("scaled", "scaled", 2)
    assert fewer < more  # the pods that went were deregistered


def test_delete_leaves_nothing_in_elbv2(lab: Lab) -> None:
    lab.deploy_app("doomed", 1)
    lab.controller().start()
    lab.create_ingress("doomed", "doomed", {"alb.ingress.kubernetes.io/target-type": "ip"})
    lab.wait_targets_are_pods("doomed", "doomed", 1)
    lab.kube.networking.delete_namespaced_ingress("doomed", lab.namespace)
    wait_for(lambda: _gone(lab.kube, "doomed", lab.namespace), "the Ingress to go (finalizer removed)")
    assert lab.load_balancers("doomed") == [] and lab.target_groups("doomed") == []
    assert lab.bindings("doomed") == []


def test_instance_targets_register_no_fargate_node(lab: Lab) -> None:
    lab.deploy_app("legacy", 1, service_type="NodePort")
    lab.controller().start()
    lab.create_ingress("legacy", "legacy", legacy_annotation=True)  # default target type: instance
    (binding,) = wait_for(lambda: lab.bindings("legacy"), "the TargetGroupBinding")
    assert binding["spec"]["targetType"] == "instance"
    (warning,) = wait_for(lambda: lab.events("legacy", "NoInstanceTargets"), "the Fargate warning")
    assert warning.type == "Warning" and "Fargate" in warning.message and "target-type: ip" in warning.message
    (tg,) = lab.target_groups("legacy")
    assert tg["TargetType"] == "instance" and lab.targets(tg["TargetGroupArn"]) == set()


def test_internal_then_internet_facing(lab: Lab) -> None:
    lab.deploy_app("inner", 1)
    lab.controller().start()
    lab.create_ingress("inner", "inner", {"alb.ingress.kubernetes.io/target-type": "ip"})
    internal = wait_for(lambda: lab.hostname("inner"), "the internal hostname")
    assert internal.startswith("internal-k8s-")
    (lb,) = lab.load_balancers("inner")
    assert lb["Scheme"] == "internal"
    assert sorted(z["SubnetId"] for z in lb["AvailabilityZones"]) == sorted(lab.seed["private_subnet_ids"])

    lab.kube.networking.patch_namespaced_ingress("inner", lab.namespace, {"metadata": {"annotations": {
        "alb.ingress.kubernetes.io/scheme": "internet-facing"}}})
    public = wait_for(lambda: (h := lab.hostname("inner")) != internal and h, "the new hostname")
    assert not public.startswith("internal-")
    (replacement,) = lab.load_balancers("inner")
    assert replacement["Scheme"] == "internet-facing" and replacement["LoadBalancerArn"] != lb["LoadBalancerArn"]


@pytest.fixture
def spare_vpc(lab: Lab) -> Iterator[dict[str, Any]]:
    """A VPC of two zones with tagged public subnets, apart from the workshop's, for tag surgery."""
    ec2 = lab.ec2
    vpc_id = ec2.create_vpc(CidrBlock="10.99.0.0/16")["Vpc"]["VpcId"]
    zones = sorted(z["ZoneName"] for z in ec2.describe_availability_zones()["AvailabilityZones"])[:2]
    subnets = [ec2.create_subnet(VpcId=vpc_id, CidrBlock=f"10.99.{i * 16}.0/20", AvailabilityZone=zone)
               ["Subnet"]["SubnetId"] for i, zone in enumerate(zones)]
    yield {"vpc_id": vpc_id, "subnets": subnets}
    for lb in lab.elbv2.describe_load_balancers()["LoadBalancers"]:
        if lb.get("VpcId") == vpc_id:
            lab.elbv2.delete_load_balancer(LoadBalancerArn=lb["LoadBalancerArn"])
    for subnet in subnets:
        ec2.delete_subnet(SubnetId=subnet)
    ec2.delete_vpc(VpcId=vpc_id)


def test_missing_subnet_tags(lab: Lab, spare_vpc: dict[str, Any]) -> None:
    lab.deploy_app("untagged", 1)
    lab.controller(vpc_id=spare_vpc["vpc_id"]).start()
    lab.create_ingress("untagged", "untagged", {"alb.ingress.kubernetes.io/scheme": "internet-facing",
                                                "alb.ingress.kubernetes.io/target-type": "ip"})
    (event,) = wait_for(lambda: lab.events("untagged", "FailedBuildModel"), "the FailedBuildModel event")
    assert event.type == "Warning" and event.source.component == "ingress"
    assert event.message == ("Failed build model due to couldn't auto-discover subnets: unable to resolve at least "
                             "one subnet (0 match VPC and tags: [kubernetes.io/role/elb])")
    assert lab.load_balancers("untagged") == []

    first, second = spare_vpc["subnets"]
    lab.ec2.create_tags(Resources=[first], Tags=[{"Key": "kubernetes.io/role/elb", "Value": "1"}])
    wait_for(lambda: [e for e in lab.events("untagged", "FailedBuildModel") if e.message.endswith(
        "subnets count less than minimal required count: 1 < 2")], "the one-zone event")
    lab.ec2.create_tags(Resources=[second], Tags=[{"Key": "kubernetes.io/role/elb", "Value": "1"}])
    wait_for(lambda: lab.hostname("untagged"), "the hostname once two zones are tagged")
    (lb,) = lab.load_balancers("untagged")
    assert sorted(z["SubnetId"] for z in lb["AvailabilityZones"]) == sorted(spare_vpc["subnets"])
    lab.kube.networking.delete_namespaced_ingress("untagged", lab.namespace)  # before its VPC goes
    wait_for(lambda: _gone(lab.kube, "untagged", lab.namespace), "the Ingress to go")


def test_restart_mid_way_makes_no_duplicate(lab: Lab) -> None:
    lab.deploy_app("phoenix", 1)
    # The first life dies after its load balancer exists but before the listener does; the faults
    # outlast it (each pass takes two with the client's retry), and the next life uses up the rest.
    _inject(lab.env, {"action": "CreateListener", "error": "InternalFailure", "count": 20, "status": 500})
    first = lab.controller().start()
    lab.create_ingress("phoenix", "phoenix", {"alb.ingress.kubernetes.io/target-type": "ip"})
    wait_for(lambda: lab.events("phoenix", "FailedDeployModel"), "the first life's failure")
    (lb,) = lab.load_balancers("phoenix")
    first.stop()
    assert lab.hostname("phoenix") == ""

    lab.controller().start()  # a new life with no memory of the first
    wait_for(lambda: lab.hostname("phoenix"), "the hostname from the second life")
    lab.wait_targets_are_pods("phoenix", "phoenix", 1)
    (again,) = lab.load_balancers("phoenix")
    assert again["LoadBalancerArn"] == lb["LoadBalancerArn"]
    named = [x for x in lab.elbv2.describe_load_balancers()["LoadBalancers"]
             if x["LoadBalancerName"] == lb["LoadBalancerName"]]
    assert len(named) == 1
    assert len(lab.elbv2.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"]) == 1


def _inject(env: ClusterHandle, fault: dict[str, Any]) -> None:
    request = urllib.request.Request(f"{env.aws_endpoint}/_fargatelab/inject", data=json.dumps(fault).encode(),
                                     method="POST", headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status in (200, 201)


def test_environment_runs_a_controller_for_class_alb(environment: ClusterHandle, kube: Clients) -> None:
    """The emulation's own controller (if this environment runs one) installs what `helm install` would."""
    try:
        alb = wait_for(lambda: kube.networking.read_ingress_class("alb"), "IngressClass alb", 15)
    except AssertionError:
        pytest.skip("this environment's emulation runs no load balancer controller (started before it existed?)")
    assert alb.spec.controller == "ingress.k8s.aws/alb"
    crd = kube.extensions.read_custom_resource_definition("targetgroupbindings.elbv2.k8s.aws")
    (version,) = crd.spec.versions
    assert version.name == "v1beta1" and crd.spec.scope == "Namespaced"
    assert [c.name for c in version.additional_printer_columns if not c.priority] == [
        "SERVICE-NAME", "SERVICE-PORT", "TARGET-TYPE", "AGE"]
