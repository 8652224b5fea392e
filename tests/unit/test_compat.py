"""The fargate-scheduler's "Pod not supported on Fargate" messages."""

from __future__ import annotations

from typing import Any

import pytest

from fargatelab.rules.compat import ClaimBinding, is_daemonset_pod, unsupported_reason

ROOT_SHELL: dict[str, Any] = {
    "containers": [
        {
            "name": "root-shell",
            "image": "alpine:3",
            "command": ["/bin/cat"],
            "securityContext": {"privileged": True},
            "tty": True,
            "stdin": True,
            "volumeMounts": [{"mountPath": "/host", "name": "hostroot"}],
        }
    ],
    "hostNetwork": True,
    "hostPID": True,
    "hostIPC": True,
    "tolerations": [{"effect": "NoSchedule", "operator": "Exists"}, {"effect": "NoExecute", "operator": "Exists"}],
    "volumes": [{"hostPath": {"path": "/"}, "name": "hostroot"}],
}

EFS_NODE = {
    "hostNetwork": True,
    "containers": [
        {
            "name": "efs-plugin",
            "securityContext": {"privileged": True},
            "ports": [{"name": "healthz", "containerPort": 9809, "hostPort": 9809, "protocol": "TCP"}],
        }
    ],
}


def spec(**fields: Any) -> dict[str, Any]:
    return {"containers": [{"name": "app", "image": "nginx"}], **fields}


def container(**fields: Any) -> dict[str, Any]:
    return {"name": "app", "image": "nginx", **fields}


def test_root_shell_lab5_message_is_exact() -> None:
    assert unsupported_reason(ROOT_SHELL) == (
        "Pod not supported on Fargate: fields not supported: HostNetwork, HostPID, HostIPC, "
        "volumes not supported: hostroot is of an unsupported volume Type, "
        "invalid SecurityContext fields: Privileged"
    )


def test_host_network_privileged_host_port_message_is_exact() -> None:
    assert unsupported_reason(EFS_NODE) == (
        "Pod not supported on Fargate: fields not supported: HostNetwork, "
        "invalid SecurityContext fields: Privileged, port contains HostIP or HostPort"
    )


def test_ebs_claim_message_is_exact() -> None:
    pod = spec(volumes=[{"name": "storage-volume", "persistentVolumeClaim": {"claimName": "prometheus-server"}}])
    claims: dict[str, ClaimBinding] = {
        "prometheus-server": ("pvc-a996c34f-eba8-45d1-9820-e5bc19ce325c", "ebs.csi.aws.com")
    }
    assert unsupported_reason(pod, claims.get) == (
        "Pod not supported on Fargate: volumes not supported: storage-volume not supported because: "
        "PVC prometheus-server bound to invalid PV pvc-a996c34f-eba8-45d1-9820-e5bc19ce325c "
        "with CSI Driver: ebs.csi.aws.com"
    )


