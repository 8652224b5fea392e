"""Delete everything of a run, newest kind first, waiting until each thing is really gone.

What is deleted is what :mod:`fargatelab.cleanup.leftovers` finds of the run. Deletion runs in the
reverse order of creation: namespaces first (the controller removes an Ingress's load balancer through
its finalizer before the Ingress goes), then load balancers, target groups, Fargate profiles (one at a
time, retrying ``ResourceInUseException``), the stacks eksctl made for the run, and IAM roles. The clusters, VPCs and subnets the run found
are never touched.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable

from botocore.exceptions import ClientError

from ..eks.aws_errors import error_code
from ..eks.elbv2 import paged
from ..eks.retry import retry_transient
from .leftovers import (RunScope, run_cluster_objects, run_eksctl_stacks, run_load_balancers, run_namespaces,
                        run_profiles, run_roles, run_target_groups)

__all__ = ["Timeouts", "delete_run"]

INGRESS_FINALIZER = "ingress.k8s.aws/resources"

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Timeouts:
    namespace: float = 600.0
    load_balancer: float = 600.0
    target_group: float = 300.0
    profile: float = 900.0
    role: float = 120.0
    interval: float = 2.0


def _wait(what: str, gone: Callable[[], bool], timeout: float, interval: float) -> None:
    deadline = time.monotonic() + timeout
    while not gone():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} still exists after {timeout:.0f}s")
        time.sleep(interval)


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
    for kind, path, name in run_cluster_objects(api, scope.run_id):
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
            if "NotFound" not in error_code(exc):
                errors.append(f"load balancer {lb['LoadBalancerName']}: {error_code(exc)}")

    def lb_gone(arn: str) -> bool:
        try:
            elbv2.describe_load_balancers(LoadBalancerArns=[arn])
        except ClientError as exc:
            return "NotFound" in error_code(exc)
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
            code = error_code(exc)
            if "NotFound" in code:
                return True
            if code != "ResourceInUse":
                raise
            return False
        try:
            elbv2.describe_target_groups(TargetGroupArns=[arn])
        except ClientError as exc:
            return "NotFound" in error_code(exc)
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
            if error_code(exc) != "ResourceNotFoundException":
                errors.append(f"Fargate profile {name}: {error_code(exc)}: {exc}")
                continue

        def gone(c: str = cluster, n: str = name) -> bool:
            try:
                eks.describe_fargate_profile(clusterName=c, fargateProfileName=n)
            except ClientError as exc:
                return error_code(exc) == "ResourceNotFoundException"
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
            if error_code(exc) != "NoSuchEntity":
                errors.append(f"IAM role {name}: {error_code(exc)}")
                continue

        def gone(n: str = name) -> bool:
            try:
                iam.get_role(RoleName=n)
            except ClientError as exc:
                return error_code(exc) == "NoSuchEntity"
            return False

        try:
            _wait(f"IAM role {name}", gone, timeouts.role, timeouts.interval)
            progress(f"deleted IAM role {name}")
        except TimeoutError as exc:
            errors.append(str(exc))
    return errors


def _delete_eksctl_stacks(scope: RunScope, timeouts: Timeouts, progress: Progress) -> list[str]:
    cfn = scope.aws("cloudformation")
    errors: list[str] = []
    for name in run_eksctl_stacks(cfn, scope.aws("iam"), scope.run_id, scope.cluster_names()):
        try:
            cfn.delete_stack(StackName=name)
            _wait(f"CloudFormation stack {name}", lambda n=name: _stack_gone(cfn, n), timeouts.role,  # type: ignore[misc]
                  timeouts.interval)
            progress(f"deleted eksctl's CloudFormation stack {name}")
        except (ClientError, TimeoutError) as exc:
            errors.append(f"CloudFormation stack {name}: {error_code(exc) if isinstance(exc, ClientError) else exc}")
    return errors


def _stack_gone(cfn: Any, name: str) -> bool:
    try:
        stacks = cfn.describe_stacks(StackName=name)["Stacks"]
    except ClientError as exc:
        return error_code(exc) == "ValidationError"
    return all(s["StackStatus"] == "DELETE_COMPLETE" for s in stacks)


def delete_run(scope: RunScope, progress: Progress = print, timeouts: Timeouts = Timeouts()) -> list[str]:
    """Delete the run's resources in reverse order of creation; the failures, one line each."""
    errors: list[str] = []
    steps: list[tuple[str, Callable[[], list[str]]]] = []
    if scope.kubeconfig:
        steps.append(("Kubernetes", lambda: _delete_kubernetes(scope, timeouts, progress)))
    steps += [
        ("ELBv2", lambda: _delete_elbv2(scope, timeouts, progress)),
        ("EKS Fargate profiles", lambda: _delete_profiles(scope, timeouts, progress)),
        ("eksctl's stacks", lambda: _delete_eksctl_stacks(scope, timeouts, progress)),
        ("IAM roles", lambda: _delete_roles(scope, timeouts, progress)),
    ]
    for what, step in steps:
        try:
            errors += step()
        except Exception as exc:  # one broken step must not keep the later ones from running
            errors.append(f"{what}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
    return errors
