"""The load balancer controller's pure parts: Ingress -> desired model, class matching, subnets, targets."""

from __future__ import annotations

from typing import Any

import pytest

from fargatelab.rules.naming import dns_digits
from fargatelab.emulator.lbc_kube import crd_object, ingress_class_object, tgb_object
from fargatelab.emulator.lbc_model import (ACTION_404,
    ACTION_503_NO_SERVICE,
    Action,
    Condition,
    ModelError,
    build_stack,
    is_alb_ingress,
    path_patterns,
    sort_paths)
from fargatelab.emulator.lbc_subnets import choose_subnets
from fargatelab.emulator.lbc_targets import desired_targets
from fargatelab.rules.naming import load_balancer_dns_name, load_balancer_name, target_group_name

CLUSTER = "eksworkshop"
NS = "study-aews"


def ingress(annotations: dict[str, str] | None = None, paths: list[dict[str, Any]] | None = None,
            class_name: str | None = "alb", **spec: Any) -> dict[str, Any]:
    paths = paths if paths is not None else [
        {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "service-2048", "port": {"number": 80}}}}]
    body: dict[str, Any] = {"rules": [{"http": {"paths": paths}}], **spec}
    if class_name:
        body["ingressClassName"] = class_name
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": "ingress-2048", "namespace": NS, "uid": "ing-uid",
                         "annotations": annotations or {}}, "spec": body}


def service(name: str = "service-2048", ports: list[dict[str, Any]] | None = None, kind: str = "ClusterIP",
            annotations: dict[str, str] | None = None) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": NS, "uid": f"{name}-uid", "annotations": annotations or {}},
            "spec": {"type": kind, "ports": ports or [{"port": 80, "targetPort": 80, "protocol": "TCP"}]}}


IP_AND_PUBLIC = {"alb.ingress.kubernetes.io/scheme": "internet-facing", "alb.ingress.kubernetes.io/target-type": "ip"}


def test_lab2_ingress_model() -> None:
    stack = build_stack(ingress(IP_AND_PUBLIC), {"service-2048": service()}, CLUSTER)
    assert stack.scheme == "internet-facing"
    assert stack.lb_name == load_balancer_name(CLUSTER, NS, "ingress-2048", "internet-facing")
    assert stack.lb_name.startswith("k8s-studyaew-ingress2-")
    (tg,) = stack.target_groups
    assert tg.resource_id == f"{NS}/ingress-2048-service-2048:80"
    assert (tg.target_type, tg.port, tg.service, tg.service_port) == ("ip", 80, "service-2048", 80)
    assert tg.name == target_group_name(CLUSTER, NS, "ingress-2048", "service-2048", "service-2048-uid", 80, 80, "ip")
    assert stack.default_action == ACTION_404
    (rule,) = stack.rules
    assert rule.priority == 1
    assert rule.conditions == (Condition("path-pattern", ("/*",)),)
    assert rule.action == Action("forward", target_group=tg.resource_id)


def test_defaults_are_internal_and_instance() -> None:
    svc = service(kind="NodePort", ports=[{"port": 80, "targetPort": 80, "nodePort": 30080}])
    stack = build_stack(ingress(), {"service-2048": svc}, CLUSTER)
    assert stack.scheme == "internal"
    assert (stack.target_groups[0].target_type, stack.target_groups[0].port) == ("instance", 30080)


def test_instance_target_needs_a_node_port() -> None:
    with pytest.raises(ModelError, match="When using Instance targets, your service be must of type 'NodePort'"):
        build_stack(ingress(), {"service-2048": service()}, CLUSTER)


def test_service_annotations_win_over_the_ingress() -> None:
    svc = service(annotations={"alb.ingress.kubernetes.io/target-type": "ip"})
    stack = build_stack(ingress({"alb.ingress.kubernetes.io/target-type": "instance"}), {"service-2048": svc}, CLUSTER)
    assert stack.target_groups[0].target_type == "ip"


