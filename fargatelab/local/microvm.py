"""One Fargate pod's microVM: a network namespace of the VPC with its own containerd + runc and a real kubelet.

As on Fargate, the pod and its node share one address: the ENI's. The microVM's namespace holds it on
``eth0`` (kubelet serves on it, port 10250, and reports it as the node's InternalIP); the pod's sandbox,
which containerd creates, is joined to the microVM by the CNI ``ptp`` plugin with the same address and the
subnet's ``.1`` as its gateway, so ``ip a`` in the pod shows ``eth0`` with the ENI's address and prefix.

One address in two places is made unambiguous by policy routing in the microVM: what arrives for the
address on TCP port 10250 is the kubelet's, anything else for the address goes on to the pod. The
microVM's own traffic (kubelet and containerd to the API server and the registry) leaves from a
link-local management address, so its replies are never mistaken for the pod's.

Everything is tagged with the run id: the processes (``process.start``), the namespace (``vpc_network``),
the cgroups (``/fargate-labs/<run>/<address>`` in every hierarchy) and the files under the state dir.
"""

from __future__ import annotations

import ipaddress
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..eks.facts import CLUSTER_DNS_IP
from ..errors import ExitCode, HarnessError
from ..rules.naming import fargate_node_name, node_domain
from . import process
from .dataplane_binaries import DataPlaneBinaries
from .microvm_host import cgroup_dirs, kill_cgroup, remove_cgroup, short_path, unmount_under
from .pki import Authority
from .registry import write_hosts_tomls
from .vpc_network import Attachment, VpcNetwork

__all__ = ["COMPONENTS_FILE", "DEATHS_FILE", "MicroVMSpec", "MicroVM", "KUBELET_PORT", "SANDBOX_IMAGE"]

KUBELET_PORT = 10250
#: in each running microVM's directory: its processes (containerd, kubelet with kube-proxy, the mount holder)
COMPONENTS_FILE = "components.json"
#: beside the microVMs' directories: one JSON line per microVM process that died, kept after its microVM goes
DEATHS_FILE = "deaths.jsonl"
#: what a Fargate microVM's kubelet reports as its osImage comes from here
AMAZON_LINUX_2 = """NAME="Amazon Linux"
VERSION="2"
ID="amzn"
ID_LIKE="centos rhel fedora"
VERSION_ID="2"
PRETTY_NAME="Amazon Linux 2"
ANSI_COLOR="0;33"
CPE_NAME="cpe:2.3:o:amazon:amazon_linux:2"
HOME_URL="https://amazonlinux.com/"
"""
SANDBOX_IMAGE = "registry.k8s.io/pause:3.10"
#: a microVM's disk: 003 records ``lsblk`` with a 30G disk and ``df -hT /`` an overlay root of about 29.4G
DISK_SIZE = "30G"


@dataclass(frozen=True)
class MicroVMSpec:
    """What the fargate-scheduler decided: the ENI's address and subnet, and the node's identity."""

    address: str
    subnet: str
    region: str
    zone: str
    provider_id: str
    labels: dict[str, str] = field(default_factory=dict)
    taints: tuple[str, ...] = ("eks.amazonaws.com/compute-type=fargate:NoSchedule",)

    @property
    def node_name(self) -> str:
        return fargate_node_name(self.address, self.region)

    @property
    def slug(self) -> str:
        return self.address.replace(".", "-")


