"""What an EKS cluster ships in kube-system, as far as the labs see it: CoreDNS and the kube-dns Service.

CoreDNS is complete enough to run for real (its Corefile ConfigMap, its ServiceAccount and the read access
its kubernetes plugin needs), as the microVM data plane runs it.

CoreDNS comes pinned to EC2 by the template annotation ``eks.amazonaws.com/compute-type: ec2``: in a
Fargate-only cluster its pods stay Pending until the documented patch removes it and a kube-system
profile exists.
"""

from __future__ import annotations

from typing import Any

from kubernetes import client

from ..eks.facts import CLUSTER_DNS_IP
from .kube import Clients, status_of

__all__ = ["COREFILE", "coredns_objects", "coredns_support", "install_addons", "view_rbac"]


def coredns_objects() -> list[dict[str, Any]]:
    labels = {"k8s-app": "kube-dns", "eks.amazonaws.com/component": "coredns"}
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "coredns", "namespace": "kube-system", "labels": labels},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels,
                             "annotations": {"eks.amazonaws.com/compute-type": "ec2"}},
                "spec": {
                    "priorityClassName": "system-cluster-critical",
                    "serviceAccountName": "coredns",
                    # Its upstream is the VPC's resolver, not itself: the node's resolv.conf.
                    "dnsPolicy": "Default",
                    "volumes": [{"name": "config-volume", "configMap": {
                        "name": "coredns", "items": [{"key": "Corefile", "path": "Corefile"}]}}],
                    "containers": [{
                        "name": "coredns",
                        "image": "602401143452.dkr.ecr.ap-northeast-2.amazonaws.com/eks/coredns:v1.11.4-eksbuild.2",
                        "args": ["-conf", "/etc/coredns/Corefile"],
                        "volumeMounts": [{"name": "config-volume", "mountPath": "/etc/coredns", "readOnly": True}],
                        "ports": [{"containerPort": 53, "name": "dns", "protocol": "UDP"},
                                  {"containerPort": 53, "name": "dns-tcp", "protocol": "TCP"}],
                        "resources": {"requests": {"cpu": "100m", "memory": "70Mi"},
                                      "limits": {"memory": "170Mi"}},
                    }],
                    "tolerations": [{"key": "CriticalAddonsOnly", "operator": "Exists"},
                                    {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}],
                },
            },
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "kube-dns", "namespace": "kube-system", "labels": {"k8s-app": "kube-dns"}},
        "spec": {
            "clusterIP": CLUSTER_DNS_IP,
            "selector": {"k8s-app": "kube-dns"},
            "ports": [{"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
                      {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53}],
        },
    }
    return [deployment, service]


#: EKS's Corefile (the add-on's default)
COREFILE = """.:53 {
    errors
    health {
        lameduck 5s
      }
    ready
    kubernetes cluster.local in-addr.arpa ip6.arpa {
      pods insecure
      fallthrough in-addr.arpa ip6.arpa
    }
    prometheus :9153
    forward . /etc/resolv.conf
    cache 30
    loop
    reload
    loadbalance
}
"""


def coredns_support() -> list[dict[str, Any]]:
    """The Corefile, the ServiceAccount and the read access CoreDNS's kubernetes plugin needs."""
    labels = {"k8s-app": "kube-dns", "eks.amazonaws.com/component": "coredns"}
    return [
        {"apiVersion": "v1", "kind": "ConfigMap",
         "metadata": {"name": "coredns", "namespace": "kube-system", "labels": labels},
         "data": {"Corefile": COREFILE}},
        {"apiVersion": "v1", "kind": "ServiceAccount",
         "metadata": {"name": "coredns", "namespace": "kube-system", "labels": labels}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
         "metadata": {"name": "system:coredns", "labels": labels},
         "rules": [{"apiGroups": [""], "resources": ["endpoints", "services", "pods", "namespaces"],
                    "verbs": ["list", "watch"]},
                   {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["list", "watch"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
         "metadata": {"name": "system:coredns", "labels": labels},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "system:coredns"},
         "subjects": [{"kind": "ServiceAccount", "name": "coredns", "namespace": "kube-system"}]},
    ]


def view_rbac() -> list[dict[str, Any]]:
    """Read-only access for the ``fargate-labs:view`` group (see the authenticator): get, list, watch."""
    return [
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
         "metadata": {"name": "fargate-labs-view"},
         "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["get", "list", "watch"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
         "metadata": {"name": "fargate-labs-view"},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "fargate-labs-view"},
         "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "fargate-labs:view"}]},
    ]


def install_addons(clients: Clients, on_fargate: bool = False) -> None:
    """Create what is missing; leave what exists (a user may have patched CoreDNS already).

    ``on_fargate``: CoreDNS without the ec2 pin, as a cluster built Fargate-only ships it.
    """
    deployment, service = coredns_objects()
    if on_fargate:
        deployment["spec"]["template"]["metadata"]["annotations"].pop("eks.amazonaws.com/compute-type")
    for read, create in (
        (lambda: clients.apps.read_namespaced_deployment("coredns", "kube-system", _preload_content=False),
         lambda: clients.apps.create_namespaced_deployment("kube-system", deployment, _preload_content=False)),
        # Checked before creating: a second create of kube-dns fails on its cluster IP, not its name.
        (lambda: clients.core.read_namespaced_service("kube-dns", "kube-system", _preload_content=False),
         lambda: clients.core.create_namespaced_service("kube-system", service, _preload_content=False)),
    ):
        try:
            read()
            continue
        except Exception as exc:
            if status_of(exc) != 404:
                raise
        try:
            create()
        except Exception as exc:
            if status_of(exc) != 409:
                raise
    config_map, account, coredns_role, coredns_binding = coredns_support()
    role, binding = view_rbac()
    rbac = client.RbacAuthorizationV1Api(clients.api)
    for create_rbac, body in (
        (lambda body, **kw: clients.core.create_namespaced_config_map("kube-system", body, **kw), config_map),
        (lambda body, **kw: clients.core.create_namespaced_service_account("kube-system", body, **kw), account),
        (rbac.create_cluster_role, coredns_role), (rbac.create_cluster_role_binding, coredns_binding),
        (rbac.create_cluster_role, role), (rbac.create_cluster_role_binding, binding),
    ):
        try:
            create_rbac(body, _preload_content=False)
        except Exception as exc:
            if status_of(exc) != 409:
                raise
