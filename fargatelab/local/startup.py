"""Starting the components of a local environment: the control plane, moto, the token authenticator, KWOK
and the Fargate emulation.

Each component is written to the state file as soon as its process exists, so that ``down`` finds it even
when a later one fails to start.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import subprocess
import sys
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, NamedTuple

from ..rules.naming import node_domain
from . import controlplane as cp
from . import process
from .binaries import Binaries

if TYPE_CHECKING:
    from .dataplane_binaries import DataPlaneBinaries
    from .environment import EnvironmentConfig
    from .registry import Registry

__all__ = ["Startup", "dead_components", "microvm_components", "recorded_deaths"]

Progress = Callable[[str], None]
#: the kube-system profile of a cluster whose pods really run (002's)
COREDNS_PROFILE = "kube_system"


class _Registry(NamedTuple):
    bins: DataPlaneBinaries
    registry: Registry
    images: int


def dead_components(state: dict[str, Any], microvms: bool = True) -> list[str]:
    """Names of the state's components whose process is gone (or is no longer the run's), and with
    ``microvms`` the running microVMs' processes among them (``kubelet-10-11-89-156``): a dead microVM
    fails what waits on it, while the environment itself still runs its other pods."""
    dead = [c["name"] for c in state.get("components", []) if not process.alive(c["pid"], state.get("run_id"))]
    if microvms:
        listed = microvm_components(state)
        gone = [c for c in listed if not process.alive(c["pid"], state.get("run_id"))]
        if gone:
            # A microVM stopped on purpose (its pod deleted) takes its listing away before it stops a process:
            # a process found gone counts only if its microVM still lists it after the look.
            still = {(c["name"], c["pid"]) for c in microvm_components(state)}
            dead += [c["name"] for c in gone if (c["name"], c["pid"]) in still]
    return dead


def recorded_deaths(state: dict[str, Any], since: float = 0.0) -> list[dict[str, Any]]:
    """The microVM processes that died since ``since`` (epoch seconds), also of microVMs gone since."""
    from .microvm import DEATHS_FILE

    path = Path(state.get("microvms_dir") or "/nonexistent") / DEATHS_FILE
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return []
    found = []
    for line in lines:
        try:
            death = json.loads(line)
        except ValueError:
            continue
        if death.get("at", 0) >= since:
            found.append(death)
    return found


def microvm_components(state: dict[str, Any]) -> list[dict[str, Any]]:
    """The processes of the environment's running microVMs, as each microVM recorded them when it started."""
    from .microvm import COMPONENTS_FILE

    found: list[dict[str, Any]] = []
    if state.get("microvms_dir"):
        for path in sorted(Path(state["microvms_dir"]).glob(f"*/{COMPONENTS_FILE}")):
            try:
                found += json.loads(path.read_text())
            except (OSError, ValueError):  # its microVM is being stopped right now
                continue
    return found


