"""Facts of EKS itself and of how this harness marks what it makes, shared by every room that needs them.

The emulator, the local environment, the backends and the cleanup all speak of the same service range,
cluster DNS address and run-id tag; they live here, below all of them, so none has to import another.
"""

from __future__ import annotations

__all__ = ["SERVICE_CIDR", "CLUSTER_DNS_IP", "RUN_ID_LABEL", "RUN_ID_TAG", "SANDBOX_TAG", "ROLE_PATH"]

#: EKS picks 172.20.0.0/16 for Services when the VPC is in 10.0.0.0/8 (and 10.100.0.0/16 otherwise)
SERVICE_CIDR = "172.20.0.0/16"
#: the kube-dns ClusterIP: the tenth address of the service range
CLUSTER_DNS_IP = "172.20.0.10"
#: the label on every Kubernetes object a run makes, and the tag on every AWS resource: the run id
RUN_ID_LABEL = "fargate-labs/run-id"
RUN_ID_TAG = RUN_ID_LABEL
#: an EKS cluster tagged with this (value "true") may be written to by a replay run
SANDBOX_TAG = "fargate-labs/sandbox"
#: IAM path of every role the harness creates (the replay policy limits IAM writes to it)
ROLE_PATH = "/fargate-labs/"
