"""A lab scenario's working context: documented names, documented steps, waits, cleanup, diagnostics.

In replay mode the names of namespaces and profiles carry the run id (``study-aews`` becomes
``study-aews-<run id>``), so parallel runs never meet; check mode uses the documented names as they
are, because it reads what a student made by following the documents.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import hashlib
import fcntl
import json
import os
import signal
import sys
import threading
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import yaml

from . import conditions as cond
from . import wait
from ..eks.facts import RUN_ID_LABEL
from ..eks.retry import retry_transient
from ..errors import ExitCode, HarnessError
from .handle import ClusterHandle
from .failures import FactMismatch, Missing
from .kube import Kube
from ..rules.timing import Timing

__all__ = ["Lab", "MANIFESTS", "RUN_ID_LABEL", "expect"]

# FARGATE_LABS_MANIFESTS points the labs at another copy of the manifests (to prove a broken fact fails).
MANIFESTS = Path(os.environ.get("FARGATE_LABS_MANIFESTS")
                 or Path(__file__).resolve().parent.parent / "fixtures" / "manifests")
ALB_TAGS_ANNOTATION = "alb.ingress.kubernetes.io/tags"


def expect(fact: str, actual: Any, expected: Any) -> None:
    """Assert one documented fact, naming it, with expected vs actual."""
    if actual != expected:
        raise FactMismatch(fact, expected, actual)


class Lab:
    def __init__(self, cluster: ClusterHandle, kube: Kube, aws: Callable[[str], Any], timing: Timing,
                 mode: str = "replay", liveness: wait.Liveness | None = None,
                 record: list[tuple[str, object]] | None = None, settle: list[str] | None = None) -> None:
        self.cluster = cluster
        self.kube = kube
        self.aws = aws
        self.timing = timing
        self.mode = mode
        self.liveness = liveness
        self.record = record if record is not None else []
        self._cleanups: list[tuple[str, Callable[[], None]]] = []
        self.namespaces: list[str] = []
        #: namespaces whose deletion this Lab's cleanup holds
        self._deletes: set[str] = set()
        #: where namespaces only this run can use are handed over once their deletion has started, to be
        #: seen gone at the end of the run, all together (None: wait for each one here)
        self.settle = settle

    # --- names --------------------------------------------------------------------------------

    @property
    def replay(self) -> bool:
        return self.mode == "replay"

    def name(self, documented: str) -> str:
        return f"{documented}-{self.cluster.run_id}" if self.replay else documented

    # --- steps --------------------------------------------------------------------------------

    def step(self, documented: str, executed: str | None = None) -> None:
        """Record a documented command (and what was really run, where it differs) in the report."""
        self.record.append(("step", documented if executed in (None, documented) else f"{documented}  =>  {executed}"))

    def defect(self, text: str) -> None:
        """Record a documentation defect: a documented command that does not work as written."""
        self.record.append(("documentation defect", text))

    def wait(self, condition: wait.Condition, timeout: float, interval: float = 0.5) -> str:
        return wait.for_(condition, timeout, interval, self.liveness)

    # --- cleanup ------------------------------------------------------------------------------

    def on_cleanup(self, what: str, action: Callable[[], None]) -> None:
        self._cleanups.append((what, action))

    def cleanup(self) -> None:
        """Undo what the scenario created, newest first, each waiting until it is really gone.

        Ctrl-C does not cut cleanup short (that is how resources leak): an interrupt while it runs is
        held back, the action it hit is tried once more, and the interrupt is raised when all is undone.
        """
        errors = []
        with _sigint_deferred() as held:
            while self._cleanups:
                what, action = self._cleanups.pop()
                for attempt in (1, 2):
                    try:
                        action()
                        break
                    except KeyboardInterrupt:
                        held.append(what)
                    except Exception as exc:
                        errors.append(f"{what}: {exc}")
                        break
        if held:
            raise KeyboardInterrupt(f"interrupted during cleanup (finished anyway: {', '.join(held)})")
        if errors:
            raise AssertionError("cleanup failed: " + "; ".join(errors))

    # --- namespaces and manifests -------------------------------------------------------------

    def namespace(self, documented: str) -> str:
        """The lab's namespace for ``documented``: created (labelled with the run id) in replay mode."""
        name = self.name(documented)
        if name not in self.namespaces:
            self.namespaces.append(name)
        if self.replay and not self.kube.exists(f"/api/v1/namespaces/{name}"):
            self.on_cleanup(f"namespace {name}", lambda: self._delete_namespace(name))
            self._create_namespace(name)
        return name

    def profiled_namespace(self, key: str) -> str:
        """Replay mode: ``<key>-<run id>``, labelled with the run id, with a Fargate profile of the same name.

        Cleanup removes both side by side: it starts deleting the namespace, deletes the profile meanwhile,
        and waits until the namespace is gone last.
        """
        name = self.name(key)
        # Registered first, so it runs last.
        self.on_cleanup(f"namespace {name} gone", lambda: self._wait_namespace_gone(name))
        self.create_profile(key, [{"namespace": name}])
        self.on_cleanup(f"namespace {name}", lambda: self._start_deleting_namespace(name))
        self._create_namespace(name)
        self.namespaces.append(name)
        return name

    def _create_namespace(self, name: str) -> None:
        """Create ``name`` labelled with the run id; its deletion is already registered for cleanup."""
        self._deletes.add(name)
        self.kube.kubectl("apply", "-f", "-", stdin=json.dumps({
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": name, "labels": {RUN_ID_LABEL: self.cluster.run_id}}}))

    def _delete_namespace(self, name: str) -> None:
        self._start_deleting_namespace(name)
        self._wait_namespace_gone(name)

    def _start_deleting_namespace(self, name: str) -> None:
        self.kube.kubectl("delete", "namespace", name, "--wait=false", "--ignore-not-found", check=False)

    def _wait_namespace_gone(self, name: str) -> None:
        if self.settle is not None and self._run_owned(name):
            # Nothing else will use this name, so nothing has to wait for it to be free: the namespace
            # controller takes 5 s or more per namespace, and the run waits for all of them at once.
            self.settle.append(name)
            return
        self.wait(cond.ResourceDeleted(self.kube, f"/api/v1/namespaces/{name}"), timeout=120)

    def _run_owned(self, namespace: str) -> bool:
        return self.replay and namespace.endswith(f"-{self.cluster.run_id}")

    def load(self, manifest: str) -> list[dict[str, Any]]:
        path = MANIFESTS / manifest
        try:
            docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
        except FileNotFoundError:
            raise HarnessError(f"manifest {path} does not exist", ExitCode.BAD_INPUT) from None
        except yaml.YAMLError as exc:
            raise HarnessError(f"manifest {path} is not valid YAML: {str(exc).splitlines()[0]}",
                               ExitCode.BAD_INPUT) from None
        return docs

    def localise(self, docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The documents with their namespaces renamed for this run and the run id label added."""
        out = []
        for doc in copy.deepcopy(docs):
            meta = doc.setdefault("metadata", {})
            meta.setdefault("labels", {})[RUN_ID_LABEL] = self.cluster.run_id
            if doc.get("kind") == "Namespace":
                meta["name"] = self.namespace_for(meta["name"])
            elif meta.get("namespace"):
                meta["namespace"] = self.namespace_for(meta["namespace"])
            if doc.get("kind") == "Ingress" and self.replay:
                # The load balancer controller tags the ALB and its target groups with these.
                annotations = meta.setdefault("annotations", {})
                tags = [t for t in str(annotations.get(ALB_TAGS_ANNOTATION, "")).split(",")
                        if t.strip() and not t.strip().startswith(RUN_ID_LABEL + "=")]
                annotations[ALB_TAGS_ANNOTATION] = ",".join([*tags, f"{RUN_ID_LABEL}={self.cluster.run_id}"])
            out.append(doc)
        return out

    def namespace_for(self, documented: str) -> str:
        name = self.name(documented)
        if name not in self.namespaces:
            self.namespaces.append(name)
        return name

    def apply(self, manifest: str, documented_command: str | None = None,
              docs: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
        """``kubectl apply -f <manifest>`` with this run's names; the objects are deleted on cleanup."""
        documented = documented_command or f"kubectl apply -f {manifest}"
        original = docs if docs is not None else self.load(manifest)
        localised = self.localise(original)
        self._require_owned_namespaces(manifest, original, localised)
        with tempfile.NamedTemporaryFile("w", suffix=f"-{Path(manifest).name}", delete=False) as f:
            yaml.safe_dump_all(localised, f)
        self.step(documented, f"kubectl apply -f {manifest} (namespaces suffixed with the run id)")
        for doc in localised:
            if doc.get("kind") == "Namespace":
                name = doc["metadata"]["name"]
                self.on_cleanup(f"namespace {name}", functools.partial(self._delete_namespace, name))
                self._deletes.add(name)
        objects = [d for d in localised if d.get("kind") != "Namespace"]
        self.on_cleanup(f"objects of {manifest}", lambda: self._delete_objects(objects))
        try:
            self.kube.kubectl("apply", "-f", f.name)
        finally:
            Path(f.name).unlink(missing_ok=True)
        return localised

    def _require_owned_namespaces(self, manifest: str, original: list[dict[str, Any]],
                                  localised: list[dict[str, Any]]) -> None:
        """Refuse, before anything is created, a manifest that writes into a namespace this run does not own."""
        declared = {d["metadata"]["name"] for d in localised if d.get("kind") == "Namespace"}
        checked: dict[str, bool] = {}
        for doc, before in zip(localised, original):
            ns = doc["metadata"].get("namespace")
            if not ns or ns in declared:
                continue
            if ns not in checked:
                try:
                    labels = self.kube.get(f"/api/v1/namespaces/{ns}")["metadata"].get("labels") or {}
                except LookupError:
                    labels = {}
                checked[ns] = labels.get(RUN_ID_LABEL) == self.cluster.run_id
            if not checked[ns]:
                raise HarnessError(
                    f"manifest {manifest} puts {doc.get('kind')} {doc['metadata'].get('name')} in namespace "
                    f"{before['metadata']['namespace']!r}, which this run does not own: create it first with "
                    f"lab.namespace({before['metadata']['namespace']!r}), or add the Namespace to the manifest",
                    ExitCode.BAD_INPUT)

    def ensure(self, manifest: str, documented_command: str | None = None) -> list[dict[str, Any]]:
        """Replay mode: apply the manifest. Check mode: require that every object in it exists.

        Check mode never writes; a missing object fails the step naming it and the documented
        command that would create it.
        """
        if self.replay:
            return self.apply(manifest, documented_command)
        docs = self.localise(self.load(manifest))
        for doc in docs:
            meta = doc["metadata"]
            args = ["get", doc["kind"].lower(), meta["name"], "-o", "name"]
            if meta.get("namespace"):
                args += ["-n", meta["namespace"]]
            result = self.kube.kubectl(*args, check=False, timeout=30)
            if not result.ok:
                where = f"{meta['namespace']}/" if meta.get("namespace") else ""
                raise Missing(f"{doc['kind']} {where}{meta['name']}",
                              documented_command or f"kubectl apply -f {manifest}")
        return docs

    def _delete_objects(self, objects: list[dict[str, Any]]) -> None:
        if not objects:
            return
        # Objects inside a namespace this Lab deletes next go with it: no need to watch each one go.
        wait = not all(d["metadata"].get("namespace") in self._deletes for d in objects)
        self.kube.kubectl("delete", "-f", "-", "--ignore-not-found", f"--wait={str(wait).lower()}",
                          "--timeout=120s", check=False, stdin=yaml.safe_dump_all(objects))

    # --- Fargate profiles ---------------------------------------------------------------------

    def create_profile(self, documented: str, selectors: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        """``eksctl create fargateprofile`` as the EKS API call it makes; waits until ACTIVE.

        Profiles are created one at a time per cluster (EKS refuses a second while one is CREATING or
        DELETING), so every worker of the run takes the same lock, and ResourceInUseException left by
        another client is retried with backoff, as is a pod execution role IAM has not propagated yet.
        """
        eks = self.aws("eks")
        name = self.name(documented)
        role = extra.pop("podExecutionRoleArn", None) or self.pod_execution_role()
        args = dict(clusterName=self.cluster.cluster_name, fargateProfileName=name, selectors=selectors,
                    podExecutionRoleArn=role, tags={RUN_ID_LABEL: self.cluster.run_id}, **extra)
        # Registered before the call: an interrupt while the request is in flight must not leak it.
        self.on_cleanup(f"Fargate profile {name}", lambda: self.delete_profile(name))
        with self.cluster_lock("profiles"):
            retry_transient(lambda: eks.create_fargate_profile(**args))
            self.wait(cond.ProfileStatus(eks, self.cluster.cluster_name, name, "ACTIVE"),
                      self.timing.profile_active_timeout, interval=self._profile_poll)
        profile: dict[str, Any] = eks.describe_fargate_profile(
            clusterName=self.cluster.cluster_name, fargateProfileName=name)["fargateProfile"]
        return profile

    def delete_profile(self, name: str) -> None:
        eks = self.aws("eks")
        with self.cluster_lock("profiles"):
            try:
                retry_transient(lambda: eks.delete_fargate_profile(clusterName=self.cluster.cluster_name,
                                                                    fargateProfileName=name))
            except eks.exceptions.ResourceNotFoundException:
                return
            self.wait(cond.ProfileDeleted(eks, self.cluster.cluster_name, name),
                      self.timing.profile_delete + 120, interval=self._profile_poll)

    @property
    def _profile_poll(self) -> float:
        # Others queue behind the profile lock while this one polls: poll finely when transitions are short.
        return min(2.0, max(0.1, self.timing.profile_create / 5))

    def pod_execution_role(self) -> str:
        given = self.cluster.extra.get("pod_execution_role_arn")
        if given:  # the backend's (eks: --pod-execution-role-arn, or the role made for the run)
            return given
        iam = self.aws("iam")
        roles = [r["Arn"] for r in iam.list_roles()["Roles"] if "FargatePodExecutionRole" in r["RoleName"]]
        if not roles:
            raise HarnessError("no Fargate pod execution role in the account: pass --pod-execution-role-arn",
                               ExitCode.AWS)
        return roles[0]

    # --- cluster-wide locks -------------------------------------------------------------------

    @contextlib.contextmanager
    def cluster_lock(self, topic: str, shared: bool = False) -> Iterator[None]:
        """Hold the lock ``topic`` of this cluster, for every process of every run on this machine.

        One lock per cluster: environments side by side do not wait for each other. ``profiles`` keeps
        EKS's one-profile-in-transition rule (it is EKS's, per cluster, whoever asks); a lab module that
        changes something cluster-wide (kube-system's profile, aws-observability) takes one of its own,
        and ``shared=True`` holds it beside other shared holders, only apart from an exclusive one.
        """
        where = hashlib.sha256(f"{self.cluster.aws_endpoint}|{self.cluster.region}|{self.cluster.cluster_name}"
                               .encode()).hexdigest()[:12]
        path = Path(tempfile.gettempdir()) / f"fargate-labs-{topic}-{where}.lock"
        with open(path, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    # --- diagnostics --------------------------------------------------------------------------

    def diagnostics(self) -> list[tuple[str, str]]:
        """Events, describe and logs of every namespace the scenario touched (Chainsaw-style)."""
        out = []
        for ns in self.namespaces:
            for title, args in (
                (f"events in {ns}", ("get", "events", "-n", ns, "--sort-by=.metadata.creationTimestamp")),
                (f"describe pods in {ns}", ("describe", "pods", "-n", ns)),
                (f"logs in {ns}", ("logs", "-n", ns, "--all-containers", "--prefix", "--tail=50",
                                   "-l", RUN_ID_LABEL + "=" + self.cluster.run_id)),
            ):
                try:
                    result = self.kube.kubectl(*args, check=False, timeout=20)
                    out.append((title, (result.stdout or result.stderr).strip() or "(empty)"))
                except Exception as exc:
                    out.append((title, f"could not collect: {exc}"))
        try:
            nodes = self.kube.kubectl("get", "nodes", "-o", "wide", check=False, timeout=20)
            out.append(("nodes", nodes.stdout.strip()))
        except Exception as exc:
            out.append(("nodes", f"could not collect: {exc}"))
        return out


@contextlib.contextmanager
def _sigint_deferred() -> Iterator[list[str]]:
    """Hold back SIGINT for the duration; what was interrupted is collected in the yielded list."""
    held: list[str] = []
    if threading.current_thread() is not threading.main_thread():
        yield held
        return

    def hold(_signum: int, _frame: object) -> None:
        held.append("Ctrl-C")
        print("fargate-labs: cleaning up what this step created; it finishes before the run stops",
              file=sys.stderr, flush=True)

    previous = signal.signal(signal.SIGINT, hold)
    try:
        yield held
    finally:
        signal.signal(signal.SIGINT, previous)
