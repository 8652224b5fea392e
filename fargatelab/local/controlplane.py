"""The real Kubernetes control plane of the local environment: flags, credentials and readiness."""

from __future__ import annotations

import base64
import http.client
import json
import ssl
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import yaml

from ..eks.facts import CLUSTER_DNS_IP, SERVICE_CIDR
from .binaries import Binaries
from .pki import Authority, CertPair, write_service_account_keys

__all__ = [
    "SERVICE_CIDR",
    "CLUSTER_DNS_IP",
    "Credentials",
    "issue_credentials",
    "write_kubeconfig",
    "etcd_command",
    "apiserver_command",
    "controller_manager_command",
    "scheduler_command",
    "AdminConnection",
]

# The workshop cluster's service network; kube-dns sits at .10 as in the recorded resolv.conf.


@dataclass(frozen=True)
class Credentials:
    ca: Path
    serving: CertPair
    service_account: CertPair
    admin: CertPair
    controller_manager: CertPair
    scheduler: CertPair
    kwok: CertPair
    emulator: CertPair
    webhook: CertPair
    kubelet_client: CertPair


def issue_credentials(pki_dir: Path, api_address: str = "127.0.0.1") -> Credentials:
    ca = Authority(pki_dir)
    serving = ca.issue(
        "apiserver",
        "kube-apiserver",
        hosts=tuple(dict.fromkeys((api_address, "127.0.0.1", "localhost", "kubernetes", "kubernetes.default",
                                   "kubernetes.default.svc", "kubernetes.default.svc.cluster.local", "172.20.0.1"))),
        server=True,
    )
    return Credentials(
        ca=ca.cert_path,
        serving=serving,
        service_account=write_service_account_keys(pki_dir),
        admin=ca.issue("admin", "fargate-labs-admin", organization="system:masters", client=True),
        controller_manager=ca.issue("controller-manager", "system:kube-controller-manager", client=True),
        scheduler=ca.issue("scheduler", "system:kube-scheduler", client=True),
        # kwok and the emulation act for the Fargate infrastructure, which EKS runs with full rights.
        kwok=ca.issue("kwok", "fargate-labs-kwok", organization="system:masters", client=True),
        emulator=ca.issue("emulator", "eks:fargate-scheduler", organization="system:masters", client=True),
        webhook=ca.issue("webhook", "fargate-labs-webhook", hosts=("127.0.0.1", "localhost"), server=True),
        kubelet_client=ca.issue("kubelet-client", "kube-apiserver-kubelet-client", organization="system:masters",
                                client=True),
    )


def write_kubeconfig(path: Path, server: str, ca: Path, client: CertPair, cluster: str, user: str) -> Path:
    """A self-contained kubeconfig (certificates inlined), so it can be copied elsewhere."""

    def b64(p: Path) -> str:
        return base64.b64encode(p.read_bytes()).decode()

    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": cluster, "cluster": {"server": server, "certificate-authority-data": b64(ca)}}],
        "users": [{"name": user, "user": {"client-certificate-data": b64(client.cert),
                                          "client-key-data": b64(client.key)}}],
        "contexts": [{"name": cluster, "context": {"cluster": cluster, "user": user}}],
        "current-context": cluster,
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    path.chmod(0o600)
    return path


def etcd_command(bins: Binaries, data_dir: Path, client_port: int, peer_port: int) -> list[str]:
    peer = f"http://127.0.0.1:{peer_port}"
    return [
        bins.path("etcd"),
        "--name=fargate-labs",
        f"--data-dir={data_dir}",
        f"--listen-client-urls=http://127.0.0.1:{client_port}",
        f"--advertise-client-urls=http://127.0.0.1:{client_port}",
        f"--listen-peer-urls={peer}",
        f"--initial-advertise-peer-urls={peer}",
        f"--initial-cluster=fargate-labs={peer}",
        # The data dir is on tmpfs and thrown away on `down`: durability buys nothing here.
        "--unsafe-no-fsync",
        "--quota-backend-bytes=1073741824",
        "--log-level=warn",
    ]