class MicroVM:
    """Starts and stops one microVM; ``root`` is its own directory under the environment's state."""

    def __init__(self, spec: MicroVMSpec, root: Path, run_id: str, bins: DataPlaneBinaries, network: VpcNetwork,
                 api_server: str, authority: Authority, registry_address: str) -> None:
        self.spec, self.root, self.run_id, self.bins = spec, root, run_id, bins
        self.network, self.api_server, self.authority = network, api_server, authority
        self.registry_address = registry_address
        self.attachment: Attachment | None = None
        self.components: list[process.Component] = []
        self._mount_holder = 0
        #: the directory again, by a short path: sockets' paths are limited in length
        self.sockets = root

    # --- life cycle ---------------------------------------------------------------------------

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.sockets = short_path(self.run_id, self.spec.slug, self.root)
        self.attachment = self.network.attach(self.spec.address, self.spec.subnet, management=True)
        try:
            self._write_containerd()
            self._write_kubelet()
            for path in cgroup_dirs(self.run_id, self.spec.slug):
                path.mkdir(parents=True, exist_ok=True)
            self._start_mount_namespace()
            self._launch("containerd", [self.bins.path("containerd"), "--config", str(self.root / "containerd.toml")])
            self._wait_for(self.sockets / "containerd.sock", "containerd's socket")
            self._write_kube_proxy()
            # Fargate runs kube-proxy in every microVM: the pod's traffic passes the microVM's netfilter. Both
            # are one process here (see fargatelab/data/fargate-node.go), which the liveness checks call kubelet.
            self._launch("kubelet", [
                self.bins.path("fargate-node"), "--config", str(self.root / "kubelet.yaml"),
                "--kubeconfig", str(self.root / "kubelet.kubeconfig"),
                "--hostname-override", self.spec.node_name, "--node-ip", self.spec.address,
                "--root-dir", str(self.sockets / "kubelet"), "--provider-id", self.spec.provider_id,
                "--node-labels", ",".join(f"{k}={v}" for k, v in sorted(self.spec.labels.items())),
                "--proxy", "--config", str(self.root / "kube-proxy.yaml"),
            ])
            # The environment's liveness checks read this: a microVM's process that dies is a component lost.
            (self.root / COMPONENTS_FILE).write_text(json.dumps([c.to_json() for c in self.components], indent=1))
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop kubelet, containerd and every shim and container of this microVM; remove what it made."""
        # First, so that processes stopped on purpose are never taken for components that died.
        (self.root / COMPONENTS_FILE).unlink(missing_ok=True)
        # The pod's processes first (the cgroups hold them): their shims then exit by themselves.
        for path in cgroup_dirs(self.run_id, self.spec.slug):
            kill_cgroup(path)
        deadline = time.monotonic() + 10
        while mine := [p for p in process.tagged_pids(self.run_id) if self._belongs(p)]:
            process.stop(mine, grace=2.0)
            if time.monotonic() > deadline:
                break
        self.components.clear()
        unmount_under(self.root)
        if self.sockets != self.root:
            self.sockets.unlink(missing_ok=True)
        for path in reversed(cgroup_dirs(self.run_id, self.spec.slug)):
            remove_cgroup(path)
        if self.attachment is not None:
            self.network.detach(self.attachment)
            self.attachment = None

    def dead(self) -> list[str]:
        """Names of this running microVM's processes that have died (a kubelet killed, say)."""
        return [c.name for c in self.components if not process.alive(c.pid, self.run_id)]

    def _belongs(self, pid: int) -> bool:
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes()
        except OSError:
            return False
        return f"FARGATE_LABS_MICROVM={self.spec.slug}".encode() in environ.split(b"\0")

    # --- pieces -------------------------------------------------------------------------------

    def _start_mount_namespace(self) -> None:
        """The microVM's own mount namespace, held open by a sleeping process: Amazon Linux 2's os-release is
        what its kubelet reads (the node's osImage), and what kubelet and containerd mount for pods stays
        inside it and goes with it.

        containerd's directories are the microVM's own disk, a tmpfs of the size of Fargate's (``df -hT /``
        in a pod shows an overlay of about that size), mounted inside the namespace: it goes with the
        microVM's last process, and the files of the images it unpacked never reach the host's file system.
        (On a host whose ext4 has no journal, creating files right after thousands were deleted is slow: the
        kernel skips every recently freed inode. Unpacking the stand-in nginx image there cost containerd
        2.6 s of kernel time; on the tmpfs it is a small fraction of that.)"""
        assert self.attachment is not None
        os_release = self.root / "os-release"
        os_release.write_text(AMAZON_LINUX_2)
        disk = self.root / "containerd"
        disk.mkdir(exist_ok=True)
        env = {"FARGATE_LABS_MICROVM": self.spec.slug}
        holder = process.start(f"mounts-{self.spec.slug}", [
            "nsenter", f"--net=/run/netns/{self.attachment.netns}", "unshare", "--mount", "--propagation", "private",
            "sh", "-c", f"mount --bind {os_release} /etc/os-release && "
                        f"mount -t tmpfs -o size={DISK_SIZE},mode=0711 fargate-microvm-disk {disk} && "
                        "exec sleep infinity"], self.root, self.run_id, env=env)
        self.components.append(holder)
        deadline = time.monotonic() + 10
        # The disk is mounted last: once the namespace shows it, the os-release is in place too.
        while " fargate-microvm-disk " not in _read(f"/proc/{holder.pid}/mountinfo"):
            if time.monotonic() > deadline or not process.alive(holder.pid):
                raise HarnessError(f"microVM {self.spec.address}: its mount namespace did not come up "
                                   f"(see {self.root}/mounts-{self.spec.slug}.log)", ExitCode.START_FAILED)
            time.sleep(0.02)
        self._mount_holder = holder.pid

    def _launch(self, name: str, command: list[str]) -> None:
        assert self.attachment is not None
        env = {"PATH": f"{self.bins.bin_dir}:{os.environ.get('PATH', '/usr/sbin:/usr/bin:/sbin:/bin')}",
               "FARGATE_LABS_MICROVM": self.spec.slug,
               # Collect garbage at half Go's default heap growth: about 10 MB less per microVM for a
               # little CPU (a microVM's components are idle but for its one pod).
               "GOGC": "50"}
        # nsenter, not `ip netns exec`: the latter remounts /sys, hiding the cgroup hierarchies from kubelet.
        netns = f"/run/netns/{self.attachment.netns}"
        self.components.append(process.start(
            f"{name}-{self.spec.slug}", ["nsenter", f"--net={netns}", f"--mount=/proc/{self._mount_holder}/ns/mnt",
                                         *command], self.root, self.run_id, env=env))

    def _wait_for(self, path: Path, what: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not path.exists():
            if time.monotonic() > deadline:
                raise HarnessError(f"microVM {self.spec.address}: no {what} after {timeout:.0f}s "
                                   f"(see {self.root})", ExitCode.START_FAILED)
            time.sleep(0.02)  # containerd is up in a few tenths of a second: the pod's start waits on this

    def _write_containerd(self) -> None:
        certs = self.root / "certs.d"
        write_hosts_tomls(certs, self.registry_address)
        cni = self.root / "cni"
        cni.mkdir(exist_ok=True)
        prefix = self.spec.subnet.split("/")[1]
        gateway = self.network.gateway(self.spec.subnet)
        (cni / "10-fargate-eni.conflist").write_text(json.dumps({
            "cniVersion": "1.0.0", "name": "fargate-eni",
            "plugins": [{"type": "ptp", "mtu": 9001, "ipam": {
                "type": "static", "addresses": [{"address": f"{self.spec.address}/{prefix}", "gateway": gateway}],
                "routes": [{"dst": "0.0.0.0/0"}]}}]}, indent=1))
        r = self.root
        (r / "containerd.toml").write_text(f"""version = 3
# What a microVM's one pod never uses (other snapshotters, NRI, tracing, metrics, pprof) stays unloaded.
disabled_plugins = [{", ".join(f'"{p}"' for p in _CONTAINERD_UNUSED)}]
root = "{r}/containerd/root"
state = "{r}/containerd/state"
[grpc]
  address = "{self.sockets}/containerd.sock"
[plugins.'io.containerd.cri.v1.images']
  snapshotter = "overlayfs"
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = "{SANDBOX_IMAGE}"
  [plugins.'io.containerd.cri.v1.images'.registry]
    config_path = "{certs}"
[plugins.'io.containerd.cri.v1.runtime']
  # Lowering a process's oom_score_adj fails on some hosts (EIO), which runc reports as
  # "can't get final child's PID from pipe".
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
    BinaryName = "{self.bins.path('runc')}"
  [plugins.'io.containerd.cri.v1.runtime'.cni]
    bin_dirs = ["{self.bins.cni_dir}"]
    conf_dir = "{cni}"
""")

    def _write_kube_proxy(self) -> None:
        from .controlplane import write_kubeconfig

        r = self.root
        pair = self.authority.issue(f"kube-proxy-{self.spec.slug}", "system:kube-proxy", client=True)
        write_kubeconfig(r / "kube-proxy.kubeconfig", self.api_server, self.authority.cert_path, pair,
                         "eksworkshop", "kube-proxy")
        (r / "kube-proxy.yaml").write_text(f"""apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {{kubeconfig: {r}/kube-proxy.kubeconfig}}
hostnameOverride: {self.spec.node_name}
mode: iptables
# Its own namespace: nothing to serve beyond it, and the host's conntrack table is not the microVM's to size.
healthzBindAddress: ""
metricsBindAddress: ""
conntrack: {{maxPerCore: 0, min: 0}}
""")

    def _write_kubelet(self) -> None:
        from .controlplane import write_kubeconfig

        spec, r = self.spec, self.root
        # Fargate's kubelet authenticates as system:node:<node name>; the Node authorizer keeps it to its own.
        pair = self.authority.issue(f"node-{spec.slug}", f"system:node:{spec.node_name}",
                                    organization="system:nodes", client=True)
        write_kubeconfig(r / "kubelet.kubeconfig", self.api_server, self.authority.cert_path, pair,
                         "eksworkshop", "kubelet")
        # The node's own resolver is the VPC's (the CIDR's base + 2), as on EC2 and Fargate: pods with
        # dnsPolicy Default (CoreDNS) get it; ClusterFirst pods get the cluster DNS and this search domain.
        (r / "resolv.conf").write_text(node_resolv_conf(spec.region, str(self.network.cidr)))
        cgroup_root = f"/fargate-labs/{self.run_id}/{spec.slug}"
        taints = "".join(f"\n- {{key: {t.split('=')[0]}, value: {t.split('=')[1].split(':')[0]}, "
                         f"effect: {t.split(':')[1]}}}" for t in spec.taints)
        (r / "kubelet.yaml").write_text(f"""apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
containerRuntimeEndpoint: unix://{self.sockets}/containerd.sock
cgroupDriver: cgroupfs
cgroupRoot: {cgroup_root}
maxPods: 1
clusterDNS: [{CLUSTER_DNS_IP}]
clusterDomain: cluster.local
resolvConf: {r}/resolv.conf
failSwapOn: false
address: {spec.address}
port: {KUBELET_PORT}
readOnlyPort: 0
healthzPort: 0
serializeImagePulls: false
authentication:
  anonymous: {{enabled: false}}
  webhook: {{enabled: false}}
  x509: {{clientCAFile: {self.authority.cert_path}}}
authorization: {{mode: AlwaysAllow}}
evictionHard: {{memory.available: "1Mi", nodefs.available: "1%", imagefs.available: "1%", nodefs.inodesFree: "1%"}}
registerWithTaints:{taints}
""")


_CONTAINERD_UNUSED = (
    "io.containerd.nri.v1.nri", "io.containerd.snapshotter.v1.blockfile", "io.containerd.snapshotter.v1.erofs",
    "io.containerd.differ.v1.erofs", "io.containerd.mount-handler.v1.erofs", "io.containerd.snapshotter.v1.native",
    "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing",
    "io.containerd.metrics.v1.grpc-otel", "io.containerd.metrics.v1.grpc-prometheus", "io.containerd.http.v1.pprof",
    "io.containerd.monitor.container.v1.restart", "io.containerd.image-verifier.v1.bindir",
)


def node_resolv_conf(region: str, vpc_cidr: str) -> str:
    """A microVM's own resolver file: the VPC's DNS server (the CIDR's base + 2) and the region's domain.

    >>> print(node_resolv_conf("us-east-1", "10.11.0.0/16"), end="")
    search ec2.internal
    nameserver 10.11.0.2
    """
    return f"search {node_domain(region)}\nnameserver {ipaddress.ip_network(vpc_cidr).network_address + 2}\n"


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""
