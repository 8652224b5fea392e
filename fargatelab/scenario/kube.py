"""The scenarios' view of a cluster: documented commands through real kubectl, reads through the API.

Reads return plain dicts in the Kubernetes JSON shape, the same shape the manifests have, so a
scenario compares what it applied with what the cluster holds without translating field names.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import time
from dataclasses import dataclass
from typing import Any, Callable

from kubernetes import client

from ..errors import ExitCode, HarnessError
from ..kube_client import client_configuration
from .failures import KubectlFailed

__all__ = ["Kube", "CommandResult"]


@dataclass(frozen=True)
class CommandResult:
    command: str
    returncode: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0


class Kube:
    def __init__(self, kubeconfig: str, kubectl: str = "kubectl",
                 liveness: Callable[[], str | None] | None = None) -> None:
        if not os.path.isfile(kubeconfig):
            raise HarnessError(
                f"kubeconfig {kubeconfig} does not exist: run `fargate-lab up` (local backend), "
                "or point KUBECONFIG at your cluster's",
                ExitCode.BAD_INPUT,
            )
        self.kubeconfig = kubeconfig
        #: names a dead component of the environment, so a blocking command stops at once
        self.liveness = liveness
        self.kubectl_path = kubectl
        self.api_client = client.ApiClient(client_configuration(kubeconfig))
        self.core = client.CoreV1Api(self.api_client)
        self.apps = client.AppsV1Api(self.api_client)
        self.batch = client.BatchV1Api(self.api_client)
        self.custom = client.CustomObjectsApi(self.api_client)

    # --- documented commands ------------------------------------------------------------------

    def kubectl(self, *args: str, stdin: str | None = None, check: bool = True, timeout: float = 120) -> CommandResult:
        """Run kubectl as a student would type it; ``check`` raises with stderr on failure.

        A command that blocks (``rollout status``, ``delete --wait``) is stopped as soon as the
        environment loses a component, instead of running into its timeout.
        """
        from .wait import ComponentDied

        command = shlex.join(["kubectl", *args])
        # Its own session: the terminal's Ctrl-C reaches the harness, which decides (a cleanup's kubectl
        # finishes; a step's is stopped below), instead of killing kubectl halfway through a delete.
        proc = subprocess.Popen([self.kubectl_path, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=dict(os.environ, KUBECONFIG=self.kubeconfig),
                                start_new_session=True)
        deadline = time.monotonic() + timeout
        pending_input = stdin
        while True:
            try:
                out, err = proc.communicate(input=pending_input, timeout=0.5)
                break
            except BaseException as exc:
                if not isinstance(exc, subprocess.TimeoutExpired):
                    proc.kill()
                    proc.communicate()
                    raise
                pending_input = None  # communicate() already sent it
                dead = self.liveness() if self.liveness else None
                if dead or time.monotonic() > deadline:
                    proc.kill()
                    proc.communicate()
                    if dead:
                        raise ComponentDied(f"{dead} died while `{command}` was running") from None
                    raise subprocess.TimeoutExpired(command, timeout) from None
        result = CommandResult(command, proc.returncode, out, err)
        if check and not result.ok:
            raise KubectlFailed(result.command, proc.returncode, err)
        return result

    def can_i(self, verb: str, resource: str, namespace: str) -> bool:
        """``kubectl auth can-i``: whether this kubeconfig's identity may ``verb`` ``resource`` (``pods/exec``)."""
        answer = self.kubectl("auth", "can-i", verb, resource, "-n", namespace, check=False)
        if answer.stdout.strip() not in ("yes", "no"):
            raise KubectlFailed(answer.command, answer.returncode, "answered neither yes nor no: " + answer.stderr)
        return answer.stdout.strip() == "yes"

    # --- reads --------------------------------------------------------------------------------

    def get(self, path: str, **query: str) -> dict[str, Any]:
        """GET an API path (``/api/v1/namespaces/x/pods``) as a dict; 404 raises ``LookupError``."""
        try:
            resp = self.api_client.call_api(path, "GET", query_params=list(query.items()),
                                            auth_settings=["BearerToken"], _preload_content=False,
                                            _return_http_data_only=True)
        except client.ApiException as exc:
            if exc.status == 404:
                raise LookupError(path) from None
            raise
        data: dict[str, Any] = json.loads(resp.data)
        return data

    def exists(self, path: str) -> bool:
        try:
            self.get(path)
        except LookupError:
            return False
        return True

    def pods(self, namespace: str, selector: str = "") -> list[dict[str, Any]]:
        query = {"labelSelector": selector} if selector else {}
        items: list[dict[str, Any]] = self.get(f"/api/v1/namespaces/{namespace}/pods", **query)["items"]
        return items

    def live_pods(self, namespace: str, selector: str = "") -> list[dict[str, Any]]:
        """Pods not being deleted: the ones a Deployment or a step still counts."""
        return [p for p in self.pods(namespace, selector) if not p["metadata"].get("deletionTimestamp")]

    def pod(self, namespace: str, name: str) -> dict[str, Any]:
        return self.get(f"/api/v1/namespaces/{namespace}/pods/{name}")

    def nodes(self, selector: str = "") -> list[dict[str, Any]]:
        query = {"labelSelector": selector} if selector else {}
        items: list[dict[str, Any]] = self.get("/api/v1/nodes", **query)["items"]
        return items

    def fargate_nodes(self) -> list[dict[str, Any]]:
        return self.nodes("eks.amazonaws.com/compute-type=fargate")

    def fargate_node_of(self, pod: dict[str, Any], nodes: list[dict[str, Any]] | None = None) -> dict[str, Any] | None:
        """The pod's Fargate node (of ``nodes``, else of the cluster's Fargate nodes now); None if it has none.

        That is the node the pod is bound to or, where the pods share a real node (kind's hosted
        placement), the shadow Fargate node that carries the pod's address.
        """
        nodes = self.fargate_nodes() if nodes is None else nodes
        bound = pod["spec"].get("nodeName")
        address = (pod.get("status") or {}).get("podIP")
        for node in nodes:
            if node["metadata"]["name"] == bound:
                return node
        for node in nodes:
            if address and any(a.get("type") == "InternalIP" and a.get("address") == address
                               for a in (node.get("status") or {}).get("addresses") or []):
                return node
        return None

    def fargate_node_name(self, pod: dict[str, Any], nodes: list[dict[str, Any]] | None = None) -> str | None:
        """The name of :meth:`fargate_node_of`; None if the pod has no Fargate node."""
        node = self.fargate_node_of(pod, nodes)
        return str(node["metadata"]["name"]) if node else None

    def events(self, namespace: str, uid: str | None = None, name: str | None = None) -> list[dict[str, Any]]:
        selectors = [f"involvedObject.uid={uid}"] if uid else []
        if name:
            selectors.append(f"involvedObject.name={name}")
        query = {"fieldSelector": ",".join(selectors)} if selectors else {}
        items: list[dict[str, Any]] = self.get(f"/api/v1/namespaces/{namespace}/events", **query)["items"]
        # resourceVersion orders events as they were written; timestamps have only second precision.
        return sorted(items, key=lambda e: int(e["metadata"].get("resourceVersion") or 0))

    def deployment(self, namespace: str, name: str) -> dict[str, Any]:
        return self.get(f"/apis/apps/v1/namespaces/{namespace}/deployments/{name}")

    def job(self, namespace: str, name: str) -> dict[str, Any]:
        return self.get(f"/apis/batch/v1/namespaces/{namespace}/jobs/{name}")
