"""Speed and memory figures of the local environment and the labs. Prints figures; asserts nothing.

    python scripts/benchmark.py            # warm up/down times and RSS
    python scripts/benchmark.py --labs     # plus the whole suite's wall time and each lab's
    python scripts/benchmark.py --cold     # plus provisioning into an empty cache (a rebuild: minutes)

Targets on the 2-core reference machine: warm `up` <= 10 s, total RSS <= 1.5 GB, labs <= 90 s.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from fargatelab import process  # noqa: E402
from fargatelab.environment import EnvironmentConfig, LocalEnvironment  # noqa: E402


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
        subprocess.run([sys.executable, "-c", "from fargatelab.binaries import provision; provision()"],
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


def lab_figures() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        junit = Path(tmp) / "junit.xml"
        started = time.monotonic()
        subprocess.run([sys.executable, "-m", "pytest", "labs", "-n", "2", "--dist", "loadgroup", "-q",
                        "-p", "no:cacheprovider", f"--junitxml={junit}"], cwd=ROOT)
        print(f"{'labs, whole suite (wall)':<44} {time.monotonic() - started:8.1f} s")
        per_lab: dict[str, float] = defaultdict(float)
        for case in ET.parse(junit).getroot().iter("testcase"):
            per_lab[case.get("classname", "").split(".")[-1]] += float(case.get("time", 0))
        for name, seconds in sorted(per_lab.items(), key=lambda kv: -kv[1]):
            print(f"  {name:<42} {seconds:8.1f} s (summed test time)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--labs", action="store_true", help="also time the labs")
    p.add_argument("--cold", action="store_true", help="also provision into an empty cache")
    args = p.parse_args()
    if args.cold:
        cold_provisioning()
    environment_figures()
    if args.labs:
        lab_figures()


if __name__ == "__main__":
    main()