P = "Pod not supported on Fargate: "
CASES = [
    ("plain nginx runs", spec(), None),
    ("hostNetwork false is fine", spec(hostNetwork=False, hostPID=False, hostIPC=False), None),
    ("HostNetwork alone", spec(hostNetwork=True), P + "fields not supported: HostNetwork"),
    ("HostPID alone", spec(hostPID=True), P + "fields not supported: HostPID"),
    ("HostIPC alone", spec(hostIPC=True), P + "fields not supported: HostIPC"),
    ("fields keep the HostNetwork, HostPID, HostIPC order", spec(hostIPC=True, hostNetwork=True),
     P + "fields not supported: HostNetwork, HostIPC"),
    ("hostPath volume", spec(volumes=[{"name": "logs", "hostPath": {"path": "/var/log"}}]),
     P + "volumes not supported: logs is of an unsupported volume Type"),
    ("inline CSI volume", spec(volumes=[{"name": "ca", "csi": {"driver": "csi.cert-manager.io"}}]),
     P + "volumes not supported: ca is of an unsupported volume Type"),
    ("nfs volume", spec(volumes=[{"name": "share", "nfs": {"server": "10.0.0.1", "path": "/"}}]),
     P + "volumes not supported: share is of an unsupported volume Type"),
    ("generic ephemeral volume", spec(volumes=[{"name": "scratch", "ephemeral": {"volumeClaimTemplate": {}}}]),
     P + "volumes not supported: scratch is of an unsupported volume Type"),
    ("in-tree EBS volume", spec(volumes=[{"name": "data", "awsElasticBlockStore": {"volumeID": "vol-1"}}]),
     P + "volumes not supported: data is of an unsupported volume Type"),
    ("two bad volumes share one prefix", spec(volumes=[{"name": "a", "hostPath": {"path": "/"}},
                                                      {"name": "ok", "emptyDir": {}},
                                                      {"name": "b", "hostPath": {"path": "/tmp"}}]),
     P + "volumes not supported: a is of an unsupported volume Type, b is of an unsupported volume Type"),
    ("supported volume types", spec(volumes=[
        {"name": "scratch", "emptyDir": {}}, {"name": "mem", "emptyDir": {"medium": "Memory"}},
        {"name": "cfg", "configMap": {"name": "c"}}, {"name": "sec", "secret": {"secretName": "s"}},
        {"name": "token", "projected": {"sources": [{"serviceAccountToken": {"path": "t"}}]}},
        {"name": "info", "downwardAPI": {"items": []}},
        {"name": "efs", "persistentVolumeClaim": {"claimName": "efs-claim"}},
        {"name": "no-source-defaults-to-emptyDir"}]), None),
    ("privileged container", spec(containers=[container(securityContext={"privileged": True})]),
     P + "invalid SecurityContext fields: Privileged"),
    ("privileged false is fine", spec(containers=[container(securityContext={"privileged": False})]), None),
    ("privileged init container", spec(initContainers=[container(name="init", securityContext={"privileged": True})]),
     P + "invalid SecurityContext fields: Privileged"),
    ("Privileged named once for two containers",
     spec(containers=[container(securityContext={"privileged": True}),
                      container(name="b", securityContext={"privileged": True})]),
     P + "invalid SecurityContext fields: Privileged"),
    ("capability added as written", spec(containers=[container(securityContext={"capabilities": {"add": ["CAP_CHOWN"]}})]),
     P + "invalid SecurityContext fields: Capabilities added: CAP_CHOWN"),
    ("NET_ADMIN added (App Mesh)", spec(containers=[container(securityContext={"capabilities": {"add": ["NET_ADMIN"]}})]),
     P + "invalid SecurityContext fields: Capabilities added: NET_ADMIN"),
    ("SYS_PTRACE refused on EKS Fargate",
     spec(containers=[container(securityContext={"capabilities": {"add": ["SYS_PTRACE"]}})]),
     P + "invalid SecurityContext fields: Capabilities added: SYS_PTRACE"),
    ("dropping capabilities is fine", spec(containers=[container(securityContext={"capabilities": {"drop": ["ALL"]}})]),
     None),
    ("Privileged before capabilities",
     spec(containers=[container(securityContext={"capabilities": {"add": ["NET_ADMIN", "SYS_TIME"]}}),
                      container(name="b", securityContext={"privileged": True})]),
     P + "invalid SecurityContext fields: Privileged, Capabilities added: NET_ADMIN, SYS_TIME"),
    ("other security context fields are fine",
     spec(securityContext={"runAsUser": 1000, "fsGroup": 2000},
          containers=[container(securityContext={"runAsNonRoot": True, "readOnlyRootFilesystem": True,
                                                 "allowPrivilegeEscalation": False})]), None),
    ("hostPort", spec(containers=[container(ports=[{"containerPort": 80, "hostPort": 8080}])]),
     P + "port contains HostIP or HostPort"),
    ("hostIP", spec(containers=[container(ports=[{"containerPort": 80, "hostIP": "0.0.0.0"}])]),
     P + "port contains HostIP or HostPort"),
    ("containerPort alone is fine", spec(containers=[container(ports=[{"containerPort": 80}])]), None),
    ("hostPort in init container", spec(initContainers=[container(name="i", ports=[{"containerPort": 1, "hostPort": 1}])]),
     P + "port contains HostIP or HostPort"),
    ("hostNetwork defaults hostPort for declared ports", spec(hostNetwork=True, containers=[container(ports=[{"containerPort": 80}])]),
     P + "fields not supported: HostNetwork, port contains HostIP or HostPort"),
    ("all four parts in order",
     spec(hostPID=True, volumes=[{"name": "h", "hostPath": {"path": "/"}}],
          containers=[container(securityContext={"privileged": True}, ports=[{"containerPort": 1, "hostPort": 1}])]),
     P + "fields not supported: HostPID, volumes not supported: h is of an unsupported volume Type, "
         "invalid SecurityContext fields: Privileged, port contains HostIP or HostPort"),
]


