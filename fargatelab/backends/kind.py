"""The kind backend: a kind cluster (real kubelet, kube-proxy, CoreDNS, pod network) plus the Fargate
emulation running out of cluster in hosted placement.

Fargate pods run on kind's worker nodes (the control-plane node keeps its taint), and a shadow Fargate
node per pod keeps the node count and the node facts the labs assert. Two workers: the labs' pods ask for
more CPU than one 2-core node has left beside the control plane, and the kubelet refuses a pod bound
beyond its node's allocatable. The node image is built here from the same ingredients as the local environment
(``fargatelab.kind.node_image``); the nodes pull the labs' images from the environment's offline registry
of stand-ins, and the webhooks listen on the kind network's gateway, which the API server inside the node
container reaches. Without Docker the backend fails fast with one line.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..eks.facts import SERVICE_CIDR
from ..errors import ExitCode, HarnessError
from ..kind import access
from ..kind.cluster import BRIDGE, KindCluster, ensure_network
from ..kind.engine import require_docker
from ..kind.node_image import (COREDNS_IMAGE_TAG, ETCD_IMAGE_TAG, KIND_VERSION, provision_kind_tools,
                               provision_node_image)
from ..local.aws.network import PRIVATE_SUBNET_CIDRS
from ..local.binaries import KUBERNETES_VERSION
from ..rules.naming import node_domain
from ..scenario.handle import ClusterHandle
from .capabilities import declared

if TYPE_CHECKING:
    from . import BackendOptions

__all__ = ["KIND_VERSION", "KindBackend", "kind_config", "remove", "require_docker"]

# Pods get addresses in the workshop's private subnets' range, as the VPC CNI gives Fargate pods.
POD_SUBNET = "10.11.64.0/18"
#: where the node's containerd looks for registry hosts (a directory of the environment, mounted in)
CERTS_IN_NODE = "/etc/containerd/certs.d"
#: the nodes that run the labs' pods
WORKERS = 2
#: the kubelets' host resolver configuration (a file of the environment, mounted in)
RESOLV_IN_NODE = "/etc/fargate-labs/resolv.conf"


def resolver_config(region: str, gateway: str) -> str:
    """What the kubelets give pods as the host's resolver: the VPC's search domain, as a Fargate pod's
    resolv.conf records it, and the kind network's gateway, past which no query goes (nothing leaves the
    machine; the cluster's own names are CoreDNS's).

    >>> print(resolver_config("ap-northeast-2", "100.64.244.1"), end="")
    search ap-northeast-2.compute.internal
    nameserver 100.64.244.1
    """
    return f"search {node_domain(region)}\nnameserver {gateway}\n"


def kind_config(certs: Path, resolv: Path) -> dict[str, Any]:
    """The kind cluster: a control-plane node and its workers, the workshop's service network, a VPC-like
    pod range, the images kubeadm runs taken from the node image, the registry hosts from ``certs`` and the
    pods' host resolver from ``resolv``."""
    mounts = [{"hostPath": str(certs), "containerPath": CERTS_IN_NODE, "readOnly": True},
              {"hostPath": str(resolv), "containerPath": RESOLV_IN_NODE, "readOnly": True}]
    return {
        "kind": "Cluster",
        "apiVersion": "kind.x-k8s.io/v1alpha4",
        # kind's own network plugin is not in the node image (kindnetd cannot be built offline): the nodes
        # are wired once they have joined (fargatelab.kind.pod_network).
        "networking": {"serviceSubnet": SERVICE_CIDR, "podSubnet": POD_SUBNET, "disableDefaultCNI": True},
        "nodes": [{"role": role, "extraMounts": mounts} for role in ["control-plane", *["worker"] * WORKERS]],
        "kubeadmConfigPatches": [
            "kind: ClusterConfiguration\n"
            f"etcd:\n  local:\n    imageTag: {ETCD_IMAGE_TAG}\n"
            f"dns:\n  imageTag: {COREDNS_IMAGE_TAG}\n",
            f"kind: KubeletConfiguration\nresolvConf: {RESOLV_IN_NODE}\n",
        ],
        "containerdConfigPatches": [
            # The nodes pull from the offline registry first (config_path: one hosts.toml per upstream).
            f'[plugins."io.containerd.grpc.v1.cri".registry]\n  config_path = "{CERTS_IN_NODE}"\n',
            # Lowering a process's oom_score_adj fails where the host lacks CAP_SYS_RESOURCE, which runc
            # reports as "can't get final child's PID from pipe" for every pod.
            '[plugins."io.containerd.grpc.v1.cri"]\n  restrict_oom_score_adj = true\n',
        ],
    }


