"""Speed and memory figures of the local environment and the labs. Prints figures; asserts nothing.

    python scripts/benchmark.py            # warm up/down times and RSS
    python scripts/benchmark.py --labs     # plus the whole suite's wall time and each lab's
    python scripts/benchmark.py --labs-only
    python scripts/benchmark.py --cold     # plus provisioning into an empty cache (a rebuild: minutes)

Targets on the 2-core reference machine: warm `up` <= 10 s, total RSS <= 1.5 GB, labs <= 90 s.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from fargatelab.local import process  # noqa: E402
from fargatelab.local.environment import EnvironmentConfig, LocalEnvironment  # noqa: E402


def rss_mb(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


def timed(label: str, fn: object) -> float:
    started = time.monotonic()
    fn()  # type: ignore[operator]
    elapsed = time.monotonic() - started
    print(f"{label:<44} {elapsed:8.1f} s", flush=True)
    return elapsed


def cold_provisioning() -> None:
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, FARGATE_LABS_CACHE=cache)
        started = time.monotonic()
        subprocess.run([sys.executable, "-c", "from fargatelab.local.binaries import provision; provision()"],
                       env=env, check=True, cwd=ROOT)
        print(f"{'provisioning into an empty cache (Go cache warm)':<44} {time.monotonic() - started:8.1f} s")


def environment_figures() -> None:
    env = LocalEnvironment(f"bench-{os.getpid()}")
    quiet = lambda _line: None  # noqa: E731
    timed("first up (binaries cached)", lambda: env.up(EnvironmentConfig(name=env.name), progress=quiet))
    run_id = env.state()["run_id"]  # type: ignore[index]
    time.sleep(3)
    print(f"{'total RSS of the environment, idle':<44} {rss_mb(process.tagged_pids(run_id)):8.0f} MB")
    timed("down", lambda: env.down(quiet=True))
    timed("warm up", lambda: env.up(EnvironmentConfig(name=env.name), progress=quiet))
    run_id = env.state()["run_id"]  # type: ignore[index]
    workload(env)
    print(f"{'total RSS after 20 Fargate pods':<44} {rss_mb(process.tagged_pids(run_id)):8.0f} MB")
    timed("down (with 20 Fargate pods)", lambda: env.down(quiet=True))


def workload(env: LocalEnvironment) -> None:
    import boto3

    h = env.handle()
    aws = dict(region_name=h.region, endpoint_url=h.aws_endpoint, aws_access_key_id="testing",
               aws_secret_access_key="testing")
    eks, iam = boto3.client("eks", **aws), boto3.client("iam", **aws)
    role = next(r["Arn"] for r in iam.list_roles()["Roles"] if "FargatePodExecutionRole" in r["RoleName"])
    eks.create_fargate_profile(clusterName=h.cluster_name, fargateProfileName="bench", podExecutionRoleArn=role,
                               selectors=[{"namespace": "bench"}])
    while eks.describe_fargate_profile(clusterName=h.cluster_name, fargateProfileName="bench")[
            "fargateProfile"]["status"] != "ACTIVE":
        time.sleep(0.5)
    kubectl = ["kubectl", f"--kubeconfig={h.kubeconfig}"]
    subprocess.run(kubectl + ["create", "namespace", "bench"], check=True, capture_output=True)
    subprocess.run(kubectl + ["-n", "bench", "create", "deployment", "w", "--image=nginx", "--replicas=20"],
                   check=True, capture_output=True)
    started = time.monotonic()
    subprocess.run(kubectl + ["-n", "bench", "rollout", "status", "deployment/w", "--timeout=180s"],
                   check=True, capture_output=True)
    print(f"{'20 Fargate pods from apply to Running':<44} {time.monotonic() - started:8.1f} s")


def labs_pytest_args() -> list[str]:
    """The labs as `nox -s labs` runs them: noxfile.LABS_PYTEST_ARGS (read, not imported: no nox here)."""
    for node in ast.parse((ROOT / "noxfile.py").read_text()).body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "LABS_PYTEST_ARGS":
            return [str(arg) for arg in ast.literal_eval(node.value)]
    raise SystemExit("noxfile.py has no LABS_PYTEST_ARGS")


def lab_figures() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        started = time.monotonic()
        done = subprocess.run([sys.executable, "-m", "pytest", *labs_pytest_args(), "-q", f"--reports-dir={tmp}"],
                              cwd=ROOT)
        wall = time.monotonic() - started
        run = json.loads((Path(tmp) / "latest" / "summary.json").read_text())
        print(f"{'labs, whole suite (wall, pytest included)':<44} {wall:8.1f} s"
              f"   ({run['verdict']}, exit {done.returncode})")
        print(f"{'labs, whole session as pytest reports it':<44} {run['run']['duration']:8.1f} s   (target <= 90 s)")
        for lab in sorted(run["labs"], key=lambda lab: -lab["wall_seconds"]):
            summed = sum(step["duration_seconds"] for step in lab["steps"])
            print(f"  {lab['module']:<42} {lab['wall_seconds']:8.1f} s wall, {summed:6.1f} s summed over "
                  f"{len(lab['steps'])} steps")
        steps = [step for lab in run["labs"] for step in lab["steps"] if step.get("started_at")]
        if steps:
            origin = min(step["started_at"] for step in steps)
            print("workers (seconds from the first step's start):")
            for worker in sorted({step["worker"] or "-" for step in steps}):
                mine = [step for step in steps if (step["worker"] or "-") == worker]
                busy = sum(step["duration_seconds"] for step in mine)
                print(f"  {worker:<6} {min(s['started_at'] for s in mine) - origin:6.1f} -> "
                      f"{max(s['finished_at'] for s in mine) - origin:6.1f}, busy {busy:6.1f} s, {len(mine)} steps")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--labs", action="store_true", help="also time the labs")
    p.add_argument("--labs-only", action="store_true", help="time the labs only")
    p.add_argument("--cold", action="store_true", help="also provision into an empty cache")
    args = p.parse_args()
    if args.cold:
        cold_provisioning()
    if not args.labs_only:
        environment_figures()
    if args.labs or args.labs_only:
        lab_figures()


if __name__ == "__main__":
    main()
