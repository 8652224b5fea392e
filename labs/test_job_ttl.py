"""Lab 6 — the TTL-cleaned Job (document 003, "Fargate 배포 실습", the Job part).

Documented steps::

    cat <<EOF | kubectl apply -f -   (jobs-ttl.yaml: busybox1 with ttlSecondsAfterFinished: 60, busybox2 without)
    kubectl get job,pod -n study-aews      -> Running 0/1 with Pending pods, then Complete 1/1

Both Jobs' pods run ``sleep 10`` on Fargate and complete. Sixty seconds after busybox1's Complete condition
(its lastTransitionTime starts the clock) the ttl-after-finished controller of kube-controller-manager deletes
busybox1 and, cascading, its pod; busybox2 has no TTL, so it, its Completed pod and that pod's Fargate node
stay (document 003-6: the deletion is described but not shown). The module's tests follow that timeline in
order, so the module takes a little over 70 s by nature. Replay runs in ``study-aews-job-ttl-<run id>``
with a profile of the same name.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from typing import Any, Iterator

import pytest

from fargatelab import Lab, Missing, ModuleLab, expect
from fargatelab import conditions as cond

pytestmark = [
    # sleep 10, then ttlSecondsAfterFinished: 60 - the longest documented wait, so the run starts here
    pytest.mark.lab("Lab 6 — the TTL-cleaned Job", "003", waits=70),
    pytest.mark.xdist_group("job-ttl"),  # --dist loadgroup: the timeline stays on one worker, in order
]

NAMESPACE = "study-aews"
TTL = 60.0
#: how late the ttl-after-finished controller may act (its queue, the API's 1 s timestamps, a busy machine)
SLACK = 15.0
DOCUMENTED_APPLY = "cat <<EOF | kubectl apply -f -   # jobs-ttl.yaml, namespace study-aews"


@dataclass
class Jobs:
    namespace: str
    #: busybox1's node and busybox2's node, recorded once the Jobs completed (replay)
    nodes: dict[str, str]


@pytest.fixture(scope="module")
def jobs(module_lab: ModuleLab) -> Iterator[Jobs]:
    with module_lab() as setup:
        if setup.replay:  # the module's own namespace, study-aews-job-ttl-<run id>, and its profile
            namespace = setup.profiled_namespace(setup.scoped(NAMESPACE))
            setup.apply("jobs-ttl.yaml", DOCUMENTED_APPLY)
        else:
            namespace = setup.namespace(NAMESPACE)
        yield Jobs(namespace, {})


def _require(lab: Lab, jobs: Jobs, name: str) -> None:
    """Check mode: the student's Job must exist (replay applied it)."""
    if not lab.kube.exists(f"/apis/batch/v1/namespaces/{jobs.namespace}/jobs/{name}"):
        raise Missing(f"Job {jobs.namespace}/{name}", DOCUMENTED_APPLY)


def _stamp(text: str) -> float:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _complete_at(job: dict[str, Any]) -> float:
    """The Complete condition's lastTransitionTime: where the TTL clock starts."""
    for condition in job.get("status", {}).get("conditions", []):
        if condition["type"] == "Complete" and condition["status"] == "True":
            return _stamp(condition["lastTransitionTime"])
    raise AssertionError(f"job {job['metadata']['name']} has no Complete condition: {job.get('status')}")


def _job_pods(lab: Lab, namespace: str, job: str) -> list[dict[str, Any]]:
    return lab.kube.pods(namespace, f"job-name={job}")


@pytest.mark.parametrize("name", ["busybox1", "busybox2"])
def test_job_completes(lab: Lab, jobs: Jobs, name: str) -> None:
    """Complete 1/1: the pod ran ``sleep 10`` on a Fargate node, so the Job completes 10 s after it ran."""
    if not lab.replay and name == "busybox1" and not lab.kube.exists(
            f"/apis/batch/v1/namespaces/{jobs.namespace}/jobs/busybox1"):
        pytest.skip("busybox1 is gone: its TTL (60 s after completion) has passed in this cluster")
    _require(lab, jobs, name)
    lab.wait(cond.JobCompleted(lab.kube, jobs.namespace, name), lab.timing.pod_ready_timeout + 10 + 30)
    lab.step("kubectl get job,pod -n study-aews")
    job = lab.kube.job(jobs.namespace, name)
    row = [line.split() for line in lab.kube.kubectl("get", "job", "-n", jobs.namespace, name).stdout.splitlines()]
    header = row[0]
    expect(f"kubectl get job {name}: STATUS and COMPLETIONS",
           {k: row[1][header.index(k)] for k in ("STATUS", "COMPLETIONS") if k in header},
           {"STATUS": "Complete", "COMPLETIONS": "1/1"} if "STATUS" in header else {"COMPLETIONS": "1/1"})
    expect(f"{name} succeeded", job["status"].get("succeeded"), 1)
    expect(f"{name} command", job["spec"]["template"]["spec"]["containers"][0].get("command"),
           ["/bin/sh", "-c", "sleep 10"])
    expect(f"{name} restartPolicy", job["spec"]["template"]["spec"].get("restartPolicy"), "Never")
    expect(f"{name} ttlSecondsAfterFinished", job["spec"].get("ttlSecondsAfterFinished"),
           60 if name == "busybox1" else None)
    pods = _job_pods(lab, jobs.namespace, name)
    expect(f"{name} pods", [p["status"].get("phase") for p in pods], ["Succeeded"])
    pod = pods[0]
    expect(f"{name} pod scheduler", pod["spec"].get("schedulerName"), "fargate-scheduler")
    node = lab.kube.fargate_node_name(pod) or pod["spec"].get("nodeName") or ""
    assert node.startswith("fargate-ip-"), f"{name} pod's node\n  expected: fargate-ip-…\n  actual:   {node!r}"
    jobs.nodes[name] = node
    ready = [c for c in pod["status"].get("conditions", []) if c["type"] == "Ready"]
    started = _stamp(pod["status"]["startTime"]) if pod["status"].get("startTime") else None
    if started is not None and lab.replay:
        ran = _complete_at(job) - started
        # Timestamps have one-second precision, so "10 s" can read as 9.
        assert ran >= 9, (f"{name} Complete at least 10 s (sleep 10) after its pod ran\n"
                          f"  expected: >= 10 s (1 s timestamp precision)\n"
                          f"  actual:   {ran:.0f} s (pod Ready: {ready})")


