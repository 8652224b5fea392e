"""Documented extra — a kubeconfig from the EKS API (document 002, "EKS 자격증명" and the checks after it).

Documented steps::

    aws eks --region ap-northeast-2 update-kubeconfig --name fargate-serverless
    kubectl cluster-info
    kubectl get node

Run through the real AWS CLI and kubectl with the run's cluster and region, into a kubeconfig of the step's
own (the user's is never touched): kubectl then authenticates with the token ``aws eks get-token`` makes,
as a student's does. The document's cluster is ``fargate-serverless`` (its terraform blueprint's name).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from fargatelab import Capability, Lab

pytestmark = [pytest.mark.lab("Documented extras — kubeconfig from the EKS API", "002")]

UPDATE = "aws eks --region ap-northeast-2 update-kubeconfig --name fargate-serverless"
CLUSTER_INFO = "kubectl cluster-info"
GET_NODE = "kubectl get node"


@pytest.mark.needs(Capability.EKS_AUTHENTICATION)
def test_update_kubeconfig_then_kubectl(lab: Lab, tmp_path: Path) -> None:
    """update-kubeconfig adds the cluster's context; kubectl with it reaches the cluster's endpoint with an
    EKS token and lists the nodes."""
    tools = lab.tools()
    if not tools.has("aws"):
        pytest.skip(f"needs the AWS CLI: {tools.why_not('aws')}")
    names = {"fargate-serverless": lab.cluster.cluster_name, "ap-northeast-2": lab.cluster.region}
    own = {"KUBECONFIG": str(tmp_path / "config")}
    cluster = lab.aws("eks").describe_cluster(name=lab.cluster.cluster_name)["cluster"]

    ran = lab.run(UPDATE, names, env=own, timeout=120)
    added = re.search(r"(?:Added new|Updated) context (\S+) to (\S+)", ran.stdout)
    lab.compared(ran, "context added (update-kubeconfig names it after the cluster's ARN)",
                 added.group(1) if added else ran.stdout.strip(), cluster["arn"])

    ran = lab.run(CLUSTER_INFO, env=own, timeout=120)
    shown = re.search(r"control plane is running at (\S+)", re.sub(r"\x1b\[[0-9;]*m", "", ran.stdout))
    lab.compared(ran, "control plane endpoint (DescribeCluster's endpoint)",
                 shown.group(1) if shown else ran.stdout.strip(), cluster["endpoint"])

    ran = lab.run(GET_NODE, env=own, timeout=120)
    header = ran.stdout.splitlines()[0].split()[:2] if ran.stdout.strip() else []
    # A cluster with no Fargate pod yet has no node: kubectl says so instead of printing a table.
    lab.compared(ran, "kubectl get node: a node table (or none yet)",
                 header == ["NAME", "STATUS"] or "No resources found" in ran.output, True)
