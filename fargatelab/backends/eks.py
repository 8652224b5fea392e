"""The eks backend: a real EKS cluster (or anything that answers like one, through boto3's usual configuration).

Connection: the cluster's name and region (``--cluster``/``--region``, or taken from a kubeconfig context
with ``--kube-context``); the kubeconfig is built from ``eks:DescribeCluster`` (endpoint and CA) and a
bearer token made with botocore (:mod:`fargatelab.eks.token`), which kubectl and the Kubernetes client
refresh by themselves through the kubeconfig ``exec`` entry. No aws CLI, no eksctl.

Preflight, in this order, each failure one line with its own exit code (:class:`~fargatelab.errors.ExitCode`):

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

import fcntl
import json
import os
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import yaml

from ..eks import token as eks_token
from ..cleanup.leftovers import ROLE_PATH, RUN_ID_TAG, RunScope
from ..errors import ExitCode, HarnessError
from ..rules.naming import validate_run_id
from ..scenario.handle import Capability, ClusterHandle

if TYPE_CHECKING:
    from . import BackendOptions

__all__ = [
    "SANDBOX_TAG",
    "READ_ACTIONS",
    "REPLAY_WRITE_ACTIONS",
    "EksBackend",
    "Connection",
    "connect",
    "target_from_context",
    "role_name",
]

SANDBOX_TAG = "fargate-labs/sandbox"
LBC_CONTROLLER = "ingress.k8s.aws/alb"
LBC_CRD = "targetgroupbindings.elbv2.k8s.aws"
LBC_DEPLOYMENT_LABEL = "app.kubernetes.io/name=aws-load-balancer-controller"
FARGATE_PRINCIPAL = "eks-fargate-pods.amazonaws.com"

#: What both modes read (probed with a real call each); docs/iam/check-policy.json grants exactly these.
READ_ACTIONS = (
    "sts:GetCallerIdentity",
    "eks:DescribeCluster",
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
# The pod execution role's permissions: those of the AWS managed AmazonEKSFargatePodExecutionRolePolicy,
# inline so the role needs no managed policy to exist and goes with the role on deletion.
_POD_EXECUTION_POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Resource": "*", "Action": [
        "ecr:GetAuthorizationToken", "ecr:BatchCheckLayerAvailability", "ecr:GetDownloadUrlForLayer",
        "ecr:BatchGetImage"]}],
}

Progress = Callable[[str], None]


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _code(exc: BaseException) -> str:
    return str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))


def _denied(exc: BaseException) -> bool:
    code = _code(exc)
    return "AccessDenied" in code or code in ("UnauthorizedOperation", "AuthorizationError", "UnauthorizedException")


def role_name(run_id: str) -> str:
    """Name of the run's pod execution role; contains FargatePodExecutionRole as eksctl's does."""
    return f"fargate-labs-{run_id}-FargatePodExecutionRole"


def _partition(region: str) -> str:
    return "aws-cn" if region.startswith("cn-") else "aws-us-gov" if region.startswith("us-gov-") else "aws"


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


def _work_dir(run_id: str) -> Path:
    from ..local.environment import state_root

    path = state_root() / f"eks-{run_id}"
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def connect(cluster: str, region: str, run_id: str) -> tuple[Connection, dict[str, Any], Path]:
    """Connection, DescribeCluster answer and a kubeconfig for this process (no preflight)."""
    conn = Connection(cluster, region)
    description = conn.describe()
    kubeconfig = conn.write_kubeconfig(_work_dir(run_id) / f"kubeconfig-{os.getpid()}", description)
    return conn, description, kubeconfig


# --- the backend ---------------------------------------------------------------------------------------


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

    # --- preflight -------------------------------------------------------------------------------------

    def _preflight(self) -> ClusterHandle:
        conn = self.conn
        identity = self._credentials()
        description = self._cluster()
        self._safety(description)
        self._aws_permissions(identity, description)
        self._fargate_subnets(description)
        self.kubeconfig = conn.write_kubeconfig(_work_dir(self.run_id) / f"kubeconfig-{os.getpid()}", description)
        api = self._kubernetes()
        self._load_balancer_controller(api)
        role = self._pod_execution_role(identity) if self.replay or self.options.pod_execution_role_arn else ""
        for note in self.notes:
            self.progress(f"fargate-labs: note: {note}")
        capabilities = {Capability.POD_NETWORK, Capability.LOAD_BALANCER_HTTP, Capability.REAL_AWS}
        if self.replay:
            capabilities.add(Capability.WRITE)
        return ClusterHandle(
            kubeconfig=str(self.kubeconfig), cluster_name=conn.cluster, region=conn.region, run_id=self.run_id,
            aws_endpoint=None, capabilities=frozenset(capabilities),
            kubernetes_version=str(description.get("version", "")),
            extra={"pod_execution_role_arn": role, "account_id": identity["Account"],
                   "caller_arn": identity["Arn"], "cluster_arn": str(description.get("arn", ""))},
        )

    def _credentials(self) -> dict[str, Any]:
        from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

        try:
            identity: dict[str, Any] = self.conn.aws("sts").get_caller_identity()
        except NoCredentialsError:
            raise HarnessError("no AWS credentials: set AWS_PROFILE (or AWS_ACCESS_KEY_ID and "
                               "AWS_SECRET_ACCESS_KEY) for the sandbox account", ExitCode.NO_CREDENTIALS) from None
        except ClientError as exc:
            raise HarnessError(f"the AWS credentials were refused ({_code(exc)}): refresh them "
                               "(e.g. `aws sso login`)", ExitCode.NO_CREDENTIALS) from None
        except BotoCoreError as exc:
            raise HarnessError(f"cannot reach AWS STS: {exc}", ExitCode.NO_CREDENTIALS) from None
        return identity

    def _cluster(self) -> dict[str, Any]:
        from botocore.exceptions import ClientError

        conn = self.conn
        try:
            description = conn.describe()
        except ClientError as exc:
            if _code(exc) == "ResourceNotFoundException":
                raise HarnessError(f"no EKS cluster {conn.cluster!r} in {conn.region}: check --cluster and --region",
                                   ExitCode.BACKEND_UNAVAILABLE) from None
            if _denied(exc):
                raise HarnessError(f"not allowed to call eks:DescribeCluster on {conn.cluster!r}: attach "
                                   "docs/iam/check-policy.json (check) or docs/iam/replay-policy.json (replay)",
                                   ExitCode.MISSING_PERMISSIONS) from None
            raise HarnessError(f"eks:DescribeCluster failed: {_code(exc)}", ExitCode.AWS) from None
        status = description.get("status")
        if status != "ACTIVE":
            raise HarnessError(f"EKS cluster {conn.cluster!r} is {status}, not ACTIVE: wait for it, or pick another",
                               ExitCode.CLUSTER_NOT_ACTIVE)
        return description

    def _safety(self, description: dict[str, Any]) -> None:
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

    def _aws_permissions(self, identity: dict[str, Any], description: dict[str, Any]) -> None:
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
                if _denied(exc):
                    missing.append(action)
                else:
                    raise HarnessError(f"{action} failed: {_code(exc)}", ExitCode.AWS) from None
        if self.replay and not missing:
            missing = self._simulate_writes(identity, description)
        if missing:
            policy = "docs/iam/replay-policy.json" if self.replay else "docs/iam/check-policy.json"
            raise HarnessError(f"{identity['Arn']} lacks {', '.join(missing)}: attach {policy}",
                               ExitCode.MISSING_PERMISSIONS)

    def _simulate_writes(self, identity: dict[str, Any], description: dict[str, Any]) -> list[str]:
        """Replay's writes, simulated against the resources and tags the run will use (as the policy expects)."""
        principal = _principal_arn(identity["Arn"])
        account, region, cluster = identity["Account"], self.conn.region, self.conn.cluster
        partition = _partition(region)
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
                                  f"({_code(exc) or type(exc).__name__}); a missing one fails the step that needs it")
                return []
            missing += [r["EvalActionName"] for r in results if r.get("EvalDecision") != "allowed"]
        return missing

    def _fargate_subnets(self, description: dict[str, Any]) -> list[str]:
        from botocore.exceptions import ClientError

        from ..eks.vpc import is_private

        ids = (description.get("resourcesVpcConfig") or {}).get("subnetIds") or []
        ec2 = self.conn.aws("ec2")
        try:
            subnets = ec2.describe_subnets(SubnetIds=ids)["Subnets"] if ids else []
            private = sorted(s["SubnetId"] for s in subnets if is_private(ec2, s))
        except ClientError as exc:
            raise HarnessError(f"cannot read the cluster's subnets: {_code(exc)}", ExitCode.AWS) from None
        if not private:
            raise HarnessError(f"EKS cluster {self.conn.cluster!r} has no private subnet (one without a route to an "
                               "internet gateway): Fargate pods cannot run on it", ExitCode.NOT_FARGATE_READY)
        return private

    def _kubernetes(self) -> Any:
        from kubernetes import client, config

        cfg = client.Configuration()
        config.load_kube_config(config_file=str(self.kubeconfig), client_configuration=cfg)
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

    def _load_balancer_controller(self, api: Any) -> None:
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

    def _pod_execution_role(self, identity: dict[str, Any]) -> str:
        from botocore.exceptions import ClientError

        iam = self.conn.aws("iam")
        given = self.options.pod_execution_role_arn
        if given:
            name = given.rsplit("/", 1)[-1]
            try:
                role = iam.get_role(RoleName=name)["Role"]
            except ClientError as exc:
                if _code(exc) == "NoSuchEntity":
                    raise HarnessError(f"pod execution role {given} does not exist", ExitCode.NOT_FARGATE_READY) from None
                raise HarnessError(f"cannot read pod execution role {given}: {_code(exc)}", ExitCode.AWS) from None
            trust = role.get("AssumeRolePolicyDocument") or {}
            if isinstance(trust, str):
                from urllib.parse import unquote

                trust = json.loads(unquote(trust))
            if FARGATE_PRINCIPAL not in json.dumps(trust):
                raise HarnessError(f"pod execution role {given} does not trust {FARGATE_PRINCIPAL}: add it to the "
                                   "role's trust policy", ExitCode.NOT_FARGATE_READY)
            return str(role["Arn"])
        return self._create_role(identity)

    def _create_role(self, identity: dict[str, Any]) -> str:
        from botocore.exceptions import ClientError

        iam = self.conn.aws("iam")
        name = role_name(self.run_id)
        account, region, partition = identity["Account"], self.conn.region, _partition(self.conn.region)
        trust = {"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Principal": {"Service": FARGATE_PRINCIPAL}, "Action": "sts:AssumeRole",
            "Condition": {"ArnLike": {
                "aws:SourceArn": f"arn:{partition}:eks:{region}:{account}:fargateprofile/{self.conn.cluster}/*"}}}]}
        # xdist workers of one run share the role: the first creates it, the others find it.
        with open(_work_dir(self.run_id) / ".role.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                arn = str(iam.create_role(
                    RoleName=name, Path=ROLE_PATH, AssumeRolePolicyDocument=json.dumps(trust),
                    Description=f"Fargate pod execution role of fargate-labs run {self.run_id}",
                    Tags=[{"Key": RUN_ID_TAG, "Value": self.run_id}])["Role"]["Arn"])
                iam.put_role_policy(RoleName=name, PolicyName="fargate-pod-execution",
                                    PolicyDocument=json.dumps(_POD_EXECUTION_POLICY))
                self.progress(f"fargate-labs: created pod execution role {arn} (deleted at the end of the run)")
            except ClientError as exc:
                if _code(exc) != "EntityAlreadyExists":
                    raise HarnessError(f"cannot create the pod execution role {name}: {_code(exc)} (pass "
                                       "--pod-execution-role-arn, or see docs/iam/replay-policy.json)",
                                       ExitCode.NOT_FARGATE_READY) from None
                arn = str(iam.get_role(RoleName=name)["Role"]["Arn"])
        return arn

    # --- lifecycle -------------------------------------------------------------------------------------

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


def _principal_arn(arn: str) -> str:
    """The IAM principal behind an STS ARN (assumed role -> role), for iam:SimulatePrincipalPolicy."""
    if m := re.match(r"^arn:(aws[a-z-]*):sts::(\d{12}):assumed-role/([^/]+)/[^/]+$", arn):
        return f"arn:{m.group(1)}:iam::{m.group(2)}:role/{m.group(3)}"
    return arn
