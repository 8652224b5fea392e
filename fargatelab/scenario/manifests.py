"""The workshop's manifests as the documents give them, and as this run applies them."""

from __future__ import annotations

import copy
import os
import re
from pathlib import Path
from typing import Any, Callable

import yaml

from ..eks.facts import RUN_ID_LABEL
from ..errors import ExitCode, HarnessError

__all__ = ["MANIFESTS", "ALB_TAGS_ANNOTATION", "dump_all", "load", "localise"]

# FARGATE_LABS_MANIFESTS points the labs at another copy of the manifests (to prove a broken fact fails).
MANIFESTS = Path(os.environ.get("FARGATE_LABS_MANIFESTS")
                 or Path(__file__).resolve().parents[2] / "fixtures" / "manifests")
ALB_TAGS_ANNOTATION = "alb.ingress.kubernetes.io/tags"


#: strings PyYAML writes bare although kubectl (YAML 1.2) reads them as numbers: ``1e5``, ``.5``, ``0x1f``
_NUMBER_TO_KUBECTL = re.compile(r"^[-+]?(\.[0-9]+|[0-9]+\.?[0-9]*)([eE][-+]?[0-9]+)?$|^0[xo][0-9a-fA-F]+$")


class _Dumper(yaml.SafeDumper):
    pass


def _string(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "'" if _NUMBER_TO_KUBECTL.match(value) else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _string)


def dump_all(docs: list[dict[str, Any]]) -> str:
    """The documents as YAML that kubectl reads back as written: a label value like a run id ``4e123456`` stays
    a string (PyYAML leaves it bare, and kubectl would read a number).

    >>> print(dump_all([{"metadata": {"labels": {"fargate-labs/run-id": "4e123456", "app": "web"}}}]), end="")
    metadata:
      labels:
        app: web
        fargate-labs/run-id: '4e123456'
    """
    return yaml.dump_all(docs, Dumper=_Dumper)


def load(manifest: str) -> list[dict[str, Any]]:
    """The documents of ``fixtures/manifests/<manifest>``; a missing or broken file is bad input, in one line."""
    path = MANIFESTS / manifest
    try:
        return [d for d in yaml.safe_load_all(path.read_text()) if d]
    except FileNotFoundError:
        raise HarnessError(f"manifest {path} does not exist", ExitCode.BAD_INPUT) from None
    except yaml.YAMLError as exc:
        raise HarnessError(f"manifest {path} is not valid YAML: {str(exc).splitlines()[0]}",
                           ExitCode.BAD_INPUT) from None


def localise(docs: list[dict[str, Any]], namespace_for: Callable[[str], str], run_id: str,
             replay: bool, namespace: str | None = None) -> list[dict[str, Any]]:
    """Copies of ``docs`` with their namespaces renamed for this run and the run id label added.

    ``namespace`` (a documented name or key) puts every namespaced object, and every Namespace, there.

    >>> docs = [{"kind": "Namespace", "metadata": {"name": "game"}},
    ...         {"kind": "Service", "metadata": {"name": "s", "namespace": "game"}}]
    >>> [d["metadata"].get("namespace", d["metadata"]["name"])
    ...  for d in localise(docs, lambda ns: ns + "-r1", "r1", True, namespace="game-x")]
    ['game-x-r1', 'game-x-r1']
    """
    out = []
    for doc in copy.deepcopy(docs):
        meta = doc.setdefault("metadata", {})
        meta.setdefault("labels", {})[RUN_ID_LABEL] = run_id
        if doc.get("kind") == "Namespace":
            meta["name"] = namespace_for(namespace or meta["name"])
        elif meta.get("namespace"):
            meta["namespace"] = namespace_for(namespace or meta["namespace"])
        if doc.get("kind") == "Ingress" and replay:
            # The load balancer controller tags the ALB and its target groups with these.
            annotations = meta.setdefault("annotations", {})
            tags = [t for t in str(annotations.get(ALB_TAGS_ANNOTATION, "")).split(",")
                    if t.strip() and not t.strip().startswith(RUN_ID_LABEL + "=")]
            annotations[ALB_TAGS_ANNOTATION] = ",".join([*tags, f"{RUN_ID_LABEL}={run_id}"])
        out.append(doc)
    return out
