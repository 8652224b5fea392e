"""Remove everything a run created, newest kind first, and list what is left (the leak check).

A run's resources are found by its run id, never by name guesses:

* Kubernetes: namespaces labelled ``fargate-labs/run-id=<run>``, and cluster-scoped objects with that label
  (ClusterRoles, ClusterRoleBindings, IngressClasses, PersistentVolumes);
* ELBv2: load balancers and target groups tagged ``fargate-labs/run-id=<run>``, or made by the AWS Load
  Balancer Controller of the run's cluster for an Ingress in one of the run's namespaces (tag
  ``ingress.k8s.aws/stack`` = ``<namespace>/<ingress>`` whose namespace ends in ``-<run>``);
* EKS: Fargate profiles tagged ``fargate-labs/run-id=<run>``;
* IAM: roles under the path ``/fargate-labs/`` tagged ``fargate-labs/run-id=<run>``;
* anything else the Resource Groups Tagging API lists with the tag (reported, never deleted).

Deletion runs in the reverse order of creation and waits until each thing is really gone: namespaces
first (the controller removes an Ingress's load balancer through its finalizer before the Ingress goes),
then load balancers, target groups, Fargate profiles (one at a time, retrying ``ResourceInUseException``)
and IAM roles. The clusters, VPCs and subnets the run found are never touched.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from botocore.exceptions import ClientError

from ..eks.elbv2 import paged, with_tags
from ..eks.facts import RUN_ID_LABEL
from ..eks.retry import retry_transient

__all__ = [
    "RUN_ID_TAG",
    "ROLE_PATH",
    "Leftover",
    "RunScope",
    "Timeouts",
    "run_namespaces",
    "run_load_balancers",
    "run_target_groups",
    "run_profiles",
    "run_roles",
    "find_leftovers",
    "delete_run",
]

RUN_ID_TAG = RUN_ID_LABEL
#: IAM path of every role the harness creates (the replay policy limits IAM writes to it)
ROLE_PATH = "/fargate-labs/"
TAG_CLUSTER = "elbv2.k8s.aws/cluster"
TAG_STACK = "ingress.k8s.aws/stack"
INGRESS_FINALIZER = "ingress.k8s.aws/resources"
_CLUSTER_SCOPED = (
    ("ClusterRole", "/apis/rbac.authorization.k8s.io/v1/clusterroles"),
    ("ClusterRoleBinding", "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings"),
    ("IngressClass", "/apis/networking.k8s.io/v1/ingressclasses"),
    ("PersistentVolume", "/api/v1/persistentvolumes"),
)

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Leftover:
    kind: str
    name: str
    where: str = ""

    def __str__(self) -> str:
        return f"{self.kind} {self.name}" + (f" ({self.where})" if self.where else "")


@dataclass(frozen=True)
class Timeouts:
    namespace: float = 600.0
    load_balancer: float = 600.0
    target_group: float = 300.0
    profile: float = 900.0
    role: float = 120.0
    interval: float = 2.0


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
        from kubernetes import client, config

        cfg = client.Configuration()
        config.load_kube_config(config_file=self.kubeconfig, client_configuration=cfg)
        return client.ApiClient(cfg)

    def cluster_names(self) -> list[str]:
        if self.clusters:
            return list(self.clusters)
        eks = self.aws("eks")
        names: list[str] = []
        for page in eks.get_paginator("list_clusters").paginate():
            names.extend(page["clusters"])
        return names


def _code(exc: BaseException) -> str:
    return str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))


def _wait(what: str, gone: Callable[[], bool], timeout: float, interval: float) -> None:
    deadline = time.monotonic() + timeout
    while not gone():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} still exists after {timeout:.0f}s")
        time.sleep(interval)


# --- finding ---------------------------------------------------------------------------------------


def _belongs(namespace: str, run_id: str) -> bool:
    return namespace.endswith(f"-{run_id}")


def run_namespaces(api: Any, run_id: str) -> list[dict[str, Any]]:
    """The run's namespaces (name, phase), from the label."""
    from kubernetes import client

    items = client.CoreV1Api(api).list_namespace(label_selector=f"{RUN_ID_LABEL}={run_id}").items
    return [{"name": ns.metadata.name, "phase": ns.status.phase if ns.status else ""} for ns in items]


