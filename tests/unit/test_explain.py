"""explain(): where each pod of some manifests would run, without a cluster."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from fargatelab.rules.explain import Verdict, explain, format_table, load_profiles, to_json
from fargatelab.rules.matching import Profile, Selector

STUDY_PROFILES = [
    Profile("study_wildcard", [Selector("study-*")]),
    Profile("kube-system", [Selector("kube-system")]),
]

GAME_2048 = """
apiVersion: v1
kind: Namespace
metadata:
  name: fargate-game-2048
---
apiVersion: apps/v1
kind: Deployment
metadata:
  namespace: fargate-game-2048
  name: deployment-2048
spec:
  selector:
    matchLabels:
      app.kubernetes.io/name: app-2048
  replicas: 5
  template:
    metadata:
      labels:
        app.kubernetes.io/name: app-2048
    spec:
      containers:
      - image: public.ecr.aws/l6m2t8p7/docker-2048:latest
        imagePullPolicy: Always
        name: app-2048
        ports:
        - containerPort: 80
---
apiVersion: v1
kind: Service
metadata:
  namespace: fargate-game-2048
  name: service-2048
spec:
  ports:
    - port: 80
      targetPort: 80
      protocol: TCP
  type: NodePort
  selector:
    app.kubernetes.io/name: app-2048
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  namespace: fargate-game-2048
  name: ingress-2048
  annotations:
    alb.ingress.kubernetes.io/scheme: internet-facing
    alb.ingress.kubernetes.io/target-type: ip
spec:
  ingressClassName: alb
  rules:
    - http:
        paths:
        - path: /
          pathType: Prefix
          backend:
            service:
              name: service-2048
              port:
                number: 80
"""

STUDY = """
apiVersion: apps/v1
kind: Deployment
metadata:
  name: netshoot
  namespace: study-aews
spec:
  replicas: 1
  selector:
    matchLabels:
      app: netshoot
  template:
    metadata:
      labels:
        app: netshoot
    spec:
      terminationGracePeriodSeconds: 0
      containers:
      - name: netshoot
        image: nicolaka/netshoot
        command: ["tail"]
        args: ["-f", "/dev/null"]
        resources:
          requests:
            cpu: 500m
            memory: 500Mi
          limits:
            cpu: "2"
            memory: 2Gi
---
apiVersion: v1
kind: Pod
metadata:
  name: root-shell
  namespace: study-aews
spec:
  containers:
  - command:
    - /bin/cat
    image: alpine:3
    name: root-shell
    securityContext:
      privileged: true
    tty: true
    stdin: true
    volumeMounts:
    - mountPath: /host
      name: hostroot
  hostNetwork: true
  hostPID: true
  hostIPC: true
  tolerations:
  - effect: NoSchedule
    operator: Exists
  - effect: NoExecute
    operator: Exists
  volumes:
  - hostPath:
      path: /
    name: hostroot
---
apiVersion: batch/v1
kind: Job
metadata:
  name: busybox1
  namespace: study-aews
spec:
  template:
    spec:
      containers:
      - name: busybox
        image: busybox
        command: ["/bin/sh", "-c", "sleep 10"]
      restartPolicy: Never
  ttlSecondsAfterFinished: 60
