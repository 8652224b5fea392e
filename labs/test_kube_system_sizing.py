"""Documented extra — kube-ops-view in kube-system, sized and mutated by EKS (document 003, "Fargate 배포 실습":
``kubectl get deploy -n kube-system kube-ops-view -o yaml`` and the pod's YAML; document 002, "fargate에
kube-ops-view 설치").

Documented steps, run through the real helm (from a local chart repository holding the chart the project
packages from kube-ops-view.yaml, where geek-cookbook's cannot be reached; where the run has no helm, the
manifest is applied instead and the report says why)::

    helm repo add geek-cookbook https://geek-cookbook.github.io/charts/
    helm install kube-ops-view geek-cookbook/kube-ops-view --version 1.2.2 --set env.TZ="Asia/Seoul" \
      --namespace kube-system
    kubectl get pod -n kube-system -l app.kubernetes.io/instance=kube-ops-view -o yaml

Recorded: no requests -> ``CapacityProvisioned: 0.25vCPU 0.5GB``; label ``eks.amazonaws.com/fargate-profile:
kube-system``; the Deployment's template keeps ``schedulerName: default-scheduler`` while the pod has
``fargate-scheduler`` (the mutating webhook ``0500-amazon-eks-fargate-mutation.amazonaws.com`` did it); the pod
tolerates only the default not-ready/unreachable NoExecute taints for 300 s.

kube-system is shared: replay names the profile ``kube-system-<run id>`` (selecting ``kube-system``) and holds
the cluster-wide kube-system lock of ``test_coredns`` while it exists; both modules are in the xdist group
``kube-system`` (run with ``-n 2 --dist loadgroup``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from fargatelab import Lab, Missing, ModuleLab, expect
from fargatelab.eks.facts import RUN_ID_LABEL
from fargatelab.scenario.charts import chart_repository, helm_home

pytestmark = [
    pytest.mark.lab("Documented extras — kube-ops-view in kube-system", "003"),
    pytest.mark.xdist_group("kube-system"),
]

KUBE_SYSTEM = "kube-system"
SELECTOR = "app.kubernetes.io/instance=kube-ops-view"
MANIFEST = "kube-ops-view.yaml"
DOCUMENTED_REPO = "https://geek-cookbook.github.io/charts/"
DOCUMENTED_REPO_ADD = f"helm repo add geek-cookbook {DOCUMENTED_REPO}"
DOCUMENTED_INSTALL = ('helm install kube-ops-view geek-cookbook/kube-ops-view --version 1.2.2 '
                      '--set env.TZ="Asia/Seoul" --namespace kube-system')
DOCUMENTED_UNINSTALL = "helm uninstall kube-ops-view -n kube-system"
MUTATING_WEBHOOK = "0500-amazon-eks-fargate-mutation.amazonaws.com"
DEFAULT_TOLERATIONS = [
    {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
    {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
]


@dataclass
class OpsView:
    #: the profile this module created, or the documented ``kube-system`` in check mode
    profile: str


def _apply_in_kube_system(lab: Lab) -> None:
    """``kubectl apply -f kube-ops-view.yaml`` as it is (kube-system keeps its name), deleted on cleanup."""
    docs = lab.load(MANIFEST)
    for doc in docs:
        doc.setdefault("metadata", {}).setdefault("labels", {})[RUN_ID_LABEL] = lab.cluster.run_id
    stdin = "\n".join(json.dumps(doc) for doc in docs)
    lab.step(DOCUMENTED_INSTALL, f"kubectl apply -f {MANIFEST} (what the chart renders; not helm: "
                                 f"{lab.tools().why_not('helm')})")

    def delete() -> None:
        lab.kube.kubectl("delete", "-f", "-", "--ignore-not-found", "--wait=true", "--timeout=120s", stdin=stdin,
                         check=False)

    lab.on_cleanup(f"objects of {MANIFEST}", delete)
    lab.kube.kubectl("apply", "-f", "-", stdin=stdin)


def _helm_install(lab: Lab, home: Path) -> None:
    """The documents' ``helm repo add`` and ``helm install`` through the real helm (the chart repository the
    local one where geek-cookbook's is unreachable); ``helm uninstall`` as 002 does it, on cleanup."""
    env = helm_home(home)
    helm = str(lab.tools().bin_dir / "helm")
    with chart_repository(DOCUMENTED_REPO, ["kube-ops-view"], helm, env) as url:
        lab.run(DOCUMENTED_REPO_ADD, {DOCUMENTED_REPO: url}, env=env, timeout=120)
        lab.on_cleanup("helm release kube-ops-view", lambda: lab.run(
            DOCUMENTED_UNINSTALL, added="--wait --timeout 120s", env=env, timeout=180, check=False))
        ran = lab.run(DOCUMENTED_INSTALL, env=env, timeout=300)
    lab.compared(ran, "helm install: release status", (re.findall(r"^STATUS: (\S+)", ran.stdout, re.M) or [None])[0],
                 "deployed")
    # What the chart made carries no run id: labelled now, so the leak check finds it if cleanup fails.
    label = f"{RUN_ID_LABEL}={lab.cluster.run_id}"
    lab.kube.kubectl("label", "-n", KUBE_SYSTEM, "--overwrite", "deployment/kube-ops-view",
                     "serviceaccount/kube-ops-view", "clusterrole/kube-ops-view", "clusterrolebinding/kube-ops-view",
                     label)
    lab.kube.kubectl("label", "-n", KUBE_SYSTEM, "--overwrite", "secret", "-l", "owner=helm,name=kube-ops-view",
                     label)


