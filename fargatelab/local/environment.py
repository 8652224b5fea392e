"""The local EKS-on-Fargate environment: a real control plane, moto, KWOK and the emulation, in one state dir.

``up`` starts every component detached and writes ``state.json``; ``down`` stops them and removes the
state; a state directory left by a killed run is recognised and cleared. Every process carries the run
id, so ``down`` also finds what the state file lost track of.
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Callable, Iterable

from . import orphans, process
from .binaries import Binaries, provision
from .startup import Startup, dead_components, microvm_components, recorded_deaths
from ..errors import ExitCode, HarnessError
from ..rules.naming import new_run_id
from ..scenario.handle import ClusterHandle
from .orphans import Orphan

__all__ = ["EnvironmentConfig", "LocalEnvironment", "remove_orphans", "state_root"]

Progress = Callable[[str], None]

#: how long ``resolve`` waits for the proxy of an ALB the AWS API already lists
_PROXY_START_S = 10.0


def state_root() -> Path:
    base = os.environ.get("FARGATE_LABS_STATE") or os.path.join(
        os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state"), "fargate-labs"
    )
    return Path(base)


def remove_orphans(progress: Callable[[str], None], sources: Iterable[orphans.LeftoverSource] = ()) -> list[Orphan]:
    """Remove what runs killed with -9 left on this host (see :mod:`.orphans`), one line each; ``sources``:
    what else runs make (a kind cluster's node containers)."""
    def clear(name: str) -> None:
        LocalEnvironment(name).clear_stale(lambda _: None)

    return orphans.remove_orphans(state_root(), clear, progress, sources)


@dataclass
class EnvironmentConfig:
    name: str = "default"
    cluster_name: str = "eksworkshop"
    region: str = "ap-northeast-2"
    apiserver_port: int = 0
    bin_dir: str | None = None
    timing: str = "fast"
    timing_scale: float = 1.0
    run_id: str = ""
    #: "per-pod-node" (a KWOK-run Fargate node per pod) or "hosted" (pods on real workers, shadow nodes)
    placement: str = "per-pod-node"
    #: where the API server listens: loopback, or the environment's link-local address on ``lo`` when
    #: kubelets in the VPC's namespaces must reach it (it must already be there)
    api_address: str = "127.0.0.1"
    #: "kwok" (KWOK plays the Fargate nodes), "microvm" (a real kubelet, containerd and runc per pod) or
    #: "auto" (microVMs where this host can run them, see ``choose_data_plane``)
    data_plane: str = "kwok"


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


#: starts of an environment whose picked port was taken by another program meanwhile
_START_ATTEMPTS = 3


class LocalEnvironment:
    """One named local environment and its state directory."""

    def __init__(self, name: str = "default") -> None:
        if not name.replace("-", "").replace("_", "").isalnum():
            raise HarnessError(
                f"environment name {name!r} may only hold letters, digits, '-' and '_'", ExitCode.BAD_INPUT
            )
        self.name = name
        self.dir = state_root() / name
        self.state_file = self.dir / "state.json"

    # --- state --------------------------------------------------------------------------------

    def state(self) -> dict[str, Any] | None:
        try:
            data: dict[str, Any] = json.loads(self.state_file.read_text())
            return data
        except FileNotFoundError:
            return None
        except (OSError, json.JSONDecodeError):
            return {"run_id": "", "components": [], "corrupt": True}

    def _write_state(self, state: dict[str, Any]) -> None:
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2))
        os.replace(tmp, self.state_file)

    def dead_components(self, state: dict[str, Any] | None = None, microvms: bool = True) -> list[str]:
        return dead_components(state or self.state() or {}, microvms)

    def died_since(self, since: float) -> list[str]:
        """Components dead now, and microVM processes that died since ``since`` (epoch seconds), each once:
        what a run that started then must report at its end."""
        state = self.state() or {}
        dead = self.dead_components(state)
        for death in recorded_deaths(state, since):
            name = f"{death['component']} (node {death['node']})"
            if death["component"] in dead:
                dead[dead.index(death["component"])] = name
            elif name not in dead:
                dead.append(name)
        return dead

    def start_lock(self) -> IO[str]:
        """This environment's start lock, held (close the file to release it): whoever holds it is
        starting the environment, or finding it up. Processes sharing one environment start it once."""
        root = state_root()
        root.mkdir(parents=True, exist_ok=True)
        handle = open(root / f".{self.name}.lock", "w")
        fcntl.flock(handle, fcntl.LOCK_EX)
        return handle

    def is_up(self) -> bool:
        state = self.state()
        return bool(state and state.get("ready") and not self.dead_components(state, microvms=False))

    def handle(self) -> ClusterHandle:
        state = self.state()
        if not state or not state.get("ready"):
            raise HarnessError(
                f"no local environment {self.name!r} is up: run `fargate-lab up` first", ExitCode.NOT_RUNNING
            )
        return ClusterHandle(
            kubeconfig=state["kubeconfig"],
            cluster_name=state["cluster_name"],
            region=state["region"],
            run_id=state["run_id"],
            aws_endpoint=state["aws_endpoint"],
            capabilities=frozenset({"write"}),
            kubernetes_version=state["kubernetes_version"],
            timing_scale=state.get("timing_scale", 1.0),
            extra={"state_dir": str(self.dir), "environment": self.name,
                   "data_plane": state.get("data_plane", "kwok"),
                   **({"load_balancers": str(self.dir / "load-balancers.json")}
                      if state.get("data_plane") == "microvm" or state.get("targets_namespace") else {})},
        )

    def resolve_load_balancer(self, dns_name: str) -> str:
        """The loopback address serving an internet-facing ALB of this environment; refused in one line for
        any other name."""
        handle = self.handle()
        address = handle.load_balancer_address(dns_name)
        if not address and "load_balancers" in handle.extra and self._lists_alb(handle, dns_name):
            # The Ingress shows the name as soon as the ALB exists; its proxy starts within a pass or two.
            deadline = time.monotonic() + _PROXY_START_S
            while not address and time.monotonic() < deadline and not handle.load_balancer(dns_name):
                time.sleep(0.2)
                address = handle.load_balancer_address(dns_name)
            if not address and not handle.load_balancer(dns_name):
                raise HarnessError(f"{dns_name} is an ALB of environment {self.name!r} but no proxy serves it after "
                                   f"{_PROXY_START_S:.0f} s: see `fargate-lab status --name {self.name}`",
                                   ExitCode.BAD_INPUT)
        if address:
            return address
        if (handle.load_balancer(dns_name) or {}).get("scheme") == "internal":
            raise HarnessError(f"{dns_name} is an internal ALB: it answers only inside the VPC, and the host is "
                               "outside it", ExitCode.BAD_INPUT)
        if "load_balancers" not in handle.extra:
            raise HarnessError(f"environment {self.name!r} serves no ALB: it runs its pods on KWOK nodes "
                               "(`fargate-lab up --data-plane microvm` serves them)", ExitCode.BAD_INPUT)
        raise HarnessError(f"{dns_name} is no ALB of environment {self.name!r}: "
                           f"`aws elbv2 describe-load-balancers` lists its DNS names", ExitCode.BAD_INPUT)

    @staticmethod
    def _lists_alb(handle: ClusterHandle, dns_name: str) -> bool:
        import boto3

        elbv2 = boto3.client("elbv2", endpoint_url=handle.aws_endpoint, region_name=handle.region,
                             aws_access_key_id="testing", aws_secret_access_key="testing")
        pages = elbv2.get_paginator("describe_load_balancers").paginate()
        return any(lb.get("DNSName") == dns_name for page in pages for lb in page["LoadBalancers"])

    def exports(self) -> str:
        h = self.handle()
        env = {"KUBECONFIG": h.kubeconfig, **h.aws_environment(), "FARGATE_LABS_ENV": self.name}
        return "".join(f"export {k}={_shell_quote(v)}\n" for k, v in env.items())

    # --- lifecycle ----------------------------------------------------------------------------

    def clear_stale(self, progress: Progress = _stderr) -> bool:
        """Remove what a killed run left behind; True when there was something."""
        state = self.state()
        if state is None:
            return False
        run_id = state.get("run_id", "")
        self._remove(state, [c["pid"] for c in state.get("components", []) if process.alive(c["pid"], run_id)])
        progress(f"removed stale state of environment {self.name!r} (run {run_id or 'unknown'})")
        return True

    def up(self, config: EnvironmentConfig, progress: Progress = _stderr) -> ClusterHandle:
        state = self.state()
        if state is not None:
            if state.get("ready") and not self.dead_components(state, microvms=False):
                raise HarnessError(
                    f"environment {self.name!r} is already up (run {state['run_id']}): use it with "
                    f"`eval \"$(fargate-lab env)\"`, or `fargate-lab down` first",
                    ExitCode.ALREADY_RUNNING,
                )
            self.clear_stale(progress)
        # What runs killed with -9 left (another environment's VPC route, say) would stand in this one's way.
        remove_orphans(progress)
        if config.apiserver_port and not process.port_is_free(config.apiserver_port):
            raise HarnessError(
                f"port {config.apiserver_port} is already taken: pass another --apiserver-port, "
                "or omit it to pick a free one",
                ExitCode.PORT_IN_USE,
            )
        bins = provision(bin_dir=config.bin_dir, progress=progress)
        run_id = config.run_id or new_run_id()
        from .microvm_host import choose_data_plane

        config = dataclasses.replace(config, data_plane=choose_data_plane(config.data_plane, progress))
        if config.data_plane == "microvm":
            from .microvm_host import require_microvm_host
            from .vpc_network import link_local_address

            require_microvm_host()
            # The VPC's namespaces reach the API server at the environment's link-local address.
            config = dataclasses.replace(config, api_address=link_local_address(run_id))
        for attempt in range(1, _START_ATTEMPTS + 1):
            state = self._new_state(config, bins, run_id)
            try:
                Startup(self.dir, state, self._write_state).all_components(bins, config, progress)
                return self.handle()
            except BaseException as exc:
                self.down(quiet=True)
                if isinstance(exc, HarnessError) or not isinstance(exc, (RuntimeError, TimeoutError)):
                    raise
                if attempt < _START_ATTEMPTS and "address already in use" in str(exc).lower():
                    # Ports are picked free, then bound by the component a moment later: another
                    # program may take one in between. New ports, once more.
                    progress(f"a port was taken before its component bound it: starting again ({exc})")
                    continue
                raise HarnessError(f"environment failed to start: {exc}", ExitCode.START_FAILED) from exc
        raise AssertionError("unreachable")

    def _new_state(self, config: EnvironmentConfig, bins: Binaries, run_id: str) -> dict[str, Any]:
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "logs").mkdir(exist_ok=True)
        state = {
            "name": self.name,
            "run_id": run_id,
            "cluster_name": config.cluster_name,
            "region": config.region,
            "kubernetes_version": bins.kubernetes_version,
            "timing": config.timing,
            "timing_scale": config.timing_scale,
            "etcd_data": f"/dev/shm/fargate-labs-{run_id}" if Path("/dev/shm").is_dir()
            else str(self.dir / "etcd"),
            "components": [],
            "ready": False,
            "started": time.time(),
        }
        self._write_state(state)
        return state

    def attach(self, kubeconfig: str, options: Any, webhook_host: str, certs: Path | None = None,
               progress: Progress = _stderr, targets_namespace: str | None = None) -> ClusterHandle:
        """Run moto, KWOK and the emulation (hosted placement) against an API server we did not start.

        The kind backend uses this: the cluster is kind's; what makes it EKS-on-Fargate is ours. With
        ``certs`` (the directory the cluster's containerd takes its registry hosts from), the offline
        registry of stand-in images runs on ``webhook_host`` too, and the nodes pull from it. With
        ``targets_namespace`` (a network namespace that reaches the pods), the ALBs' HAProxies run too.
        """
        import base64

        import yaml as _yaml

        from .pki import Authority

        bins = provision(progress=progress)
        config = EnvironmentConfig(name=self.name, cluster_name=options.cluster, region=options.region,
                                   timing=options.timing, timing_scale=options.timing_scale,
                                   run_id=options.run_id, placement="hosted")
        cluster = _yaml.safe_load(Path(kubeconfig).read_text())["clusters"][0]["cluster"]
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "logs").mkdir(exist_ok=True)
        api_ca = self.dir / "api-ca.crt"
        api_ca.write_bytes(base64.b64decode(cluster["certificate-authority-data"]))
        state: dict[str, Any] = {"name": self.name, "run_id": options.run_id, "cluster_name": options.cluster,
                                 "region": options.region, "kubernetes_version": bins.kubernetes_version,
                                 "kubeconfig": kubeconfig, "server": cluster["server"], "components": [],
                                 "ready": False, "timing_scale": options.timing_scale, "started": time.time(),
                                 **({"targets_namespace": targets_namespace} if targets_namespace else {})}
        self._write_state(state)
        start = Startup(self.dir, state, self._write_state)
        try:
            webhook_ca = Authority(self.dir / "pki")
            webhook = webhook_ca.issue("webhook", "fargate-labs-webhook", hosts=(webhook_host,), server=True)
            start.moto(config, cluster["server"], api_ca)
            kc = Path(kubeconfig)
            start.fargate(bins, config, kc, kc, webhook, webhook_ca.cert_path, webhook_host)
            if certs is not None:
                from .registry import write_hosts_tomls

                start.registry(webhook_host, progress)
                write_hosts_tomls(certs, state["registry"])
            dead = start.first_dead()
            for name in ("moto", "emulator"):
                start.wait_ready(name, name, dead)
            if targets_namespace:
                from .apt import need

                need("haproxy", ["haproxy"], "the ALBs' data plane", progress)
                start.launch("alb-proxies", [sys.executable, "-m", "fargatelab.local.alb_proxies",
                                             "--state-dir", str(self.dir)])
                start.wait_ready("alb-proxies", "the ALBs' proxies", start.first_dead())
        except BaseException:
            self.down(quiet=True)
            raise
        state["ready"] = True
        self._write_state(state)
        return self.handle()

    def down(self, quiet: bool = False, progress: Progress = _stderr) -> None:
        state = self.state()
        if state is None:
            if quiet:
                return
            raise HarnessError(f"no local environment {self.name!r} is up: nothing to stop",
                               ExitCode.NOT_RUNNING)
        run_id = state.get("run_id", "")
        # Reverse order: the emulation and kwok stop before the API server they talk to.
        self._remove(state, [c["pid"] for c in reversed(state.get("components", []))
                             if process.alive(c["pid"], run_id or None)])
        if not quiet:
            progress(f"environment {self.name!r} (run {run_id}) stopped and removed")

    def _remove(self, state: dict[str, Any], pids: list[int]) -> None:
        """Stop ``pids``, then every other process tagged with the state's run; delete the state and etcd's data."""
        run_id = state.get("run_id", "")
        if run_id:
            pids += [p for p in process.tagged_pids(run_id) if p not in pids]
        process.stop(pids)
        if run_id:
            from .microvm_host import remove_run_data_plane

            remove_run_data_plane(run_id, self.dir)
        if state.get("etcd_data"):
            shutil.rmtree(state["etcd_data"], ignore_errors=True)
        shutil.rmtree(self.dir, ignore_errors=True)

    def restart(self, component: str) -> None:
        """Start ``component`` again with the command it was started with (after a crash, say)."""
        state = self.state()
        if state is None:
            raise HarnessError(f"no local environment {self.name!r} is up", ExitCode.NOT_RUNNING)
        for entry in state["components"]:
            if entry["name"] == component:
                if process.alive(entry["pid"], state["run_id"]):
                    process.stop([entry["pid"]])
                started = process.start(component, entry["command"], self.dir / "logs", state["run_id"],
                                        entry["port"], entry.get("env"))
                entry["pid"] = started.pid
                self._write_state(state)
                return
        raise HarnessError(f"environment {self.name!r} has no component {component!r}", ExitCode.BAD_INPUT)

    def status(self) -> list[dict[str, Any]]:
        state = self.state()
        if state is None:
            raise HarnessError(f"no local environment {self.name!r} is up", ExitCode.NOT_RUNNING)
        run_id = state.get("run_id")
        return [
            dict(c, state="running" if process.alive(c["pid"], run_id) else "DEAD")
            for c in [*state.get("components", []), *microvm_components(state)]
        ]


def _shell_quote(value: str) -> str:
    import shlex

    return shlex.quote(value)
