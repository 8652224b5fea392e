"""A Lab's cleanup: newest first; a namespace only this run uses is deleted but seen gone at the run's end."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from fargatelab.scenario.handle import ClusterHandle
from fargatelab.scenario.kube import CommandResult
from fargatelab.scenario.lab import Lab
from fargatelab.rules.timing import profile

RUN = "r1234567"


class RecordingKube:
    """kubectl and reads as the Lab makes them; a deleted namespace stays Terminating until ``settle()``."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, ...]] = []
        self.namespaces: dict[str, dict[str, str]] = {}
        self.terminating: set[str] = set()

    def kubectl(self, *args: str, stdin: str | None = None, check: bool = True, timeout: float = 120) -> CommandResult:
        self.calls.append(args)
        if args[:2] == ("delete", "namespace"):
            self.terminating.add(args[2])
        elif args == ("apply", "-f", "-") and stdin:
            for doc in yaml.safe_load_all(stdin):  # JSON is YAML too: one object, or a manifest's documents
                if doc and doc.get("kind") == "Namespace":
                    self.namespaces[doc["metadata"]["name"]] = doc["metadata"].get("labels", {})
        return CommandResult(" ".join(args), 0, "", "")

    def get(self, path: str) -> dict[str, Any]:
        name = path.rsplit("/", 1)[-1]
        if name not in self.namespaces:
            raise LookupError(path)
        return {"metadata": {"name": name, "labels": self.namespaces[name]}}

    def exists(self, path: str) -> bool:
        name = path.rsplit("/", 1)[-1]
        return name in self.namespaces or name in self.terminating



@pytest.fixture
def kube() -> RecordingKube:
    return RecordingKube()


def lab_with(kube: RecordingKube, settle: list[str] | None) -> Lab:
    cluster = ClusterHandle(kubeconfig="/dev/null", cluster_name="eksworkshop", region="ap-northeast-2", run_id=RUN)
    return Lab(cluster, kube, lambda _service: None, profile("fast"), settle=settle)  # type: ignore[arg-type]


def record_waits(lab: Lab, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the conditions ``lab`` waits for (each met at once)."""
    waited: list[str] = []

    def wait(condition: Any, timeout: float, interval: float = 0.5) -> str:
        waited.append(condition.name)
        return "met"

    monkeypatch.setattr(lab, "wait", wait)
    return waited


def test_a_run_owned_namespace_is_deleted_now_and_awaited_at_the_end(kube: RecordingKube) -> None:
    settle: list[str] = []
    lab = lab_with(kube, settle)
    name = lab.namespace("study-lab1")
    assert name == f"study-lab1-{RUN}"

    lab.cleanup()  # returns although the namespace is still Terminating

    assert ("delete", "namespace", name, "--wait=false", "--ignore-not-found") in kube.calls
    assert settle == [name]


def test_without_a_run_end_the_cleanup_waits_itself(kube: RecordingKube, monkeypatch: pytest.MonkeyPatch) -> None:
    lab = lab_with(kube, settle=None)
    lab.namespace("study-lab1")
    waited = record_waits(lab, monkeypatch)
    lab.cleanup()
    assert waited == [f"/api/v1/namespaces/study-lab1-{RUN} deleted"]


def test_a_documented_namespace_is_waited_for_on_the_spot(kube: RecordingKube, monkeypatch: pytest.MonkeyPatch) -> None:
    """A fixed name (``aws-observability``) may be made again by the next lab: it must be gone first."""
    settle: list[str] = []
    lab = lab_with(kube, settle)
    waited = record_waits(lab, monkeypatch)
    lab.on_cleanup("aws-observability", lambda: lab._namespaces.delete("aws-observability"))

    lab.cleanup()
    assert waited == ["/api/v1/namespaces/aws-observability deleted"]
    assert settle == []


def test_objects_of_a_namespace_being_deleted_are_not_waited_for(kube: RecordingKube) -> None:
    """Deleting the namespace deletes them; kubectl is told not to wait for each (its namespace is waited for)."""
    lab = lab_with(kube, settle=[])
    lab.namespace("study-aews")
    docs = [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "study-aews"}}]
    lab.apply("inline.yaml", docs=docs)
    lab.cleanup()
    deletes = [c for c in kube.calls if c[:3] == ("delete", "-f", "-")]
    assert deletes and "--wait=false" in deletes[0]
    assert kube.calls.index(deletes[0]) < kube.calls.index(
        ("delete", "namespace", f"study-aews-{RUN}", "--wait=false", "--ignore-not-found"))


def test_objects_in_a_namespace_another_lab_deletes_later_are_waited_for(kube: RecordingKube) -> None:
    """A module's namespace outlives a test: what the test applied there must be gone when the test ends."""
    module = lab_with(kube, settle=[])
    module.namespace("study-aews")
    lab = lab_with(kube, settle=[])
    docs = [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "study-aews"}}]
    lab.apply("inline.yaml", docs=docs)
    lab.cleanup()
    [delete] = [c for c in kube.calls if c[:3] == ("delete", "-f", "-")]
    assert "--wait=true" in delete


class Backend:
    def __init__(self, discards_cluster: bool) -> None:
        self.discards_cluster = discards_cluster

    def liveness(self) -> str | None:
        return None


