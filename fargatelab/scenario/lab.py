"""A lab scenario's working context: a small facade over the services a step uses.

The step recorder (``step``, ``defect``), the cleanup stack (:class:`~.cleaner.Cleaner`), the namespaces
(:class:`~.namespaces.Namespaces`), Fargate profiles (:class:`~.profiles.Profiles`), cluster locks and
diagnostics. A test's ``lab`` inherits its module's setup: the setup's steps come first in the test's
report, its namespaces are in the test's diagnostics, and its scoped names apply to the test's manifests.

In replay mode the names of namespaces and profiles carry the run id (``study-aews`` becomes
``study-aews-<run id>``), so parallel runs never meet; check mode uses the documented names as they
are, because it reads what a student made by following the documents.
"""

from __future__ import annotations

import contextlib
import functools
import json
from pathlib import Path
from typing import Any, Callable, Iterable


from . import commands, diagnostics, manifests
from . import wait as waits
from .cleaner import Cleaner
from .conditions import Conditions
from .commands import Ran, Tools, run_line, substitute
from .failures import CommandFailed, FactMismatch, Missing
from .handle import ClusterHandle
from .kube import Kube
from .locks import cluster_lock
from .namespaces import Namespaces
from .profiles import Profiles
from ..eks.facts import RUN_ID_LABEL
from ..errors import ExitCode, HarnessError
from ..rules.timing import Timing

__all__ = ["Lab", "expect"]

MANIFESTS = manifests.MANIFESTS


def expect(fact: str, actual: Any, expected: Any) -> None:
    """Assert one documented fact, naming it, with expected vs actual."""
    if actual != expected:
        raise FactMismatch(fact, expected, actual)