@pytest.mark.parametrize(("pod_spec", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_unsupported_reason(pod_spec: dict[str, Any], expected: str | None) -> None:
    assert unsupported_reason(pod_spec) == expected


def claim_spec(claim: str = "data") -> dict[str, Any]:
    return spec(volumes=[{"name": "storage", "persistentVolumeClaim": {"claimName": claim}}])


CLAIMS: list[tuple[str, ClaimBinding | None, str | None]] = [
    ("EFS claim runs", ("pv-efs", "efs.csi.aws.com"), None),
    ("EBS claim refused", ("pv-ebs", "ebs.csi.aws.com"),
     P + "volumes not supported: storage not supported because: PVC data bound to invalid PV pv-ebs "
         "with CSI Driver: ebs.csi.aws.com"),
    ("FSx claim refused", ("pv-fsx", "fsx.csi.aws.com"),
     P + "volumes not supported: storage not supported because: PVC data bound to invalid PV pv-fsx "
         "with CSI Driver: fsx.csi.aws.com"),
    ("non-CSI PV let through", ("pv-static", None), None),
    ("unbound claim", None, P + "volumes not supported: storage not supported because: PVC data not bound"),
]


@pytest.mark.parametrize(("binding", "expected"), [c[1:] for c in CLAIMS], ids=[c[0] for c in CLAIMS])
def test_claims_are_checked_through_the_lookup(binding: ClaimBinding | None, expected: str | None) -> None:
    asked: list[str] = []

    def lookup(claim: str) -> ClaimBinding | None:
        asked.append(claim)
        return binding

    assert unsupported_reason(claim_spec(), lookup) == expected
    assert asked == ["data"]


def test_claims_are_not_checked_without_a_lookup() -> None:
    assert unsupported_reason(claim_spec()) is None


def test_bad_claim_and_host_path_share_the_volumes_part() -> None:
    pod = spec(volumes=[{"name": "h", "hostPath": {"path": "/"}},
                        {"name": "storage", "persistentVolumeClaim": {"claimName": "db"}}])
    assert unsupported_reason(pod, lambda claim: ("pv-1", "ebs.csi.aws.com")) == (
        P + "volumes not supported: h is of an unsupported volume Type, storage not supported because: "
            "PVC db bound to invalid PV pv-1 with CSI Driver: ebs.csi.aws.com"
    )


@pytest.mark.parametrize(
    ("metadata", "expected"),
    [
        ({"ownerReferences": [{"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "kube-proxy"}]}, True),
        ({"ownerReferences": [{"kind": "ReplicaSet", "name": "web-5d9c"}]}, False),
        ({"ownerReferences": [{"kind": "Job", "name": "busybox1"}]}, False),
        ({"name": "bare"}, False),
        ({}, False),
    ],
    ids=["owned by DaemonSet", "owned by ReplicaSet", "owned by Job", "bare pod", "no metadata"],
)
def test_is_daemonset_pod(metadata: dict[str, Any], expected: bool) -> None:
    assert is_daemonset_pod(metadata) is expected
