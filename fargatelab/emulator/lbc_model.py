"""The desired ALB for one Ingress, built from API objects only (no I/O), as the controller's model builder does.

Facts follow kubernetes-sigs/aws-load-balancer-controller (``pkg/ingress``): scheme default ``internal``;
target type default ``instance``; annotations on the backend Service win over the Ingress's for target
group settings; paths sorted Exact, then Prefix longest first, then ImplementationSpecific; Prefix ``/`` is
the pattern ``/*`` and Prefix ``/foo`` is ``/foo`` + ``/foo/*``; the listener's default action is a
fixed-response 404 (``text/plain``); a missing backend Service becomes a fixed-response 503 "Backend
service does not exist"; the target group port is the pod port for ``ip`` (1 when the targetPort is
named) and the node port for ``instance``. Only implicit IngressGroups (one ALB per Ingress) and the HTTP
listener on port 80 are modelled.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from ..rules.naming import load_balancer_name, target_group_name

__all__ = [
    "ANNOTATION_PREFIX",
    "CLASS_ANNOTATION",
    "INGRESS_CLASS",
    "CONTROLLER",
    "FINALIZER",
    "ModelError",
    "Action",
    "Condition",
    "RuleSpec",
    "TargetGroupSpec",
    "StackSpec",
    "build_stack",
    "path_patterns",
    "sort_paths",
    "is_alb_ingress",
]

ANNOTATION_PREFIX = "alb.ingress.kubernetes.io/"
CLASS_ANNOTATION = "kubernetes.io/ingress.class"
INGRESS_CLASS = "alb"
CONTROLLER = "ingress.k8s.aws/alb"
FINALIZER = "ingress.k8s.aws/resources"
_DEFAULT_CLASS_ANNOTATION = "ingressclass.kubernetes.io/is-default-class"
_SCHEMES = ("internet-facing", "internal")
_TARGET_TYPES = ("instance", "ip")


class ModelError(Exception):
    """The Ingress cannot be turned into a load balancer; the text is what the controller reports."""


@dataclass(frozen=True)
class Condition:
    field: str  # path-pattern or host-header
    values: tuple[str, ...]


@dataclass(frozen=True)
class Action:
    type: str  # forward or fixed-response
    target_group: str = ""  # resource id of the target group to forward to
    status_code: str = ""
    content_type: str = "text/plain"
    message_body: str = ""


@dataclass(frozen=True)
class RuleSpec:
    priority: int
    conditions: tuple[Condition, ...]
    action: Action


@dataclass(frozen=True)
class TargetGroupSpec:
    resource_id: str  # "<ns>/<ingress>-<service>:<port as written>", the controller's tracking id
    name: str
    service: str
    service_port: int | str  # as written in the Ingress backend
    port: int
    target_type: str
    protocol: str = "HTTP"
    protocol_version: str = "HTTP1"


@dataclass(frozen=True)
class StackSpec:
    namespace: str
    name: str
    lb_name: str
    scheme: str
    target_groups: tuple[TargetGroupSpec, ...]
    default_action: Action
    rules: tuple[RuleSpec, ...]
    user_tags: Mapping[str, str] = field(default_factory=dict)

    @property
    def stack_id(self) -> str:
        return f"{self.namespace}/{self.name}"


ACTION_404 = Action("fixed-response", status_code="404")
ACTION_503_NO_SERVICE = Action("fixed-response", status_code="503", message_body="Backend service does not exist")


def is_alb_ingress(ingress: Mapping[str, Any], classes: Mapping[str, Mapping[str, Any]],
                   ingress_class: str = INGRESS_CLASS, controller: str = CONTROLLER) -> bool:
    """Whether this controller manages the Ingress: the legacy annotation wins over ``ingressClassName``.

    ``classes`` maps IngressClass names to their objects. Without either, the default IngressClass
    decides (the real controller does not manage class-less Ingresses otherwise).
    """
    annotations = (ingress.get("metadata") or {}).get("annotations") or {}
    if CLASS_ANNOTATION in annotations:
        return bool(annotations[CLASS_ANNOTATION] == ingress_class)
    class_name = (ingress.get("spec") or {}).get("ingressClassName")
    if class_name:
        ingress_class_obj = classes.get(class_name)
        return bool(ingress_class_obj and (ingress_class_obj.get("spec") or {}).get("controller") == controller)
    defaults = [c for c in classes.values()
                if ((c.get("metadata") or {}).get("annotations") or {}).get(_DEFAULT_CLASS_ANNOTATION) == "true"]
    return len(defaults) == 1 and (defaults[0].get("spec") or {}).get("controller") == controller


def sort_paths(paths: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Exact first, then Prefix with the longest path first (stable), then ImplementationSpecific."""
    exact, prefix, other = [], [], []
    for path in paths:
        kind = path.get("pathType") or "ImplementationSpecific"
        if kind == "Exact":
            exact.append(path)
        elif kind == "Prefix":
            prefix.append(path)
        elif kind == "ImplementationSpecific":
            other.append(path)
        else:
            raise ModelError(f"unknown pathType for path {path.get('path', '')}")
    prefix.sort(key=lambda p: -len(p.get("path") or ""))
    return exact + prefix + other