def test_the_run_end_waits_until_every_handed_over_namespace_is_gone(kube: RecordingKube) -> None:
    from fargatelab.plugin.fixtures import await_deleted_namespaces

    settle: list[str] = []
    for documented in ("a", "b"):
        lab_with(kube, settle).namespace(documented)
    for name in list(kube.namespaces):
        lab_with(kube, settle)._namespaces.delete(name)
    reads: list[str] = []
    real_exists = kube.exists

    def exists(path: str) -> bool:  # each namespace terminates after being read twice
        reads.append(path)
        if reads.count(path) > 2:
            kube.terminating.discard(path.rsplit("/", 1)[-1])
            kube.namespaces.pop(path.rsplit("/", 1)[-1], None)
        return real_exists(path)

    kube.exists = exists  # type: ignore[method-assign]
    await_deleted_namespaces(Backend(discards_cluster=False), kube, settle, timeout=10)  # type: ignore[arg-type]
    assert sorted(settle) == [f"a-{RUN}", f"b-{RUN}"]
    assert not kube.namespaces and not kube.terminating


def test_ctrl_c_while_the_run_end_waits_for_namespaces_waits_on_then_interrupts(kube: RecordingKube) -> None:
    """The run's last cleanup, waiting for its deleted namespaces, is cleanup too: Ctrl-C is held back until
    they are gone (a namespace left Terminating is a leak the leak check finds)."""
    import os
    import signal

    from fargatelab.plugin.fixtures import await_deleted_namespaces

    settle: list[str] = []
    lab_with(kube, settle).namespace("a")
    lab_with(kube, settle)._namespaces.delete(f"a-{RUN}")
    reads: list[str] = []
    real_exists = kube.exists

    def exists(path: str) -> bool:
        reads.append(path)
        if len(reads) == 1:
            os.kill(os.getpid(), signal.SIGINT)  # the user's Ctrl-C, at the first look
        if len(reads) > 3:
            kube.terminating.discard(f"a-{RUN}")
            kube.namespaces.pop(f"a-{RUN}", None)
        return real_exists(path)

    kube.exists = exists  # type: ignore[method-assign]
    with pytest.raises(KeyboardInterrupt, match="all are gone"):
        await_deleted_namespaces(Backend(discards_cluster=False), kube, settle, timeout=10)  # type: ignore[arg-type]
    assert len(reads) > 3 and not kube.namespaces and not kube.terminating


def test_a_cluster_that_goes_with_the_run_is_not_waited_on(kube: RecordingKube) -> None:
    from fargatelab.plugin.fixtures import await_deleted_namespaces

    kube.exists = lambda path: pytest.fail("read the cluster")  # type: ignore[method-assign]
    await_deleted_namespaces(Backend(discards_cluster=True), kube, [f"a-{RUN}"])  # type: ignore[arg-type]


def test_ctrl_c_during_cleanup_lets_every_action_finish_then_interrupts() -> None:
    """Ctrl-C while cleanup runs is held back: the action under way and every later one run to their end,
    newest first, and the interrupt comes after the last."""
    import os
    import signal

    from fargatelab.scenario.cleaner import Cleaner

    done: list[str] = []
    cleaner = Cleaner()
    cleaner.add("oldest", lambda: done.append("oldest"))

    def interrupted_midway() -> None:
        os.kill(os.getpid(), signal.SIGINT)  # the user's Ctrl-C arrives while this action runs
        done.append("interrupted action finished")

    cleaner.add("middle", interrupted_midway)
    cleaner.add("newest", lambda: done.append("newest"))
    with pytest.raises(KeyboardInterrupt, match="every cleanup action ran to its end"):
        cleaner.run()
    assert done == ["newest", "interrupted action finished", "oldest"]
    assert cleaner.pending() == []


def test_a_failing_cleanup_action_does_not_stop_the_others() -> None:
    from fargatelab.scenario.cleaner import Cleaner, CleanupFailed

    done: list[str] = []
    cleaner = Cleaner()
    cleaner.add("first", lambda: done.append("first"))
    cleaner.add("broken", lambda: (_ for _ in ()).throw(RuntimeError("API unreachable")))
    with pytest.raises(CleanupFailed) as failed:
        cleaner.run()
    assert done == ["first"]
    assert failed.value.errors == ["broken: API unreachable"]


def test_a_test_inherits_its_module_setup(kube: RecordingKube) -> None:
    """The setup's steps, namespaces and scoped names are the test's: a manifest in the documented namespace
    lands in the module's own."""
    setup = lab_with(kube, settle=[])
    setup.scope = "netshoot"
    key = setup.scoped("study-aews")
    assert key == "study-aews-netshoot"
    setup.namespace("study-aews")
    setup.step("kubectl create ns study-aews")
    cluster = setup.cluster
    test = Lab(cluster, kube, lambda _service: None, profile("fast"), settle=[],  # type: ignore[arg-type]
               parents=lambda: [setup])
    docs = [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "study-aews"}}]
    [applied] = test.apply("inline.yaml", docs=docs)
    assert applied["metadata"]["namespace"] == f"study-aews-netshoot-{RUN}"
    assert test.inherited_steps() == [("step", "kubectl create ns study-aews")]
    assert test.namespaces == [f"study-aews-netshoot-{RUN}"]


def test_check_mode_keeps_documented_names(kube: RecordingKube) -> None:
    cluster = ClusterHandle(kubeconfig="/dev/null", cluster_name="eksworkshop", region="ap-northeast-2", run_id=RUN)
    lab = Lab(cluster, kube, lambda _service: None, profile("fast"), mode="check", scope="netshoot")  # type: ignore[arg-type]
    assert lab.scoped("study-aews") == "study-aews"
    assert lab.namespace_for("study-aews") == "study-aews"
