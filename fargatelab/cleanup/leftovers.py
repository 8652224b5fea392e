"""Find everything of a run that still exists: what the cleanup deletes, and the leak check after it.

A run's resources are found by its run id, never by name guesses:

* Kubernetes: namespaces labelled ``fargate-labs/run-id=<run>``, and cluster-scoped objects with that label
  (ClusterRoles, ClusterRoleBindings, IngressClasses, PersistentVolumes), and such objects in kube-system;
* ELBv2: load balancers and target groups tagged ``fargate-labs/run-id=<run>``, or made by the AWS Load
  Balancer Controller of the run's cluster for an Ingress in one of the run's namespaces (tag
  ``ingress.k8s.aws/stack`` = ``<namespace>/<ingress>`` whose namespace ends in ``-<run>``);
* EKS: Fargate profiles tagged ``fargate-labs/run-id=<run>``;
* IAM: roles under the path ``/fargate-labs/`` tagged ``fargate-labs/run-id=<run>``;
* CloudFormation: eksctl's stack ``eksctl-<cluster>-fargate`` when the run's replay of ``eksctl create
  fargateprofile`` made it (its role carries the run tag);
* anything else the Resource Groups Tagging API lists with the tag (reported, never deleted).

What this finds, :mod:`fargatelab.cleanup.deletion` deletes; what it still finds afterwards is a leak.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from botocore.exceptions import ClientError

from ..eks.aws_errors import error_code
from ..eks.eksctl import eksctl_stack_name, eksctl_stack_role
from ..eks.elbv2 import paged, with_tags
from ..eks.facts import ROLE_PATH, RUN_ID_LABEL, RUN_ID_TAG

__all__ = [
    "Leftover",
    "RunScope",
    "run_namespaces",
    "run_cluster_objects",
    "belongs_to_run",
    "run_load_balancers",
    "run_target_groups",
    "run_profiles",
    "run_roles",
    "run_eksctl_stacks",
    "find_leftovers",
]

TAG_CLUSTER = "elbv2.k8s.aws/cluster"
TAG_STACK = "ingress.k8s.aws/stack"
_CLUSTER_SCOPED = (
    ("ClusterRole", "/apis/rbac.authorization.k8s.io/v1/clusterroles"),
    ("ClusterRoleBinding", "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings"),
    ("IngressClass", "/apis/networking.k8s.io/v1/ingressclasses"),
    ("PersistentVolume", "/api/v1/persistentvolumes"),
    # kube-system is no run's namespace, so what a run puts there is found by its label too (kube-ops-view's
    # Deployment and ServiceAccount, and the Secret holding its helm release).
    ("Deployment in kube-system", "/apis/apps/v1/namespaces/kube-system/deployments"),
    ("ServiceAccount in kube-system", "/api/v1/namespaces/kube-system/serviceaccounts"),
    ("Secret in kube-system", "/api/v1/namespaces/kube-system/secrets"),
)


@dataclass(frozen=True)
class Leftover:
    kind: str
    name: str
    where: str = ""

    def __str__(self) -> str:
        return f"{self.kind} {self.name}" + (f" ({self.where})" if self.where else "")


@dataclass
class RunScope:
    """Where to look for a run's resources."""

    run_id: str
    region: str
    #: boto3 client factory: ``aws("eks")``
    aws: Callable[[str], Any]
    #: EKS clusters to search for profiles and load balancers; empty = every cluster of the region
    clusters: list[str] = field(default_factory=list)
    #: kubeconfig of the cluster's Kubernetes API; None = Kubernetes is not looked at
    kubeconfig: str | None = None
    notes: list[str] = field(default_factory=list)

    def kubernetes(self) -> Any:
        from kubernetes import client

        from ..kube_client import client_configuration

        assert self.kubeconfig is not None
        return client.ApiClient(client_configuration(self.kubeconfig))

    def cluster_names(self) -> list[str]:
        if self.clusters:
            return list(self.clusters)
        eks = self.aws("eks")
        names: list[str] = []
        for page in eks.get_paginator("list_clusters").paginate():
            names.extend(page["clusters"])
        return names


def _belongs(namespace: str, run_id: str) -> bool:
    return namespace.endswith(f"-{run_id}")


def run_namespaces(api: Any, run_id: str) -> list[dict[str, Any]]:
    """The run's namespaces (name, phase), from the label."""
    from kubernetes import client

    items = client.CoreV1Api(api).list_namespace(label_selector=f"{RUN_ID_LABEL}={run_id}").items
    return [{"name": ns.metadata.name, "phase": ns.status.phase if ns.status else ""} for ns in items]


def run_cluster_objects(api: Any, run_id: str) -> list[tuple[str, str, str]]:
    """(kind, path, name) of labelled cluster-scoped objects and of labelled objects in kube-system."""
    found = []
    for kind, path in _CLUSTER_SCOPED:
        resp = api.call_api(path, "GET", query_params=[("labelSelector", f"{RUN_ID_LABEL}={run_id}")],
                            auth_settings=["BearerToken"], _preload_content=False, _return_http_data_only=True)
        for item in json.loads(resp.data).get("items", []):
            found.append((kind, path, item["metadata"]["name"]))
    return found


def belongs_to_run(tags: dict[str, str], run_id: str, clusters: Iterable[str] | None) -> bool:
    """Whether ELBv2 ``tags`` mark a resource of the run: tagged with it, or made by the Load Balancer
    Controller of one of ``clusters`` (any, when None) for an Ingress in one of the run's namespaces."""
    if tags.get(RUN_ID_TAG) == run_id:
        return True
    stack = tags.get(TAG_STACK, "")
    if "/" not in stack or not _belongs(stack.split("/", 1)[0], run_id):
        return False
    wanted = set(clusters or [])
    return not wanted or tags.get(TAG_CLUSTER) in wanted


