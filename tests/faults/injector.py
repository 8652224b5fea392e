"""Fault injection against lab runs: Ctrl-C, kill -9, a component killed mid-wait.

Each function runs one lab module in a child pytest, injects one fault, and returns an
:class:`Outcome` saying whether the run ended by itself, how long it took, and what it leaked.
``scripts/faults.py`` repeats them and prints the tally; the tests in tests/faults run one of each.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from fargatelab.local import process
from fargatelab.local.environment import LocalEnvironment, state_root

__all__ = ["Outcome", "start_run", "data_plane_leaks", "interrupt_run", "interrupt_in_steps", "interrupt_when", "kill_run",
           "kill_component_run", "leaks"]

ROOT = Path(__file__).resolve().parents[2]
#: A run that has not ended this long after its fault counts as hung (and is killed).
HANG_AFTER = 180.0


@dataclass
class Outcome:
    fault: str
    module: str
    run_id: str
    #: the run ended by itself after the fault (no hang)
    ended: bool
    #: seconds from the fault to the end of the run
    time_to_end: float
    leaked: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: seconds from a component's death to the first step that failed (the run's end when none did)
    to_failed_step: float | None = None

    @property
    def clean(self) -> bool:
        return self.ended and not self.leaked


def start_run(module: str, run_id: str, *extra: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "pytest", f"labs/{module}", "-p", "no:cacheprovider", "-q", "--run-id", run_id,
         *extra],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env or dict(os.environ),
        start_new_session=True, preexec_fn=_ctrl_c_as_a_terminal_sends_it,
    )


def _ctrl_c_as_a_terminal_sends_it() -> None:
    # An ignored SIGINT is inherited: started in the background of a script (`faults.py &`), every run would
    # ignore its Ctrl-C, and the SIGINT rounds would test nothing.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _wait_end(run: subprocess.Popen[str], limit: float = HANG_AFTER) -> tuple[bool, float, str]:
    started = time.monotonic()
    try:
        out, _ = run.communicate(timeout=limit)
        return True, time.monotonic() - started, out
    except subprocess.TimeoutExpired:
        os.killpg(run.pid, signal.SIGKILL)
        out, _ = run.communicate()
        return False, time.monotonic() - started, out


def leaks(run_id: str, env_name: str | None) -> list[str]:
    """What is still tagged with ``run_id``: `fargate-lab leaks` (AWS and Kubernetes) plus processes."""
    found = [f"process {pid}" for pid in process.tagged_pids(run_id)]
    found += data_plane_leaks(run_id)
    if env_name is not None:
        result = subprocess.run([sys.executable, "-m", "fargatelab.cli.main", "leaks", "--run-id", run_id, "--env",
                                 env_name], capture_output=True, text=True, timeout=300)
        if result.returncode != 0:
            found += [line.strip()[len("LEFT: "):] for line in result.stdout.splitlines()
                      if line.strip().startswith("LEFT: ")] or [
                (result.stdout + result.stderr).strip().splitlines()[-1]]
    if (state_root() / f"labs-{run_id}").exists():
        found.append(f"state directory {state_root() / f'labs-{run_id}'}")
    return found


def data_plane_leaks(run_id: str) -> list[str]:
    """The microVMs' network namespaces, cgroups and mounts still tagged with ``run_id``."""
    from fargatelab.local.microvm_host import CGROUP_ROOT, SHORT_ROOT
    from fargatelab.local.vpc_network import namespaces_of_run

    found = [f"network namespace {n}" for n in namespaces_of_run(run_id)]
    found += [f"cgroup {c}" for c in CGROUP_ROOT.glob(f"*/fargate-labs/{run_id}")]
    found += [f"directory {SHORT_ROOT / run_id}"] if (SHORT_ROOT / run_id).exists() else []
    found += [f"mount {line.split()[1]}" for line in Path("/proc/self/mounts").read_text().splitlines()
              if f"labs-{run_id}/" in line.split()[1]]
    return found


def _interrupted_report(run_id: str) -> bool | None:
    summary = ROOT / "reports" / run_id / "summary.json"
    try:
        return bool(json.loads(summary.read_text())["run"]["interrupted"])
    except (OSError, ValueError, KeyError):
        return None


def interrupt_run(module: str, run_id: str, env_name: str, after: float) -> Outcome:
    """Ctrl-C a run that reuses ``env_name`` ``after`` seconds in; its cleanup must leave nothing."""
    run = start_run(module, run_id, "--reuse", env_name)
    time.sleep(after)
    return _interrupt(run, module, run_id, env_name)


def _interrupt(run: subprocess.Popen[str], module: str, run_id: str, env_name: str) -> Outcome:
    """Ctrl-C ``run`` now (unless it ended already); what it left, and whether it said it was interrupted."""
    if run.poll() is not None:
        return Outcome("SIGINT", module, run_id, True, 0.0, leaks(run_id, env_name), ["ended before the fault"])
    os.kill(run.pid, signal.SIGINT)
    ended, took, out = _wait_end(run)
    outcome = Outcome("SIGINT", module, run_id, ended, took, leaks(run_id, env_name))
    if _interrupted_report(run_id) is False:
        outcome.notes.append("report does not say the run was interrupted")
    if "KeyboardInterrupt" not in out and "Interrupted" not in out and "interrupted" not in out:
        outcome.notes.append("output does not mention the interrupt")
    return outcome