class Startup:
    """Starts components into one environment's directory and state."""

    def __init__(self, directory: Path, state: dict[str, Any], save: Callable[[dict[str, Any]], None]) -> None:
        self.dir = directory
        self.state = state
        self.save = save

    def launch(self, name: str, command: list[str], port: int = 0,
               env: dict[str, str] | None = None) -> process.Component:
        comp = process.start(name, command, self.dir / "logs", self.state["run_id"], port, env)
        self.state["components"].append(comp.to_json())
        self.save(self.state)
        return comp

    def first_dead(self) -> Callable[[], str | None]:
        """A check naming the first dead component with the last line of its log, for the waits."""
        def check() -> str | None:
            dead = dead_components(self.state)
            if not dead:
                return None
            log = self.dir / "logs" / f"{dead[0]}.log"
            tail = log.read_text(errors="replace").strip().splitlines()[-1:] if log.exists() else []
            return f"{dead[0]} ({tail[0][:300] if tail else 'no output'}; log {log})"

        return check

    def wait_ready(self, component: str, what: str, dead: Callable[[], str | None]) -> None:
        """Wait until ``component`` logs READY (moto, the emulation and the authenticator do once serving)."""
        log = self.dir / "logs" / f"{component}.log"
        cp.wait_until(functools.partial(_log_says, log, "READY"), 60, what, dead)

    def all_components(self, bins: Binaries, config: EnvironmentConfig, progress: Progress) -> None:
        """A control plane of our own, and on it all that makes it EKS on Fargate; marks the state ready."""
        t0 = time.monotonic()
        registry: Future[_Registry] | None = None
        if config.data_plane == "microvm":
            # The registry and its images need nothing of the control plane: they are published meanwhile.
            pool = ThreadPoolExecutor(1, thread_name_prefix="registry")
            registry = pool.submit(self._publish_registry, config.api_address, progress)
            pool.shutdown(wait=False)
        try:
            self._all_components(bins, config, progress, t0, registry)
        finally:
            if registry is not None and "registry" not in self.state:
                # A failed start: the registry's process is recorded before the state is taken down.
                with contextlib.suppress(Exception):
                    self._record_registry(registry.result())

    def _all_components(self, bins: Binaries, config: EnvironmentConfig, progress: Progress, t0: float,
                        registry: Future[_Registry] | None) -> None:
        state = self.state
        creds = cp.issue_credentials(self.dir / "pki", config.api_address)
        dead = self.first_dead()

        if config.data_plane == "microvm":
            from .aws.network import VPC_CIDR
            from .vpc_network import VpcNetwork

            VpcNetwork(state["run_id"], VPC_CIDR).create()
            state["data_plane"] = "microvm"
        api_port = config.apiserver_port or process.free_port()
        server = f"https://{config.api_address}:{api_port}"
        # moto is the slowest to start (imports and seeding) and needs only the endpoint and CA, so it
        # goes first and comes up while etcd and the API server do.
        self.moto(config, server, creds.ca)

        etcd_port, peer_port = process.free_port(), process.free_port()
        Path(state["etcd_data"]).mkdir(parents=True, exist_ok=True)
        self.launch("etcd", cp.etcd_command(bins, Path(state["etcd_data"]), etcd_port, peer_port), etcd_port)

        # EKS's authenticator, so the API server also takes `k8s-aws-v1.` tokens (checked against moto's STS).
        auth_flags = self.authenticator(creds, config)
        self.launch("kube-apiserver", cp.apiserver_command(bins, creds, api_port, etcd_port, extra=auth_flags,
                                                        bind_address=config.api_address),
                    api_port)

        coredns: Future[None] | None = None
        if registry is not None:
            pool = ThreadPoolExecutor(1, thread_name_prefix="coredns-profile")
            coredns = pool.submit(self._coredns_profile, config)
            pool.shutdown(wait=False)

        kubeconfig = cp.write_kubeconfig(self.dir / "kubeconfig", server, creds.ca, creds.admin,
                                         config.cluster_name, "admin")
        state.update(kubeconfig=str(kubeconfig), server=server)

        admin = cp.AdminConnection(server, creds)
        cp.wait_until(lambda: admin.get("/readyz")[0] == 200, 60, "kube-apiserver /readyz", dead)
        progress(f"kube-apiserver ready on {server} ({time.monotonic() - t0:.1f}s)")

        for name, client, build in (
            ("kube-controller-manager", creds.controller_manager,
             lambda kc: cp.controller_manager_command(bins, creds, kc)),
            ("kube-scheduler", creds.scheduler, lambda kc: cp.scheduler_command(bins, kc)),
        ):
            kc = cp.write_kubeconfig(self.dir / f"{name}.kubeconfig", server, creds.ca, client,
                                     config.cluster_name, name)
            self.launch(name, build(kc))
        kwok_kc = cp.write_kubeconfig(self.dir / "kwok.kubeconfig", server, creds.ca, creds.kwok,
                                      config.cluster_name, "kwok")
        emulator_kc = cp.write_kubeconfig(self.dir / "emulator.kubeconfig", server, creds.ca, creds.emulator,
                                          config.cluster_name, "fargate-emulator")
        self.fargate(bins, config, kwok_kc, emulator_kc, creds.webhook, creds.ca)
        if registry is not None and coredns is not None:
            self.microvms(config, progress, bins, registry, coredns)

        cp.wait_until(admin.default_service_account_exists, 60,
                      "the default ServiceAccount (controller-manager)", dead)
        admin.close()
        self.wait_ready("moto", "the moto server", dead)
        self.wait_ready("emulator", "the Fargate emulation", dead)
        self.wait_ready("authenticator", "the token authenticator", dead)
        progress(f"controllers, moto and the Fargate emulation ready ({time.monotonic() - t0:.1f}s)")

        state["ready"] = True
        self.save(state)
        progress(f"environment {state['name']!r} up in {time.monotonic() - t0:.1f}s (run {state['run_id']})")

    def _vpc_resolver(self, network: Any, coredns: str) -> None:
        """The VPC's resolver (AmazonProvidedDNS, the CIDR's base + 2), a CoreDNS in the router's namespace: it
        answers the environment's ALB names (``vpc-hosts``, written by the ALBs' proxies) and the EC2-style
        names of the VPC's addresses; this VPC has no way out, so any other name fails at once (SERVFAIL)
        rather than being left to time out."""
        address = network.resolver()
        network.answer_for(address)
        hosts = self.dir / "vpc-hosts"
        hosts.touch()
        domain = node_domain(self.state["region"])
        corefile = self.dir / "vpc-resolver.Corefile"
        corefile.write_text(f""".:53 {{
    bind {address}
    template IN A {domain} {{
        match "^ip-(?P<a>[0-9]+)-(?P<b>[0-9]+)-(?P<c>[0-9]+)-(?P<d>[0-9]+)[.]{domain.replace('.', '[.]')}[.]$"
        answer "{{{{ .Name }}}} 60 IN A {{{{ .Group.a }}}}.{{{{ .Group.b }}}}.{{{{ .Group.c }}}}.{{{{ .Group.d }}}}"
        fallthrough
    }}
    template ANY ANY {domain} {{
        rcode NXDOMAIN
    }}
    hosts {hosts} {{
        reload 1s
    }}
}}
""")
        self.launch("vpc-resolver", ["nsenter", f"--net=/run/netns/{network.router}", coredns, "-conf", str(corefile)])
        self._wait_udp(network, address)

    def _wait_udp(self, network: Any, address: str, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            listening = subprocess.run(["ip", "netns", "exec", network.router, "ss", "-lun"], capture_output=True,
                                       text=True).stdout
            if f"{address}:53 " in listening:
                return
            dead = self.first_dead()()
            if dead:
                raise RuntimeError(f"{dead} exited while the VPC's resolver started")
            time.sleep(0.1)
        raise RuntimeError(f"the VPC's resolver did not listen on {address}:53 within {timeout:.0f}s")

    def registry(self, host: str, progress: Progress) -> DataPlaneBinaries:
        """The offline registry on ``host`` with every stand-in image published (state's ``registry``); the
        data plane's binaries it was built with."""
        return self._record_registry(self._publish_registry(host, progress))

    def _publish_registry(self, host: str, progress: Progress) -> _Registry:
        """The offline registry on ``host`` with every stand-in image published, and the data plane's binaries
        it was built with. It runs beside the control plane's start, so it leaves the state alone."""
        from .dataplane_binaries import provision_dataplane
        from .images import build_images
        from .registry import Registry
        from .registry_storage import published_storage

        bins = provision_dataplane(progress)
        images = build_images(bins.path("crane"), bins.path("registry"), bins.path("coredns"), progress)
        storage = published_storage(images, bins.path("crane"), bins.path("registry"))
        registry = Registry(bins.path("registry"), self.dir / "registry", host=host, run_id=self.state["run_id"],
                            serve=storage)
        registry.start()
        return _Registry(bins, registry, len(images.records))

    def _record_registry(self, published: _Registry) -> DataPlaneBinaries:
        """The registry in the state (``registry``, ``images`` and its component)."""
        registry = published.registry
        self.state["components"].append(process.Component("registry", registry.pid or 0, registry.port,
                                                          str(registry.log_path), []).to_json())
        self.state.update(registry=registry.address, images=published.images)
        self.save(self.state)
        return published.bins

    def microvms(self, config: EnvironmentConfig, progress: Progress, control_plane: Binaries,
                 registry: Future[_Registry], coredns: Future[None]) -> None:
        """The data plane of real pods: the control plane's ENIs in the VPC, the offline registry with its
        images, the microVM controller and the ALBs' proxies."""
        from ..eks.vpc import cluster_subnets
        from .aws.network import VPC_CIDR
        from .cluster_enis import apply_with_kubectl, attach_control_plane
        from .vpc_network import VpcNetwork

        from .microvm_host import ensure_host_tools

        ensure_host_tools(progress)
        self.state["microvms_dir"] = str(self.dir / "microvms")
        # The cluster's subnets are moto's seed: on a busy host moto may still be seeding when the images are.
        self.wait_ready("moto", "the moto server", self.first_dead())
        private, _ = cluster_subnets(self._aws("eks", config), self._aws("ec2", config), config.cluster_name)
        api_host, api_port = self.state["server"].removeprefix("https://").rsplit(":", 1)
        self.state["control_plane_enis"] = attach_control_plane(
            VpcNetwork(self.state["run_id"], VPC_CIDR), self._aws("ec2", config), config.cluster_name, private,
            api_host, int(api_port), apply_with_kubectl(control_plane.path("kubectl"), self.state["kubeconfig"]))
        bins = self._record_registry(registry.result())  # the images, published while all this started
        self.save(self.state)
        # Both daemons take a second to import and start: they do so while CoreDNS's profile is made.
        self.launch("microvm-controller", [sys.executable, "-m", "fargatelab.local.microvm_controller",
                                           "--state-dir", str(self.dir)])
        # The ALBs' data plane: it reaches the pods' addresses through the VPC's route on the host.
        self.launch("alb-proxies", [sys.executable, "-m", "fargatelab.local.alb_proxies", "--state-dir", str(self.dir)])
        self._coredns_on_fargate(coredns, control_plane)
        self._vpc_resolver(VpcNetwork(self.state["run_id"], VPC_CIDR), bins.path("coredns"))
        self.wait_ready("microvm-controller", "the microVM controller", self.first_dead())
        self.wait_ready("alb-proxies", "the ALBs' proxies", self.first_dead())
        progress(f"microVM data plane ready: registry {self.state['registry']}, {self.state['images']} images")

    def _coredns_profile(self, config: EnvironmentConfig) -> None:
        """A cluster with real pods starts as 002's does: a kube-system profile for CoreDNS, so the cluster DNS
        answers from the first pod on. It needs moto only, so it is made while the API server starts."""
        self.wait_ready("moto", "the moto server", self.first_dead())
        eks, iam = self._aws("eks", config), self._aws("iam", config)
        role = next(r["Arn"] for r in iam.list_roles()["Roles"] if "FargatePodExecutionRole" in r["RoleName"])
        # 002's name for it (terraform's map key); it sorts after a lab's own kube-system-<run> profile.
        eks.create_fargate_profile(clusterName=config.cluster_name, fargateProfileName=COREDNS_PROFILE,
                                   podExecutionRoleArn=role, tags={"fargate-labs/run-id": self.state["run_id"]},
                                   selectors=[{"namespace": "kube-system"}])
        cp.wait_until(lambda: eks.describe_fargate_profile(clusterName=config.cluster_name,
                                                           fargateProfileName=COREDNS_PROFILE)
                      ["fargateProfile"]["status"] == "ACTIVE", 60, "the coredns Fargate profile", self.first_dead())

    def _aws(self, service: str, config: EnvironmentConfig) -> Any:
        """A client of the environment's own AWS side (moto), with its dummy credentials."""
        import boto3

        return boto3.client(service, endpoint_url=self.state["aws_endpoint"], region_name=config.region,
                            aws_access_key_id="testing", aws_secret_access_key="testing")

    def _coredns_on_fargate(self, profile: Future[None], bins: Binaries) -> None:
        """Once the kube-system profile is ACTIVE: CoreDNS pods admitted before it was are made again."""
        profile.result()
        kubectl = [bins.path("kubectl"), "--kubeconfig", self.state["kubeconfig"], "-n", "kube-system"]
        subprocess.run([*kubectl, "delete", "pods", "-l", "k8s-app=kube-dns", "--field-selector",
                        "spec.schedulerName!=fargate-scheduler", "--wait=false"], capture_output=True)

    def authenticator(self, creds: cp.Credentials, config: EnvironmentConfig) -> list[str]:
        """aws-iam-authenticator's TokenReview webhook (fargatelab.emulator.authenticator); the API server flags."""
        from ..emulator.authenticator import apiserver_flags, webhook_kubeconfig

        port = process.free_port()
        self.launch("authenticator", [
            sys.executable, "-m", "fargatelab.emulator.authenticator", "--port", str(port),
            "--cert", str(creds.webhook.cert), "--key", str(creds.webhook.key), "--cluster", config.cluster_name,
            "--sts-endpoint", self.state["aws_endpoint"], "--access-key", "testing=testing",
        ], port)
        return apiserver_flags(webhook_kubeconfig(self.dir / "authenticator.kubeconfig",
                                                  f"https://127.0.0.1:{port}/authenticate", creds.ca))

    def moto(self, config: EnvironmentConfig, endpoint: str, ca: Path) -> None:
        """The AWS side: moto seeded with the workshop, its cluster record pointing at ``endpoint``."""
        aws_port = process.free_port()
        self.launch("moto", [
            sys.executable, "-m", "fargatelab.local.aws.server", "--host", "127.0.0.1", "--port", str(aws_port),
            "--region", config.region, "--cluster-name", config.cluster_name, "--endpoint", endpoint,
            "--ca-file", str(ca), "--run-id", self.state["run_id"], *_profile_delays(config),
        ], aws_port)
        self.state["aws_endpoint"] = f"http://127.0.0.1:{aws_port}"

    @staticmethod
    def _kwok(bins: Binaries) -> str:
        """A --bin-dir's own kwok where it holds one, else the cache's (built now on its first use)."""
        from .binaries import cached_bin_dir
        from .dataplane_binaries import provision_kwok

        given = bins.path("kwok")
        if bins.bin_dir != cached_bin_dir(bins.kubernetes_version) and os.access(given, os.X_OK):
            return given
        return provision_kwok()

    def fargate(self, bins: Binaries, config: EnvironmentConfig, kwok_kubeconfig: Path, emulator_kubeconfig: Path,
                webhook: cp.CertPair, ca: Path, webhook_host: str = "127.0.0.1") -> None:
        """KWOK as the Fargate data plane, and the emulation (webhooks, fargate-scheduler, controllers).

        ``webhook_host`` is where the API server reaches the webhooks: loopback for the local control
        plane, the kind network's gateway for kind.
        """
        from ..emulator.kwok_stages import kwok_command, kwok_configuration
        from ..rules.timing import profile

        state = self.state
        kwok_cfg = self.dir / "kwok.yaml"
        kwok_cfg.write_text(kwok_configuration(profile(config.timing, config.timing_scale)))
        if config.data_plane != "microvm":  # real kubelets run the Fargate nodes of the microVM data plane
            self.launch("kwok", kwok_command(self._kwok(bins), str(kwok_kubeconfig), str(kwok_cfg)))
        webhook_port = process.free_port()
        self.launch("emulator", [
            sys.executable, "-m", "fargatelab.emulator", "--kubeconfig", str(emulator_kubeconfig),
            "--aws-endpoint", state["aws_endpoint"], "--region", config.region, "--cluster", config.cluster_name,
            "--kubernetes-version", state["kubernetes_version"], "--run-id", state["run_id"],
            "--webhook-host", webhook_host, "--webhook-port", str(webhook_port),
            "--webhook-cert", str(webhook.cert), "--webhook-key", str(webhook.key),
            "--ca-file", str(ca), "--timing", config.timing, "--timing-scale", str(config.timing_scale),
            "--placement", "microvm" if config.data_plane == "microvm" else config.placement,
            *(["--coredns-on-fargate"] if config.data_plane == "microvm" else []),
        ], webhook_port, env={"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"})


def _profile_delays(config: EnvironmentConfig) -> list[str]:
    from ..rules.timing import profile

    t = profile(config.timing, config.timing_scale)
    return ["--profile-create-seconds", str(t.profile_create), "--profile-delete-seconds", str(t.profile_delete)]


def _log_says(log: Path, word: str) -> bool:
    try:
        return word in log.read_text(errors="replace")
    except OSError:
        return False
