"""The microVM data plane's controller: a microVM for every Fargate node the fargate-scheduler makes.

EKS starts a microVM when its fargate-scheduler places a pod; here the scheduler emulation creates the
node and binds the pod (through the API, as against any cluster), and this controller — part of the local
environment, not of the emulation — starts the microVM whose real kubelet takes that node over and runs
the pod. When the node goes (its pod was deleted), the microVM goes. Stopping the controller stops every
microVM it started.

``python -m fargatelab.local.microvm_controller --state-dir DIR``: reads the environment's state (API
server, CA, registry, run id) from ``DIR/state.json``, logs to stdout, prints ``READY`` once watching.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import sys
import threading
import time
from pathlib import Path
from typing import Any

from .aws.network import PRIVATE_SUBNET_CIDRS, VPC_CIDR
from . import process
from .dataplane_binaries import provision_dataplane
from .microvm import DEATHS_FILE, MicroVM, MicroVMSpec
from .pki import Authority
from .vpc_network import VpcNetwork

__all__ = ["MicroVMController", "subnet_of", "spec_of"]

log = logging.getLogger("fargatelab.microvm")
COMPUTE_TYPE_LABEL = "eks.amazonaws.com/compute-type"
ZONE_LABEL = "topology.kubernetes.io/zone"
REGION_LABEL = "topology.kubernetes.io/region"
KUBELET_LABELS = {"kubernetes.io/hostname", "kubernetes.io/os", "kubernetes.io/arch", "beta.kubernetes.io/os",
                  "beta.kubernetes.io/arch"}
#: how long a new microVM's node may be missing (its kubelet registering it again) before the microVM goes
REGISTRATION_GRACE = 60.0


def subnet_of(address: str, subnets: tuple[str, ...] = PRIVATE_SUBNET_CIDRS) -> str:
    """The private subnet an ENI address is in.

    >>> subnet_of("10.11.80.7")
    '10.11.80.0/20'
    """
    for cidr in subnets:
        if ipaddress.ip_address(address) in ipaddress.ip_network(cidr):
            return cidr
    raise ValueError(f"{address} is in none of the private subnets {', '.join(subnets)}")


def spec_of(node: dict[str, Any]) -> MicroVMSpec | None:
    """What a microVM for ``node`` needs, from the node the fargate-scheduler made; None for other nodes."""
    meta, labels = node["metadata"], node["metadata"].get("labels") or {}
    if labels.get(COMPUTE_TYPE_LABEL) != "fargate":
        return None
    address = next((a["address"] for a in (node.get("status") or {}).get("addresses") or []
                    if a.get("type") == "InternalIP"), None)
    if address is None:
        address = meta["name"].split(".")[0].removeprefix("fargate-ip-").replace("-", ".")
    region = labels.get(REGION_LABEL) or meta["name"].split(".")[1]
    # The kubelet registers the node itself, with the labels the fargate-scheduler gave it (bar the ones the
    # kubelet sets from what it sees, such as its hostname).
    own = {k: v for k, v in labels.items() if k not in KUBELET_LABELS}
    return MicroVMSpec(address, subnet_of(address), region, labels.get(ZONE_LABEL, f"{region}a"),
                       (node.get("spec") or {}).get("providerID", ""), labels=own)


class MicroVMController:
    def __init__(self, state_dir: Path) -> None:
        from kubernetes import client

        from ..kube_client import client_configuration

        self.dir = state_dir
        state = json.loads((state_dir / "state.json").read_text())
        self.run_id: str = state["run_id"]
        self.api_server: str = state["server"]
        self.registry: str = state["registry"]
        self.network = VpcNetwork(self.run_id, VPC_CIDR)
        self.bins = provision_dataplane(lambda line: log.info("%s", line))
        self.authority = Authority.load(state_dir / "pki")
        self.core = client.CoreV1Api(client.ApiClient(client_configuration(state["kubeconfig"])))
        self.vms: dict[str, MicroVM] = {}
        self._started: dict[str, float] = {}
        #: microVMs whose kubelet has registered the node (their node going away means their pod went)
        self._registered: set[str] = set()
        #: processes whose death is already recorded
        self._dead: set[str] = set()
        #: microVMs being started, each by a thread of its own
        self._starting: dict[str, threading.Thread] = {}
        self._failed: set[str] = set()
        #: microVMs whose node went, each stopped by a thread of its own
        self._stopping: dict[str, threading.Thread] = {}
        self._stopping_lock = threading.Lock()
        self._lock = threading.Lock()

    def reconcile(self) -> None:
        """Start a microVM for each Fargate node without one; stop those whose node is gone."""
        listing = json.loads(self.core.list_node(label_selector=f"{COMPUTE_TYPE_LABEL}=fargate",
                                                 _preload_content=False).data)
        nodes = listing["items"]
        wanted = {}
        for node in nodes:
            if node["metadata"].get("deletionTimestamp"):
                continue
            spec = spec_of(node)
            if spec is not None:
                wanted[node["metadata"]["name"]] = spec
        with self._lock:
            now = time.monotonic()
            for name in list(self._failed):  # their start stopped what it had started
                self._failed.discard(name)
                self._starting.pop(name, None)
                self.vms.pop(name, None)
                self._started.pop(name, None)
            for name in [n for n in self.vms if n not in wanted]:
                if now - self._started[name] < REGISTRATION_GRACE and name not in self._registered:
                    continue  # its kubelet is registering the node again
                log.info("node %s is gone: stopping its microVM", name)
                # In a thread of its own, as starts are: a stop takes a second or two (its pod's processes,
                # mounts and files), and the next pod's microVM must not wait behind it.
                stopping = threading.Thread(
                    target=self._stop, args=(name, self.vms.pop(name), self._starting.pop(name, None)), daemon=True)
                with self._stopping_lock:
                    self._stopping[name] = stopping
                stopping.start()
                self._started.pop(name, None)
                self._registered.discard(name)
            self._registered.update(n for n in wanted if n in self.vms)
            self._record_deaths()
            for name, spec in wanted.items():
                if name in self.vms:
                    continue
                vm = MicroVM(spec, self.dir / "microvms" / spec.slug, self.run_id, self.bins, self.network,
                             self.api_server, self.authority, self.registry)
                try:
                    # The scheduler's node stands for the microVM until it runs; the kubelet then registers it
                    # anew, as a Fargate node comes up: its own events, in the order a real one's have.
                    self.core.delete_node(name, _preload_content=False)
                except Exception as exc:  # the next pass tries again
                    log.warning("cannot take over the node %s: %s", name, exc)
                    continue
                self._started[name] = time.monotonic()
                self.vms[name] = vm
                # Each microVM starts on its own: five replicas scaled at once boot side by side, as Fargate's do.
                self._starting[name] = threading.Thread(target=self._start, args=(name, vm, self._stopping.get(name)),
                                                        daemon=True)
                self._starting[name].start()

    def _start(self, name: str, vm: MicroVM, after: threading.Thread | None = None) -> None:
        if after is not None:
            after.join()  # an earlier microVM of the same node (and directory) is still being stopped
        try:
            vm.start()
        except Exception as exc:  # one microVM that cannot start must not stop the others
            log.warning("cannot start the microVM of %s: %s", name, exc)
            self._failed.add(name)  # forgotten by the next pass (which may hold the lock, joining this thread)
            return
        log.info("microVM of %s started (%s)", name, vm.spec.address)

    def _stop(self, name: str, vm: MicroVM, starting: threading.Thread | None) -> None:
        if starting is not None:
            starting.join()  # stopping a microVM that is still starting would leave what its start adds next
        try:
            vm.stop()
        except Exception as exc:  # what is left is the run's cleanup's to remove
            log.warning("cannot stop the microVM of %s: %s", name, exc)
        finally:
            # Not the controller's lock: stop_all holds that while it waits for a start, and a start may be
            # waiting for this stop.
            with self._stopping_lock:
                if self._stopping.get(name) is threading.current_thread():
                    del self._stopping[name]

    def _finish_start(self, name: str) -> None:
        """Wait for the microVM of ``name`` to have started (or failed to), so that stopping it stops all of it."""
        starting = self._starting.pop(name, None)
        if starting is not None and starting is not threading.current_thread():
            starting.join()

    def _record_deaths(self) -> None:
        """A microVM process that dies is recorded, and stays recorded after its microVM goes: a run that
        passed although its data plane lost a kubelet must still be told at its end."""
        for name, vm in self.vms.items():
            starting = self._starting.get(name)
            if starting is not None and starting.is_alive():
                # Still launching: a start that fails stops what it launched, and is logged as a failed
                # start, not recorded as a death.
                continue
            for component in vm.dead():
                if component in self._dead:
                    continue
                self._dead.add(component)
                log.warning("%s of the microVM of %s died", component, name)
                with (self.dir / "microvms" / DEATHS_FILE).open("a") as out:
                    out.write(json.dumps({"component": component, "node": name, "at": time.time()}) + "\n")

    def stop_all(self) -> None:
        with self._lock:
            for name in list(self.vms):
                self._finish_start(name)
                self.vms.pop(name).stop()
        with self._stopping_lock:
            stopping = list(self._stopping.values())
        for thread in stopping:
            thread.join()

    def run(self, stop: threading.Event, interval: float = 0.2) -> None:
        from ..emulator.changes import Changes

        # The loop wakes as soon as a Fargate node appears, changes or goes, as the fargate-scheduler's does,
        # and after a second at the most: a microVM's process may die meanwhile.
        changes = Changes(stop).watch(self.core.list_node, label_selector=f"{COMPUTE_TYPE_LABEL}=fargate")
        print("READY", flush=True)
        while not stop.is_set():
            try:
                self.reconcile()
                changes.wait(1.0)
            except Exception as exc:  # the API server may be restarting: keep trying until stopped
                log.warning("reconcile failed: %s", exc)
                stop.wait(interval)


def main(argv: list[str] | None = None) -> int:
    return process.serve_state_dir("fargatelab.local.microvm_controller", MicroVMController, argv)


if __name__ == "__main__":
    sys.exit(main())