def path_patterns(path: str, path_type: str | None) -> list[str]:
    """ELBv2 path-pattern values for one Ingress path.

    >>> path_patterns("/", "Prefix"), path_patterns("/api/", "Prefix"), path_patterns("/x", "Exact")
    (['/*'], ['/api', '/api/*'], ['/x'])
    """
    kind = path_type or "ImplementationSpecific"
    if kind == "ImplementationSpecific":
        return [path]
    if kind == "Exact":
        if any(c in path for c in "*?"):
            raise ModelError(f"exact path shouldn't contain wildcards: {path}")
        return [path]
    if kind == "Prefix":
        if path == "/":
            return ["/*"]
        if any(c in path for c in "*?"):
            raise ModelError(f"prefix path shouldn't contain wildcards: {path}")
        trimmed = path[:-1] if path.endswith("/") else path
        return [trimmed, trimmed + "/*"]
    raise ModelError(f"unsupported pathType: {kind}")


def _annotation(annotations: Mapping[str, str], suffix: str, default: str) -> str:
    return annotations.get(ANNOTATION_PREFIX + suffix, default)


def _user_tags(annotations: Mapping[str, str]) -> dict[str, str]:
    raw = _annotation(annotations, "tags", "")
    tags: dict[str, str] = {}
    for pair in filter(None, (p.strip() for p in raw.split(","))):
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ModelError(f"failed to parse stringMap annotation, {ANNOTATION_PREFIX}tags: {raw}")
        tags[key.strip()] = value.strip()
    return tags


def _service_port(service: Mapping[str, Any], port: int | str, namespace: str) -> dict[str, Any]:
    for candidate in (service.get("spec") or {}).get("ports") or []:
        if (isinstance(port, str) and candidate.get("name") == port) or \
                (isinstance(port, int) and candidate.get("port") == port):
            return dict(candidate)
    name = service["metadata"]["name"]
    raise ModelError(f"unable to find port {port} on service {namespace}/{name}")


