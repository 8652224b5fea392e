"""The eks backend's checks before a run, each failure one line with its own exit code.

In the order :class:`~fargatelab.backends.eks.EksBackend` runs them: credentials, the cluster, safety,
AWS permissions, Fargate-ready subnets, the Kubernetes API and its RBAC, the AWS Load Balancer Controller.
None of them writes anything; what does not stop the run is added to ``notes``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from ..eks.arns import arn_partition, principal_arn
from ..eks.aws_errors import access_denied, error_code
from ..eks.facts import ROLE_PATH, RUN_ID_TAG, SANDBOX_TAG
from ..eks.vpc import is_private
from ..errors import ExitCode, HarnessError
from .eks_connection import Connection
from .pod_execution_role import role_name

if TYPE_CHECKING:
    from . import BackendOptions

__all__ = ["READ_ACTIONS", "REPLAY_WRITE_ACTIONS", "Preflight"]

LBC_CONTROLLER = "ingress.k8s.aws/alb"
LBC_CRD = "targetgroupbindings.elbv2.k8s.aws"
LBC_DEPLOYMENT_LABEL = "app.kubernetes.io/name=aws-load-balancer-controller"

#: What both modes read (probed with a real call each); docs/iam/check-policy.json grants exactly these.
READ_ACTIONS = (
    "sts:GetCallerIdentity",
    "eks:DescribeCluster",
    "eks:DescribeClusterVersions",
    "eks:ListClusters",
    "eks:ListFargateProfiles",
    "eks:DescribeFargateProfile",
    "ec2:DescribeSubnets",
    "ec2:DescribeRouteTables",
    "elasticloadbalancing:DescribeLoadBalancers",
    "elasticloadbalancing:DescribeTargetGroups",
    "elasticloadbalancing:DescribeTags",
)
#: What replay writes (simulated); docs/iam/replay-policy.json grants these on top of READ_ACTIONS.
REPLAY_WRITE_ACTIONS = (
    "eks:CreateFargateProfile",
    "eks:DeleteFargateProfile",
    "eks:TagResource",
    "iam:CreateRole",
    "iam:TagRole",
    "iam:PutRolePolicy",
    "iam:DeleteRolePolicy",
    "iam:DeleteRole",
    "iam:GetRole",
    "iam:ListRoles",
    "iam:ListRoleTags",
    "iam:ListRolePolicies",
    "iam:ListAttachedRolePolicies",
    "iam:ListInstanceProfilesForRole",
    "iam:PassRole",
    "elasticloadbalancing:DeleteLoadBalancer",
    "elasticloadbalancing:DeleteTargetGroup",
)
#: What the real eksctl writes in replay (its own stack for the pod execution role of a cluster it did not
#: create, and the role in it), and what the cleanup does to remove them; simulated on those resources.
EKSCTL_STACK_ACTIONS = ("cloudformation:CreateStack", "cloudformation:DeleteStack")
EKSCTL_ROLE_ACTIONS = ("iam:CreateRole", "iam:TagRole", "iam:AttachRolePolicy", "iam:DetachRolePolicy",
                       "iam:DeleteRole")


class Preflight:
    """What a run needs of the cluster and of the identity, checked for the mode of ``options``."""

    def __init__(self, conn: Connection, options: BackendOptions, run_id: str, notes: list[str]) -> None:
        self.conn = conn
        self.options = options
        self.run_id = run_id
        self.replay = options.mode == "replay"
        self.notes = notes

    def credentials(self) -> dict[str, Any]:
        from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

        try:
            identity: dict[str, Any] = self.conn.aws("sts").get_caller_identity()
        except NoCredentialsError:
            raise HarnessError("no AWS credentials: set AWS_PROFILE (or AWS_ACCESS_KEY_ID and "
                               "AWS_SECRET_ACCESS_KEY) for the sandbox account", ExitCode.NO_CREDENTIALS) from None
        except ClientError as exc:
            raise HarnessError(f"the AWS credentials were refused ({error_code(exc)}): refresh them "
                               "(e.g. `aws sso login`)", ExitCode.NO_CREDENTIALS) from None
        except BotoCoreError as exc:
            raise HarnessError(f"cannot reach AWS STS: {exc}", ExitCode.NO_CREDENTIALS) from None
        return identity

    def cluster(self) -> dict[str, Any]:
        from botocore.exceptions import ClientError

        conn = self.conn
        try:
            description = conn.describe()
        except ClientError as exc:
            if error_code(exc) == "ResourceNotFoundException":
                raise HarnessError(f"no EKS cluster {conn.cluster!r} in {conn.region}: check --cluster and --region",
                                   ExitCode.BACKEND_UNAVAILABLE) from None
            if access_denied(exc):
                raise HarnessError(f"not allowed to call eks:DescribeCluster on {conn.cluster!r}: attach "
                                   "docs/iam/check-policy.json (check) or docs/iam/replay-policy.json (replay)",
                                   ExitCode.MISSING_PERMISSIONS) from None
            raise HarnessError(f"eks:DescribeCluster failed: {error_code(exc)}", ExitCode.AWS) from None
        status = description.get("status")
        if status != "ACTIVE":
            raise HarnessError(f"EKS cluster {conn.cluster!r} is {status}, not ACTIVE: wait for it, or pick another",
                               ExitCode.CLUSTER_NOT_ACTIVE)
        return description

    def safety(self, description: dict[str, Any]) -> None:
        if not self.replay:
            return
        tagged = (description.get("tags") or {}).get(SANDBOX_TAG) == "true"
        if tagged:
            return
        if self.options.allow_unsafe:
            self.notes.append(f"cluster {self.conn.cluster} is not tagged {SANDBOX_TAG}=true; replaying anyway "
                              "(--i-understand-this-creates-resources)")
            return
        raise HarnessError(
            f"refusing to replay on EKS cluster {self.conn.cluster!r}: it is not tagged {SANDBOX_TAG}=true "
            "(tag a sandbox cluster, use --mode check, or pass --i-understand-this-creates-resources)",
            ExitCode.UNSAFE_CLUSTER)

    def aws_permissions(self, identity: dict[str, Any], description: dict[str, Any]) -> None:
        from botocore.exceptions import ClientError

        conn = self.conn
        probes: list[tuple[str, Callable[[], Any]]] = [
            ("eks:ListClusters", lambda: conn.aws("eks").list_clusters(maxResults=1)),
            ("eks:ListFargateProfiles", lambda: conn.aws("eks").list_fargate_profiles(clusterName=conn.cluster,
                                                                                      maxResults=1)),
            ("ec2:DescribeSubnets", lambda: conn.aws("ec2").describe_subnets(MaxResults=5)),
            ("ec2:DescribeRouteTables", lambda: conn.aws("ec2").describe_route_tables(MaxResults=5)),
            ("elasticloadbalancing:DescribeLoadBalancers",
             lambda: conn.aws("elbv2").describe_load_balancers(PageSize=1)),
            ("elasticloadbalancing:DescribeTargetGroups", lambda: conn.aws("elbv2").describe_target_groups(PageSize=1)),
        ]
        if self.replay:
            probes += [("iam:ListRoles", lambda: conn.aws("iam").list_roles(PathPrefix=ROLE_PATH, MaxItems=1))]
        missing = []
        for action, probe in probes:
            try:
                probe()
            except ClientError as exc:
                if access_denied(exc):
                    missing.append(action)
                else:
                    raise HarnessError(f"{action} failed: {error_code(exc)}", ExitCode.AWS) from None
        if self.replay and not missing:
            missing = self._simulate_writes(identity, description)
        if missing:
            policy = "docs/iam/replay-policy.json" if self.replay else "docs/iam/check-policy.json"
            raise HarnessError(f"{identity['Arn']} lacks {', '.join(missing)}: attach {policy}",
                               ExitCode.MISSING_PERMISSIONS)

    def _simulate_writes(self, identity: dict[str, Any], description: dict[str, Any]) -> list[str]:
        """Replay's writes, simulated against the resources and tags the run will use (as the policy expects)."""
        principal = principal_arn(identity["Arn"])
        account, region, cluster = identity["Account"], self.conn.region, self.conn.cluster
        partition = arn_partition(region)
        cluster_arn = str(description.get("arn") or f"arn:{partition}:eks:{region}:{account}:cluster/{cluster}")
        role_arn = self.options.pod_execution_role_arn or \
            f"arn:{partition}:iam::{account}:role{ROLE_PATH}{role_name(self.run_id)}"
        elb = f"arn:{partition}:elasticloadbalancing:{region}:{account}"
        run_tag = {f"aws:RequestTag/{RUN_ID_TAG}": self.run_id}
        groups: list[tuple[list[str], str, dict[str, str]]] = [
            (["eks:CreateFargateProfile"], cluster_arn, {f"aws:ResourceTag/{SANDBOX_TAG}": "true", **run_tag}),
            (["eks:TagResource", "eks:DeleteFargateProfile"],
             f"arn:{partition}:eks:{region}:{account}:fargateprofile/{cluster}/probe/0",
             {f"aws:ResourceTag/{RUN_ID_TAG}": self.run_id}),
            (["iam:PassRole"], role_arn, {"iam:PassedToService": "eks.amazonaws.com"}),
            (["elasticloadbalancing:DeleteLoadBalancer"], f"{elb}:loadbalancer/app/probe/0",
             {"aws:ResourceTag/elbv2.k8s.aws/cluster": cluster}),
            (["elasticloadbalancing:DeleteTargetGroup"], f"{elb}:targetgroup/probe/0",
             {"aws:ResourceTag/elbv2.k8s.aws/cluster": cluster}),
            (list(EKSCTL_STACK_ACTIONS),
             f"arn:{partition}:cloudformation:{region}:{account}:stack/eksctl-{cluster}-fargate/probe", {}),
            (list(EKSCTL_ROLE_ACTIONS),
             f"arn:{partition}:iam::{account}:role/eksctl-{cluster}-fargate-FargatePodExecutionRole-PROBE", {}),
        ]
        if not self.options.pod_execution_role_arn:
            groups += [
                (["iam:CreateRole", "iam:TagRole"], role_arn, run_tag),
                ([a for a in REPLAY_WRITE_ACTIONS if a.startswith("iam:") and a not in
                  ("iam:CreateRole", "iam:TagRole", "iam:PassRole", "iam:ListRoles")], role_arn, {}),
            ]
        iam = self.conn.aws("iam")
        missing: list[str] = []
        for actions, resource, context in groups:
            try:
                results = iam.simulate_principal_policy(
                    PolicySourceArn=principal, ActionNames=actions, ResourceArns=[resource],
                    ContextEntries=[{"ContextKeyName": k, "ContextKeyType": "string", "ContextKeyValues": [v]}
                                    for k, v in context.items()],
                )["EvaluationResults"]
            except Exception as exc:  # AccessDenied, or an endpoint that does not implement it (moto answers 500)
                self.notes.append(f"write permissions not verified: iam:SimulatePrincipalPolicy unavailable "
                                  f"({error_code(exc) or type(exc).__name__}); a missing one fails the step "
                                  "that needs it")
                return []
            missing += [r["EvalActionName"] for r in results if r.get("EvalDecision") != "allowed"]
        return missing

    def fargate_subnets(self, description: dict[str, Any]) -> list[str]:
        from botocore.exceptions import ClientError

        ids = (description.get("resourcesVpcConfig") or {}).get("subnetIds") or []
        ec2 = self.conn.aws("ec2")
        try:
            subnets = ec2.describe_subnets(SubnetIds=ids)["Subnets"] if ids else []
            private = sorted(s["SubnetId"] for s in subnets if is_private(ec2, s))
        except ClientError as exc:
            raise HarnessError(f"cannot read the cluster's subnets: {error_code(exc)}", ExitCode.AWS) from None
        if not private:
            raise HarnessError(f"EKS cluster {self.conn.cluster!r} has no private subnet (one without a route to an "
                               "internet gateway): Fargate pods cannot run on it", ExitCode.NOT_FARGATE_READY)
        return private

    def kubernetes(self, kubeconfig: Path) -> Any:
        from kubernetes import client

        from ..kube_client import client_configuration

        cfg = client_configuration(str(kubeconfig))
        cfg.retries = 2
        api = client.ApiClient(cfg)
        checks = ([("create", "", "namespaces"), ("delete", "", "namespaces"), ("create", "apps", "deployments"),
                   ("create", "networking.k8s.io", "ingresses"), ("create", "", "pods"), ("list", "", "pods"),
                   ("list", "", "nodes"), ("list", "", "events")] if self.replay else
                  [("get", "", "namespaces"), ("list", "", "pods"), ("list", "", "nodes"), ("list", "", "events"),
                   ("list", "networking.k8s.io", "ingresses")])
        authz = client.AuthorizationV1Api(api)
        denied = []
        for verb, group, resource in checks:
            review = {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
                      "spec": {"resourceAttributes": {"verb": verb, "group": group, "resource": resource}}}
            try:
                result = authz.create_self_subject_access_review(review)
            except client.ApiException as exc:
                if exc.status == 401:
                    raise HarnessError(
                        f"the Kubernetes API of {self.conn.cluster!r} refused the EKS token: give "
                        "your IAM identity an access entry (or aws-auth mapping) on the cluster",
                        ExitCode.KUBERNETES_UNAUTHORIZED) from None
                raise HarnessError(f"the Kubernetes API of {self.conn.cluster!r} answered {exc.status} {exc.reason}",
                                   ExitCode.BACKEND_UNAVAILABLE) from None
            except Exception as exc:  # urllib3 / connection errors
                raise HarnessError(f"cannot reach the Kubernetes API of {self.conn.cluster!r}: "
                                   f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}",
                                   ExitCode.BACKEND_UNAVAILABLE) from None
            if not result.status.allowed:
                denied.append(f"{verb} {resource}")
        if denied:
            raise HarnessError(f"the cluster's RBAC does not let this identity {', '.join(denied)}: grant it "
                               "cluster-admin (replay) or a read-only cluster role (check)", ExitCode.MISSING_PERMISSIONS)
        return api

    def load_balancer_controller(self, api: Any) -> None:
        from kubernetes import client

        try:
            classes = client.NetworkingV1Api(api).list_ingress_class().items
            controllers = sorted({c.spec.controller for c in classes if c.spec})
            has_crd = True
            try:
                client.ApiextensionsV1Api(api).read_custom_resource_definition(LBC_CRD)
            except client.ApiException as exc:
                if exc.status != 404:
                    raise
                has_crd = False
            deployments = client.AppsV1Api(api).list_deployment_for_all_namespaces(
                label_selector=LBC_DEPLOYMENT_LABEL).items
        except client.ApiException as exc:
            raise HarnessError(f"cannot look for the AWS Load Balancer Controller ({exc.status} {exc.reason})",
                               ExitCode.MISSING_PERMISSIONS if exc.status == 403 else ExitCode.BACKEND_UNAVAILABLE
                               ) from None
        install = ("install it: helm install aws-load-balancer-controller eks/aws-load-balancer-controller "
                   f"-n kube-system --set clusterName={self.conn.cluster}")
        if LBC_CONTROLLER not in controllers or not has_crd:
            what = "no IngressClass with controller ingress.k8s.aws/alb" if LBC_CONTROLLER not in controllers \
                else f"no {LBC_CRD} CRD"
            raise HarnessError(f"the AWS Load Balancer Controller is not installed ({what}): {install}",
                               ExitCode.NO_LOAD_BALANCER_CONTROLLER)
        for d in deployments:
            if not (d.status and d.status.available_replicas):
                raise HarnessError(f"the AWS Load Balancer Controller is installed but not running (Deployment "
                                   f"{d.metadata.namespace}/{d.metadata.name} has no available replica): "
                                   f"see `kubectl -n {d.metadata.namespace} describe deployment {d.metadata.name}`",
                                   ExitCode.NO_LOAD_BALANCER_CONTROLLER)
