"""The Fargate pod execution role of an eks backend run: the one given, checked, or one made for the run.

A made role is ``fargate-labs-<run>-FargatePodExecutionRole`` under the IAM path ``/fargate-labs/``, tagged
with the run id, trusting ``eks-fargate-pods.amazonaws.com`` for the cluster's Fargate profiles only. It is
the only write of the preflight, made after every check passed, and the run's cleanup deletes it.
"""

from __future__ import annotations

import fcntl
import json
from typing import Any, Callable

from ..eks.arns import arn_partition
from ..eks.aws_errors import error_code
from ..eks.facts import ROLE_PATH, RUN_ID_TAG
from ..errors import ExitCode, HarnessError
from .eks_connection import Connection, run_dir

__all__ = ["FARGATE_PRINCIPAL", "role_name", "pod_execution_role"]

FARGATE_PRINCIPAL = "eks-fargate-pods.amazonaws.com"
# The pod execution role's permissions: those of the AWS managed AmazonEKSFargatePodExecutionRolePolicy,
# inline so the role needs no managed policy to exist and goes with the role on deletion.
_POD_EXECUTION_POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Resource": "*", "Action": [
        "ecr:GetAuthorizationToken", "ecr:BatchCheckLayerAvailability", "ecr:GetDownloadUrlForLayer",
        "ecr:BatchGetImage"]}],
}


def role_name(run_id: str) -> str:
    """Name of the run's pod execution role; contains FargatePodExecutionRole as eksctl's does."""
    return f"fargate-labs-{run_id}-FargatePodExecutionRole"


def pod_execution_role(conn: Connection, given: str | None, run_id: str, identity: dict[str, Any],
                       progress: Callable[[str], None]) -> str:
    """The ARN of the role ``given`` once checked, or of the run's own role (created by the first to ask)."""
    from botocore.exceptions import ClientError

    iam = conn.aws("iam")
    if given:
        name = given.rsplit("/", 1)[-1]
        try:
            role = iam.get_role(RoleName=name)["Role"]
        except ClientError as exc:
            if error_code(exc) == "NoSuchEntity":
                raise HarnessError(f"pod execution role {given} does not exist", ExitCode.NOT_FARGATE_READY) from None
            raise HarnessError(f"cannot read pod execution role {given}: {error_code(exc)}", ExitCode.AWS) from None
        trust = role.get("AssumeRolePolicyDocument") or {}
        if isinstance(trust, str):
            from urllib.parse import unquote

            trust = json.loads(unquote(trust))
        if FARGATE_PRINCIPAL not in json.dumps(trust):
            raise HarnessError(f"pod execution role {given} does not trust {FARGATE_PRINCIPAL}: add it to the "
                               "role's trust policy", ExitCode.NOT_FARGATE_READY)
        return str(role["Arn"])
    return _create_role(conn, run_id, identity, progress)


def _create_role(conn: Connection, run_id: str, identity: dict[str, Any], progress: Callable[[str], None]) -> str:
    from botocore.exceptions import ClientError

    iam = conn.aws("iam")
    name = role_name(run_id)
    account, region, partition = identity["Account"], conn.region, arn_partition(conn.region)
    trust = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"Service": FARGATE_PRINCIPAL}, "Action": "sts:AssumeRole",
        "Condition": {"ArnLike": {
            "aws:SourceArn": f"arn:{partition}:eks:{region}:{account}:fargateprofile/{conn.cluster}/*"}}}]}
    # xdist workers of one run share the role: the first creates it, the others find it.
    with open(run_dir(run_id) / ".role.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            arn = str(iam.create_role(
                RoleName=name, Path=ROLE_PATH, AssumeRolePolicyDocument=json.dumps(trust),
                Description=f"Fargate pod execution role of fargate-labs run {run_id}",
                Tags=[{"Key": RUN_ID_TAG, "Value": run_id}])["Role"]["Arn"])
            iam.put_role_policy(RoleName=name, PolicyName="fargate-pod-execution",
                                PolicyDocument=json.dumps(_POD_EXECUTION_POLICY))
            progress(f"fargate-labs: created pod execution role {arn} (deleted at the end of the run)")
        except ClientError as exc:
            if error_code(exc) != "EntityAlreadyExists":
                raise HarnessError(f"cannot create the pod execution role {name}: {error_code(exc)} (pass "
                                   "--pod-execution-role-arn, or see docs/iam/replay-policy.json)",
                                   ExitCode.NOT_FARGATE_READY) from None
            arn = str(iam.get_role(RoleName=name)["Role"]["Arn"])
    return arn
