"""Fargate profiles as ``eksctl create fargateprofile`` makes them: the EKS API calls it makes, one at a time."""

from __future__ import annotations

import contextlib
from typing import Any, Callable, Iterator

from botocore.exceptions import ClientError

from ..eks.aws_errors import error_code
from ..eks.eksctl import eksctl_stack_name, eksctl_stack_role
from ..eks.facts import RUN_ID_LABEL, RUN_ID_TAG
from ..eks.retry import retry_transient
from ..errors import ExitCode, HarnessError
from ..rules.timing import Timing
from . import conditions as cond
from .cleaner import Cleaner
from .handle import ClusterHandle
from .locks import cluster_lock
from .wait import Condition

__all__ = ["Profiles"]


class Profiles:
    """Creates and deletes a scenario's Fargate profiles; each creation registers its deletion first."""

    def __init__(self, cluster: ClusterHandle, aws: Callable[[str], Any], timing: Timing, cleaner: Cleaner,
                 wait: Callable[[Condition, float, float], str]) -> None:
        self.cluster, self.aws, self.timing, self.cleaner, self._wait = cluster, aws, timing, cleaner, wait

    def create(self, name: str, selectors: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        """Create profile ``name`` and wait until ACTIVE.

        EKS refuses a second profile while one is CREATING or DELETING, so every worker of the run takes
        the same lock, and ResourceInUseException left by another client is retried with backoff, as is a
        pod execution role IAM has not propagated yet.
        """
        eks = self.aws("eks")
        role = extra.pop("podExecutionRoleArn", None) or self.pod_execution_role()
        args = dict(clusterName=self.cluster.cluster_name, fargateProfileName=name, selectors=selectors,
                    podExecutionRoleArn=role, tags={RUN_ID_LABEL: self.cluster.run_id}, **extra)

        def make() -> None:
            try:
                retry_transient(lambda: eks.create_fargate_profile(**args))
            except eks.exceptions.ResourceInUseException as exc:
                if "already exists" not in str(exc) or not self._kept(name, selectors):
                    raise

        return self.made_by(name, make)

    def _kept(self, name: str, selectors: list[dict[str, Any]]) -> bool:
        """Whether ``name`` is this run's own profile with these selectors, left by an earlier scenario's
        ``--keep`` (two labs that share a profile name then share the profile)."""
        found = self.aws("eks").describe_fargate_profile(clusterName=self.cluster.cluster_name,
                                                         fargateProfileName=name)["fargateProfile"]
        def key(given: list[dict[str, Any]]) -> list[tuple[str, dict[str, str]]]:
            return [(s.get("namespace", ""), s.get("labels") or {}) for s in given]

        return bool(found.get("tags", {}).get(RUN_ID_LABEL) == self.cluster.run_id and
                    key(found.get("selectors") or []) == key(selectors) and found.get("status") != "DELETING")

    def made_by(self, name: str, make: Callable[[], object]) -> dict[str, Any]:
        """Profile ``name`` as ``make`` creates it (the API call, or the real eksctl): its deletion registered
        first, made under the profiles lock, waited for until ACTIVE."""
        eks = self.aws("eks")
        # Registered before the call: an interrupt while the request is in flight must not leak it.
        self.cleaner.add(f"Fargate profile {name}", lambda: self.delete(name))
        with cluster_lock(self.cluster, "profiles"):
            make()
            self._wait(cond.ProfileStatus(eks, self.cluster.cluster_name, name, "ACTIVE"),
                       self.timing.profile_active_timeout, self._poll)
        profile: dict[str, Any] = eks.describe_fargate_profile(
            clusterName=self.cluster.cluster_name, fargateProfileName=name)["fargateProfile"]
        return profile

    @contextlib.contextmanager
    def eksctl_stack(self) -> Iterator[None]:
        """eksctl makes a CloudFormation stack of its own, ``eksctl-<cluster>-fargate``, for the pod execution
        role of a cluster it did not create. When what runs inside makes it, its role is tagged with the run
        id (``fargate-labs leaks`` finds it by that) and the stack is deleted by the cleanup, after the
        profiles (it is registered before them). A stack that was there before is left alone."""
        cfn, iam = self.aws("cloudformation"), self.aws("iam")
        stack = eksctl_stack_name(self.cluster.cluster_name)
        before = eksctl_stack_role(cfn, stack)
        made: list[str] = []
        self.cleaner.add(f"eksctl's CloudFormation stack {stack}", lambda: self._delete_stack(stack) if made else None)
        try:
            yield
        finally:
            role = eksctl_stack_role(cfn, stack)
            if before is None and role:
                iam.tag_role(RoleName=role, Tags=[{"Key": RUN_ID_TAG, "Value": self.cluster.run_id}])
                made.append(stack)

    def _delete_stack(self, stack: str) -> None:
        cfn = self.aws("cloudformation")

        def gone() -> tuple[bool, str]:
            try:
                status = cfn.describe_stacks(StackName=stack)["Stacks"][0]["StackStatus"]
            except ClientError as exc:
                return error_code(exc) == "ValidationError", error_code(exc)
            return status == "DELETE_COMPLETE", status

        cfn.delete_stack(StackName=stack)
        self._wait(cond.condition(f"CloudFormation stack {stack} deleted", gone), 300, self._poll)

    def delete(self, name: str) -> None:
        eks = self.aws("eks")
        with cluster_lock(self.cluster, "profiles"):
            try:
                retry_transient(lambda: eks.delete_fargate_profile(clusterName=self.cluster.cluster_name,
                                                                   fargateProfileName=name))
            except eks.exceptions.ResourceNotFoundException:
                return
            self._wait(cond.ProfileDeleted(eks, self.cluster.cluster_name, name),
                       self.timing.profile_delete + 120, self._poll)

    @property
    def _poll(self) -> float:
        # Others queue behind the profile lock while this one polls: poll finely when transitions are short.
        return min(2.0, max(0.1, self.timing.profile_create / 5))

    def pod_execution_role(self) -> str:
        given = self.cluster.extra.get("pod_execution_role_arn")
        if given:  # the backend's (eks: --pod-execution-role-arn, or the role made for the run)
            return given
        iam = self.aws("iam")
        roles = [r["Arn"] for r in iam.list_roles()["Roles"] if "FargatePodExecutionRole" in r["RoleName"]]
        if not roles:
            raise HarnessError("no Fargate pod execution role in the account: pass --pod-execution-role-arn",
                               ExitCode.AWS)
        return roles[0]