def test_named_target_port_gives_port_1_for_ip_targets() -> None:
    svc = service(ports=[{"name": "http", "port": 80, "targetPort": "web"}])
    paths = [{"path": "/", "pathType": "Prefix",
              "backend": {"service": {"name": "service-2048", "port": {"name": "http"}}}}]
    (tg,) = build_stack(ingress(IP_AND_PUBLIC, paths), {"service-2048": svc}, CLUSTER).target_groups
    assert (tg.port, tg.service_port, tg.resource_id.endswith(":http")) == (1, "http", True)


@pytest.mark.parametrize("annotations, message", [
    ({"alb.ingress.kubernetes.io/scheme": "public"}, "unknown scheme: public"),
    ({"alb.ingress.kubernetes.io/target-type": "pod"}, "unknown targetType: pod"),
])
def test_bad_annotations(annotations: dict[str, str], message: str) -> None:
    with pytest.raises(ModelError, match=message):
        build_stack(ingress(annotations), {"service-2048": service()}, CLUSTER)


def test_unknown_service_port() -> None:
    paths = [{"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "service-2048", "port": {"number": 8080}}}}]
    with pytest.raises(ModelError, match=f"ingress: {NS}/ingress-2048: unable to find port 8080 on service {NS}/service-2048"):
        build_stack(ingress(IP_AND_PUBLIC, paths), {"service-2048": service()}, CLUSTER)


def test_missing_service_answers_503() -> None:
    stack = build_stack(ingress(IP_AND_PUBLIC), {}, CLUSTER)
    assert stack.rules[0].action == ACTION_503_NO_SERVICE
    assert stack.target_groups == ()


def test_paths_sorted_and_one_target_group_per_service_port() -> None:
    def path(p: str, kind: str, svc: str = "service-2048") -> dict[str, Any]:
        return {"path": p, "pathType": kind, "backend": {"service": {"name": svc, "port": {"number": 80}}}}

    paths = [path("/", "Prefix"), path("/static", "ImplementationSpecific"), path("/api/v1", "Prefix", "api"),
             path("/healthz", "Exact")]
    stack = build_stack(ingress(IP_AND_PUBLIC, paths), {"service-2048": service(), "api": service("api")}, CLUSTER)
    assert [r.conditions[0].values for r in stack.rules] == [
        ("/healthz",), ("/api/v1", "/api/v1/*"), ("/*",), ("/static",)]
    assert [r.priority for r in stack.rules] == [1, 2, 3, 4]
    assert sorted(tg.service for tg in stack.target_groups) == ["api", "service-2048"]


def test_host_rule_and_default_backend() -> None:
    ing = ingress(IP_AND_PUBLIC, defaultBackend={"service": {"name": "service-2048", "port": {"number": 80}}})
    ing["spec"]["rules"][0]["host"] = "game.example.com"
    stack = build_stack(ing, {"service-2048": service()}, CLUSTER)
    assert stack.rules[0].conditions[0] == Condition("host-header", ("game.example.com",))
    assert stack.default_action.type == "forward"
    assert len(stack.target_groups) == 1


def test_user_tags() -> None:
    stack = build_stack(ingress({**IP_AND_PUBLIC, "alb.ingress.kubernetes.io/tags": "team=lab, env=dev"}),
                        {"service-2048": service()}, CLUSTER)
    assert dict(stack.user_tags) == {"team": "lab", "env": "dev"}


def test_path_patterns() -> None:
    assert path_patterns("/", "Prefix") == ["/*"]
    assert path_patterns("/foo/", "Prefix") == ["/foo", "/foo/*"]
    assert path_patterns("/foo*", "ImplementationSpecific") == ["/foo*"]
    with pytest.raises(ModelError, match="exact path shouldn't contain wildcards"):
        path_patterns("/a*", "Exact")
    with pytest.raises(ModelError, match="unknown pathType"):
        sort_paths([{"path": "/", "pathType": "Regex"}])


def alb_class(name: str = "alb", controller: str = "ingress.k8s.aws/alb", default: bool = False) -> dict[str, Any]:
    annotations = {"ingressclass.kubernetes.io/is-default-class": "true"} if default else {}
    return {"metadata": {"name": name, "annotations": annotations}, "spec": {"controller": controller}}


def test_ingress_class_matching() -> None:
    classes = {"alb": alb_class(), "nginx": alb_class("nginx", "k8s.io/ingress-nginx")}
    assert is_alb_ingress(ingress(), classes)
    assert not is_alb_ingress(ingress(class_name="nginx"), classes)
    assert not is_alb_ingress(ingress(class_name="missing"), classes)
    # The legacy annotation wins over ingressClassName.
    assert is_alb_ingress(ingress({"kubernetes.io/ingress.class": "alb"}, class_name="nginx"), classes)
    assert not is_alb_ingress(ingress({"kubernetes.io/ingress.class": "nginx"}), classes)
    # No class at all: only a default IngressClass of ours claims it.
    assert not is_alb_ingress(ingress(class_name=None), classes)
    assert is_alb_ingress(ingress(class_name=None), {"alb": alb_class(default=True)})
    # Another instance with its own class and controller name.
    mine = {"alb-t1": alb_class("alb-t1", "test/alb-t1"), **classes}
    assert is_alb_ingress(ingress(class_name="alb-t1"), mine, "alb-t1", "test/alb-t1")
    assert not is_alb_ingress(ingress(), mine, "alb-t1", "test/alb-t1")


def subnet(subnet_id: str, zone: str, tags: dict[str, str] | None = None, free: int = 4000) -> dict[str, Any]:
    return {"SubnetId": subnet_id, "AvailabilityZone": zone, "AvailableIpAddressCount": free,
            "Tags": [{"Key": k, "Value": v} for k, v in (tags or {}).items()]}


def test_subnets_one_per_zone_sorted() -> None:
    found = [subnet("subnet-c", "az-b"), subnet("subnet-b", "az-a"), subnet("subnet-a", "az-a"),
             subnet("subnet-d", "az-c", {"kubernetes.io/cluster/other": "owned"})]
    assert choose_subnets(found, "internet-facing", CLUSTER) == ["subnet-a", "subnet-c"]
    # A subnet tagged for this cluster is preferred within its zone.
    found.append(subnet("subnet-z", "az-a", {f"kubernetes.io/cluster/{CLUSTER}": "shared"}))
    assert choose_subnets(found, "internet-facing", CLUSTER) == ["subnet-c", "subnet-z"]


def test_no_tagged_subnet_message() -> None:
    with pytest.raises(ModelError) as err:
        choose_subnets([], "internet-facing", CLUSTER)
    assert str(err.value) == ("couldn't auto-discover subnets: unable to resolve at least one subnet "
                              "(0 match VPC and tags: [kubernetes.io/role/elb])")
    with pytest.raises(ModelError, match=r"\(0 match VPC and tags: \[kubernetes.io/role/internal-elb\]\)"):
        choose_subnets([], "internal", CLUSTER)


def test_alb_needs_two_zones() -> None:
    with pytest.raises(ModelError) as err:
        choose_subnets([subnet("subnet-a", "az-a"), subnet("subnet-b", "az-a", free=3)], "internal", CLUSTER)
    assert str(err.value) == "couldn't auto-discover subnets: subnets count less than minimal required count: 1 < 2"


def test_dns_name_pattern() -> None:
    arn = "arn:aws:elasticloadbalancing:ap-northeast-2:123456789012:loadbalancer/app/k8s-studyaew-ingress2-0123456789/0f9"
    digits = dns_digits(arn)
    assert load_balancer_dns_name("k8s-studyaew-ingress2-0123456789", "ap-northeast-2", "internal", digits) == \
        f"internal-k8s-studyaew-ingress2-0123456789-{digits}.ap-northeast-2.elb.amazonaws.com"
    assert dns_digits(arn + "0") != digits


def test_target_group_binding_object() -> None:
    stack = build_stack(ingress(IP_AND_PUBLIC), {"service-2048": service()}, CLUSTER)
    tg = stack.target_groups[0]
    body = tgb_object(stack, tg, "arn:tg", "vpc-1")
    assert body["metadata"]["name"] == tg.name  # the real controller names the binding after the target group
    assert body["metadata"]["labels"] == {"ingress.k8s.aws/stack-namespace": NS,
                                          "ingress.k8s.aws/stack-name": "ingress-2048"}
    assert body["spec"]["serviceRef"] == {"name": "service-2048", "port": 80}
    assert (body["spec"]["targetGroupARN"], body["spec"]["targetType"]) == ("arn:tg", "ip")


def test_crd_and_ingress_class() -> None:
    crd = crd_object()
    assert crd["metadata"]["name"] == "targetgroupbindings.elbv2.k8s.aws"
    (version,) = crd["spec"]["versions"]
    assert version["name"] == "v1beta1" and crd["spec"]["scope"] == "Namespaced"
    assert [c["name"] for c in version["additionalPrinterColumns"] if not c.get("priority")] == [
        "SERVICE-NAME", "SERVICE-PORT", "TARGET-TYPE", "AGE"]
    assert version["schema"]["openAPIV3Schema"]["properties"]["spec"]["x-kubernetes-preserve-unknown-fields"]
    assert ingress_class_object()["spec"] == {"controller": "ingress.k8s.aws/alb"}


def tgb(target_type: str = "ip", port: int | str = 80) -> dict[str, Any]:
    return {"metadata": {"name": "k8s-x", "namespace": NS},
            "spec": {"serviceRef": {"name": "service-2048", "port": port}, "targetType": target_type}}


def endpoint_slice(endpoints: list[tuple[str, bool | None, str]], port_name: str = "") -> dict[str, Any]:
    def one(ip: str, ready: bool | None, node: str) -> dict[str, Any]:
        conditions = {} if ready is None else {"ready": ready}
        return {"addresses": [ip], "conditions": conditions, "nodeName": node}

    return {"addressType": "IPv4", "ports": [{"name": port_name, "port": 8080, "protocol": "TCP"}],
            "endpoints": [one(*e) for e in endpoints]}


def test_ip_targets_are_ready_endpoints_on_the_target_port() -> None:
    svc = service(ports=[{"port": 80, "targetPort": 8080}])
    slices = [endpoint_slice([("10.11.64.5", True, "n1"), ("10.11.80.6", None, "n2"), ("10.11.96.7", False, "n3")])]
    desired = desired_targets(tgb(), svc, slices, set())
    assert desired.targets == {("10.11.64.5", 8080), ("10.11.80.6", 8080)}


def test_instance_targets_skip_fargate_nodes() -> None:
    svc = service(kind="NodePort", ports=[{"port": 80, "targetPort": 8080, "nodePort": 30080}])
    slices = [endpoint_slice([("10.11.64.5", True, "fargate-a"), ("10.11.80.6", True, "fargate-b")])]
    desired = desired_targets(tgb("instance"), svc, slices, {"fargate-a", "fargate-b"})
    assert desired.targets == frozenset() and desired.fargate_endpoints == 2


def test_missing_backend() -> None:
    assert desired_targets(tgb(), None, [], set()).error == 'backend not found: services "service-2048" not found'
    assert "unable to find port http on service" in desired_targets(tgb(port="http"), service(), [], set()).error


@pytest.mark.parametrize("module", ["fargatelab.rules.naming", "fargatelab.emulator.lbc_model"])
def test_doctests(module: str) -> None:
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(module))
    assert result.attempted > 0 and result.failed == 0
