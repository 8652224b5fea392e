"""KWOK configuration that plays the Fargate data plane: each Fargate node's kubelet and its one pod.

KWOK manages every node carrying ``eks.amazonaws.com/compute-type`` (Fargate nodes and, for the hosted
placement test, a simulated EC2 worker labelled ``ec2``). The stages here differ from KWOK's stock
ones where Fargate differs:

* a pod on a Fargate node gets ``podIP`` = ``hostIP`` = the node's InternalIP (one ENI per pod);
* a Job's pod completes after the ``sleep N`` of its command (``sleep 10`` takes 10 s), other Job pods
  promptly; pods of other controllers keep running;
* pod start-up takes the timing profile's ``pod_start`` (image pull on a fresh Fargate node).
"""

from __future__ import annotations

import json

from ..rules.timing import Timing

__all__ = ["MANAGED_NODES_SELECTOR", "kwok_configuration", "kwok_command"]

#: real kubelets (the microVM data plane) label their nodes fargate-labs/data-plane=microvm: not KWOK's
MANAGED_NODES_SELECTOR = "eks.amazonaws.com/compute-type,!fargate-labs/data-plane"

# jq over the pod: the seconds of the first `sleep N` in any container's command and args, as a Go
# duration; no output (no sleep) makes KWOK fall back to durationMilliseconds.
_SLEEP_DURATION = (
    '[.spec.containers[] | ((.command // []) + (.args // [])) | join(" ")] | join(" ") '
    '| capture("sleep +(?<s>[0-9]+)") | .s + "s"'
)

_ON_FARGATE_NODE = '(.spec.nodeName // "") | startswith("fargate-ip-")'


def _pod_running_status(pod_ip_expr: str) -> str:
    return f"""\
{{{{ $now := Now }}}}
conditions:
- {{lastTransitionTime: {{{{ $now | Quote }}}}, status: "True", type: PodReadyToStartContainers}}
- {{lastTransitionTime: {{{{ $now | Quote }}}}, status: "True", type: Initialized}}
- {{lastTransitionTime: {{{{ $now | Quote }}}}, status: "True", type: Ready}}
- {{lastTransitionTime: {{{{ $now | Quote }}}}, status: "True", type: ContainersReady}}
containerStatuses:
{{{{ range .spec.containers }}}}
- image: {{{{ .image | Quote }}}}
  imageID: {{{{ printf "%s@sha256:0000000000000000000000000000000000000000000000000000000000000000" .image | Quote }}}}
  name: {{{{ .name | Quote }}}}
  ready: true
  started: true
  restartCount: 0
  state:
    running:
      startedAt: {{{{ $now | Quote }}}}
{{{{ end }}}}
initContainerStatuses:
{{{{ range .spec.initContainers }}}}
- image: {{{{ .image | Quote }}}}
  name: {{{{ .name | Quote }}}}
  ready: true
  restartCount: 0
  state:
    terminated: {{exitCode: 0, reason: Completed, startedAt: {{{{ $now | Quote }}}}, finishedAt: {{{{ $now | Quote }}}}}}
{{{{ end }}}}
{{{{ $hostIP := NodeIPWith .spec.nodeName }}}}
hostIP: {{{{ $hostIP | Quote }}}}
hostIPs: [{{ip: {{{{ $hostIP | Quote }}}}}}]
{{{{ $podIP := {pod_ip_expr} }}}}
podIP: {{{{ $podIP | Quote }}}}
podIPs: [{{ip: {{{{ $podIP | Quote }}}}}}]
phase: Running
startTime: {{{{ $now | Quote }}}}
"""


_POD_COMPLETED_STATUS = """\
{{ $now := Now }}
conditions:
- {lastTransitionTime: {{ $now | Quote }}, status: "False", type: Ready, reason: PodCompleted}
- {lastTransitionTime: {{ $now | Quote }}, status: "False", type: ContainersReady, reason: PodCompleted}
- {lastTransitionTime: {{ $now | Quote }}, status: "False", type: PodReadyToStartContainers}
containerStatuses:
{{ range .spec.containers }}
- image: {{ .image | Quote }}
  name: {{ .name | Quote }}
  ready: false
  started: false
  restartCount: 0
  state:
    terminated: {exitCode: 0, reason: Completed, startedAt: {{ $now | Quote }}, finishedAt: {{ $now | Quote }}}
{{ end }}
phase: Succeeded
"""

