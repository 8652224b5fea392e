"""Inject faults into lab runs on the local backend and print the tally. Asserts nothing; exits 1 on a leak
or a hang.

    python scripts/faults.py --rounds 12 --seed 7

Each round picks a lab module and a moment at random and injects one of: Ctrl-C (SIGINT) into a run that
reuses a shared environment; kill -9 of a run with its own environment, followed by
`fargate-lab cleanup --run-id`; a component (emulator, moto, kube-apiserver, kwok) of a dedicated
environment killed while the run waits on it.
"""

from __future__ import annotations

import argparse
import random
import sys
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "faults"))

from fargatelab.local.environment import EnvironmentConfig, LocalEnvironment  # noqa: E402
from injector import Outcome, interrupt_run, kill_component_run, kill_run  # noqa: E402

MODULES = ["test_fargate_profile.py", "test_game_2048_ingress.py", "test_root_shell.py", "test_netshoot.py",
           "test_scaling.py", "test_daemonset.py"]
COMPONENTS = ["emulator", "moto", "kube-apiserver", "kwok"]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=9)
    p.add_argument("--seed", type=int, default=None)
    args = p.parse_args()
    rng = random.Random(args.seed)
    shared = LocalEnvironment(f"faults-{uuid.uuid4().hex[:6]}")
    shared.up(EnvironmentConfig(name=shared.name), progress=lambda _: None)
    outcomes: list[Outcome] = []
    try:
        for i in range(args.rounds):
            module, run_id = rng.choice(MODULES), f"fault{i}{uuid.uuid4().hex[:4]}"
            kind = ("sigint", "kill9", "component")[i % 3]
            if kind == "sigint":
                outcome = interrupt_run(module, run_id, shared.name, rng.uniform(2, 25))
            elif kind == "kill9":
                outcome = kill_run(module, run_id, rng.uniform(2, 25))
            else:
                victim = LocalEnvironment(f"victim-{run_id}")
                victim.up(EnvironmentConfig(name=victim.name), progress=lambda _: None)
                try:
                    outcome = kill_component_run(module, run_id, victim.name, rng.choice(COMPONENTS),
                                                 rng.uniform(3, 12))
                finally:
                    victim.down(quiet=True)
            if "ended before the fault" in outcome.notes:
                print(f"{i + 1:>3} {outcome.fault:<22} {module:<28} ended before the fault: nothing injected",
                      flush=True)
                continue
            outcomes.append(outcome)
            status = "clean" if outcome.clean and not outcome.notes else "PROBLEM"
            print(f"{i + 1:>3} {outcome.fault:<22} {module:<28} ended in {outcome.time_to_end:6.1f}s  {status}"
                  + (f"  leaked={outcome.leaked}" if outcome.leaked else "")
                  + (f"  notes={outcome.notes}" if outcome.notes else ""), flush=True)
    finally:
        shared.down(quiet=True)
    hangs = sum(not o.ended for o in outcomes)
    leaked = sum(len(o.leaked) for o in outcomes)
    slowest = max((o for o in outcomes if o.fault.endswith("killed")), key=lambda o: o.time_to_end, default=None)
    print()
    print(f"faults injected:        {len(outcomes)}")
    print(f"runs that ended cleanly: {sum(o.clean for o in outcomes)}")
    print(f"resources leaked:       {leaked} (target 0)")
    print(f"hangs:                  {hangs} (target 0)")
    if slowest:
        print(f"slowest time-to-failure after a component died: {slowest.time_to_end:.1f}s "
              f"({slowest.fault}, {slowest.module}) against a step timeout of at most 120s")
    return 1 if leaked or hangs else 0


if __name__ == "__main__":
    sys.exit(main())