"""


def docs(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d]


def test_game_2048_deployment_runs_on_its_profile() -> None:
    profiles = [Profile("fargate-game-2048", [Selector("fargate-game-2048")])]
    assert explain(docs(GAME_2048), profiles) == [
        Verdict("Deployment", "fargate-game-2048", "deployment-2048", True, None, "fargate-game-2048", "0.25vCPU 0.5GB")
    ]


def test_study_workloads() -> None:
    netshoot, root_shell, job = explain(docs(STUDY), STUDY_PROFILES)
    assert netshoot == Verdict("Deployment", "study-aews", "netshoot", True, None, "study_wildcard", "0.5vCPU 1GB")
    assert root_shell == Verdict(
        "Pod", "study-aews", "root-shell", False,
        "Pod not supported on Fargate: fields not supported: HostNetwork, HostPID, HostIPC, volumes not supported: "
        "hostroot is of an unsupported volume Type, invalid SecurityContext fields: Privileged",
        "study_wildcard", None,
    )
    assert job == Verdict("Job", "study-aews", "busybox1", True, None, "study_wildcard", "0.25vCPU 0.5GB")


def workload(kind: str, template_spec: dict[str, Any], namespace: str = "study-aews",
             labels: dict[str, str] | None = None, annotations: dict[str, str] | None = None) -> dict[str, Any]:
    template: dict[str, Any] = {"metadata": {"labels": labels or {}, "annotations": annotations or {}},
                                "spec": template_spec}
    meta = {"name": f"my-{kind.lower()}", "namespace": namespace}
    if kind == "Pod":
        return {"kind": "Pod", "metadata": {**meta, **template["metadata"]}, "spec": template_spec}
    if kind == "CronJob":
        return {"kind": kind, "metadata": meta, "spec": {"schedule": "* * * * *",
                                                         "jobTemplate": {"spec": {"template": template}}}}
    return {"kind": kind, "metadata": meta, "spec": {"template": template}}


SMALL = {"containers": [{"name": "c", "image": "busybox", "resources": {"requests": {"cpu": "1", "memory": "1Gi"}}}]}


@pytest.mark.parametrize("kind", ["Pod", "Deployment", "ReplicaSet", "StatefulSet", "Job", "CronJob"])
def test_every_workload_kind_is_explained(kind: str) -> None:
    [verdict] = explain([workload(kind, SMALL)], STUDY_PROFILES)
    assert verdict == Verdict(kind, "study-aews", f"my-{kind.lower()}", True, None, "study_wildcard", "1vCPU 2GB")


def test_daemonset_never_runs_on_fargate() -> None:
    [verdict] = explain([workload("DaemonSet", SMALL)], STUDY_PROFILES)
    assert verdict == Verdict("DaemonSet", "study-aews", "my-daemonset", False,
                              "DaemonSet pods do not run on Fargate", None, None)


def test_pod_owned_by_a_daemonset_never_runs_on_fargate() -> None:
    pod = workload("Pod", SMALL)
    pod["metadata"]["ownerReferences"] = [{"kind": "DaemonSet", "name": "aws-node"}]
    [verdict] = explain([pod], STUDY_PROFILES)
    assert (verdict.runs_on_fargate, verdict.reason) == (False, "DaemonSet pods do not run on Fargate")


def test_no_matching_profile_names_namespace_and_labels() -> None:
    [verdict] = explain([workload("Deployment", SMALL, "default", {"tier": "web", "app": "nginx"})], STUDY_PROFILES)
    assert verdict == Verdict("Deployment", "default", "my-deployment", False,
                              "no Fargate profile matches namespace default and labels {app=nginx,tier=web}",
                              None, None)


def test_no_matching_profile_without_labels() -> None:
    [verdict] = explain([workload("Pod", SMALL, "default")], STUDY_PROFILES)
    assert verdict.reason == "no Fargate profile matches namespace default and labels {}"


def test_coredns_compute_type_ec2_annotation_keeps_it_off_fargate() -> None:
    coredns = workload("Deployment", SMALL, "kube-system", {"k8s-app": "kube-dns"},
                       {"eks.amazonaws.com/compute-type": "ec2"})
    [verdict] = explain([coredns], STUDY_PROFILES)
    assert verdict.runs_on_fargate is False
    assert verdict.reason == "annotation eks.amazonaws.com/compute-type: ec2 keeps the pod off Fargate"


def test_coredns_without_the_annotation_runs_on_kube_system_profile() -> None:
    [verdict] = explain([workload("Deployment", SMALL, "kube-system", {"k8s-app": "kube-dns"})], STUDY_PROFILES)
    assert (verdict.runs_on_fargate, verdict.profile) == (True, "kube-system")


def test_too_big_pod_is_refused_with_the_sizing_error() -> None:
    big = {"containers": [{"name": "c", "resources": {"requests": {"cpu": "32"}}}]}
    [verdict] = explain([workload("Deployment", big)], STUDY_PROFILES)
    assert verdict.runs_on_fargate is False
    assert verdict.profile == "study_wildcard"
    assert verdict.reason is not None and "more than the largest Fargate size 16vCPU 120GB" in verdict.reason


def test_pinned_profile_label_on_the_template_is_honoured() -> None:
    profiles = [Profile("a", [Selector("study-*")]), Profile("b", [Selector("study-aews")])]
    [verdict] = explain([workload("Deployment", SMALL, labels={"eks.amazonaws.com/fargate-profile": "b"})], profiles)
    assert verdict.profile == "b"


def test_missing_namespace_means_default() -> None:
    pod = {"kind": "Pod", "metadata": {"name": "p"}, "spec": SMALL}
    [verdict] = explain([pod], [Profile("default", [Selector("default")])])
    assert (verdict.namespace, verdict.profile) == ("default", "default")


def test_non_workloads_lists_and_empty_documents() -> None:
    documents: list[Any] = [
        None,
        {"kind": "ConfigMap", "metadata": {"name": "x"}},
        {"kind": "List", "items": [workload("Pod", SMALL), {"kind": "Service", "metadata": {"name": "s"}}]},
        {"kind": "DeploymentList", "items": [workload("Deployment", SMALL)]},
    ]
    assert [(v.kind, v.name) for v in explain(documents, STUDY_PROFILES)] == [("Pod", "my-pod"),
                                                                             ("Deployment", "my-deployment")]


def test_format_table_lines_up_columns() -> None:
    table = format_table(explain(docs(STUDY), STUDY_PROFILES))
    lines = table.splitlines()
    assert lines[0].split() == ["KIND", "NAMESPACE", "NAME", "FARGATE", "PROFILE", "CAPACITY", "REASON"]
    assert lines[1].split() == ["Deployment", "study-aews", "netshoot", "yes", "study_wildcard", "0.5vCPU", "1GB", "-"]
    assert lines[2].startswith("Pod ")
    assert lines[2].endswith("invalid SecurityContext fields: Privileged")
    reason_column = lines[0].index("REASON")
    assert all(line[reason_column - 2:reason_column] == "  " for line in lines)


def test_format_table_of_nothing_is_the_header() -> None:
    assert format_table([]) == "KIND  NAMESPACE  NAME  FARGATE  PROFILE  CAPACITY  REASON"


def test_to_json_round_trips() -> None:
    verdicts = explain(docs(STUDY), STUDY_PROFILES)
    loaded = json.loads(to_json(verdicts))
    assert [Verdict(**item) for item in loaded] == verdicts
    assert loaded[0]["capacity_provisioned"] == "0.5vCPU 1GB"


API_PROFILE = {"fargateProfileName": "fargate-game-2048", "selectors": [{"namespace": "fargate-game-2048"}],
               "status": "ACTIVE", "subnets": ["subnet-1", "subnet-2", "subnet-3"]}
EXPECTED_GAME = Profile("fargate-game-2048", [Selector("fargate-game-2048")], "ACTIVE",
                        ["subnet-1", "subnet-2", "subnet-3"])

PROFILE_FILES: list[tuple[str, Any, list[Profile]]] = [
    ("API list of profiles", [API_PROFILE], [EXPECTED_GAME]),
    ("API list of describe answers", [{"fargateProfile": API_PROFILE}], [EXPECTED_GAME]),
    ("API fargateProfiles key", {"fargateProfiles": [API_PROFILE]}, [EXPECTED_GAME]),
    ("API single describe answer", {"fargateProfile": API_PROFILE}, [EXPECTED_GAME]),
    ("API single profile", API_PROFILE, [EXPECTED_GAME]),
    ("eksctl ClusterConfig",
     {"apiVersion": "eksctl.io/v1alpha5", "kind": "ClusterConfig", "metadata": {"name": "c"},
      "fargateProfiles": [{"name": "study_wildcard", "selectors": [{"namespace": "study-*"}]},
                          {"name": "labelled", "selectors": [{"namespace": "default", "labels": {"env": "dev"}}],
                           "subnets": ["subnet-9"]}]},
     [Profile("study_wildcard", [Selector("study-*")]),
      Profile("labelled", [Selector("default", {"env": "dev"})], "ACTIVE", ["subnet-9"])]),
    ("empty list", [], []),
    ("eksctl ClusterConfig without Fargate", {"kind": "ClusterConfig", "metadata": {"name": "c"}}, []),
]


@pytest.mark.parametrize(("doc", "expected"), [p[1:] for p in PROFILE_FILES], ids=[p[0] for p in PROFILE_FILES])
def test_load_profiles(doc: Any, expected: list[Profile]) -> None:
    assert load_profiles(doc) == expected


@pytest.mark.parametrize("doc", [{"kind": "Deployment"}, [{"selectors": []}]], ids=["not a profiles file", "nameless entry"])
def test_load_profiles_rejects_other_documents(doc: Any) -> None:
    with pytest.raises(ValueError):
        load_profiles(doc)


def test_inactive_api_profile_does_not_take_pods() -> None:
    profiles = load_profiles([{**API_PROFILE, "status": "DELETING"}])
    [verdict] = explain(docs(GAME_2048), profiles)
    assert verdict.runs_on_fargate is False
