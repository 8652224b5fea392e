"""The end of a labs run: final cleanup and leak check (eks backend), and the cost estimate (every backend).

The pytest plugin calls :func:`start_meter` when a process opens its backend, and :func:`finish` once, in the
process that owns the run (the only one, or the pytest-xdist controller), after every scenario's own
cleanup. Everything lands in ``reports/<run id>/``:

* ``backend.json`` — which cluster the run used (written when a backend opened);
* ``observations-<pid>.json`` — what each process's meter saw of pods and load balancers;
* ``cost.json`` — the estimate (:mod:`fargatelab.report.cost`), with the prices used;
* ``leaks.json`` — what the final leak check found (eks backend, replay).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pytest

from ..report.cost import CostMeter, estimate, merge_observations, summary_line, write_report
from ..errors import ExitCode
from ..scenario.handle import ClusterHandle

__all__ = ["RUN_END", "RunEnd", "reports_dir", "aws_factory", "start_meter", "save_observations", "record_backend", "finish"]


@dataclass
class RunEnd:
    lines: list[str] = field(default_factory=list)
    leftovers: list[str] = field(default_factory=list)
    cleanup_errors: list[str] = field(default_factory=list)
    cost_file: Path | None = None
    exit_code: int = ExitCode.OK
    #: components of the run's environment that died during the run
    died: list[str] = field(default_factory=list)


#: the run's end, once the owner has finished it (the report reads what died from it)
RUN_END = pytest.StashKey[RunEnd]()


def reports_dir(root: Path, run_id: str) -> Path:
    """``root`` is the reports directory (``reports/`` under the root directory, or ``--reports-dir``)."""
    return root / run_id


def aws_factory(handle: ClusterHandle) -> Callable[[str], Any]:
    """boto3 clients as the scenarios get them (moto with test credentials, or boto3's own configuration)."""
    import boto3

    from botocore.config import Config

    env = handle.aws_environment()
    session = boto3.session.Session(region_name=handle.region, aws_access_key_id=env.get("AWS_ACCESS_KEY_ID"),
                                    aws_secret_access_key=env.get("AWS_SECRET_ACCESS_KEY"))
    # A local endpoint that refuses connections has died: botocore's default retries (five, backing off)
    # would hold a step some 15 s before its wait could say so. The harness retries what AWS throttles itself.
    local = Config(retries={"mode": "standard", "max_attempts": 2}, connect_timeout=3) if handle.aws_endpoint else None
    clients: dict[str, Any] = {}

    def client(service: str) -> Any:
        if service not in clients:
            clients[service] = session.client(service, endpoint_url=handle.aws_endpoint, config=local)
        return clients[service]

    return client


def record_backend(root: Path, backend: str, mode: str, handle: ClusterHandle) -> None:
    directory = reports_dir(root, handle.run_id)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "backend.json"
    try:  # several processes open the run's backend: the run began when the first did
        opened = float(json.loads(path.read_text())["opened_at"])
    except (OSError, ValueError, KeyError, TypeError):
        opened = time.time()
    path.write_text(json.dumps({
        "backend": backend, "mode": mode, "cluster": handle.cluster_name, "region": handle.region,
        "run_id": handle.run_id, "kubernetes_version": handle.kubernetes_version,
        "environment": handle.extra.get("environment"), "opened_at": opened}, indent=2))


def start_meter(handle: ClusterHandle) -> CostMeter:
    return CostMeter(handle.kubeconfig, handle.run_id, aws_factory(handle), [handle.cluster_name]).start()


def save_observations(root: Path, run_id: str, meter: CostMeter) -> Path:
    directory = reports_dir(root, run_id)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"observations-{os.getpid()}.json"
    path.write_text(json.dumps(meter.stop(), indent=2))
    return path


def _progress(line: str) -> None:
    print(f"fargate-labs: {line}", file=sys.stderr, flush=True)


def finish(root: Path, run_id: str, *, keep: bool, meter: CostMeter | None,
           progress: Callable[[str], None] = _progress) -> RunEnd:
    """Final cleanup, leak check and cost report of run ``run_id``."""
    end = RunEnd()
    directory = reports_dir(root, run_id)
    try:
        used = json.loads((directory / "backend.json").read_text())
    except (OSError, ValueError):
        used = None  # no backend ever opened (or it refused): nothing was created, nothing was observed
    if used and used["backend"] == "eks" and used["mode"] == "replay":
        if keep:
            end.lines.append(f"kept what run {run_id} created (--keep): remove it with "
                             f"`fargate-lab cleanup --run-id {run_id} --cluster {used['cluster']} "
                             f"--region {used['region']}`")
        else:
            _eks_cleanup(end, used, run_id, directory, progress)
    if used and used["backend"] == "local" and used.get("environment"):
        _components_died(end, used, run_id)
    if used and used["backend"] == "local" and keep and used.get("environment") == f"labs-{run_id}":
        name = used["environment"]
        end.lines.append(f"kept environment {name} of run {run_id} (--keep): look with "
                         f"`eval \"$(fargate-lab env --name {name})\"`, remove with `fargate-lab down --name {name}`")
    if meter is not None:
        save_observations(root, run_id, meter)
    observations = []
    for path in sorted(directory.glob("observations-*.json")) if directory.is_dir() else []:
        try:
            observations.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            continue
    if used and observations:
        pods, lbs = merge_observations(observations)
        report = estimate(pods, lbs, used["region"])
        report["run_id"] = run_id
        end.cost_file = write_report(directory, report)
        end.lines.append(summary_line(report, end.cost_file))
    return end


def _components_died(end: RunEnd, used: dict[str, Any], run_id: str) -> None:
    """A component of the run's environment that died during the run fails it, even when no step noticed
    (it died after the last step that needed it, or its microVM went with its pod)."""
    from ..local.environment import LocalEnvironment

    env = LocalEnvironment(used["environment"])
    if env.state() is None:
        return
    died = env.died_since(float(used.get("opened_at") or 0.0))
    if died:
        end.died = died
        end.lines.append(f"COMPONENT DIED during run {run_id}: {', '.join(died)}; the run fails, and what needed "
                         f"it may not have been checked (see `fargate-lab status --name {used['environment']}`)")
        end.exit_code = end.exit_code or ExitCode.COMPONENT_DIED


def _eks_cleanup(end: RunEnd, used: dict[str, Any], run_id: str, directory: Path,
                 progress: Callable[[str], None]) -> None:
    from ..backends.eks_connection import connect
    from ..cleanup.deletion import delete_run
    from ..cleanup.leftovers import find_leftovers

    try:
        conn, _description, kubeconfig = connect(used["cluster"], used["region"], run_id)
        scope = conn.scope(run_id, str(kubeconfig))
        end.cleanup_errors = delete_run(scope, progress)
        leftovers = find_leftovers(scope)
        # The run's kubeconfigs (one per process, no secrets in them) go with the run.
        shutil.rmtree(kubeconfig.parent, ignore_errors=True)
    except Exception as exc:  # the leak check could not run: that fails the run as a leak would
        end.cleanup_errors.append(f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
        end.leftovers = [f"unknown: the leak check could not run ({end.cleanup_errors[-1]})"]
        end.lines.append(f"LEAK CHECK FAILED for run {run_id}: {end.cleanup_errors[-1]}; run "
                         f"`fargate-lab cleanup --run-id {run_id} --cluster {used['cluster']} --region {used['region']}`")
        end.exit_code = ExitCode.LEAKED_RESOURCES
        return
    end.leftovers = [str(left) for left in leftovers]
    (directory / "leaks.json").write_text(json.dumps({
        "run_id": run_id, "cluster": used["cluster"], "region": used["region"], "leftovers": end.leftovers,
        "cleanup_errors": end.cleanup_errors, "notes": scope.notes}, indent=2))
    for note in scope.notes:
        end.lines.append(f"leak check note: {note}")
    if end.leftovers:
        end.exit_code = ExitCode.LEAKED_RESOURCES
        end.lines.append(f"LEAK: {len(end.leftovers)} resource(s) of run {run_id} remain: "
                         + "; ".join(end.leftovers)
                         + f" — remove them with `fargate-lab cleanup --run-id {run_id} --cluster {used['cluster']} "
                           f"--region {used['region']}`")
    else:
        end.lines.append(f"leak check: nothing tagged with run {run_id} remains (EKS, ELBv2, IAM, Kubernetes)")
