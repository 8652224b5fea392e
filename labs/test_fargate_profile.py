"""Lab 1 — the Fargate profile (document 000, "Fargate 프로파일 생성"; rules from the EKS user guide).

Documented step: ``eksctl create fargateprofile --cluster $EKSCLUSTER_NAME --name fargate-game-2048
--namespace fargate-game-2048``, run through the real eksctl with the run's names (and its tag, added), or
replayed as the ``CreateFargateProfile`` call eksctl makes where the run has no eksctl (the report says why).
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import yaml
from botocore.exceptions import ClientError

from fargatelab import Capability, Lab, Missing, expect
from fargatelab import conditions as cond
from fargatelab.eks.facts import RUN_ID_TAG
from fargatelab.eks.vpc import cluster_subnets

pytestmark = [pytest.mark.lab("Lab 1 — Fargate profile", "000")]

DOCUMENTED = ("eksctl create fargateprofile --cluster $EKSCLUSTER_NAME --name fargate-game-2048 "
              "--namespace fargate-game-2048")


def _profile(lab: Lab, documented: str) -> dict[str, Any]:
    """The profile under its documented name: created in replay mode (by the real eksctl where the run has
    it, with the run's tag added so cleanup and the leak check find it), read in check mode."""
    eks = lab.aws("eks")
    if lab.replay:
        name = lab.name("fargate-game-2048")
        tools = lab.tools()
        if not tools.has("eksctl"):
            lab.step(DOCUMENTED, f"CreateFargateProfile, the call eksctl makes (not eksctl: {tools.why_not('eksctl')})")
            return lab.create_profile(documented, [{"namespace": name}])
        with lab.profiles.eksctl_stack():
            return lab.profiles.made_by(name, lambda: lab.run(
                DOCUMENTED, {"fargate-game-2048": name}, added=f"--tags {RUN_ID_TAG}={lab.cluster.run_id}"))
    try:
        profile: dict[str, Any] = eks.describe_fargate_profile(
            clusterName=lab.cluster.cluster_name, fargateProfileName=documented)["fargateProfile"]
    except ClientError:
        raise Missing(f"Fargate profile {documented} in cluster {lab.cluster.cluster_name}", DOCUMENTED) from None
    return profile


DOCUMENTED_GET = "eksctl get fargateprofile --cluster $EKSCLUSTER_NAME -o yaml"
#: document 000's output of DOCUMENTED_GET (its account, ids and role suffix are the document's own)
EKSCTL_ROLE = r"arn:aws:iam::\d{12}:role/eksctl-{cluster}-fargate-FargatePodExecutionRole-[A-Za-z0-9]+"


def _eksctl_get(lab: Lab, name: str, private: list[str]) -> None:
    """``eksctl get fargateprofile -o yaml`` through the real eksctl, compared field by field with 000's output."""
    ran = lab.run(DOCUMENTED_GET, timeout=120)
    listed = yaml.safe_load(ran.stdout) or []
    (entry,) = [p for p in listed if p.get("name") == name] or [{}]
    lab.compared(ran, "name", entry.get("name"), name)
    lab.compared(ran, "status", entry.get("status"), "ACTIVE")
    lab.compared(ran, "selectors", entry.get("selectors"), [{"namespace": name}])
    lab.compared(ran, "subnets (the cluster's three private subnets)", sorted(entry.get("subnets") or []), private)
    role = str(entry.get("podExecutionRoleARN"))
    pattern = EKSCTL_ROLE.replace("{cluster}", re.escape(lab.cluster.cluster_name))
    lab.compared(ran, "podExecutionRoleARN (a role of eksctl's stack eksctl-<cluster>-fargate)",
                 bool(re.fullmatch(pattern, role)) or role, True)


def test_create_profile(lab: Lab) -> None:
    profile = _profile(lab, "fargate-game-2048")
    private, _public = cluster_subnets(lab.aws("eks"), lab.aws("ec2"), lab.cluster.cluster_name)
    if lab.tools().has("eksctl"):
        _eksctl_get(lab, profile["fargateProfileName"], private)
    expect("profile name", profile["fargateProfileName"], lab.name("fargate-game-2048"))
    expect("profile status", profile["status"], "ACTIVE")
    expect("one selector for the namespace",
           [{k: v for k, v in s.items() if v} for s in profile["selectors"]],
           [{"namespace": lab.name("fargate-game-2048")}])
    expect("subnets = the cluster's three private subnets", sorted(profile["subnets"]), private)
    expect("three private subnets", len(private), 3)
    assert re.fullmatch(r"arn:aws:iam::\d{12}:role/.*FargatePodExecutionRole.*", profile["podExecutionRoleArn"]), (
        f"pod execution role\n  expected: arn:aws:iam::<account>:role/eksctl-…-FargatePodExecutionRole-…\n"
        f"  actual:   {profile['podExecutionRoleArn']}")


def _selectors(n: int) -> list[dict[str, Any]]:
    return [{"namespace": f"ns-{i}"} for i in range(n)]


# Each case: what the request breaks, and the error EKS answers with.
RULES = {
    "6 selectors->InvalidParameterException": (dict(selectors=_selectors(6)), "InvalidParameterException", None),
    "selector without namespace->InvalidParameterException": (
        dict(selectors=[{"labels": {"app": "x"}}]), "InvalidParameterException", None),
    "public subnet->InvalidParameterException": (
        dict(selectors=_selectors(1), subnets="public"), "InvalidParameterException",
        "Subnet {subnet} provided in Fargate Profile is not a private subnet"),
    "eks- prefix->InvalidParameterException": (
        dict(selectors=_selectors(1), name="eks-reserved"), "InvalidParameterException",
        "The fargate profile name starts with the reserved prefix: 'eks-'."),
}


@pytest.mark.replay_only
@pytest.mark.parametrize("case", list(RULES), ids=list(RULES))
def test_profile_rule(lab: Lab, case: str) -> None:
    request, code, message = RULES[case]
    eks = lab.aws("eks")
    private, public = cluster_subnets(eks, lab.aws("ec2"), lab.cluster.cluster_name)
    args: dict[str, Any] = dict(
        clusterName=lab.cluster.cluster_name,
        fargateProfileName=request.get("name") or lab.name("rule-case"),
        podExecutionRoleArn=lab.pod_execution_role(),
        selectors=request["selectors"],
        subnets=[public[0]] if request.get("subnets") == "public" else private,
    )
    with pytest.raises(ClientError) as raised:
        eks.create_fargate_profile(**args)
        lab.on_cleanup("unexpected profile", lambda: lab.delete_profile(args["fargateProfileName"]))
    expect("error code", raised.value.response["Error"]["Code"], code)
    if message:
        expect("error message", raised.value.response["Error"]["Message"], message.format(subnet=public[0]))


def _run_pod(lab: Lab, namespace: str, name: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": name, "namespace": namespace, "labels": labels or {}},
           "spec": {"containers": [{"name": "app", "image": "public.ecr.aws/nginx/nginx:latest"}]}}
    lab.kube.kubectl("apply", "-f", "-", stdin=json.dumps(pod))
    return lab.kube.pod(namespace, name)


@pytest.mark.replay_only
def test_wildcard_namespace_selector(lab: Lab) -> None:
    """Document 002's ``study_wildcard`` profile: ``namespace = "study-*"`` takes every study namespace."""
    lab.step('fargate_profiles = { study_wildcard = { selectors = [{ namespace = "study-*" }] } }')
    profile = lab.create_profile("study-wildcard", [{"namespace": f"study-*-{lab.cluster.run_id}"}])
    # Any study-* namespace will do; this lab's own keeps it apart from the other labs' study-aews.
    namespace = lab.namespace("study-lab1")
    pod = _run_pod(lab, namespace, "wildcard-probe")
    expect("scheduler of a pod in a study-* namespace", pod["spec"]["schedulerName"], "fargate-scheduler")
    expect("profile label", pod["metadata"]["labels"].get("eks.amazonaws.com/fargate-profile"),
           profile["fargateProfileName"])
    lab.wait(lab.conditions.pod_running(namespace, "wildcard-probe"))


@pytest.mark.replay_only
@pytest.mark.parametrize("labels,on_fargate", [({"app": "game", "tier": "web"}, True), ({"app": "game"}, False)],
                         ids=["all selector labels->fargate", "one label missing->not fargate"])
def test_label_selector(lab: Lab, labels: dict[str, str], on_fargate: bool) -> None:
    """A pod must carry all of a selector's labels to match it."""
    # One namespace and profile per case: the cases may run side by side on two workers.
    case = "all" if on_fargate else "some"
    namespace = lab.namespace(f"labelled-{case}")
    lab.create_profile(f"labelled-{case}", [{"namespace": namespace, "labels": {"app": "game", "tier": "web"}}])
    pod = _run_pod(lab, namespace, "label-probe", labels)
    expect("scheduler", pod["spec"]["schedulerName"], "fargate-scheduler" if on_fargate else "default-scheduler")


@pytest.mark.replay_only
def test_precedence_of_two_profiles(lab: Lab) -> None:
    """Two matching profiles: the first by alphanumeric name wins, unless the pod pins one by label."""
    namespace = lab.namespace("precedence")
    first = lab.create_profile("a-first", [{"namespace": namespace}])
    second = lab.create_profile("b-second", [{"namespace": namespace}])
    plain = _run_pod(lab, namespace, "plain")
    expect("profile of an unpinned pod", plain["metadata"]["labels"].get("eks.amazonaws.com/fargate-profile"),
           first["fargateProfileName"])
    pinned = _run_pod(lab, namespace, "pinned", {"eks.amazonaws.com/fargate-profile": second["fargateProfileName"]})
    expect("profile of a pinned pod", pinned["metadata"]["labels"].get("eks.amazonaws.com/fargate-profile"),
           second["fargateProfileName"])


@pytest.mark.replay_only
@pytest.mark.needs(Capability.FARGATE_ONLY)
def test_namespace_without_profile_stays_pending(lab: Lab) -> None:
    """Document 001: in a Fargate-only cluster a pod no profile selects stays Pending."""
    namespace = lab.namespace("no-profile")
    pod = _run_pod(lab, namespace, "orphan")
    expect("scheduler", pod["spec"]["schedulerName"], "default-scheduler")
    lab.wait(cond.PodPending(lab.kube, namespace, "orphan", "FailedScheduling"), 60)
    messages = [e["message"] for e in lab.kube.events(namespace, uid=pod["metadata"]["uid"])
                if e["reason"] == "FailedScheduling"]
    # Which documented message appears depends on whether Fargate nodes exist right now; the wording of
    # the second differs in current Kubernetes (seen with v1.34; docs/document-defects.md), so both are accepted.
    documented = re.compile(
        r"^(no nodes available to schedule pods|0/(\d+) nodes are available: \2 node\(s\) had untolerated "
        r"(taint \{eks\.amazonaws\.com/compute-type: fargate\}\.|taint\(s\)\. no new claims to deallocate,) "
        r"preemption: 0/\2 nodes are available: \2 Preemption is not helpful for scheduling\.)$")
    assert messages and all(documented.match(m) for m in messages), (
        f"FailedScheduling from default-scheduler\n  expected: {documented.pattern}\n  actual:   {messages}")