def _cluster_scoped(api: Any, run_id: str) -> list[tuple[str, str, str]]:
    """(kind, path, name) of labelled cluster-scoped objects."""
    import json

    found = []
    for kind, path in _CLUSTER_SCOPED:
        resp = api.call_api(path, "GET", query_params=[("labelSelector", f"{RUN_ID_LABEL}={run_id}")],
                            auth_settings=["BearerToken"], _preload_content=False, _return_http_data_only=True)
        for item in json.loads(resp.data).get("items", []):
            found.append((kind, path, item["metadata"]["name"]))
    return found


def _ours(tags: dict[str, str], run_id: str, clusters: Iterable[str] | None) -> bool:
    if tags.get(RUN_ID_TAG) == run_id:
        return True
    stack = tags.get(TAG_STACK, "")
    if "/" not in stack or not _belongs(stack.split("/", 1)[0], run_id):
        return False
    wanted = set(clusters or [])
    return not wanted or tags.get(TAG_CLUSTER) in wanted


def run_load_balancers(elbv2: Any, run_id: str, clusters: Iterable[str] | None = None) -> list[dict[str, Any]]:
    lbs = with_tags(elbv2, paged(elbv2, "describe_load_balancers", "LoadBalancers"), "LoadBalancerArn")
    return [lb for lb in lbs if _ours(lb["Tags"], run_id, clusters)]


def run_target_groups(elbv2: Any, run_id: str, clusters: Iterable[str] | None = None) -> list[dict[str, Any]]:
    tgs = with_tags(elbv2, paged(elbv2, "describe_target_groups", "TargetGroups"), "TargetGroupArn")
    return [tg for tg in tgs if _ours(tg["Tags"], run_id, clusters)]


def run_profiles(eks: Any, run_id: str, clusters: Iterable[str]) -> list[dict[str, Any]]:
    """Descriptions of the run's Fargate profiles in ``clusters``."""
    found = []
    for cluster in clusters:
        try:
            names = [n for page in eks.get_paginator("list_fargate_profiles").paginate(clusterName=cluster)
                     for n in page["fargateProfileNames"]]
        except ClientError as exc:
            if _code(exc) == "ResourceNotFoundException":
                continue
            raise
        for name in names:
            try:
                profile = eks.describe_fargate_profile(clusterName=cluster, fargateProfileName=name)["fargateProfile"]
            except ClientError as exc:
                if _code(exc) == "ResourceNotFoundException":
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
            if _code(exc) == "NoSuchEntity":
                continue
            raise
        if tags.get(RUN_ID_TAG) == run_id:
            roles.append(role)
    return roles


def _tagged_elsewhere(scope: RunScope) -> list[Leftover]:
    """Anything else the tagging API lists with the run tag (types the run never makes, so never stale)."""
    try:
        tagging = scope.aws("resourcegroupstaggingapi")
        arns = [m["ResourceARN"] for page in tagging.get_paginator("get_resources").paginate(
            TagFilters=[{"Key": RUN_ID_TAG, "Values": [scope.run_id]}]) for m in page["ResourceTagMappingList"]]
    except Exception as exc:  # AccessDenied, or an endpoint without the API: the specific checks still ran
        note = f"tagging API not searched ({_code(exc) or type(exc).__name__})"
        if note not in scope.notes:
            scope.notes.append(note)
        return []
    # The specific checks cover these, and the tagging API may still list them shortly after deletion.
    checked = (":elasticloadbalancing:", ":eks:", ":iam:")
    return [Leftover("tagged resource", arn) for arn in arns if not any(c in arn for c in checked)]


def find_leftovers(scope: RunScope) -> list[Leftover]:
    """Everything of the run that still exists (the leak check)."""
    left: list[Leftover] = []
    if scope.kubeconfig:
        api = scope.kubernetes()
        left += [Leftover("namespace", ns["name"], ns["phase"]) for ns in run_namespaces(api, scope.run_id)]
        left += [Leftover(kind, name) for kind, _path, name in _cluster_scoped(api, scope.run_id)]
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
    left += _tagged_elsewhere(scope)
    return left


# --- deleting ---------------------------------------------------------------------------------------