def _helm_list(lab: Lab) -> None:
    """A student's check, read-only, with their own helm: the release the documents install is deployed."""
    # Not a documented line (the documents only install): the check's own look, in helm's JSON.
    ran = lab.run("helm list -n kube-system -o json", timeout=60)
    releases = json.loads(ran.stdout or "[]")
    if not any(r.get("name") == "kube-ops-view" for r in releases):
        raise Missing("helm release kube-ops-view in kube-system", DOCUMENTED_INSTALL)
    lab.compared(ran, "helm list: release kube-ops-view (status, chart)",
                 [(r.get("status"), r.get("chart")) for r in releases if r.get("name") == "kube-ops-view"],
                 [("deployed", "kube-ops-view-1.2.2")])


@pytest.fixture(scope="module")
def ops_view(module_lab: ModuleLab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpsView]:
    with module_lab(lock=KUBE_SYSTEM) as setup:
        setup.watch(KUBE_SYSTEM)
        if not setup.replay:
            if setup.tools().has("helm"):
                _helm_list(setup)
            setup.ensure(MANIFEST, DOCUMENTED_INSTALL)
            yield OpsView(KUBE_SYSTEM)
            return
        setup.step('fargate_profiles = { kube_system = { selectors = [{ namespace = "kube-system" }] } }')
        profile = setup.create_profile(KUBE_SYSTEM, [{"namespace": KUBE_SYSTEM}])["fargateProfileName"]
        if setup.tools().has("helm"):
            _helm_install(setup, tmp_path_factory.mktemp("helm"))
        else:
            _apply_in_kube_system(setup)
        replicas = setup.kube.deployment(KUBE_SYSTEM, "kube-ops-view")["spec"].get("replicas", 1)
        setup.wait(setup.conditions.pods_running(KUBE_SYSTEM, SELECTOR, replicas))
        yield OpsView(profile)


def _pod(lab: Lab, view: OpsView) -> dict[str, Any]:
    pods = lab.live_pods(KUBE_SYSTEM, SELECTOR)
    expect("kube-ops-view pods", len(pods), 1)
    return pods[0]


def _template(lab: Lab) -> dict[str, Any]:
    spec: dict[str, Any] = lab.kube.deployment(KUBE_SYSTEM, "kube-ops-view")["spec"]["template"]["spec"]
    return spec


def _tolerations(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return sorted(spec.get("tolerations") or [], key=lambda t: (t.get("key", ""), t.get("effect", "")))


# id -> (fact, read from (lab, pod, view), expected; a callable expected gets (lab, view))
FACTS: dict[str, tuple[str, Callable[[Lab, dict[str, Any], OpsView], Any], Any]] = {
    "image hjacobs/kube-ops-view:20.4.0, TZ Asia/Seoul, port 8080": (
        "kube-ops-view container", lambda lab, p, v: (
            p["spec"]["containers"][0]["image"],
            {e["name"]: e.get("value") for e in p["spec"]["containers"][0].get("env", [])},
            [port["containerPort"] for port in p["spec"]["containers"][0].get("ports", [])]),
        ("hjacobs/kube-ops-view:20.4.0", {"TZ": "Asia/Seoul"}, [8080])),
    "no requests": ("kube-ops-view requests", lambda lab, p, v: p["spec"]["containers"][0].get("resources") or {}, {}),
    "CapacityProvisioned: 0.25vCPU 0.5GB": (
        "pod annotation CapacityProvisioned", lambda lab, p, v: p["metadata"]["annotations"].get("CapacityProvisioned"),
        "0.25vCPU 0.5GB"),
    "label eks.amazonaws.com/fargate-profile: kube-system": (
        "pod label eks.amazonaws.com/fargate-profile",
        lambda lab, p, v: p["metadata"]["labels"].get("eks.amazonaws.com/fargate-profile"), lambda lab, v: v.profile),
    "template schedulerName default-scheduler": (
        "Deployment template schedulerName", lambda lab, p, v: _template(lab).get("schedulerName"),
        "default-scheduler"),
    "pod schedulerName fargate-scheduler": (
        "pod schedulerName", lambda lab, p, v: p["spec"].get("schedulerName"), "fargate-scheduler"),
    "only the default NoExecute tolerations (300 s)": (
        "pod tolerations (the defaults plus the template's)", lambda lab, p, v: _tolerations(p["spec"]),
        lambda lab, v: sorted(DEFAULT_TOLERATIONS + _tolerations(_template(lab)),
                              key=lambda t: (t.get("key", ""), t.get("effect", "")))),
    "mutated by 0500-amazon-eks-fargate-mutation.amazonaws.com": (
        "MutatingWebhookConfiguration of EKS Fargate", lambda lab, p, v: lab.kube.exists(
            f"/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/{MUTATING_WEBHOOK}"), True),
    "Running on a Fargate node": (
        "kube-ops-view pod's node", lambda lab, p, v: (
            p["status"].get("phase"),
            ((lab.kube.fargate_node_of(p) or {}).get("metadata") or {}).get("labels", {}).get(
                "eks.amazonaws.com/compute-type")),
        ("Running", "fargate")),
}


@pytest.mark.parametrize("fact_id", list(FACTS), ids=list(FACTS))
def test_kube_ops_view(lab: Lab, ops_view: OpsView, fact_id: str) -> None:
    lab.step("kubectl get pod -n kube-system -l app.kubernetes.io/instance=kube-ops-view -o yaml")
    pod = _pod(lab, ops_view)
    fact, read, expected = FACTS[fact_id]
    expect(fact, read(lab, pod, ops_view), expected(lab, ops_view) if callable(expected) else expected)
