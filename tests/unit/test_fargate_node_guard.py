"""The environment's guard for pods that reach a Fargate node's kubelet without the fargate-scheduler."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

from fargatelab.emulator.webhook import WebhookServer

NODE = "fargate-ip-10-11-84-213.ap-northeast-2.compute.internal"
PRIVILEGED = {"containers": [{"name": "c", "securityContext": {"privileged": True}}]}
PLAIN = {"containers": [{"name": "c"}]}


def _review(obj: dict[str, Any], pods: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    server = SimpleNamespace(read_pod=lambda namespace, name: (pods or {})[f"{namespace}/{name}"])
    request = {"uid": "u1", "namespace": "default", "name": obj["metadata"]["name"], "object": obj}
    return WebhookServer.guard_fargate_node(server, request)["response"]  # type: ignore[arg-type]


def test_a_privileged_pod_named_onto_a_fargate_node_is_refused_with_the_schedulers_reason() -> None:
    response = _review({"kind": "Pod", "metadata": {"name": "p"}, "spec": {**PRIVILEGED, "nodeName": NODE}})
    assert response["allowed"] is False
    assert response["status"]["message"] == (
        f"Pod not supported on Fargate: invalid SecurityContext fields: Privileged (bound to Fargate node {NODE} "
        "without the fargate-scheduler)")


def test_a_binding_is_judged_by_the_pod_it_binds() -> None:
    binding = {"kind": "Binding", "metadata": {"name": "p"}, "target": {"kind": "Node", "name": NODE}}
    refused = _review(binding, {"default/p": {"spec": {**PRIVILEGED, "hostNetwork": True}}})
    assert refused["allowed"] is False and "fields not supported: HostNetwork" in refused["status"]["message"]
    assert _review(binding, {"default/p": {"spec": PLAIN}})["allowed"] is True


def test_pods_fargate_can_run_and_pods_for_other_nodes_pass() -> None:
    assert _review({"kind": "Pod", "metadata": {"name": "p"}, "spec": {**PLAIN, "nodeName": NODE}})["allowed"]
    other = {"kind": "Pod", "metadata": {"name": "p"}, "spec": {**PRIVILEGED, "nodeName": "kind-worker"}}
    assert _review(other)["allowed"] is True
    assert json.dumps(_review(other)).count("status") == 0
    # the kind backend's own nodes are named after the run (fargate-labs-<run id>-worker): no Fargate nodes
    kind_node = {"kind": "Pod", "metadata": {"name": "p"}, "spec": {**PRIVILEGED, "nodeName": "fargate-labs-ab12-worker"}}
    assert _review(kind_node)["allowed"] is True


def test_the_three_webhooks_are_registered_and_the_guard_fails_closed_only_for_fargate_nodes() -> None:
    from fargatelab.emulator.webhook import FARGATE_NODE_GUARD_NAME, MUTATION_WEBHOOK_NAME, register_webhooks

    created: list[dict[str, Any]] = []

    class Missing(Exception):
        status = 404

    def absent(name: str) -> None:
        raise Missing(name)

    admission = SimpleNamespace(read_mutating_webhook_configuration=absent,
                                read_validating_webhook_configuration=absent,
                                create_mutating_webhook_configuration=created.append,
                                create_validating_webhook_configuration=created.append,
                                replace_mutating_webhook_configuration=None,
                                replace_validating_webhook_configuration=None)
    register_webhooks(SimpleNamespace(admission=admission), "https://127.0.0.1:1", b"ca", "r1")  # type: ignore[arg-type]
    by_name = {c["metadata"]["name"]: c["webhooks"][0] for c in created}
    assert len(by_name) == 3 and by_name[MUTATION_WEBHOOK_NAME]["failurePolicy"] == "Ignore"
    guard = by_name[FARGATE_NODE_GUARD_NAME]
    assert guard["failurePolicy"] == "Fail" and guard["rules"][0]["resources"] == ["pods", "pods/binding"]
    assert "object.spec.nodeName.startsWith('fargate-ip-')" in guard["matchConditions"][0]["expression"]
    assert guard["clientConfig"]["url"] == "https://127.0.0.1:1/validate/fargate-node"