class Lab:
    def __init__(self, cluster: ClusterHandle, kube: Kube, aws: Callable[[str], Any], timing: Timing,
                 mode: str = "replay", liveness: waits.Liveness | None = None,
                 record: list[tuple[str, object]] | None = None, settle: list[str] | None = None,
                 scope: str = "", parents: Callable[[], Iterable[Lab]] | None = None,
                 tools: Callable[[], Tools] | None = None) -> None:
        self.cluster = cluster
        #: the real CLIs (eksctl, helm, aws), provisioned on first use
        self._tools = tools or (lambda: Tools(Path(), {}, "no command-line tools were given to this lab"))
        self.kube = kube
        self.aws = aws
        self.timing = timing
        self.mode = mode
        self.liveness = liveness
        #: this Lab's own documented steps, as the report shows them
        self.record = record if record is not None else []
        #: what makes replay names of this lab module's own (``study-aews`` -> ``study-aews-<scope>``)
        self.scope = scope
        self.cleaner = Cleaner()
        # Waits go through the Lab (not a bound method taken now), so whatever waits for the Lab waits for them.
        self._namespaces = Namespaces(kube, cluster.run_id, self.replay, self.cleaner,
                                      lambda c, timeout: self.wait(c, timeout), settle)
        self.profiles = Profiles(cluster, aws, timing, self.cleaner,
                                 lambda c, timeout, interval: self.wait(c, timeout, interval))
        #: conditions bound to this cluster, each with its default timeout from the timing profile
        self.conditions = Conditions(kube, timing)
        self._parents: list[Lab] = []
        self._parent_source = parents

    # --- the setups this Lab inherits -----------------------------------------------------------

    def inherit(self, parent: Lab) -> None:
        """Take ``parent``'s steps, namespaces and scoped names as this Lab's own setup."""
        if parent is not self and parent not in self._parents:
            self._parents.append(parent)

    def parents(self) -> list[Lab]:
        found = list(self._parent_source() if self._parent_source else [])
        return [p for p in found if p is not self] + [p for p in self._parents if p not in found]

    def inherited_steps(self) -> list[tuple[str, object]]:
        """The steps of every setup this Lab inherits, oldest first (each setup's own inheritance first)."""
        steps: list[tuple[str, object]] = []
        for parent in self.parents():
            for step in parent.inherited_steps() + parent.record:
                if step not in steps:
                    steps.append(step)
        return steps

    @property
    def namespaces(self) -> list[str]:
        """Every namespace this Lab and its setups touched."""
        out: list[str] = []
        for parent in self.parents():
            out += [n for n in parent.namespaces if n not in out]
        return out + [n for n in self._namespaces.touched if n not in out]

    def _renames(self) -> dict[str, str]:
        renames: dict[str, str] = {}
        for parent in self.parents():
            renames.update(parent._renames())
        renames.update(self._namespaces.renames)
        return renames

    # --- names --------------------------------------------------------------------------------

    @property
    def replay(self) -> bool:
        return self.mode == "replay"

    def name(self, documented: str) -> str:
        return self._namespaces.name(documented)

    def scoped(self, documented: str) -> str:
        """This lab module's own stand-in for a documented namespace, used by every manifest from now on."""
        return self._namespaces.scoped(documented, self.scope)

    def namespace_for(self, documented: str) -> str:
        return self._namespaces.for_documented(documented, self._renames())

    def watch(self, namespace: str) -> None:
        """Collect ``namespace``'s events, describe and logs if a step fails (kube-system, say)."""
        self._namespaces.touch(namespace)

    # --- steps --------------------------------------------------------------------------------

    def picture(self, png: str, caption: str) -> None:
        """Show ``png`` (what the step saw, a screenshot) beside the step in the run's report."""
        self.record.append(("picture", f"{png}\t{caption}"))

    def step(self, documented: str, executed: str | None = None) -> None:
        """Record a documented command (and what was really run, where it differs) in the report."""
        self.record.append(("step", documented if executed in (None, documented) else f"{documented}  =>  {executed}"))

    def tools(self) -> Tools:
        """The real CLIs this run replays documented lines with (``has``/``why_not`` where it cannot)."""
        return self._tools()

    def run(self, documented: str, names: dict[str, str] | None = None, timeout: float = 300,
            stdin: str | None = None, check: bool = True, added: str = "",
            env: dict[str, str] | None = None) -> Ran:
        """Run a documented command line as written through its real CLI, with this run's names put in for
        the documented ones (``$EKSCLUSTER_NAME`` always) and ``added`` at its end (the run's tag, say); the
        report shows the line, what ran, its exit code and output. ``env`` changes the shell's environment (a
        kubeconfig of the step's own, say). A line that fails fails the step (:class:`CommandFailed`) unless
        ``check`` is off."""
        line = substitute(documented, {"$EKSCLUSTER_NAME": self.cluster.cluster_name, **(names or {})})
        line = f"{line} {added}" if added else line
        shell = commands.environment(self._tools(), self.cluster.kubeconfig, self.cluster.aws_environment(),
                                   self.cluster.cluster_name, self.kube.kubectl_path) | (env or {})
        self.step(documented, line)
        ran = run_line(line, shell, timeout, stdin)
        self.record.append(("ran", ran.record()))
        if check and ran.exit_code != 0:
            raise CommandFailed(line, ran.exit_code, ran.output)
        return ran

    def compared(self, ran: Ran, fact: str, actual: Any, expected: Any) -> None:
        """:func:`expect` one fact of a command's output, noted beside what ran in the report."""
        ran.compared.append(f"{fact}: {actual!r}" + (" (as documented)" if actual == expected
                                                    else f", documented {expected!r}"))
        for i in range(len(self.record) - 1, -1, -1):
            kind, value = self.record[i]
            if kind == "ran" and json.loads(str(value))["command"] == ran.command:
                self.record[i] = ("ran", ran.record())
                break
        expect(fact, actual, expected)

    def defect(self, text: str) -> None:
        """Record a documentation defect: a documented command that does not work as written."""
        self.record.append(("documentation defect", text))

    def wait(self, condition: waits.Condition, timeout: float | None = None, interval: float = 0.5) -> str:
        """Wait until ``condition`` is met: ``timeout`` or the condition's own default."""
        return waits.for_(condition, timeout, interval, self.liveness)

    def live_pods(self, namespace: str, selector: str = "") -> list[dict[str, Any]]:
        """Pods of ``namespace`` not being deleted (what ``kubectl get pods`` settles on)."""
        return self.kube.live_pods(namespace, selector)

    # --- cleanup ------------------------------------------------------------------------------

    def on_cleanup(self, what: str, action: Callable[[], None]) -> None:
        self.cleaner.add(what, action)

    def cleanup(self) -> None:
        """Undo what the scenario created, newest first, each waiting until it is really gone (see Cleaner)."""
        self.cleaner.run()

    # --- namespaces and manifests -------------------------------------------------------------

    def namespace(self, documented: str) -> str:
        """The lab's namespace for ``documented``: created (labelled with the run id) in replay mode."""
        return self._namespaces.ensure(self._renames().get(documented, documented))

    def profiled_namespace(self, key: str) -> str:
        """Replay mode: ``<key>-<run id>``, labelled with the run id, with a Fargate profile of the same name.

        Cleanup removes both side by side: it starts deleting the namespace, deletes the profile meanwhile,
        and waits until the namespace is gone last.
        """
        ns = self._namespaces
        name = self.name(key)
        # Registered first, so it runs last.
        self.on_cleanup(f"namespace {name} gone", lambda: ns.wait_gone(name))
        self.create_profile(key, [{"namespace": name}])
        self.on_cleanup(f"namespace {name}", lambda: ns.start_deleting(name))
        ns.create(name)
        ns.touch(name)
        return name

    def load(self, manifest: str) -> list[dict[str, Any]]:
        return manifests.load(manifest)

    def localise(self, docs: list[dict[str, Any]], namespace: str | None = None) -> list[dict[str, Any]]:
        """The documents with their namespaces renamed for this run and the run id label added."""
        return manifests.localise(docs, self.namespace_for, self.cluster.run_id, self.replay, namespace)

    def apply(self, manifest: str, documented_command: str | None = None,
              docs: list[dict[str, Any]] | None = None, namespace: str | None = None) -> list[dict[str, Any]]:
        """``kubectl apply -f <manifest>`` with this run's names; the objects are deleted on cleanup.

        ``namespace``: put the manifest's objects there instead of their documented namespace.
        """
        documented = documented_command or f"kubectl apply -f {manifest}"
        original = docs if docs is not None else self.load(manifest)
        localised = self.localise(original, namespace)
        self._require_owned_namespaces(manifest, original, localised)
        self.step(documented, f"kubectl apply -f {manifest} (namespaces suffixed with the run id)")
        for doc in localised:
            if doc.get("kind") == "Namespace":
                name = doc["metadata"]["name"]
                self.on_cleanup(f"namespace {name}", functools.partial(self._namespaces.delete, name))
                self._namespaces.deleting.add(name)
        objects = [d for d in localised if d.get("kind") != "Namespace"]
        self.on_cleanup(f"objects of {manifest}", lambda: self._delete_objects(objects))
        # On stdin, not through a file: a run stopped halfway leaves nothing behind in the temporary directory.
        self.kube.kubectl("apply", "-f", "-", stdin=manifests.dump_all(localised))
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
                    f"{before['metadata'].get('namespace')!r}, which this run does not own: create it first with "
                    f"lab.namespace({before['metadata'].get('namespace')!r}), or add the Namespace to the manifest",
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
        wait = not all(d["metadata"].get("namespace") in self._namespaces.deleting for d in objects)
        self.kube.kubectl("delete", "-f", "-", "--ignore-not-found", f"--wait={str(wait).lower()}",
                          "--timeout=120s", check=False, stdin=manifests.dump_all(objects))

    # --- Fargate profiles and locks -------------------------------------------------------------

    def create_profile(self, documented: str, selectors: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        """``eksctl create fargateprofile`` as the EKS API call it makes; waits until ACTIVE."""
        return self.profiles.create(self.name(documented), selectors, **extra)

    def delete_profile(self, name: str) -> None:
        self.profiles.delete(name)

    def pod_execution_role(self) -> str:
        return self.profiles.pod_execution_role()

    def cluster_lock(self, topic: str, shared: bool = False) -> contextlib.AbstractContextManager[None]:
        """Hold the lock ``topic`` of this cluster, for every process of every run on this machine."""
        return cluster_lock(self.cluster, topic, shared)

    # --- diagnostics --------------------------------------------------------------------------

    def diagnostics(self) -> list[tuple[str, str]]:
        """Events, describe and logs of every namespace the scenario touched (Chainsaw-style)."""
        return diagnostics.collect(self.kube, self.namespaces, self.cluster.run_id)