def apiserver_command(
    bins: Binaries, creds: Credentials, port: int, etcd_port: int, extra: list[str] | None = None,
    bind_address: str = "127.0.0.1",
) -> list[str]:
    return [
        bins.path("kube-apiserver"),
        f"--etcd-servers=http://127.0.0.1:{etcd_port}",
        f"--secure-port={port}",
        f"--bind-address={bind_address}",
        "--advertise-address=127.0.0.1",
        # A loopback advertise address cannot go into the `kubernetes` Endpoints; nothing in-cluster
        # needs them, because no real kubelet or pod network exists on this backend.
        "--endpoint-reconciler-type=none",
        f"--tls-cert-file={creds.serving.cert}",
        f"--tls-private-key-file={creds.serving.key}",
        f"--client-ca-file={creds.ca}",
        f"--service-account-key-file={creds.service_account.cert}",
        f"--service-account-signing-key-file={creds.service_account.key}",
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        "--authorization-mode=Node,RBAC",
        # microVM kubelets are reached at their node's InternalIP (the ENI), as on EKS, with this identity
        "--kubelet-preferred-address-types=InternalIP,Hostname",
        f"--kubelet-client-certificate={creds.kubelet_client.cert}",
        f"--kubelet-client-key={creds.kubelet_client.key}",
        "--allow-privileged=true",
        "--enable-priority-and-fairness=false",
        "--profiling=false",
        "--v=1",
        *(extra or []),
    ]


def _component_flags(kubeconfig: Path) -> list[str]:
    """How kube-controller-manager and kube-scheduler run here: one kubeconfig for the API server and for
    authenticating and authorizing requests, the only instance (no leader election), no serving port."""
    return [
        f"--kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
        "--leader-elect=false",
        "--bind-address=127.0.0.1",
        "--secure-port=0",
    ]


def controller_manager_command(bins: Binaries, creds: Credentials, kubeconfig: Path) -> list[str]:
    return [
        bins.path("kube-controller-manager"),
        *_component_flags(kubeconfig),
        "--controllers=*",
        "--use-service-account-credentials=true",
        f"--service-account-private-key-file={creds.service_account.key}",
        f"--root-ca-file={creds.ca}",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        # One controller-manager for one small API server on loopback: the default client rate limit
        # (20 qps) paces its start-up by ~0.15 s per controller and a namespace deletion by its ~100
        # calls, which the labs would wait for.
        "--kube-api-qps=200",
        "--kube-api-burst=400",
        # A microVM's pod runs about a second after its node registers (on EKS, tens of seconds after): the
        # node lifecycle controller, which lifts the node.kubernetes.io/not-ready taint once the node is
        # Ready, looks every second rather than every five, so a Running pod's node shows its own taint only.
        "--node-monitor-period=1s",
        "--profiling=false",
        "--v=1",
    ]


def scheduler_command(bins: Binaries, kubeconfig: Path) -> list[str]:
    return [
        bins.path("kube-scheduler"),
        *_component_flags(kubeconfig),
        "--profiling=false",
        "--v=1",
    ]


def _context(creds: Credentials) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(creds.ca))
    ctx.load_cert_chain(str(creds.admin.cert), str(creds.admin.key))
    return ctx


class AdminConnection:
    """GETs as the admin over one TLS connection kept alive: polling ``/readyz`` while the API server starts
    made a handshake every tenth of a second, each costing both sides tens of milliseconds of CPU on a busy
    machine just when the API server needs it most."""

    def __init__(self, server: str, creds: Credentials, timeout: float = 2.0) -> None:
        parts = urllib.parse.urlsplit(server)
        self._host, self._port, self._timeout = parts.hostname or "", parts.port or 443, timeout
        self._context = _context(creds)
        self._conn: http.client.HTTPSConnection | None = None

    def get(self, path: str) -> tuple[int, str]:
        """(status, body), with status 0 when nothing answered (the next call connects again)."""
        try:
            if self._conn is None:
                self._conn = http.client.HTTPSConnection(self._host, self._port, context=self._context,
                                                         timeout=self._timeout)
            self._conn.request("GET", path)
            response = self._conn.getresponse()
            return response.status, response.read().decode(errors="replace")
        except (OSError, ssl.SSLError, http.client.HTTPException):
            self.close()
            return 0, ""

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def default_service_account_exists(self) -> bool:
        status, body = self.get("/api/v1/namespaces/default/serviceaccounts/default")
        return status == 200 and json.loads(body).get("metadata", {}).get("name") == "default"


def wait_until(check: Callable[[], bool], timeout: float, what: str, alive: Callable[[], str | None]) -> None:
    """Poll ``check``; fail with a line naming ``what`` on timeout, or the component ``alive`` says died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        dead = alive()
        if dead:
            raise RuntimeError(f"{dead} exited while waiting for {what}")
        time.sleep(0.1)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