_NODE_READY_STATUS = """\
{{ $now := Now }}
{{ $since := or .metadata.creationTimestamp $now }}
conditions:
- {type: MemoryPressure, status: "False", reason: KubeletHasSufficientMemory, message: "kubelet has sufficient memory available", lastHeartbeatTime: {{ $now | Quote }}, lastTransitionTime: {{ $since | Quote }}}
- {type: DiskPressure, status: "False", reason: KubeletHasNoDiskPressure, message: "kubelet has no disk pressure", lastHeartbeatTime: {{ $now | Quote }}, lastTransitionTime: {{ $since | Quote }}}
- {type: PIDPressure, status: "False", reason: KubeletHasSufficientPID, message: "kubelet has sufficient PID available", lastHeartbeatTime: {{ $now | Quote }}, lastTransitionTime: {{ $since | Quote }}}
- {type: Ready, status: "True", reason: KubeletReady, message: "kubelet is posting ready status", lastHeartbeatTime: {{ $now | Quote }}, lastTransitionTime: {{ $now | Quote }}}
phase: Running
"""


def _stage(name: str, kind: str, selector: list[dict[str, object]], nxt: dict[str, object],
           delay: dict[str, object] | None = None) -> dict[str, object]:
    spec: dict[str, object] = {
        "resourceRef": {"apiGroup": "v1", "kind": kind},
        "selector": {"matchExpressions": selector},
        "next": nxt,
    }
    if delay:
        spec["delay"] = delay
    return {"apiVersion": "kwok.x-k8s.io/v1alpha1", "kind": "Stage", "metadata": {"name": name}, "spec": spec}


def _expr(key: str, operator: str, *values: str) -> dict[str, object]:
    out: dict[str, object] = {"key": key, "operator": operator}
    if values:
        out["values"] = list(values)
    return out


def _stages(timing: Timing) -> list[dict[str, object]]:
    not_deleted = _expr(".metadata.deletionTimestamp", "DoesNotExist")
    pending = _expr(".status.phase", "In", "Pending")
    start_delay: dict[str, object] = {"durationMilliseconds": int(timing.pod_start * 1000)}
    return [
        _stage("fargate-node-ready", "Node",
               [_expr('.status.conditions.[] | select( .type == "Ready" ) | .status', "NotIn", "True")],
               {"statusTemplate": _NODE_READY_STATUS}),
        _stage("fargate-pod-running", "Pod",
               [not_deleted, pending, _expr(_ON_FARGATE_NODE, "In", "true")],
               {"statusTemplate": _pod_running_status("$hostIP")}, start_delay),
        # Hosted placement: a pod on a shared worker gets an address of its own.
        _stage("worker-pod-running", "Pod",
               [not_deleted, pending, _expr(_ON_FARGATE_NODE, "In", "false")],
               {"statusTemplate": _pod_running_status(
                   'PodIPWith .spec.nodeName false .metadata.uid .metadata.name .metadata.namespace')}),
        _stage("job-pod-completed", "Pod",
               [not_deleted, _expr(".status.phase", "In", "Running"),
                _expr(".metadata.ownerReferences.[].kind", "In", "Job")],
               {"statusTemplate": _POD_COMPLETED_STATUS},
               {"durationMilliseconds": 500, "durationFrom": {"expressionFrom": _SLEEP_DURATION}}),
        _stage("pod-removed", "Pod", [_expr(".metadata.deletionTimestamp", "Exists")], {"delete": True}),
    ]


def kwok_configuration(timing: Timing) -> str:
    """The multi-document YAML given to ``kwok --config`` (JSON is valid YAML, and needs no dumper)."""
    docs: list[dict[str, object]] = [{
        "apiVersion": "config.kwok.x-k8s.io/v1alpha1",
        "kind": "KwokConfiguration",
        "options": {
            # Worker pods of the hosted-placement test draw addresses from the private subnets' range.
            "cidr": "10.11.112.0/20",
            "nodeLeaseDurationSeconds": 40,
            "nodeLeaseParallelism": 4,
            "podPlayStageParallelism": 4,
            "nodePlayStageParallelism": 4,
            "podsOnNodeSyncParallelism": 4,
        },
    }]
    docs += _stages(timing)
    return "\n---\n".join(json.dumps(d, indent=1) for d in docs) + "\n"


def kwok_command(kwok: str, kubeconfig: str, config_path: str) -> list[str]:
    return [
        kwok,
        f"--kubeconfig={kubeconfig}",
        f"--config={config_path}",
        f"--manage-nodes-with-label-selector={MANAGED_NODES_SELECTOR}",
        "--manage-all-nodes=false",
        "--server-address=",
    ]