def _delete_kubernetes(scope: RunScope, timeouts: Timeouts, progress: Progress) -> list[str]:
    from kubernetes import client

    api = scope.kubernetes()
    core = client.CoreV1Api(api)
    errors: list[str] = []
    names = [ns["name"] for ns in run_namespaces(api, scope.run_id)]
    for name in names:
        try:
            core.delete_namespace(name)
        except client.ApiException as exc:
            if exc.status != 404:
                errors.append(f"namespace {name}: {exc.reason}")

    def gone(name: str) -> bool:
        try:
            core.read_namespace(name)
        except client.ApiException as exc:
            return exc.status == 404
        return False

    for name in names:
        try:
            _wait(f"namespace {name}", lambda n=name: gone(n), timeouts.namespace, timeouts.interval)  # type: ignore[misc]
            progress(f"deleted namespace {name}")
        except TimeoutError as exc:
            # The controller did not release its Ingresses: delete their AWS side, then the finalizers.
            stuck = _release_ingresses(scope, api, name, timeouts, progress)
            if stuck or not gone(name):
                errors.append(str(exc) + (f" (Ingress finalizers: {', '.join(stuck)})" if stuck else ""))
    for kind, path, name in _cluster_scoped(api, scope.run_id):
        try:
            api.call_api(f"{path}/{name}", "DELETE", auth_settings=["BearerToken"], _preload_content=False)
            progress(f"deleted {kind} {name}")
        except client.ApiException as exc:
            if exc.status != 404:
                errors.append(f"{kind} {name}: {exc.reason}")
    return errors


def _release_ingresses(scope: RunScope, api: Any, namespace: str, timeouts: Timeouts,
                       progress: Progress) -> list[str]:
    """Last resort when the Load Balancer Controller is gone: delete the load balancers, drop the finalizers."""
    from kubernetes import client

    net = client.NetworkingV1Api(api)
    stuck = [i for i in net.list_namespaced_ingress(namespace).items
             if INGRESS_FINALIZER in (i.metadata.finalizers or [])]
    if not stuck:
        return []
    progress(f"namespace {namespace} is held by Ingress finalizers: deleting the load balancers directly")
    _delete_elbv2(scope, timeouts, progress)
    for ing in stuck:
        finalizers = [f for f in ing.metadata.finalizers if f != INGRESS_FINALIZER]
        net.patch_namespaced_ingress(ing.metadata.name, namespace, {"metadata": {"finalizers": finalizers}})
    try:
        _wait(f"namespace {namespace}", lambda: not [n for n in client.CoreV1Api(api).list_namespace(
            field_selector=f"metadata.name={namespace}").items], timeouts.namespace / 2, timeouts.interval)
    except TimeoutError:
        return [f"{namespace}/{i.metadata.name}" for i in stuck]
    return []


def _delete_elbv2(scope: RunScope, timeouts: Timeouts, progress: Progress) -> list[str]:
    elbv2 = scope.aws("elbv2")
    errors: list[str] = []
    clusters = scope.clusters or None
    lbs = run_load_balancers(elbv2, scope.run_id, clusters)
    for lb in lbs:
        try:
            elbv2.delete_load_balancer(LoadBalancerArn=lb["LoadBalancerArn"])
        except ClientError as exc:
            if "NotFound" not in _code(exc):
                errors.append(f"load balancer {lb['LoadBalancerName']}: {_code(exc)}")

    def lb_gone(arn: str) -> bool:
        try:
            elbv2.describe_load_balancers(LoadBalancerArns=[arn])
        except ClientError as exc:
            return "NotFound" in _code(exc)
        return False

    for lb in lbs:
        try:
            _wait(f"load balancer {lb['LoadBalancerName']}", lambda a=lb["LoadBalancerArn"]: lb_gone(a),  # type: ignore[misc]
                  timeouts.load_balancer, timeouts.interval)
            progress(f"deleted load balancer {lb['LoadBalancerName']}")
        except TimeoutError as exc:
            errors.append(str(exc))

    def tg_gone(arn: str) -> bool:
        try:
            elbv2.delete_target_group(TargetGroupArn=arn)  # idempotent; ResourceInUse while a listener is going
        except ClientError as exc:
            code = _code(exc)
            if "NotFound" in code:
                return True
            if code != "ResourceInUse":
                raise
            return False
        try:
            elbv2.describe_target_groups(TargetGroupArns=[arn])
        except ClientError as exc:
            return "NotFound" in _code(exc)
        return False

    for tg in run_target_groups(elbv2, scope.run_id, clusters):
        try:
            _wait(f"target group {tg['TargetGroupName']}", lambda a=tg["TargetGroupArn"]: tg_gone(a),  # type: ignore[misc]
                  timeouts.target_group, timeouts.interval)
            progress(f"deleted target group {tg['TargetGroupName']}")
        except (TimeoutError, ClientError) as exc:
            errors.append(f"target group {tg['TargetGroupName']}: {exc}")
    return errors