def run_load_balancers(elbv2: Any, run_id: str, clusters: Iterable[str] | None = None) -> list[dict[str, Any]]:
    lbs = with_tags(elbv2, paged(elbv2, "describe_load_balancers", "LoadBalancers"), "LoadBalancerArn")
    return [lb for lb in lbs if belongs_to_run(lb["Tags"], run_id, clusters)]


def run_target_groups(elbv2: Any, run_id: str, clusters: Iterable[str] | None = None) -> list[dict[str, Any]]:
    tgs = with_tags(elbv2, paged(elbv2, "describe_target_groups", "TargetGroups"), "TargetGroupArn")
    return [tg for tg in tgs if belongs_to_run(tg["Tags"], run_id, clusters)]


def run_profiles(eks: Any, run_id: str, clusters: Iterable[str]) -> list[dict[str, Any]]:
    """Descriptions of the run's Fargate profiles in ``clusters``."""
    found = []
    for cluster in clusters:
        try:
            names = [n for page in eks.get_paginator("list_fargate_profiles").paginate(clusterName=cluster)
                     for n in page["fargateProfileNames"]]
        except ClientError as exc:
            if error_code(exc) == "ResourceNotFoundException":
                continue
            raise
        for name in names:
            try:
                profile = eks.describe_fargate_profile(clusterName=cluster, fargateProfileName=name)["fargateProfile"]
            except ClientError as exc:
                if error_code(exc) == "ResourceNotFoundException":
                    continue
                raise
            if (profile.get("tags") or {}).get(RUN_ID_TAG) == run_id:
                found.append(profile)
    return found


def run_roles(iam: Any, run_id: str) -> list[dict[str, Any]]:
    roles = []
    for role in paged(iam, "list_roles", "Roles", PathPrefix=ROLE_PATH):
        try:
            tags = {t["Key"]: t["Value"] for t in iam.list_role_tags(RoleName=role["RoleName"])["Tags"]}
        except ClientError as exc:
            if error_code(exc) == "NoSuchEntity":
                continue
            raise
        if tags.get(RUN_ID_TAG) == run_id:
            roles.append(role)
    return roles


def run_eksctl_stacks(cfn: Any, iam: Any, run_id: str, clusters: Iterable[str]) -> list[str]:
    """eksctl's stacks that the run's replay of ``eksctl create fargateprofile`` made: the harness tags their
    role with the run id (a stack's own tags cannot change after it is made)."""
    found = []
    for cluster in clusters:
        role = eksctl_stack_role(cfn, eksctl_stack_name(cluster))
        if not role:
            continue
        try:
            tags = {t["Key"]: t["Value"] for t in iam.list_role_tags(RoleName=role)["Tags"]}
        except ClientError as exc:
            if error_code(exc) == "NoSuchEntity":
                continue
            raise
        if tags.get(RUN_ID_TAG) == run_id:
            found.append(eksctl_stack_name(cluster))
    return found


def _tagged_elsewhere(scope: RunScope) -> list[Leftover]:
    """Anything else the tagging API lists with the run tag (types the run never makes, so never stale)."""
    try:
        tagging = scope.aws("resourcegroupstaggingapi")
        arns = [m["ResourceARN"] for page in tagging.get_paginator("get_resources").paginate(
            TagFilters=[{"Key": RUN_ID_TAG, "Values": [scope.run_id]}]) for m in page["ResourceTagMappingList"]]
    except Exception as exc:  # AccessDenied, or an endpoint without the API: the specific checks still ran
        note = f"tagging API not searched ({error_code(exc) or type(exc).__name__})"
        if note not in scope.notes:
            scope.notes.append(note)
        return []
    # The specific checks cover these, and the tagging API may still list them shortly after deletion.
    checked = (":elasticloadbalancing:", ":eks:", ":iam:", ":cloudformation:")
    return [Leftover("tagged resource", arn) for arn in arns if not any(c in arn for c in checked)]


def find_leftovers(scope: RunScope) -> list[Leftover]:
    """Everything of the run that still exists (the leak check)."""
    left: list[Leftover] = []
    if scope.kubeconfig:
        api = scope.kubernetes()
        left += [Leftover("namespace", ns["name"], ns["phase"]) for ns in run_namespaces(api, scope.run_id)]
        left += [Leftover(kind, name) for kind, _path, name in run_cluster_objects(api, scope.run_id)]
    else:
        scope.notes.append("Kubernetes objects not checked (no cluster connection)")
    clusters = scope.cluster_names()
    elbv2 = scope.aws("elbv2")
    left += [Leftover("load balancer", lb["LoadBalancerName"], lb["LoadBalancerArn"])
             for lb in run_load_balancers(elbv2, scope.run_id, scope.clusters or None)]
    left += [Leftover("target group", tg["TargetGroupName"], tg["TargetGroupArn"])
             for tg in run_target_groups(elbv2, scope.run_id, scope.clusters or None)]
    left += [Leftover("Fargate profile", p["fargateProfileName"], f"cluster {p['clusterName']}, {p['status']}")
             for p in run_profiles(scope.aws("eks"), scope.run_id, clusters)]
    left += [Leftover("IAM role", r["RoleName"], r["Arn"]) for r in run_roles(scope.aws("iam"), scope.run_id)]
    left += [Leftover("eksctl's CloudFormation stack", name, "holds the pod execution role eksctl made")
             for name in run_eksctl_stacks(scope.aws("cloudformation"), scope.aws("iam"), scope.run_id, clusters)]
    left += _tagged_elsewhere(scope)
    return left