def _progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _cluster(run_id: str, kubeconfig: Path) -> KindCluster:
    return KindCluster(f"fargate-labs-{run_id}", provision_kind_tools(_progress).path("kind"), kubeconfig)


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
        self.env = LocalEnvironment(f"kind-{options.run_id}")
        self.kubeconfig = self.env.dir / "kind.kubeconfig"
        with self.env.start_lock():
            if not self.env.is_up():
                self._create(options)
            handle = self.env.handle()
        self.handle: ClusterHandle = ClusterHandle(
            kubeconfig=str(self.kubeconfig), cluster_name=options.cluster, region=options.region,
            run_id=options.run_id, aws_endpoint=handle.aws_endpoint, kubernetes_version=KUBERNETES_VERSION,
            capabilities=declared("kind", options.mode),
            extra={k: v for k, v in handle.extra.items() if k in ("load_balancers", "state_dir")},
        )

    def _create(self, options: BackendOptions) -> None:
        from ..kind.leftovers import KindNodes
        from ..local.environment import remove_orphans

        remove_orphans(_progress, [KindNodes()])  # the clusters of runs killed with -9 hold CPU and addresses
        image = provision_node_image(_progress)
        certs = self.env.dir / "certs.d"
        certs.mkdir(parents=True, exist_ok=True)
        try:
            gateway = ensure_network()
            resolv = self.env.dir / "resolv.conf"
            resolv.write_text(resolver_config(options.region, gateway))
            _progress(f"creating kind cluster fargate-labs-{options.run_id} from {image}")
            nodes = _cluster(options.run_id, self.kubeconfig).create(image, kind_config(certs, resolv),
                                                                     list(PRIVATE_SUBNET_CIDRS))
        except BaseException:
            shutil.rmtree(self.env.dir, ignore_errors=True)  # the mounted files of a cluster that never was
            raise
        try:
            _without_kubeadm_coredns(self.kubeconfig)
            targets = access.open_access(options.run_id, BRIDGE, nodes)
            self.env.attach(str(self.kubeconfig), options, webhook_host=gateway, certs=certs, progress=_progress,
                            targets_namespace=targets)
        except BaseException:
            _cluster(options.run_id, self.kubeconfig).delete()
            access.close(options.run_id)
            raise

    def liveness(self) -> str | None:
        dead = self.env.dead_components()
        return dead[0] if dead else None

    def close(self) -> None:
        if self.options.owner and not self.options.keep:
            remove(self.options.run_id)


def _without_kubeadm_coredns(kubeconfig: Path) -> None:
    """kubeadm's CoreDNS Deployment goes; the emulation then installs CoreDNS as EKS ships it (its
    kube-dns Service, at the same address, stays). kubeadm's adds NET_BIND_SERVICE to its container, which
    the Fargate rules refuse, so the CoreDNS lab could never move it to Fargate."""
    done = subprocess.run(["kubectl", f"--kubeconfig={kubeconfig}", "-n", "kube-system", "delete", "deployment",
                           "coredns", "--ignore-not-found", "--wait=true", "--timeout=60s"],
                          capture_output=True, text=True, timeout=90)
    if done.returncode != 0:
        raise HarnessError(f"cannot replace kubeadm's CoreDNS in the kind cluster: {done.stderr.strip()[:300]}",
                           ExitCode.START_FAILED)


def remove(run_id: str) -> None:
    """Take down the run's emulation and delete its kind cluster (whoever made them; nothing if none)."""
    from ..local.environment import LocalEnvironment

    env = LocalEnvironment(f"kind-{run_id}")
    if env.state() is None:
        return
    # The cluster first: kind's delete writes to the kubeconfig's directory, which `down` then removes.
    _cluster(run_id, env.dir / "kind.kubeconfig").delete()
    env.down(quiet=True)  # the ALBs' proxies stop before their way to the pods goes
    access.close(run_id)
