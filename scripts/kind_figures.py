"""The kind backend's figures, for scripts/benchmark.py (``--kind``; needs a running Docker engine:
``fargate-lab kind-engine``): how long a run waits for its kind cluster and emulation from the cached node
image, how long the labs take on kind, and, with ``--cold``, the node image built into an empty cache.

Targets on the 2-core reference machine: a warm kind cluster up (image cached) <= 60 s; the labs on kind
(`nox -s labs -- --backend kind`) <= 4 min; a cold node-image build <= 15 min.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent


def _line(label: str, seconds: float, target: str) -> None:
    print(f"{label:<44} {seconds:8.1f} s   ({target})", flush=True)


def cold_node_image() -> None:
    """kind's tools and node image into an empty cache (the Go build cache stays warm): what a new machine
    builds for the kind backend beyond the local environment's binaries, also built here."""
    code = ("import sys\nfrom fargatelab.kind.node_image import provision_node_image\n"
            "print(provision_node_image(lambda line: print(line, file=sys.stderr)))")
    listed = subprocess.run(["docker", "image", "ls", "--format", "{{.Repository}}:{{.Tag}}"],
                            capture_output=True, text=True)
    had = set(listed.stdout.split())
    with tempfile.TemporaryDirectory() as cache:
        started = time.monotonic()
        done = subprocess.run([sys.executable, "-c", code], env=dict(os.environ, FARGATE_LABS_CACHE=cache),
                              cwd=ROOT, capture_output=True, text=True)
        elapsed = time.monotonic() - started
        _line("kind node image, empty cache (Go cache warm)", elapsed,
              f"target <= 15 min; {'built ' + done.stdout.strip() if done.returncode == 0 else 'FAILED: ' + done.stderr[-300:]}")
        tag = done.stdout.strip()
        # The same ingredients give the same tag: an image the real cache already had stays for the runs.
        if done.returncode == 0 and tag not in had:
            subprocess.run(["docker", "image", "rm", tag], capture_output=True)


def warm_cluster() -> None:
    """A run's kind cluster and emulation from the cached node image, as its first worker makes them, then
    removed as the run's end removes them."""
    from fargatelab.backends import BackendOptions
    from fargatelab.backends.kind import KindBackend, remove
    from fargatelab.kind.node_image import provision_node_image

    provision_node_image(lambda line: print(line, file=sys.stderr))  # built beforehand: not timed
    run_id = f"{os.getpid() & 0xffffff:06x}bk"
    started = time.monotonic()
    try:
        KindBackend(BackendOptions(backend="kind", run_id=run_id, owner=False))
        _line("kind cluster + emulation up (image cached)", time.monotonic() - started, "target <= 60 s")
    finally:
        started = time.monotonic()
        remove(run_id)
        _line("kind cluster + emulation removed", time.monotonic() - started, "no target")


def kind_labs(pytest_args: list[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        started = time.monotonic()
        done = subprocess.run([sys.executable, "-m", "pytest", *pytest_args, "--backend", "kind", "-q",
                               f"--reports-dir={tmp}"], cwd=ROOT, capture_output=True, text=True)
        wall = time.monotonic() - started
        run = json.loads((Path(tmp) / "latest" / "summary.json").read_text())
        _line("labs on kind, whole suite (wall)", wall, f"target <= 240 s; {run['verdict']}, exit {done.returncode}")
        counts: dict[str, int] = {}
        for step in (s for lab in run["labs"] for s in lab["steps"]):
            counts[step["outcome"]] = counts.get(step["outcome"], 0) + 1
            if step["outcome"] in ("failed", "error"):
                print(f"  {step['outcome']}: {step['test']}")
        print(f"  steps: {', '.join(f'{n} {outcome}' for outcome, n in sorted(counts.items()))}")


def kind_figures(pytest_args: list[str], cold: bool, docker_runs: Callable[[], bool]) -> None:
    if not docker_runs():
        print("kind figures: skipped, no Docker engine runs here (`fargate-lab kind-engine` starts one)")
        return
    if cold:
        cold_node_image()
    warm_cluster()
    kind_labs(pytest_args)