def _delete_profiles(scope: RunScope, timeouts: Timeouts, progress: Progress) -> list[str]:
    eks = scope.aws("eks")
    errors: list[str] = []
    for profile in run_profiles(eks, scope.run_id, scope.cluster_names()):
        cluster, name = profile["clusterName"], profile["fargateProfileName"]
        try:
            if profile["status"] != "DELETING":
                # EKS lets one profile per cluster be in transition: wait for the others' turn.
                retry_transient(lambda: eks.delete_fargate_profile(clusterName=cluster, fargateProfileName=name),
                                 attempts=40, first_delay=2.0)
        except ClientError as exc:
            if _code(exc) != "ResourceNotFoundException":
                errors.append(f"Fargate profile {name}: {_code(exc)}: {exc}")
                continue

        def gone(c: str = cluster, n: str = name) -> bool:
            try:
                eks.describe_fargate_profile(clusterName=c, fargateProfileName=n)
            except ClientError as exc:
                return _code(exc) == "ResourceNotFoundException"
            return False

        try:
            _wait(f"Fargate profile {name}", gone, timeouts.profile, timeouts.interval)
            progress(f"deleted Fargate profile {name} (cluster {cluster})")
        except TimeoutError as exc:
            errors.append(str(exc))
    return errors


def _delete_roles(scope: RunScope, timeouts: Timeouts, progress: Progress) -> list[str]:
    iam = scope.aws("iam")
    errors: list[str] = []
    for role in run_roles(iam, scope.run_id):
        name = role["RoleName"]
        try:
            for policy in paged(iam, "list_attached_role_policies", "AttachedPolicies", RoleName=name):
                iam.detach_role_policy(RoleName=name, PolicyArn=policy["PolicyArn"])
            for policy_name in paged(iam, "list_role_policies", "PolicyNames", RoleName=name):
                iam.delete_role_policy(RoleName=name, PolicyName=policy_name)
            for profile in paged(iam, "list_instance_profiles_for_role", "InstanceProfiles", RoleName=name):
                iam.remove_role_from_instance_profile(InstanceProfileName=profile["InstanceProfileName"],
                                                      RoleName=name)
            iam.delete_role(RoleName=name)
        except ClientError as exc:
            if _code(exc) != "NoSuchEntity":
                errors.append(f"IAM role {name}: {_code(exc)}")
                continue

        def gone(n: str = name) -> bool:
            try:
                iam.get_role(RoleName=n)
            except ClientError as exc:
                return _code(exc) == "NoSuchEntity"
            return False

        try:
            _wait(f"IAM role {name}", gone, timeouts.role, timeouts.interval)
            progress(f"deleted IAM role {name}")
        except TimeoutError as exc:
            errors.append(str(exc))
    return errors


def delete_run(scope: RunScope, progress: Progress = print, timeouts: Timeouts = Timeouts()) -> list[str]:
    """Delete the run's resources in reverse order of creation; the failures, one line each."""
    errors: list[str] = []
    steps: list[tuple[str, Callable[[], list[str]]]] = []
    if scope.kubeconfig:
        steps.append(("Kubernetes", lambda: _delete_kubernetes(scope, timeouts, progress)))
    steps += [
        ("ELBv2", lambda: _delete_elbv2(scope, timeouts, progress)),
        ("EKS Fargate profiles", lambda: _delete_profiles(scope, timeouts, progress)),
        ("IAM roles", lambda: _delete_roles(scope, timeouts, progress)),
    ]
    for what, step in steps:
        try:
            errors += step()
        except Exception as exc:  # one broken step must not keep the later ones from running
            errors.append(f"{what}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
    return errors
