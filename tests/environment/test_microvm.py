"""A Fargate pod in a microVM of its own: a real kubelet, containerd and runc in a namespace of the VPC.

The pod runs a real container from the offline registry; its IP, its node's InternalIP and its hostIP are
the ENI's address; ``kubectl logs`` and ``kubectl exec`` reach the kubelet through the API server; and
stopping the microVM leaves no process, namespace, mount or cgroup behind.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Iterator

import pytest

from fargatelab.local.dataplane_binaries import provision_dataplane
from fargatelab.local.environment import EnvironmentConfig, LocalEnvironment
from fargatelab.local.images import build_images
from fargatelab.local.microvm import MicroVM, MicroVMSpec
from fargatelab.local.microvm_host import cgroup_dirs
from fargatelab.local.pki import Authority
from fargatelab.local.registry import Registry, publish
from fargatelab.local.vpc_network import VpcNetwork, namespaces_of_run, remove_run
from fargatelab.local import process

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="microVMs need root (network namespaces, cgroups): run as root"),
]

ADDRESS, SUBNET = "10.11.64.50", "10.11.64.0/20"
NODE = "fargate-ip-10-11-64-50.ap-northeast-2.compute.internal"


def _kubectl(kubeconfig: str, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["kubectl", *args], input=stdin, capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, KUBECONFIG=kubeconfig))


@pytest.fixture(scope="module")
def environment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalEnvironment, VpcNetwork, str]]:
    state = tmp_path_factory.mktemp("state")
    os.environ["FARGATE_LABS_STATE"] = str(state)
    run_id = f"mv{os.getpid() % 10**6:06d}"
    network = VpcNetwork(run_id, "10.11.0.0/16")
    network.create()
    env = LocalEnvironment("microvm")
    registry: Registry | None = None
    try:
        env.up(EnvironmentConfig(name="microvm", run_id=run_id, api_address=network.host_address),
               progress=lambda _: None)
        bins = provision_dataplane(lambda _: None)
        images = build_images(bins.path("crane"), bins.path("registry"), None, lambda _: None,
                              only=("busybox", "pause"))
        registry = Registry(bins.path("registry"), state / "registry", host=network.host_address,
                            run_id=run_id).start()
        publish(images, bins.path("crane"), registry.address)
        yield env, network, registry.address
    finally:
        if registry is not None:
            registry.stop()
        env.down(quiet=True)
        remove_run(run_id)


def test_a_pod_runs_for_real_in_its_microvm(environment: tuple[LocalEnvironment, VpcNetwork, str]) -> None:
    env, network, registry = environment
    state = json.loads((env.dir / "state.json").read_text())
    kubeconfig, run_id = state["kubeconfig"], state["run_id"]
    spec = MicroVMSpec(ADDRESS, SUBNET, "ap-northeast-2", "ap-northeast-2a",
                       "aws:///ap-northeast-2a/fargate-0123456789abcdef0",
                       labels={"eks.amazonaws.com/compute-type": "fargate", "fargate-labs/data-plane": "microvm",
                               "topology.kubernetes.io/zone": "ap-northeast-2a"})
    vm = MicroVM(spec, env.dir / "microvms" / spec.slug, run_id, provision_dataplane(lambda _: None), network,
                 state["server"], Authority.load(env.dir / "pki"), registry)
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "hello", "namespace": "default"},
           "spec": {"nodeName": NODE, "tolerations": [{"operator": "Exists"}],
                    "containers": [{"name": "c", "image": "busybox",
                                    "command": ["sh", "-c", "echo hello from a real container; sleep 3600"]}]}}
    assert _kubectl(kubeconfig, "apply", "-f", "-", stdin=json.dumps(pod)).returncode == 0
    vm.start()
    try:
        deadline = time.monotonic() + 120
        phase = ""
        while time.monotonic() < deadline:
            seen = json.loads(_kubectl(kubeconfig, "get", "pod", "hello", "-o", "json").stdout or "{}")
            phase = (seen.get("status") or {}).get("phase", "")
            if phase == "Running":
                break
            time.sleep(1)
        assert phase == "Running", (Path(vm.root / "kubelet.log").read_text()[-3000:])
        node = json.loads(_kubectl(kubeconfig, "get", "node", NODE, "-o", "json").stdout)
        internal = [a["address"] for a in node["status"]["addresses"] if a["type"] == "InternalIP"]
        assert (seen["status"]["podIP"], seen["status"]["hostIP"], internal) == (ADDRESS, ADDRESS, [ADDRESS])
        assert node["status"]["capacity"]["pods"] == "1"
        assert node["status"]["nodeInfo"]["containerRuntimeVersion"].startswith("containerd://2.")
        assert node["status"]["nodeInfo"]["osImage"] == "Amazon Linux 2"
        assert {"key": "eks.amazonaws.com/compute-type", "value": "fargate", "effect": "NoSchedule"} in \
            node["spec"]["taints"]

        logs = _kubectl(kubeconfig, "logs", "hello")
        assert logs.stdout.strip() == "hello from a real container", logs.stderr
        inside = _kubectl(kubeconfig, "exec", "hello", "--", "sh", "-c",
                          "cat /sys/class/net/eth0/mtu; grep -E '^(search|nameserver)' /etc/resolv.conf")
        assert inside.stdout.split("\n")[:3] == [
            "9001", "search default.svc.cluster.local svc.cluster.local cluster.local ap-northeast-2.compute.internal",
            "nameserver 172.20.0.10"], inside.stderr
        # The pod's root is an overlay on the microVM's own disk (a tmpfs of 30G, as 003's df shows about
        # 29.4G), which lives in the microVM's mount namespace only.
        disk = _kubectl(kubeconfig, "exec", "hello", "--", "df", "-P", "/").stdout.splitlines()[-1].split()
        assert (disk[0], int(disk[1]) // 1024 ** 2) == ("overlay", 30), disk
        assert "fargate-microvm-disk" not in Path("/proc/self/mounts").read_text()
        holder = next(c for c in vm.components if c.name.startswith("mounts-"))
        assert f" {vm.root}/containerd " in Path(f"/proc/{holder.pid}/mountinfo").read_text()
    finally:
        vm.stop()

    # (a stopped shim may linger as a zombie until init reaps it: not a process that runs)
    left = [p for p in process.tagged_pids(run_id) if process.alive(p, run_id)
            and f"FARGATE_LABS_MICROVM={spec.slug}".encode() in Path(f"/proc/{p}/environ").read_bytes()]
    assert not left, subprocess.run(["ps", "-o", "pid,stat,args", "-p", ",".join(map(str, left))],
                                    capture_output=True, text=True).stdout
    assert [n for n in namespaces_of_run(run_id) if spec.slug in n] == []
    assert not [p for p in cgroup_dirs(run_id, spec.slug) if p.exists()]
    assert str(vm.root) not in Path("/proc/self/mounts").read_text()