class _Builder:
    def __init__(self, ingress: Mapping[str, Any], services: Mapping[str, Mapping[str, Any]], cluster: str,
                 default_target_type: str) -> None:
        meta = ingress["metadata"]
        self.namespace: str = meta["namespace"]
        self.name: str = meta["name"]
        self.annotations: Mapping[str, str] = meta.get("annotations") or {}
        self.services = services
        self.cluster = cluster
        self.default_target_type = default_target_type
        self.target_groups: dict[str, TargetGroupSpec] = {}

    def scheme(self) -> str:
        scheme = _annotation(self.annotations, "scheme", "internal")
        if scheme not in _SCHEMES:
            raise ModelError(f"unknown scheme: {scheme}")
        return scheme

    def action(self, backend: Mapping[str, Any]) -> Action:
        svc_ref = backend.get("service")
        if not svc_ref:
            raise ModelError('missing required "service" field')
        svc_name: str = svc_ref["name"]
        port_ref = svc_ref.get("port") or {}
        port: int | str = port_ref["number"] if "number" in port_ref else port_ref.get("name", "")
        service = self.services.get(svc_name)
        if service is None:
            # Default --tolerate-non-existent-backend-service=true: answer 503 instead of failing.
            return ACTION_503_NO_SERVICE
        return Action("forward", target_group=self.target_group(service, port).resource_id)

    def target_group(self, service: Mapping[str, Any], port: int | str) -> TargetGroupSpec:
        svc_meta = service["metadata"]
        resource_id = f"{self.namespace}/{self.name}-{svc_meta['name']}:{port}"
        if resource_id in self.target_groups:
            return self.target_groups[resource_id]
        # Service annotations come first: the controller merges them ahead of the Ingress's.
        merged = {**self.annotations, **(svc_meta.get("annotations") or {})}
        target_type = _annotation(merged, "target-type", self.default_target_type)
        if target_type not in _TARGET_TYPES:
            raise ModelError(f"unknown targetType: {target_type}")
        svc_port = _service_port(service, port, self.namespace)
        if target_type == "instance":
            tg_port = int(svc_port.get("nodePort") or 0)
        else:
            target = svc_port.get("targetPort", svc_port.get("port"))
            tg_port = target if isinstance(target, int) else 1  # a named port is not in the data path
        if tg_port == 0:
            if target_type == "ip":
                raise ModelError("TargetGroup port is empty. Are you using the correct service type?")
            raise ModelError("TargetGroup port is empty. When using Instance targets, your service be must "
                             "of type 'NodePort' or 'LoadBalancer'")
        name = target_group_name(self.cluster, self.namespace, self.name, svc_meta["name"], svc_meta.get("uid", ""),
                                 port, tg_port, target_type)
        spec = TargetGroupSpec(resource_id, name, svc_meta["name"], port, tg_port, target_type)
        self.target_groups[resource_id] = spec
        return spec

    def rules(self, spec: Mapping[str, Any]) -> list[RuleSpec]:
        rules: list[RuleSpec] = []
        for rule in spec.get("rules") or []:
            http = rule.get("http")
            if not http:
                continue
            for path in sort_paths(list(http.get("paths") or [])):
                conditions: list[Condition] = []
                if rule.get("host"):
                    conditions.append(Condition("host-header", (rule["host"],)))
                if path.get("path"):
                    conditions.append(Condition("path-pattern", tuple(path_patterns(path["path"], path.get("pathType")))))
                if not conditions:
                    conditions.append(Condition("path-pattern", ("/*",)))
                try:
                    action = self.action(path.get("backend") or {})
                except ModelError as exc:
                    raise ModelError(f"ingress: {self.namespace}/{self.name}: {exc}") from None
                rules.append(RuleSpec(len(rules) + 1, tuple(conditions), action))
        return rules


def build_stack(ingress: Mapping[str, Any], services: Mapping[str, Mapping[str, Any]], cluster: str,
                default_target_type: str = "instance") -> StackSpec:
    """The load balancer, listener rules and target groups an Ingress asks for.

    ``services`` maps the names of Services in the Ingress's namespace to their objects (missing ones
    are tolerated as the controller does). Raises ``ModelError`` with the controller's wording.
    """
    builder = _Builder(ingress, services, cluster, default_target_type)
    scheme = builder.scheme()
    spec = ingress.get("spec") or {}
    user_tags = _user_tags(builder.annotations)
    default_backend = spec.get("defaultBackend")
    default_action = builder.action(default_backend) if default_backend else ACTION_404
    rules = builder.rules(spec)
    return StackSpec(
        namespace=builder.namespace,
        name=builder.name,
        lb_name=load_balancer_name(cluster, builder.namespace, builder.name, scheme),
        scheme=scheme,
        target_groups=tuple(builder.target_groups.values()),
        default_action=default_action,
        rules=tuple(rules),
        user_tags=user_tags,
    )
