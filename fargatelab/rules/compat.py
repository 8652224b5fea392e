"""Why the fargate-scheduler refuses a pod: the ``Pod not supported on Fargate: ...`` text.

The message lists parts in the order live clusters print them: host namespaces,
volumes, security context, ports, joined by ``", "``.

Volumes: Fargate mounts only what the pod runtime can provide without the host:
``emptyDir``, ``configMap``, ``secret``, ``projected``, ``downwardAPI`` and
``persistentVolumeClaim`` (the claim's volume must be EFS; AWS documents EFS as the
only persistent storage and EBS as unsupported). Every other type, including inline
``csi`` volumes (seen rejected for ``csi.cert-manager.io``), ``hostPath``, ``nfs`` and
generic ``ephemeral`` volumes (they need dynamic provisioning, which Fargate lacks),
is "of an unsupported volume Type".

Claims are checked only when the caller can look them up: ``claim_driver(claim)``
returns ``(pv_name, csi_driver)`` for a bound claim (``csi_driver`` None for a
non-CSI volume) or None when the claim is not bound. A bound claim is refused when its
CSI driver is anything but ``efs.csi.aws.com``; non-CSI volumes are let through since
no live message for them is recorded.

Security context: ``privileged: true`` gives ``Privileged``; added capabilities give
``Capabilities added: <as written>`` (live messages show ``CAP_CHOWN`` and
``NET_ADMIN``; even ``SYS_PTRACE`` is refused on EKS Fargate). Several capabilities are
joined with ``", "`` — the live form for more than one is not recorded.
``allowPrivilegeEscalation`` is not checked: it was refused in early 2020 but is absent
from AWS's current list of unsupported features.

Ports: any ``hostPort`` or ``hostIP``. With ``hostNetwork`` the API server defaults
``hostPort`` to ``containerPort``, so such a pod gets the ports part too even when its
YAML names no host port.

Init containers are checked like regular containers.

>>> root_shell = {"hostNetwork": True, "hostPID": True, "hostIPC": True,
...     "containers": [{"name": "root-shell", "image": "alpine:3",
...         "securityContext": {"privileged": True},
...         "volumeMounts": [{"name": "hostroot", "mountPath": "/host"}]}],
...     "volumes": [{"name": "hostroot", "hostPath": {"path": "/"}}]}
>>> print(unsupported_reason(root_shell))
Pod not supported on Fargate: fields not supported: HostNetwork, HostPID, HostIPC, volumes not supported: hostroot is of an unsupported volume Type, invalid SecurityContext fields: Privileged
>>> unsupported_reason({"containers": [{"name": "web", "image": "nginx"}]}) is None
True
"""

from __future__ import annotations

from typing import Any, Callable, TypeAlias

__all__ = [
    "MESSAGE_PREFIX",
    "SUPPORTED_VOLUME_TYPES",
    "SUPPORTED_CSI_DRIVERS",
    "ClaimBinding",
    "unsupported_reason",
    "is_daemonset_pod",
]

MESSAGE_PREFIX = "Pod not supported on Fargate: "
SUPPORTED_VOLUME_TYPES = frozenset(
    {"emptyDir", "configMap", "secret", "projected", "downwardAPI", "persistentVolumeClaim"}
)
SUPPORTED_CSI_DRIVERS = frozenset({"efs.csi.aws.com"})

ClaimBinding: TypeAlias = tuple[str, str | None]
"""``(pv_name, csi_driver)`` of a bound claim; the driver is None for a non-CSI volume."""

_HOST_FIELDS = (("hostNetwork", "HostNetwork"), ("hostPID", "HostPID"), ("hostIPC", "HostIPC"))


def _containers(pod_spec: dict[str, Any]) -> list[dict[str, Any]]:
    return list(pod_spec.get("initContainers") or []) + list(pod_spec.get("containers") or [])