@pytest.mark.replay_only
def test_busybox1_still_there_before_its_ttl(lab: Lab, jobs: Jobs) -> None:
    """At 50 s after completion the TTL has not run out: busybox1 and its pod are still there."""
    lab.wait(cond.JobCompleted(lab.kube, jobs.namespace, "busybox1"), lab.timing.pod_ready_timeout + 40)
    completed = _complete_at(lab.kube.job(jobs.namespace, "busybox1"))
    time.sleep(max(0.0, completed + TTL - 10 - time.time()))
    expect("busybox1 Job exists 50 s after completion",
           lab.kube.exists(f"/apis/batch/v1/namespaces/{jobs.namespace}/jobs/busybox1"), True)
    expect("busybox1 pod exists 50 s after completion", len(_job_pods(lab, jobs.namespace, "busybox1")), 1)


@pytest.mark.replay_only
def test_busybox1_deleted_by_ttl(lab: Lab, jobs: Jobs) -> None:
    """60 s after completion the ttl-after-finished controller deletes busybox1, cascading to its pod."""
    lab.wait(cond.JobCompleted(lab.kube, jobs.namespace, "busybox1"), lab.timing.pod_ready_timeout + 40)
    completed = _complete_at(lab.kube.job(jobs.namespace, "busybox1"))
    path = f"/apis/batch/v1/namespaces/{jobs.namespace}/jobs/busybox1"
    lab.wait(cond.ResourceDeleted(lab.kube, path), max(1.0, completed + TTL + SLACK - time.time()), interval=0.25)
    gone_after = time.time() - completed
    # The clock reads the condition's time truncated to the second, so "60 s" may show as up to 61.
    assert gone_after >= TTL - 1, (f"busybox1 deleted only once its TTL ran out\n  expected: >= {TTL:.0f} s after "
                                   f"completion\n  actual:   {gone_after:.1f} s")
    lab.wait(cond.condition("busybox1's pod deleted with it (cascading)",
                            lambda: (not (p := _job_pods(lab, jobs.namespace, "busybox1")), f"{len(p)} pods left")), 30)
    node = jobs.nodes.get("busybox1")
    if node:  # a Fargate node lives as long as its pod
        lab.wait(cond.ResourceDeleted(lab.kube, f"/api/v1/nodes/{node}"), 30)


def test_busybox2_remains(lab: Lab, jobs: Jobs) -> None:
    """No TTL: busybox2, its Completed pod and the pod's Fargate node stay (and on EKS stay billed)."""
    _require(lab, jobs, "busybox2")
    lab.wait(cond.JobCompleted(lab.kube, jobs.namespace, "busybox2"), lab.timing.pod_ready_timeout + 40)
    if lab.replay:
        # After busybox1's TTL has passed (the previous test waits for it when run in order), and past
        # where busybox2's own would have run out (the timestamps count whole seconds).
        busybox2_done = _complete_at(lab.kube.job(jobs.namespace, "busybox2"))
        time.sleep(max(0.0, busybox2_done + TTL + 1 - time.time()))
    lab.step("kubectl get job,pod -n study-aews; kubectl get nodes")
    expect("busybox2 Job still exists",
           lab.kube.exists(f"/apis/batch/v1/namespaces/{jobs.namespace}/jobs/busybox2"), True)
    pods = _job_pods(lab, jobs.namespace, "busybox2")
    expect("busybox2's pod still there, Completed", [p["status"].get("phase") for p in pods], ["Succeeded"])
    node = lab.kube.fargate_node_name(pods[0]) or pods[0]["spec"].get("nodeName")
    expect("busybox2's Fargate node still exists", lab.kube.exists(f"/api/v1/nodes/{node}"), True)
    expect("busybox2's node is a Fargate node",
           lab.kube.get(f"/api/v1/nodes/{node}")["metadata"]["labels"].get("eks.amazonaws.com/compute-type"), "fargate")
