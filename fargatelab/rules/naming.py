"""Names EKS on Fargate and the AWS Load Balancer Controller give to what they create.

Load balancer and target group names follow the controller's ingress model builder:
``k8s-<namespace>-<name>-<hash>`` where namespace and name lose every character that
is not an ASCII letter or digit and are cut to 8 characters, and the hash is the first
10 hex digits of a SHA-256 over the inputs listed at each function (concatenated with
no separator). An explicit IngressGroup (``group.name``) replaces namespace and name
with the group name cut to 17 characters.

>>> fargate_node_name("10.11.64.72", "ap-northeast-2")
'fargate-ip-10-11-64-72.ap-northeast-2.compute.internal'
>>> load_balancer_name("my-cluster", "game-2048", "ingress-2048", "internet-facing")[:22]
'k8s-game2048-ingress2-'
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
import secrets

from ..errors import ExitCode, HarnessError

__all__ = [
    "node_domain",
    "fargate_node_name",
    "provider_id",
    "kubelet_version",
    "load_balancer_name",
    "target_group_name",
    "dns_digits",
    "load_balancer_dns_name",
    "new_run_id",
    "validate_run_id",
    "validate_cluster_name",
]

_NOT_ALNUM = re.compile(r"[^0-9A-Za-z]")
_VERSION = re.compile(r"^v?(\d+)\.(\d+)(?:\.(\d+))?")
_SCHEMES = ("internet-facing", "internal")


def node_domain(region: str) -> str:
    """The VPC's DNS domain for ``region``, which EC2 private names and Fargate nodes take (and a pod's
    resolv.conf searches).

    >>> node_domain("us-east-1"), node_domain("ap-northeast-2")
    ('ec2.internal', 'ap-northeast-2.compute.internal')
    """
    return "ec2.internal" if region == "us-east-1" else f"{region}.compute.internal"


def fargate_node_name(ip: str, region: str) -> str:
    """The node a Fargate pod gets, named after the pod's IP like an EC2 private DNS name.

    >>> fargate_node_name("10.10.18.147", "us-east-1")
    'fargate-ip-10-10-18-147.ec2.internal'
    """
    address = ipaddress.IPv4Address(ip)
    return f"fargate-ip-{str(address).replace('.', '-')}.{node_domain(region)}"


def provider_id(zone: str, node_name: str, instance_id: str) -> str:
    """The Fargate node's ``spec.providerID``.

    >>> provider_id("ap-northeast-2a", "fargate-ip-10-11-64-72.ap-northeast-2.compute.internal", "0a1b2c")
    'aws:///ap-northeast-2a/0a1b2c/fargate-ip-10-11-64-72.ap-northeast-2.compute.internal'
    """
    return f"aws:///{zone}/{instance_id}/{node_name}"


def kubelet_version(kubernetes_version: str) -> str:
    """The kubelet version a Fargate node reports: ``v<x.y.z>-eks-<7 hex>``.

    The suffix is derived from the version so that every node of a cluster agrees.
    A version without a patch number is taken as patch 0.

    >>> v = kubelet_version("1.34.4")
    >>> v.startswith("v1.34.4-eks-"), len(v.rsplit("-", 1)[1]), v == kubelet_version("v1.34.4")
    (True, 7, True)
    >>> kubelet_version("1.23")[:12]
    'v1.23.0-eks-'
    """
    match = _VERSION.match(kubernetes_version.strip())
    if not match:
        raise ValueError(f"not a Kubernetes version: {kubernetes_version!r}")
    major, minor, patch = match.group(1), match.group(2), match.group(3) or "0"
    version = f"v{major}.{minor}.{patch}"
    return f"{version}-eks-{hashlib.sha256(version.encode()).hexdigest()[:7]}"


def _hash10(*parts: str) -> str:
    return hashlib.sha256("".join(parts).encode()).hexdigest()[:10]


def _clean(text: str) -> str:
    return _NOT_ALNUM.sub("", text)


def load_balancer_name(
    cluster_name: str,
    namespace: str,
    ingress_name: str,
    scheme: str,
    group_name: str | None = None,
) -> str:
    """The ALB's name for an Ingress; the hash covers cluster name, group id and scheme.

    The group id is ``<namespace>/<ingress>`` for a lone Ingress, else the group name.

    >>> name = load_balancer_name("c", "study-aews", "ingress-2048", "internet-facing")
    >>> name.startswith("k8s-studyaew-ingress2-"), len(name)
    (True, 32)
    >>> load_balancer_name("c", "ns", "ing", "internal", group_name="shared-alb-group")[:19]
    'k8s-sharedalbgroup-'
    """
    _check_scheme(scheme)
    if group_name:
        return f"k8s-{_clean(group_name)[:17]}-{_hash10(cluster_name, group_name, scheme)}"
    group_id = f"{namespace}/{ingress_name}"
    uuid = _hash10(cluster_name, group_id, scheme)
    return f"k8s-{_clean(namespace)[:8]}-{_clean(ingress_name)[:8]}-{uuid}"


def target_group_name(
    cluster_name: str,
    namespace: str,
    ingress_name: str,
    service_name: str,
    service_uid: str,
    service_port: str | int,
    target_port: int,
    target_type: str = "ip",
    protocol: str = "HTTP",
    protocol_version: str = "HTTP1",
    group_name: str | None = None,
) -> str:
    """The target group's name for one service port behind an Ingress.

    The hash covers cluster name, group id, the Ingress's namespace and name, the
    Service UID, the service port as written in the Ingress (number or name), the target
    group port (the pod port for ``ip`` targets, 1 when that port is named; the node port
    for ``instance`` targets), target type, protocol and protocol version.

    >>> target_group_name("c", "study-aews", "ingress-2048", "service-2048",
    ...                   "6f1c0f0e-uid", 80, 80)[:22]
    'k8s-studyaew-service2-'
    """
    group_id = group_name or f"{namespace}/{ingress_name}"
    uuid = _hash10(
        cluster_name, group_id, namespace, ingress_name, service_uid, str(service_port),
        str(target_port), target_type, protocol, protocol_version,
    )
    return f"k8s-{_clean(namespace)[:8]}-{_clean(service_name)[:8]}-{uuid}"


def dns_digits(lb_arn: str) -> str:
    """The number in an ALB's DNS name (``<name>-<digits>.<region>.elb.amazonaws.com``), stable per ARN.

    Real ones are 9-10 digits; the local AWS side numbers its load balancers with these.

    >>> d = dns_digits("arn:aws:elasticloadbalancing:ap-northeast-2:1:loadbalancer/app/k8s-a-b-c/0f90933666267afd")
    >>> d.isdigit(), 9 <= len(d) <= 10, d == dns_digits("arn:aws:elasticloadbalancing:ap-northeast-2:1:loadbalancer/app/k8s-a-b-c/0f90933666267afd")
    (True, True, True)
    """
    value = int(hashlib.sha256(lb_arn.encode()).hexdigest()[:12], 16)
    return str(100_000_000 + value % 1_900_000_000)


def load_balancer_dns_name(lb_name: str, region: str, scheme: str, digits: str | int) -> str:
    """The ALB's DNS name; internal ALBs get an ``internal-`` prefix.

    >>> load_balancer_dns_name("k8s-game2048-ingress2-db993ba6ac", "ap-northeast-2", "internet-facing", 782663732)
    'k8s-game2048-ingress2-db993ba6ac-782663732.ap-northeast-2.elb.amazonaws.com'
    >>> load_balancer_dns_name("k8s-a-b-0123456789", "cn-north-1", "internal", "42")
    'internal-k8s-a-b-0123456789-42.cn-north-1.elb.amazonaws.com.cn'
    """
    _check_scheme(scheme)
    prefix = "internal-" if scheme == "internal" else ""
    suffix = "elb.amazonaws.com.cn" if region.startswith("cn-") else "elb.amazonaws.com"
    return f"{prefix}{lb_name}-{digits}.{region}.{suffix}"


def _check_scheme(scheme: str) -> None:
    if scheme not in _SCHEMES:
        raise ValueError(f"unknown scheme: {scheme} (expected internet-facing or internal)")


_RUN_ID = re.compile(r"^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$")
#: the EKS API's own pattern for cluster names
_CLUSTER_NAME = re.compile(r"^[0-9A-Za-z][A-Za-z0-9\-_]{0,99}$")


def new_run_id() -> str:
    """A fresh run id: 8 lowercase hex digits, fit for AWS names and Kubernetes labels. The first is a letter,
    so that no YAML or JSON reader takes one for a number (``4e123456`` is 4 * 10^123456 to kubectl).

    >>> all(new_run_id()[0] in "abcdef" for _ in range(50))
    True
    """
    return secrets.choice("abcdef") + secrets.token_hex(4)[1:]


def validate_run_id(run_id: str) -> str:
    """``run_id`` if it can go into AWS names and Kubernetes labels.

    >>> validate_run_id("Bad_Id")
    Traceback (most recent call last):
    fargatelab.errors.HarnessError: run id 'Bad_Id' must be 1-32 lowercase letters, digits or '-' (it goes into AWS names and Kubernetes labels)
    """
    if not _RUN_ID.match(run_id):
        raise HarnessError(f"run id {run_id!r} must be 1-32 lowercase letters, digits or '-' "
                           "(it goes into AWS names and Kubernetes labels)", ExitCode.USAGE)
    return run_id


def validate_cluster_name(value: str) -> str:
    """``value`` if EKS accepts it as a cluster name; anything else (shell metacharacters too) never reaches AWS."""
    if not _CLUSTER_NAME.match(value):
        raise HarnessError(f"{value!r} is not a valid EKS cluster name (letters, digits, '-' and '_', up to 100)",
                           ExitCode.USAGE)
    return value
