"""Inject faults into lab runs on the local backend and print the tally. Asserts nothing; exits 1 on any
PROBLEM round, leak or hang.

    python scripts/faults.py --rounds 30 --seed 20261201

Each module's clean duration is measured once, and each fault is drawn inside it, so every round injects
something; a round whose run still ends before its fault is drawn again, never counted. The faults, in turn:

* Ctrl-C (SIGINT) into a run that reuses the shared environment, once its steps began;
* kill -9 of a run with its own environment, followed by ``fargate-lab cleanup --run-id``;
* a component of the shared environment killed while a run waits on it (the control plane, moto, the
  emulation, the registry, the ALBs' proxies, the VPC's resolver), after which the environment is made anew;
* on the microVM data plane, a process of one of the run's own microVMs (kubelet, containerd, kube-proxy)
  killed as soon as it exists, after which the environment is made anew too.

Targets: every round injects, 0 PROBLEM, 0 leaks, 0 hangs, and the slowest time from a component's death
to the first failed step (the moment its failing phase ended, summary.json's ``failed_at``; the run's end
when no step was left to fail) <= 10 s. The time to the run's end, cleanup included, is printed beside it.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "faults"))

from fargatelab.local.environment import EnvironmentConfig, LocalEnvironment  # noqa: E402
from injector import Outcome, interrupt_in_steps, kill_component_run, kill_run, start_run  # noqa: E402

MODULES = ["test_fargate_profile.py", "test_game_2048_ingress.py", "test_root_shell.py", "test_netshoot.py",
           "test_scaling.py", "test_daemonset.py"]
#: the shared environment's own components; "kwok" only on the KWOK data plane
CONTROL = ["emulator", "moto", "kube-apiserver"]
DATA_PLANE = ["registry", "alb-proxies", "vpc-resolver"]
#: a microVM's processes, named by prefix: the first of the run's own microVMs that appears
MICROVM = ["kubelet-", "containerd-", "kube-proxy-"]
#: draws of a round whose run ended before its fault, before the round is given up as not injected
DRAWS = 5


def clean_duration(module: str, env: LocalEnvironment) -> float:
    """How long ``module`` takes on ``env`` without a fault: the window a fault is drawn in."""
    started = time.monotonic()
    run = start_run(module, f"clean{uuid.uuid4().hex[:6]}", "--reuse", env.name)
    run.communicate()
    return time.monotonic() - started


def fresh(env: LocalEnvironment, data_plane: str) -> None:
    env.down(quiet=True)
    env.up(EnvironmentConfig(name=env.name, data_plane=data_plane), progress=lambda _: None)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=9)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--data-plane", choices=("auto", "microvm", "kwok"), default="auto")
    args = p.parse_args()
    rng = random.Random(args.seed)
    shared = LocalEnvironment(f"faults-{uuid.uuid4().hex[:6]}")
    started = time.monotonic()
    shared.up(EnvironmentConfig(name=shared.name, data_plane=args.data_plane), progress=lambda _: None)
    # A run with its own environment spends this long starting it before its first step.
    own_start = time.monotonic() - started
    data_plane = (shared.state() or {}).get("data_plane", "kwok")
    components = CONTROL + (DATA_PLANE if data_plane == "microvm" else ["kwok"])
    kinds = ("sigint", "kill9", "component") + (("microvm",) if data_plane == "microvm" else ())
    durations: dict[str, float] = {}
    outcomes: list[Outcome] = []
    not_injected = 0
    try:
        for i in range(args.rounds):
            module, kind = rng.choice(MODULES), kinds[i % len(kinds)]
            if module not in durations:
                durations[module] = clean_duration(module, shared)
                print(f"    {module} runs {durations[module]:.1f}s without a fault", flush=True)
            for _draw in range(DRAWS):
                run_id = f"fault{i}{uuid.uuid4().hex[:4]}"
                at = rng.uniform(1.0, max(1.5, 0.8 * durations[module]))
                if kind == "sigint":
                    # Inside the steps: from when the run's first namespace exists, within most of its length.
                    outcome = interrupt_in_steps(module, run_id, shared.name, rng.uniform(0.0, 0.5 * durations[module]))
                elif kind == "kill9":
                    shared.down(quiet=True)  # its own environment gets the VPC while this one is down
                    try:
                        # Once pytest is up (a few seconds), while its environment starts or its steps run.
                        outcome = kill_run(module, run_id, rng.uniform(3.0, 3.0 + own_start + 0.8 * durations[module]))
                    finally:
                        fresh(shared, data_plane)
                    if "killed before its environment existed" in outcome.notes:
                        own_start += 3.0  # nothing to clean up was tested: later, and drawn again
                        continue
                elif kind == "component":
                    outcome = kill_component_run(module, run_id, shared.name, rng.choice(components), at)
                    fresh(shared, data_plane)
                else:
                    outcome = kill_component_run(module, run_id, shared.name, rng.choice(MICROVM))
                    # A dead microVM process stays DEAD, failing every later wait on this environment at
                    # once (the remedy a user is given: `fargate-lab down` and `up`).
                    fresh(shared, data_plane)
                if "ended before the fault" not in outcome.notes:
                    break
                # This run was quicker than the measured one: draw the next moment in a shorter window.
                durations[module] *= 0.5
            else:
                not_injected += 1
                print(f"{i + 1:>3} {kind:<22} {module:<28} ended before the fault {DRAWS} times: NOT INJECTED",
                      flush=True)
                continue
            outcomes.append(outcome)
            status = "clean" if outcome.clean and not outcome.notes else "PROBLEM"
            failed = f"  failed a step in {outcome.to_failed_step:.1f}s" if outcome.to_failed_step is not None else ""
            print(f"{i + 1:>3} {outcome.fault:<22} {module:<28} ended in {outcome.time_to_end:6.1f}s{failed}  {status}"
                  + (f"  leaked={outcome.leaked}" if outcome.leaked else "")
                  + (f"  notes={outcome.notes}" if outcome.notes else ""), flush=True)
    finally:
        from fargatelab.scenario.cleaner import sigint_held

        with sigint_held():  # a second Ctrl-C must not leave the shared environment up
            shared.down(quiet=True)
    problems = sum(not (o.clean and not o.notes) for o in outcomes)
    hangs = sum(not o.ended for o in outcomes)
    leaked = sum(len(o.leaked) for o in outcomes)
    killed = [o for o in outcomes if o.fault.endswith("killed") and o.to_failed_step is not None]
    slowest = max(killed, key=lambda o: o.to_failed_step or 0.0, default=None)
    print()
    print(f"data plane:              {data_plane}")
    print(f"faults injected:         {len(outcomes)} of {args.rounds} rounds (target: all)")
    print(f"ended before the fault:  {not_injected} (target 0)")
    print(f"PROBLEM rounds:          {problems} (target 0)")
    print(f"resources leaked:        {leaked} (target 0)")
    print(f"hangs:                   {hangs} (target 0)")
    if slowest:
        print(f"slowest time to a failed step after a component died: {slowest.to_failed_step:.1f}s "
              f"({slowest.fault}, {slowest.module}; target <= 10 s)")
        ends = max(o.time_to_end for o in killed)
        print(f"slowest time to the end of such a run (its cleanup included): {ends:.1f}s")
    return 1 if problems or leaked or hangs or not_injected else 0


if __name__ == "__main__":
    sys.exit(main())
