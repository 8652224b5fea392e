"""What each backend can do, declared without opening it.

``--list-labs`` and the skip reasons read these declarations, and every backend gives its handle exactly
what it declares here, so a reason that names a backend is true of it.

>>> sorted(declared("eks", "check"))
['eks-authentication', 'fargate-only', 'internet-egress', 'load-balancer-http', 'node-per-pod', 'pod-network', 'real-aws']
>>> print(skip_reason("node-per-pod", "kind", "replay"))  # doctest: +ELLIPSIS
needs node-per-pod: the kind backend binds Fargate pods to its worker nodes; ...; run with --backend local or --backend eks
"""

from __future__ import annotations

import os
from typing import Mapping

from ..errors import ExitCode, HarnessError
from ..scenario.handle import Capability

__all__ = ["DATA_PLANES", "DECLARED", "declared", "default_data_plane", "providers", "skip_reason"]

#: the local backend's data planes: auto picks microvm where the host can run microVMs, else kwok
DATA_PLANES = ("auto", "microvm", "kwok")


def default_data_plane(environ: Mapping[str, str] = os.environ) -> str:
    """``$FARGATE_LABS_DATA_PLANE``, else ``auto``; a value that is no data plane is refused in one line.

    >>> default_data_plane({})
    'auto'
    >>> default_data_plane({"FARGATE_LABS_DATA_PLANE": "vm"})
    Traceback (most recent call last):
    ...
    fargatelab.errors.HarnessError: FARGATE_LABS_DATA_PLANE='vm' is no data plane: set it to auto, microvm or kwok
    """
    value = environ.get("FARGATE_LABS_DATA_PLANE", "") or "auto"
    if value not in DATA_PLANES:
        raise HarnessError(f"FARGATE_LABS_DATA_PLANE={value!r} is no data plane: set it to "
                           f"{', '.join(DATA_PLANES[:-1])} or {DATA_PLANES[-1]}", ExitCode.BAD_INPUT)
    return value

#: every backend's capabilities in replay mode; check mode has them all but WRITE
DECLARED: Mapping[str, frozenset[str]] = {
    "local": frozenset({Capability.WRITE, Capability.EKS_AUTHENTICATION, Capability.FARGATE_ONLY,
                        Capability.NODE_PER_POD}),
    "kind": frozenset({Capability.POD_NETWORK, Capability.SERVICE_PROXY, Capability.LOAD_BALANCER_HTTP,
                       Capability.WRITE}),
    # The sandbox cluster is Fargate-only, as document 001's is (docs/backends.md).
    "eks": frozenset({Capability.POD_NETWORK, Capability.LOAD_BALANCER_HTTP, Capability.REAL_AWS,
                      Capability.INTERNET_EGRESS, Capability.EKS_AUTHENTICATION, Capability.FARGATE_ONLY,
                      Capability.NODE_PER_POD, Capability.WRITE}),
}

#: why a backend lacks a capability, in terms of what that backend really runs
_LACKS: Mapping[tuple[str, str], str] = {
    ("local", Capability.POD_NETWORK): "the local backend simulates its pods with KWOK (--data-plane kwok): no "
                                       "container runs; --data-plane microvm runs them (Linux, root)",
    ("local", Capability.LOAD_BALANCER_HTTP): "the local backend with KWOK has no pod for an ALB to send a request "
                                              "to; --data-plane microvm serves each ALB with HAProxy (Linux, root)",
    ("local", Capability.SERVICE_PROXY): "the local backend with KWOK runs no container for the API server to proxy "
                                         "to; --data-plane microvm does",
    ("local", Capability.REAL_AWS): "the local backend's AWS is moto on loopback",
    ("local", Capability.INTERNET_EGRESS): "the local backend's VPC has no way out: nothing routes or NATs its "
                                           "traffic off the machine",
    ("kind", Capability.INTERNET_EGRESS): "the kind backend's pods are not behind the VPC's NAT gateway",
    ("kind", Capability.REAL_AWS): "the kind backend's AWS is moto on loopback",
    ("kind", Capability.FARGATE_ONLY): "the kind backend's worker nodes are ordinary nodes: a pod no profile "
                                       "selects runs there, and a DaemonSet places a pod on each",
    ("kind", Capability.NODE_PER_POD): "the kind backend binds Fargate pods to its worker nodes; a shadow Fargate "
                                       "node per pod carries the node facts, but no kubelet of its own",
    ("kind", Capability.EKS_AUTHENTICATION): "the kind backend's API server has no authentication webhook for "
                                             "the tokens aws eks get-token makes",
}


#: what the local backend adds with its microVM data plane: real containers, reachable from the API server
MICROVM: frozenset[str] = frozenset({Capability.POD_NETWORK, Capability.SERVICE_PROXY,
                                     Capability.LOAD_BALANCER_HTTP})


def declared(backend: str, mode: str, data_plane: str = "kwok") -> frozenset[str]:
    """What ``backend`` can do in ``mode`` (replay or check); nothing for an unknown backend.

    >>> sorted(declared("local", "replay", "microvm"))
    ['eks-authentication', 'fargate-only', 'load-balancer-http', 'node-per-pod', 'pod-network', 'service-proxy', 'write']
    """
    capabilities = DECLARED.get(backend, frozenset())
    if backend == "local" and data_plane == "microvm":
        capabilities = capabilities | MICROVM
    return capabilities if mode == "replay" else capabilities - {Capability.WRITE}


def providers(capability: str) -> list[str]:
    """The backends that declare ``capability``, in the order they are offered."""
    return [name for name, capabilities in DECLARED.items() if capability in capabilities]


def skip_reason(capability: str, backend: str, mode: str) -> str:
    """Why a step that needs ``capability`` is skipped on ``backend`` in ``mode``, and what would run it."""
    if capability == Capability.WRITE and Capability.WRITE in DECLARED.get(backend, frozenset()):
        return f"needs {capability}: check mode never changes the cluster; this step runs with --mode replay"
    why = _LACKS.get((backend, capability), f"the {backend} backend does not provide it")
    others = [name for name in providers(capability) if name != backend]
    hint = " or ".join(f"--backend {name}" for name in others)
    return f"needs {capability}: {why}; " + (f"run with {hint}" if hint else "no backend provides it")