def interrupt_in_steps(module: str, run_id: str, env_name: str, delay: float) -> Outcome:
    """Ctrl-C a run that reuses ``env_name`` ``delay`` seconds after its steps began (its first namespace
    exists), so that the interrupt lands in a step or its cleanup, not before the run starts or after it
    wrote its report; its cleanup must leave nothing."""
    from fargatelab.scenario.kube import Kube

    kube = Kube(LocalEnvironment(env_name).handle().kubeconfig)
    run = start_run(module, run_id, "--reuse", env_name)
    deadline = time.monotonic() + HANG_AFTER

    def began() -> bool:
        try:
            return any(run_id in n["metadata"]["name"] for n in kube.get("/api/v1/namespaces")["items"])
        except Exception:  # the API server is busy starting the run's pods: look again
            return False

    while not began():
        if run.poll() is not None or time.monotonic() > deadline:
            run.communicate()
            return Outcome("SIGINT", module, run_id, True, 0.0, leaks(run_id, env_name), ["ended before the fault"])
        time.sleep(0.1)
    time.sleep(delay)
    return _interrupt(run, module, run_id, env_name)


def kill_run(module: str, run_id: str, after: float, *extra: str) -> Outcome:
    """kill -9 a run with its own environment; `fargate-lab cleanup --run-id` must remove everything."""
    run = start_run(module, run_id, *extra)
    time.sleep(after)
    os.killpg(run.pid, signal.SIGKILL)
    run.communicate()
    started = time.monotonic()
    outcome = Outcome("SIGKILL + cleanup", module, run_id, True, 0.0)
    if (state_root() / f"labs-{run_id}").exists():
        # Everything a local-backend run makes lives in its environment, which cleanup takes down.
        cleanup = subprocess.run([sys.executable, "-m", "fargatelab.cli.main", "cleanup", "--run-id", run_id],
                                 capture_output=True, text=True, timeout=HANG_AFTER)
        if cleanup.returncode != 0:
            outcome.notes.append(f"cleanup exited {cleanup.returncode}: {cleanup.stderr.strip()[-200:]}")
    else:
        outcome.notes.append("killed before its environment existed")
    outcome.time_to_end = time.monotonic() - started
    outcome.leaked = leaks(run_id, None)
    return outcome


def kill_component_run(module: str, run_id: str, env_name: str, component: str, after: float = 0.0,
                       *extra: str) -> Outcome:
    """Kill one component of ``env_name`` while a run waits on it: the run must fail promptly, naming it.

    ``component`` ending in ``-`` (``kubelet-``) names the first such component that appears after the run
    started, killed as soon as it does (a microVM's kubelet, once the run's pods have one); otherwise it is
    killed ``after`` seconds into the run.
    """
    env = LocalEnvironment(env_name)
    before = {row["name"] for row in env.status()}
    run = start_run(module, run_id, "--reuse", env_name, "-x", *extra)
    if component.endswith("-"):
        prefix, component = component, _first_new(env, before, component, run)
        if not component:
            run.communicate()
            return Outcome(f"{prefix}* killed", module, run_id, True, 0.0, notes=["ended before the fault"])
    else:
        time.sleep(after)
    pid = next(row["pid"] for row in env.status() if row["name"] == component)
    os.kill(pid, signal.SIGKILL)
    killed_at = time.time()
    ended, took, out = _wait_end(run)
    outcome = Outcome(f"{component} killed", module, run_id, ended, took)
    failed = _first_failure_after(run_id, killed_at)
    outcome.to_failed_step = failed - killed_at if failed is not None else took
    if run.returncode == 0:
        outcome.notes.append("the run passed although a component died: " + " | ".join(out.splitlines()[-6:]))
    elif f"{component}" not in out:
        outcome.notes.append("no failure message names the dead component")
    return outcome


def _first_failure_after(run_id: str, moment: float) -> float | None:
    """When the run's first step to fail after ``moment`` (epoch seconds) failed, from its summary.json: the
    end of the phase that failed it, before the step's own cleanup."""
    try:
        labs = json.loads((ROOT / "reports" / run_id / "summary.json").read_text())["labs"]
    except (OSError, ValueError, KeyError):
        return None
    ends = [when for lab in labs for step in lab.get("steps", [])
            if not step.get("ok") and step.get("outcome") != "skipped"
            and (when := step.get("failed_at") or step.get("finished_at") or 0) >= moment]
    return min(ends, default=None)


def _first_new(env: LocalEnvironment, before: set[str], prefix: str, run: subprocess.Popen[str]) -> str:
    """The first component named ``prefix``... that appears while ``run`` runs; empty if it ended first."""
    deadline = time.monotonic() + HANG_AFTER
    while run.poll() is None and time.monotonic() < deadline:
        new = [row["name"] for row in env.status() if row["name"].startswith(prefix) and row["name"] not in before]
        if new:
            return new[0]
        time.sleep(0.2)
    return ""


def interrupt_when(module: str, run_id: str, ready: Callable[[], bool], *extra: str) -> Outcome:
    """Ctrl-C a run with its own environment as soon as ``ready()`` holds (say, its pods' microVMs run)."""
    run = start_run(module, run_id, *extra)
    deadline = time.monotonic() + HANG_AFTER
    while not ready():
        if run.poll() is not None or time.monotonic() > deadline:
            run.communicate()
            return Outcome("SIGINT", module, run_id, True, 0.0, leaks(run_id, None), ["ended before the fault"])
        time.sleep(0.2)
    os.kill(run.pid, signal.SIGINT)
    ended, took, out = _wait_end(run)
    outcome = Outcome("SIGINT", module, run_id, ended, took, leaks(run_id, None))
    if "KeyboardInterrupt" not in out and "Interrupted" not in out and "interrupted" not in out:
        outcome.notes.append("output does not mention the interrupt")
    return outcome
