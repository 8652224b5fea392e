"""The controller's Kubernetes side: its IngressClass and CRD, TargetGroupBindings, finalizers and status.

Everything goes through the API server as plain dicts (``_preload_content=False``), like the rest of
the emulation. The CRD carries the real one's printer columns so ``kubectl get targetgroupbindings``
prints what the workshop shows; its schema keeps unknown fields instead of copying the full OpenAPI.
"""

from __future__ import annotations

import json
from typing import Any

from kubernetes import client

from .kube import Clients, status_of
from .lbc_model import CONTROLLER, FINALIZER, INGRESS_CLASS, StackSpec, TargetGroupSpec

__all__ = ["TGB_GROUP", "TGB_VERSION", "TGB_PLURAL", "STACK_NAME_LABEL", "STACK_NAMESPACE_LABEL", "install",
           "ingress_class_object", "crd_object", "tgb_object", "list_all", "set_finalizer", "set_hostname",
           "apply_tgbs", "delete_tgbs"]

TGB_GROUP = "elbv2.k8s.aws"
TGB_VERSION = "v1beta1"
TGB_PLURAL = "targetgroupbindings"
STACK_NAMESPACE_LABEL = "ingress.k8s.aws/stack-namespace"
STACK_NAME_LABEL = "ingress.k8s.aws/stack-name"
_MERGE_PATCH = "application/merge-patch+json"
_PRESERVE = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}


def _loads(response: Any) -> Any:
    return json.loads(response.data)


def ingress_class_object(name: str = INGRESS_CLASS, controller: str = CONTROLLER) -> dict[str, Any]:
    # The Helm chart's IngressClass (createIngressClassResource=true).
    return {"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
            "metadata": {"name": name, "labels": {"app.kubernetes.io/name": "aws-load-balancer-controller"}},
            "spec": {"controller": controller}}


def crd_object() -> dict[str, Any]:
    def column(name: str, path: str, kind: str = "string", description: str = "", priority: int = 0) -> dict[str, Any]:
        col: dict[str, Any] = {"name": name, "jsonPath": path, "type": kind}
        if description:
            col["description"] = description
        if priority:
            col["priority"] = priority
        return col

    columns = [
        column("SERVICE-NAME", ".spec.serviceRef.name", description="The Kubernetes Service's name"),
        column("SERVICE-PORT", ".spec.serviceRef.port", description="The Kubernetes Service's port"),
        column("TARGET-TYPE", ".spec.targetType", description="The AWS TargetGroup's TargetType"),
        column("ARN", ".spec.targetGroupARN", description="The AWS TargetGroup's Amazon Resource Name", priority=1),
        column("NAME", ".spec.targetGroupName", description="The AWS TargetGroup's Name", priority=2),
        column("AGE", ".metadata.creationTimestamp", kind="date"),
    ]
    schema = {"openAPIV3Schema": {"type": "object", "properties": {
        "apiVersion": {"type": "string"}, "kind": {"type": "string"}, "metadata": {"type": "object"},
        "spec": _PRESERVE, "status": _PRESERVE}}}
    return {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{TGB_PLURAL}.{TGB_GROUP}"},
        "spec": {
            "group": TGB_GROUP, "scope": "Namespaced",
            "names": {"kind": "TargetGroupBinding", "listKind": "TargetGroupBindingList", "plural": TGB_PLURAL,
                      "singular": "targetgroupbinding"},
            "versions": [{"name": TGB_VERSION, "served": True, "storage": True, "schema": schema,
                          "subresources": {"status": {}}, "additionalPrinterColumns": columns}],
        },
    }


def _create_if_missing(create: Any, body: dict[str, Any]) -> bool:
    try:
        create(body, _preload_content=False)
    except Exception as exc:
        if status_of(exc) == 409:
            return False
        raise
    return True


def install(c: Clients, ingress_class: str = INGRESS_CLASS, controller: str = CONTROLLER) -> None:
    """Create the IngressClass and the TargetGroupBinding CRD unless they exist (what `helm install` leaves)."""
    _create_if_missing(c.networking.create_ingress_class, ingress_class_object(ingress_class, controller))
    _create_if_missing(c.extensions.create_custom_resource_definition, crd_object())


