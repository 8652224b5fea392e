"""The eks backend: a real EKS cluster (or anything that answers like one, through boto3's usual configuration).

Connection (:mod:`~fargatelab.backends.eks_connection`): the cluster's name and region (``--cluster``/
``--region``, or taken from a kubeconfig context with ``--kube-context``); the kubeconfig is built from
``eks:DescribeCluster`` (endpoint and CA) and a bearer token made with botocore (:mod:`fargatelab.eks.token`),
which kubectl and the Kubernetes client refresh by themselves through the kubeconfig ``exec`` entry. No aws
CLI, no eksctl.

Preflight (:mod:`~fargatelab.backends.eks_preflight`, then :mod:`~fargatelab.backends.pod_execution_role`),
in this order, each failure one line with its own exit code (:class:`~fargatelab.errors.ExitCode`):

1. credentials — ``sts:GetCallerIdentity`` (NO_CREDENTIALS);
2. the cluster exists (BACKEND_UNAVAILABLE) and is ACTIVE (CLUSTER_NOT_ACTIVE);
3. safety — replay only on a cluster tagged ``fargate-labs/sandbox=true``, unless
   ``--i-understand-this-creates-resources`` (UNSAFE_CLUSTER); check mode never writes;
4. AWS permissions — read probes (the list/describe calls the run makes) in both modes; in replay the
   writes are simulated with ``iam:SimulatePrincipalPolicy`` when the identity may call it, otherwise
   noted as unverified (MISSING_PERMISSIONS);
5. Fargate-ready — the cluster has private subnets (NOT_FARGATE_READY);
6. Kubernetes — the API server takes the token (KUBERNETES_UNAUTHORIZED) and allows what the mode needs
   (SelfSubjectAccessReview; MISSING_PERMISSIONS);
7. the AWS Load Balancer Controller — an IngressClass whose controller is ``ingress.k8s.aws/alb`` and the
   ``targetgroupbindings.elbv2.k8s.aws`` CRD exist, and every Deployment labelled
   ``app.kubernetes.io/name=aws-load-balancer-controller`` (the Helm chart's) has an available replica
   (NO_LOAD_BALANCER_CONTROLLER). These are what the API shows of a Helm-installed controller on EKS and
   of the local environment's emulation alike;
8. the pod execution role — ``--pod-execution-role-arn`` is checked (exists, trusts
   ``eks-fargate-pods.amazonaws.com``); otherwise replay creates ``fargate-labs-<run>-FargatePodExecutionRole``
   under the IAM path ``/fargate-labs/``, tagged with the run id (NOT_FARGATE_READY). This is the only write
   of the preflight, made after every check passed.

Nothing here knows about the local environment: with ``AWS_ENDPOINT_URL`` set, boto3 sends every call
there and the same code runs against moto.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from ..cleanup.leftovers import RunScope
from ..rules.naming import validate_run_id
from ..scenario.handle import ClusterHandle
from .capabilities import declared
from .eks_connection import Connection, run_dir, target_from_context
from .eks_preflight import Preflight
from .pod_execution_role import pod_execution_role

if TYPE_CHECKING:
    from . import BackendOptions

__all__ = ["EksBackend"]

Progress = Callable[[str], None]


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


class EksBackend:
    #: the cluster outlives the run: everything the run deletes is seen gone
    discards_cluster = False

    def __init__(self, options: BackendOptions, progress: Progress = _stderr) -> None:
        self.options = options
        self.progress = progress
        self.run_id = validate_run_id(options.run_id)
        self.replay = options.mode == "replay"
        if options.kube_context is not None:
            cluster, region = target_from_context(options.kube_context or None)
        else:
            cluster, region = options.cluster, options.region
        self.conn = Connection(cluster, region)
        self.notes: list[str] = []
        self.kubeconfig: Path | None = None
        try:
            self.handle: ClusterHandle = self._preflight()
        except BaseException:
            self._remove_kubeconfig()
            raise

    def _preflight(self) -> ClusterHandle:
        conn = self.conn
        check = Preflight(conn, self.options, self.run_id, self.notes)
        identity = check.credentials()
        description = check.cluster()
        check.safety(description)
        check.aws_permissions(identity, description)
        check.fargate_subnets(description)
        self.kubeconfig = conn.write_kubeconfig(run_dir(self.run_id) / f"kubeconfig-{os.getpid()}", description)
        api = check.kubernetes(self.kubeconfig)
        check.load_balancer_controller(api)
        given = self.options.pod_execution_role_arn
        role = pod_execution_role(conn, given, self.run_id, identity, self.progress) if self.replay or given else ""
        for note in self.notes:
            self.progress(f"fargate-labs: note: {note}")
        return ClusterHandle(
            kubeconfig=str(self.kubeconfig), cluster_name=conn.cluster, region=conn.region, run_id=self.run_id,
            aws_endpoint=None, capabilities=declared("eks", self.options.mode),
            kubernetes_version=str(description.get("version", "")),
            extra={"pod_execution_role_arn": role, "account_id": identity["Account"],
                   "caller_arn": identity["Arn"], "cluster_arn": str(description.get("arn", ""))},
        )

    def liveness(self) -> str | None:
        return None

    def scope(self) -> RunScope:
        return self.conn.scope(self.run_id, str(self.kubeconfig) if self.kubeconfig else None)

    def _remove_kubeconfig(self) -> None:
        if self.kubeconfig is not None:
            self.kubeconfig.unlink(missing_ok=True)

    def close(self) -> None:
        """The run's final cleanup and leak check run in the pytest session's end (see the plugin)."""
        self._remove_kubeconfig()
