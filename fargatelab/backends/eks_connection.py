"""Reaching an EKS cluster: its name and region (given, or read from a kubeconfig context), boto3
clients for the region, and a kubeconfig built from ``eks:DescribeCluster``.

The kubeconfig's user runs :mod:`fargatelab.eks.token` through an ``exec`` entry, so kubectl and the
Kubernetes client refresh the bearer token by themselves. No aws CLI, no eksctl.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import yaml

from ..cleanup.leftovers import RunScope
from ..eks import token as eks_token
from ..errors import ExitCode, HarnessError

__all__ = ["Connection", "connect", "run_dir", "target_from_context"]


# --- kubeconfig contexts -----------------------------------------------------------------------------

_CLUSTER_ARN = re.compile(r"^arn:aws[a-z-]*:eks:([a-z0-9-]+):\d{12}:cluster/([0-9A-Za-z][A-Za-z0-9_-]*)$")
_EKSCTL_CLUSTER = re.compile(r"^([0-9A-Za-z][A-Za-z0-9_-]*)\.([a-z0-9-]+)\.eksctl\.io$")


def _kubeconfig_documents() -> list[dict[str, Any]]:
    paths = [p for p in (os.environ.get("KUBECONFIG") or os.path.expanduser("~/.kube/config")).split(os.pathsep) if p]
    docs = []
    for path in paths:
        try:
            docs.append(yaml.safe_load(Path(path).read_text()) or {})
        except FileNotFoundError:
            continue
        except (OSError, yaml.YAMLError) as exc:
            raise HarnessError(f"cannot read kubeconfig {path}: {exc}", ExitCode.BAD_INPUT) from None
    return docs


def target_from_context(context: str | None) -> tuple[str, str]:
    """(cluster name, region) of a kubeconfig context written by ``aws eks update-kubeconfig`` or eksctl."""
    docs = _kubeconfig_documents()
    if not docs:
        raise HarnessError("no kubeconfig found ($KUBECONFIG or ~/.kube/config): pass --cluster and --region",
                           ExitCode.BAD_INPUT)
    name = context or next((d.get("current-context") for d in docs if d.get("current-context")), None)
    if not name:
        raise HarnessError("the kubeconfig has no current context: pass --kube-context NAME, or --cluster "
                           "and --region", ExitCode.BAD_INPUT)

    def find(kind: str, key: str) -> dict[str, Any]:
        for d in docs:
            for entry in d.get(kind) or []:
                if entry.get("name") == key:
                    return dict(entry)
        return {}

    ctx = find("contexts", name).get("context")
    if not ctx:
        raise HarnessError(f"kubeconfig context {name!r} does not exist", ExitCode.BAD_INPUT)
    cluster_ref = str(ctx.get("cluster", ""))
    if m := _CLUSTER_ARN.match(cluster_ref):
        return m.group(2), m.group(1)
    if m := _EKSCTL_CLUSTER.match(cluster_ref):
        return m.group(1), m.group(2)
    args = list(((find("users", str(ctx.get("user", ""))).get("user") or {}).get("exec") or {}).get("args") or [])
    found: dict[str, str] = {}
    for flag, key in (("--cluster-name", "cluster"), ("--cluster", "cluster"), ("-i", "cluster"),
                      ("--cluster-id", "cluster"), ("--region", "region")):
        if flag in args and args.index(flag) + 1 < len(args):
            found.setdefault(key, args[args.index(flag) + 1])
    if "cluster" in found and "region" in found:
        return found["cluster"], found["region"]
    raise HarnessError(f"kubeconfig context {name!r} does not name an EKS cluster and its region: pass --cluster "
                       "and --region", ExitCode.BAD_INPUT)


# --- connection ----------------------------------------------------------------------------------------


class Connection:
    """boto3 clients for the cluster's region, and the kubeconfig built from DescribeCluster."""

    def __init__(self, cluster: str, region: str) -> None:
        import boto3
        from botocore.config import Config

        self.cluster, self.region = cluster, region
        self.session = boto3.session.Session(region_name=region)
        self._config = Config(retries={"mode": "standard", "max_attempts": 6}, connect_timeout=10, read_timeout=60)
        self._clients: dict[str, Any] = {}

    def aws(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = self.session.client(service, config=self._config)
        return self._clients[service]

    def describe(self) -> dict[str, Any]:
        cluster: dict[str, Any] = self.aws("eks").describe_cluster(name=self.cluster)["cluster"]
        return cluster

    def write_kubeconfig(self, path: Path, description: dict[str, Any]) -> Path:
        name = description.get("arn") or self.cluster
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": name, "cluster": {
                "server": description["endpoint"],
                "certificate-authority-data": description["certificateAuthority"]["data"]}}],
            "users": [{"name": name, "user": eks_token.exec_user(self.cluster, self.region)}],
            "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
            "current-context": name,
        }
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(yaml.safe_dump(config, sort_keys=False))
        tmp.chmod(0o600)
        os.replace(tmp, path)
        return path

    def scope(self, run_id: str, kubeconfig: str | None) -> RunScope:
        return RunScope(run_id=run_id, region=self.region, aws=self.aws, clusters=[self.cluster],
                        kubeconfig=kubeconfig)


def run_dir(run_id: str) -> Path:
    """The run's own directory for EKS: the kubeconfig of each of its processes, the role's start lock."""
    from ..local.environment import state_root

    path = state_root() / f"eks-{run_id}"
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def connect(cluster: str, region: str, run_id: str) -> tuple[Connection, dict[str, Any], Path]:
    """Connection, DescribeCluster answer and a kubeconfig for this process (no preflight)."""
    conn = Connection(cluster, region)
    description = conn.describe()
    kubeconfig = conn.write_kubeconfig(run_dir(run_id) / f"kubeconfig-{os.getpid()}", description)
    return conn, description, kubeconfig