def list_all(c: Clients, what: str) -> list[dict[str, Any]]:
    """Items of ingresses, ingressclasses, services, endpointslices, nodes or targetgroupbindings (dicts)."""
    if what == "ingresses":
        data = _loads(c.networking.list_ingress_for_all_namespaces(_preload_content=False))
        kind, api = "Ingress", "networking.k8s.io/v1"
    elif what == "ingressclasses":
        data = _loads(c.networking.list_ingress_class(_preload_content=False))
        kind, api = "IngressClass", "networking.k8s.io/v1"
    elif what == "targetgroupbindings":
        data = _loads(c.custom.list_cluster_custom_object(TGB_GROUP, TGB_VERSION, TGB_PLURAL, _preload_content=False))
        kind, api = "TargetGroupBinding", f"{TGB_GROUP}/{TGB_VERSION}"
    elif what == "nodes":
        data = _loads(c.core.list_node(_preload_content=False))
        kind, api = "Node", "v1"
    elif what == "services":
        data = _loads(c.core.list_service_for_all_namespaces(_preload_content=False))
        kind, api = "Service", "v1"
    elif what == "endpointslices":
        data = _loads(client.DiscoveryV1Api(c.api).list_endpoint_slice_for_all_namespaces(_preload_content=False))
        kind, api = "EndpointSlice", "discovery.k8s.io/v1"
    else:
        raise ValueError(what)
    items: list[dict[str, Any]] = data.get("items") or []
    for item in items:  # list responses leave these out; events need them
        item.setdefault("kind", kind)
        item.setdefault("apiVersion", api)
    return items


def set_finalizer(c: Clients, ingress: dict[str, Any], present: bool, finalizer: str = FINALIZER) -> None:
    """Add or remove our finalizer; the resourceVersion test makes a concurrent edit fail instead of lost."""
    meta = ingress["metadata"]
    finalizers = list(meta.get("finalizers") or [])
    if (finalizer in finalizers) == present:
        return
    finalizers = finalizers + [finalizer] if present else [f for f in finalizers if f != finalizer]
    patch = [{"op": "test", "path": "/metadata/resourceVersion", "value": meta["resourceVersion"]},
             {"op": "add", "path": "/metadata/finalizers", "value": finalizers}]
    c.networking.patch_namespaced_ingress(meta["name"], meta["namespace"], patch, _preload_content=False)


def set_hostname(c: Clients, ingress: dict[str, Any], hostname: str) -> bool:
    lb_status = ((ingress.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    if lb_status == [{"hostname": hostname}]:
        return False
    meta = ingress["metadata"]
    body = {"status": {"loadBalancer": {"ingress": [{"hostname": hostname}]}}}
    c.networking.patch_namespaced_ingress_status(meta["name"], meta["namespace"], body, _preload_content=False,
                                                 _content_type=_MERGE_PATCH)
    return True


def tgb_object(spec: StackSpec, tg: TargetGroupSpec, arn: str, vpc_id: str) -> dict[str, Any]:
    """The TargetGroupBinding the controller creates for one target group: same name as the target group."""
    return {
        "apiVersion": f"{TGB_GROUP}/{TGB_VERSION}", "kind": "TargetGroupBinding",
        "metadata": {"name": tg.name, "namespace": spec.namespace,
                     "labels": {STACK_NAMESPACE_LABEL: spec.namespace, STACK_NAME_LABEL: spec.name}},
        "spec": {"serviceRef": {"name": tg.service, "port": tg.service_port}, "targetGroupARN": arn,
                 "targetType": tg.target_type, "ipAddressType": "ipv4", "vpcID": vpc_id},
    }


def _stack_selector(namespace: str, name: str) -> str:
    return f"{STACK_NAMESPACE_LABEL}={namespace},{STACK_NAME_LABEL}={name}"


def _tgbs(c: Clients, namespace: str, name: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = _loads(c.custom.list_namespaced_custom_object(
        TGB_GROUP, TGB_VERSION, namespace, TGB_PLURAL, label_selector=_stack_selector(namespace, name),
        _preload_content=False))["items"]
    return items


def apply_tgbs(c: Clients, spec: StackSpec, wanted: list[dict[str, Any]]) -> bool:
    """Create or fix the stack's TargetGroupBindings and delete the ones it no longer has; True on change."""
    changed = False
    current = {t["metadata"]["name"]: t for t in _tgbs(c, spec.namespace, spec.name)}
    for body in wanted:
        name = body["metadata"]["name"]
        have = current.pop(name, None)
        if have is None:
            changed |= _create_if_missing(lambda b, **kw: c.custom.create_namespaced_custom_object(
                TGB_GROUP, TGB_VERSION, spec.namespace, TGB_PLURAL, b, **kw), body)
        elif any(have["spec"].get(k) != v for k, v in body["spec"].items()):
            c.custom.patch_namespaced_custom_object(TGB_GROUP, TGB_VERSION, spec.namespace, TGB_PLURAL, name,
                                                    {"spec": body["spec"]}, _preload_content=False,
                                                    _content_type=_MERGE_PATCH)
            changed = True
    for name in current:
        _delete_tgb(c, spec.namespace, name)
        changed = True
    return changed


def _delete_tgb(c: Clients, namespace: str, name: str) -> None:
    try:
        c.custom.delete_namespaced_custom_object(TGB_GROUP, TGB_VERSION, namespace, TGB_PLURAL, name,
                                                 _preload_content=False)
    except Exception as exc:
        if status_of(exc) != 404:
            raise


def delete_tgbs(c: Clients, namespace: str, name: str) -> None:
    for tgb in _tgbs(c, namespace, name):
        _delete_tgb(c, namespace, tgb["metadata"]["name"])
