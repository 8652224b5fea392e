"""The kind backend: a kind cluster (real kubelets, kube-proxy, CoreDNS, pod network) plus the Fargate
emulation running out of cluster in hosted placement.

Fargate pods run on a real kind worker, and a shadow Fargate node per pod keeps the node count and the
node facts the labs assert. The webhooks listen on the kind network's gateway, which the API server
inside the node container can reach. Without Docker (or kind) the backend fails fast with one line.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..eks.facts import SERVICE_CIDR
from ..errors import ExitCode, HarnessError
from ..scenario.handle import ClusterHandle
from .capabilities import declared

if TYPE_CHECKING:
    from . import BackendOptions

__all__ = ["KIND_VERSION", "NODE_IMAGE", "KindBackend", "kind_config", "remove", "require_docker"]

# kind release and node image of the same Kubernetes minor as the local backend; both overridable.
KIND_VERSION = os.environ.get("FARGATE_LABS_KIND_VERSION", "v0.30.0")
NODE_IMAGE = os.environ.get("FARGATE_LABS_KIND_IMAGE", "kindest/node:v1.34.0")
# Pods get addresses in the workshop's private subnets' range, as the VPC CNI gives Fargate pods.
POD_SUBNET = "10.11.64.0/18"


def kind_config(workers: int = 1) -> dict[str, Any]:
    """The kind cluster configuration: the workshop's service network and a VPC-like pod range."""
    return {
        "kind": "Cluster",
        "apiVersion": "kind.x-k8s.io/v1alpha4",
        "networking": {"serviceSubnet": SERVICE_CIDR, "podSubnet": POD_SUBNET},
        "nodes": [{"role": "control-plane"}] + [{"role": "worker"} for _ in range(workers)],
    }


def require_docker() -> None:
    """Fail fast, in one line, when kind cannot work here."""
    docker = shutil.which("docker")
    if docker is None:
        raise HarnessError("the kind backend needs Docker, and no `docker` command is installed: "
                           "install Docker, or run with --backend local", ExitCode.BACKEND_UNAVAILABLE)
    probe = subprocess.run([docker, "info", "--format", "{{.ServerVersion}}"], capture_output=True, text=True,
                           timeout=20)
    if probe.returncode != 0:
        reason = (probe.stderr.strip().splitlines() or ["no answer"])[-1]
        raise HarnessError(f"the kind backend needs a running Docker engine ({reason}): "
                           "start Docker, or run with --backend local", ExitCode.BACKEND_UNAVAILABLE)


def _kind_gateway() -> str:
    """The kind network's gateway: the address the API server in the node container reaches us at."""
    out = subprocess.run(["docker", "network", "inspect", "kind"], capture_output=True, text=True, check=True)
    for config in json.loads(out.stdout)[0]["IPAM"]["Config"]:
        gateway = config.get("Gateway", "")
        if gateway and ":" not in gateway:
            return str(gateway)
    raise HarnessError("the kind network has no IPv4 gateway: recreate it with `docker network rm kind`",
                       ExitCode.BACKEND_UNAVAILABLE)


def _cluster(run_id: str) -> Any:
    from pytest_kind import KindCluster  # pytest-kind-ng

    os.environ.setdefault("KIND_VERSION", KIND_VERSION)
    return KindCluster(f"fargate-labs-{run_id}", image=NODE_IMAGE)


class KindBackend:
    """One kind cluster and one emulation per run, shared by its pytest-xdist workers.

    The first worker to arrive creates both under the run's start lock and the others attach to what it
    made (two emulations would run two fargate-schedulers); the run's owner, the xdist controller or the
    only process, removes them with :func:`remove` at the end, unless --keep.
    """

    def __init__(self, options: BackendOptions) -> None:
        require_docker()
        from ..local.environment import LocalEnvironment

        self.options = options
        self.discards_cluster = not options.keep
        self.cluster = _cluster(options.run_id)
        self.env = LocalEnvironment(f"kind-{options.run_id}")
        with self.env.start_lock():
            if not self.env.is_up():
                self._create(options)
            handle = self.env.handle()
        self.handle: ClusterHandle = ClusterHandle(
            kubeconfig=str(self.cluster.kubeconfig_path), cluster_name=options.cluster, region=options.region,
            run_id=options.run_id, aws_endpoint=handle.aws_endpoint, kubernetes_version=NODE_IMAGE.split(":")[-1],
            capabilities=declared("kind", options.mode),
        )

    def _create(self, options: BackendOptions) -> None:
        config_file = Path(self.env.dir.parent) / f"kind-{options.run_id}.yaml"
        config_file.parent.mkdir(parents=True, exist_ok=True)
        config_file.write_text(json.dumps(kind_config()))
        try:
            self.cluster.create(config_file)
        except Exception as exc:
            raise HarnessError(f"kind could not create the cluster ({exc}): see `kind` output above, "
                               "or run with --backend local", ExitCode.BACKEND_UNAVAILABLE) from None
        self.env.attach(str(self.cluster.kubeconfig_path), options, webhook_host=_kind_gateway())

    def liveness(self) -> str | None:
        dead = self.env.dead_components()
        return dead[0] if dead else None

    def close(self) -> None:
        if self.options.owner and not self.options.keep:
            remove(self.options.run_id)


def remove(run_id: str) -> None:
    """Take down the run's emulation and delete its kind cluster (whoever made them; nothing if none)."""
    from ..local.environment import LocalEnvironment

    env = LocalEnvironment(f"kind-{run_id}")
    if env.state() is None:
        return
    env.down(quiet=True)
    _cluster(run_id).delete()
