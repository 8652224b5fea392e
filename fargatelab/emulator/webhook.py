"""The two admission webhooks EKS installs for Fargate, served over HTTPS where the API server can reach.

* ``0500-amazon-eks-fargate-mutation.amazonaws.com`` turns pods that match an ACTIVE profile into
  Fargate pods (see :mod:`.mutation`);
* ``0500-amazon-eks-fargate-configmaps-admission.amazonaws.com`` validates the ``aws-logging``
  ConfigMap in ``aws-observability``.

A third one is the environment's own guard, ``fargate-node-guard.fargate-labs.dev``: a pod bound to a
Fargate node without the fargate-scheduler (``spec.nodeName`` set by hand, or a binding from another
scheduler) is refused when Fargate could not run it, with the fargate-scheduler's reason. EKS documents no
behaviour for such a pod; locally it matters more than on EKS, because a microVM here is a set of Linux
namespaces on the host, not a VM, so a privileged or host-namespace container would be root on the machine.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
from typing import Any, Callable

from ..rules.compat import unsupported_reason
from ..rules.logging_config import (LOGGING_CONFIGMAP,
    LOGGING_NAMESPACE,
    LOGGING_WEBHOOK_NAME,
    validate_logging_configmap)
from .https_json import JsonHandler, https_server
from .kube import Clients
from .mutation import LoggingState, fargate_patch
from .profiles import ProfileCache

__all__ = ["FARGATE_NODE_GUARD_NAME", "MUTATION_WEBHOOK_NAME", "WebhookServer", "register_webhooks"]

MUTATION_WEBHOOK_NAME = "0500-amazon-eks-fargate-mutation.amazonaws.com"
FARGATE_NODE_GUARD_NAME = "fargate-node-guard.fargate-labs.dev"
#: Fargate nodes are named fargate-ip-...; the guard's webhook is only called for pods bound to one.
_FARGATE_NODE_PREFIX = "fargate-ip-"  # a Fargate node's name (kind's own nodes are fargate-labs-…)

log = logging.getLogger(__name__)


def _review_response(request: dict[str, Any], allowed: bool = True, patch: list[dict[str, Any]] | None = None,
                     message: str | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {"uid": request["uid"], "allowed": allowed}
    if patch:
        response["patchType"] = "JSONPatch"
        response["patch"] = base64.b64encode(json.dumps(patch).encode()).decode()
    if message:
        response["status"] = {"message": message, "code": 403}
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response}


class WebhookServer:
    """HTTPS server for both webhooks; ``logging_state`` tells the current Logging annotation."""

    def __init__(self, host: str, port: int, cert: str, key: str, profiles: ProfileCache,
                 logging_state: Callable[[], LoggingState],
                 read_pod: Callable[[str, str], dict[str, Any]] | None = None) -> None:
        self.profiles = profiles
        self.logging_state = logging_state
        self.read_pod = read_pod
        server = self

        class Handler(JsonHandler):
            def do_POST(self) -> None:  # noqa: N802
                request = self.read_json()["request"]
                if self.route == "/mutate/pods":
                    self.reply(200, server.mutate_pod(request))
                elif self.route == "/validate/logging":
                    self.reply(200, server.validate_logging(request))
                elif self.route == "/validate/fargate-node":
                    self.reply(200, server.guard_fargate_node(request))
                else:
                    self.reply(404, {"error": "not found"})

        Handler.log = log
        self.httpd = https_server(host, port, cert, key, Handler)
        self.port = self.httpd.server_address[1]

    def mutate_pod(self, request: dict[str, Any]) -> dict[str, Any]:
        pod = request.get("object") or {}
        try:
            patch = fargate_patch(pod, request.get("namespace", ""), self.profiles.current(),
                                  self.logging_state())
        except Exception:  # a pod the webhook cannot read is left as it is, as failurePolicy Ignore would
            log.exception("mutation failed")
            patch = []
        return _review_response(request, patch=patch)

    def validate_logging(self, request: dict[str, Any]) -> dict[str, Any]:
        obj = request.get("object") or {}
        if request.get("namespace") != LOGGING_NAMESPACE or obj.get("metadata", {}).get("name") != LOGGING_CONFIGMAP:
            return _review_response(request)
        reason = validate_logging_configmap(obj.get("data") or {})
        return _review_response(request, allowed=reason is None, message=reason)

    def guard_fargate_node(self, request: dict[str, Any]) -> dict[str, Any]:
        """Refuse a pod that would reach a Fargate node's kubelet without the fargate-scheduler's check."""
        obj = request.get("object") or {}
        if obj.get("kind") == "Binding":
            node = (obj.get("target") or {}).get("name", "")
            if self.read_pod is None:
                return _review_response(request, allowed=False, message="the guard cannot read the bound pod")
            pod = self.read_pod(request.get("namespace", ""), request.get("name", ""))
        else:
            pod = obj
            node = (pod.get("spec") or {}).get("nodeName") or ""
        reason = unsupported_reason(pod.get("spec") or {}) if node.startswith(_FARGATE_NODE_PREFIX) else None
        if reason:
            reason = f"{reason} (bound to Fargate node {node} without the fargate-scheduler)"
        return _review_response(request, allowed=reason is None, message=reason)

    def serve(self, stop: threading.Event) -> None:
        thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
        thread.start()
        stop.wait()
        self.httpd.shutdown()


def _configuration(kind: str, name: str, labels: dict[str, str], url: str, ca: str, rule: dict[str, Any],
                   failure: str, **extra: Any) -> dict[str, Any]:
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": kind,
        "metadata": {"name": name, "labels": labels},
        "webhooks": [{
            "name": name,
            "clientConfig": {"url": url, "caBundle": ca},
            "rules": [{"apiGroups": [""], "apiVersions": ["v1"], "scope": "Namespaced", **rule}],
            "failurePolicy": failure,
            "sideEffects": "None",
            "admissionReviewVersions": ["v1"],
            "timeoutSeconds": 5,
            **extra,
        }],
    }


def register_webhooks(clients: Clients, url: str, ca_bundle: bytes, run_id: str) -> None:
    """Create or replace the three webhook configurations, pointing at ``url`` (``https://host:port``)."""
    ca = base64.b64encode(ca_bundle).decode()
    labels = {"fargate-labs/run-id": run_id, "app.kubernetes.io/managed-by": "fargate-labs"}
    # As on EKS, a mutation webhook outage leaves pods to the default scheduler rather than blocking them.
    mutating = _configuration("MutatingWebhookConfiguration", MUTATION_WEBHOOK_NAME, labels, f"{url}/mutate/pods", ca,
                              {"operations": ["CREATE"], "resources": ["pods"]}, "Ignore")
    validating = _configuration(
        "ValidatingWebhookConfiguration", LOGGING_WEBHOOK_NAME, labels, f"{url}/validate/logging", ca,
        {"operations": ["CREATE", "UPDATE"], "resources": ["configmaps"]}, "Fail",
        namespaceSelector={"matchLabels": {"kubernetes.io/metadata.name": LOGGING_NAMESPACE}})
    # Called only for pods (or bindings) that name a Fargate node, so failing closed blocks nothing else.
    guard = _configuration(
        "ValidatingWebhookConfiguration", FARGATE_NODE_GUARD_NAME, labels, f"{url}/validate/fargate-node", ca,
        {"operations": ["CREATE"], "resources": ["pods", "pods/binding"]}, "Fail",
        matchConditions=[{
            "name": "names-a-fargate-node",
            "expression": f"(has(object.target) && object.target.name.startsWith('{_FARGATE_NODE_PREFIX}'))"
                          f" || (has(object.spec) && has(object.spec.nodeName) && "
                          f"object.spec.nodeName.startsWith('{_FARGATE_NODE_PREFIX}'))",
        }])
    for body, create, replace in (
        (mutating, clients.admission.create_mutating_webhook_configuration,
         clients.admission.replace_mutating_webhook_configuration),
        (validating, clients.admission.create_validating_webhook_configuration,
         clients.admission.replace_validating_webhook_configuration),
        (guard, clients.admission.create_validating_webhook_configuration,
         clients.admission.replace_validating_webhook_configuration),
    ):
        name = body["metadata"]["name"]
        try:
            existing = (clients.admission.read_mutating_webhook_configuration(name)
                        if body["kind"].startswith("Mutating")
                        else clients.admission.read_validating_webhook_configuration(name))
            body["metadata"]["resourceVersion"] = existing.metadata.resource_version
            replace(name, body)
        except Exception as exc:
            if getattr(exc, "status", None) != 404:
                raise
            create(body)