def _volume_problem(
    volume: dict[str, Any], claim_driver: Callable[[str], ClaimBinding | None] | None
) -> str | None:
    name = volume.get("name", "")
    # A volume with no source is defaulted to emptyDir by the API server.
    kinds = [key for key in volume if key != "name"]
    if any(kind not in SUPPORTED_VOLUME_TYPES for kind in kinds):
        return f"{name} is of an unsupported volume Type"
    if "persistentVolumeClaim" not in kinds or claim_driver is None:
        return None
    claim = (volume["persistentVolumeClaim"] or {}).get("claimName", "")
    binding = claim_driver(claim)
    if binding is None:
        return f"{name} not supported because: PVC {claim} not bound"
    pv, driver = binding
    if driver is not None and driver not in SUPPORTED_CSI_DRIVERS:
        return f"{name} not supported because: PVC {claim} bound to invalid PV {pv} with CSI Driver: {driver}"
    return None


def _security_problems(containers: list[dict[str, Any]]) -> list[str]:
    privileged = False
    added: list[str] = []
    for container in containers:
        context = container.get("securityContext") or {}
        privileged = privileged or bool(context.get("privileged"))
        for cap in (context.get("capabilities") or {}).get("add") or []:
            if cap not in added:
                added.append(cap)
    problems = ["Privileged"] if privileged else []
    if added:
        problems.append("Capabilities added: " + ", ".join(added))
    return problems


def _uses_host_ports(pod_spec: dict[str, Any], containers: list[dict[str, Any]]) -> bool:
    host_network = bool(pod_spec.get("hostNetwork"))
    for container in containers:
        for port in container.get("ports") or []:
            if port.get("hostPort") or port.get("hostIP") or host_network:
                return True
    return False


def unsupported_reason(
    pod_spec: dict[str, Any],
    claim_driver: Callable[[str], ClaimBinding | None] | None = None,
) -> str | None:
    """The fargate-scheduler's rejection message for the pod, or None if Fargate can run it.

    >>> print(unsupported_reason({"hostNetwork": True, "containers": [{"name": "efs-plugin",
    ...     "securityContext": {"privileged": True},
    ...     "ports": [{"containerPort": 9809, "hostPort": 9809}]}]}))
    Pod not supported on Fargate: fields not supported: HostNetwork, invalid SecurityContext fields: Privileged, port contains HostIP or HostPort
    >>> claims = {"prometheus-server": ("pvc-a996c34f", "ebs.csi.aws.com")}
    >>> print(unsupported_reason({"containers": [{"name": "prometheus"}],
    ...     "volumes": [{"name": "storage-volume",
    ...                  "persistentVolumeClaim": {"claimName": "prometheus-server"}}]},
    ...     claims.get))
    Pod not supported on Fargate: volumes not supported: storage-volume not supported because: PVC prometheus-server bound to invalid PV pvc-a996c34f with CSI Driver: ebs.csi.aws.com
    """
    containers = _containers(pod_spec)
    parts: list[str] = []
    fields = [label for key, label in _HOST_FIELDS if pod_spec.get(key) is True]
    if fields:
        parts.append("fields not supported: " + ", ".join(fields))
    volumes = [_volume_problem(v, claim_driver) for v in pod_spec.get("volumes") or []]
    volume_problems = [p for p in volumes if p is not None]
    if volume_problems:
        parts.append("volumes not supported: " + ", ".join(volume_problems))
    security = _security_problems(containers)
    if security:
        parts.append("invalid SecurityContext fields: " + ", ".join(security))
    if _uses_host_ports(pod_spec, containers):
        parts.append("port contains HostIP or HostPort")
    return MESSAGE_PREFIX + ", ".join(parts) if parts else None


def is_daemonset_pod(pod_metadata: dict[str, Any]) -> bool:
    """True when a DaemonSet owns the pod; Fargate never runs those.

    >>> is_daemonset_pod({"ownerReferences": [{"kind": "DaemonSet", "name": "kube-proxy"}]})
    True
    >>> is_daemonset_pod({"ownerReferences": [{"kind": "ReplicaSet", "name": "web-5d9c"}]})
    False
    """
    return any(ref.get("kind") == "DaemonSet" for ref in pod_metadata.get("ownerReferences") or [])
