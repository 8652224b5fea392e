"""The emulation's few Kubernetes API helpers: clients from a kubeconfig, events, status codes."""

from __future__ import annotations

import datetime as _dt
import uuid
from typing import Any

from kubernetes import client
from kubernetes.client.rest import ApiException

from ..kube_client import client_configuration

__all__ = ["Clients", "connect", "emit_event", "status_of", "now"]


class Clients:
    """The API groups the emulation uses, sharing one connection pool."""

    def __init__(self, api: client.ApiClient) -> None:
        self.api = api
        self.core = client.CoreV1Api(api)
        self.apps = client.AppsV1Api(api)
        self.admission = client.AdmissionregistrationV1Api(api)
        self.networking = client.NetworkingV1Api(api)
        self.custom = client.CustomObjectsApi(api)
        self.extensions = client.ApiextensionsV1Api(api)


def connect(kubeconfig: str) -> Clients:
    cfg = client_configuration(kubeconfig)
    # The emulation works in short level-triggered loops: a request that hangs must not stall them.
    cfg.retries = 1
    # The loops' watches each hold a connection for minutes: with the default pool (five per CPU) the other
    # requests would open, and discard, a TLS connection each.
    cfg.connection_pool_maxsize = 32
    return Clients(client.ApiClient(cfg))


def now() -> _dt.datetime:
    return _dt.datetime.now(_dt.timezone.utc)


def status_of(exc: BaseException) -> int:
    return exc.status if isinstance(exc, ApiException) and exc.status else 0


def emit_event(
    clients: Clients,
    obj: dict[str, Any],
    event_type: str,
    reason: str,
    message: str,
    component: str,
    host: str | None = None,
) -> None:
    """Record a core/v1 Event on ``obj`` (a dict with kind, apiVersion and metadata), as a component would."""
    meta = obj["metadata"]
    namespace = meta.get("namespace") or "default"
    stamp = now()
    event = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": f"{meta['name']}.{uuid.uuid4().hex[:16]}", "namespace": namespace},
        "involvedObject": {
            "apiVersion": obj.get("apiVersion", "v1"),
            "kind": obj["kind"],
            "name": meta["name"],
            "namespace": meta.get("namespace"),
            "uid": meta.get("uid"),
            "resourceVersion": meta.get("resourceVersion"),
        },
        "type": event_type,
        "reason": reason,
        "message": message,
        "source": {"component": component, **({"host": host} if host else {})},
        "reportingComponent": component,
        "reportingInstance": host or component,
        "firstTimestamp": stamp.isoformat(),
        "lastTimestamp": stamp.isoformat(),
        "count": 1,
    }
    clients.core.create_namespaced_event(namespace, event)
