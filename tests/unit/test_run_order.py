"""How a labs run is laid out in time: the longest documented wait first, the environment started early."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from fargatelab.plugin.session import _starts_environment_early

ROOT = Path(__file__).resolve().parents[2]


def test_the_job_ttl_lab_is_collected_first_and_the_rest_keep_their_order() -> None:
    out = subprocess.run([sys.executable, "-m", "pytest", "labs", "--collect-only", "-q", "-p", "no:randomly",
                          "--no-reports"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    modules = [line.split("::")[0] for line in out.splitlines() if "::" in line]
    order = list(dict.fromkeys(modules))
    assert order[0] == "labs/test_job_ttl.py", order
    assert order[1:] == sorted(order[1:]), "labs without a documented wait stay in file order"
    ttl_steps = modules.count("labs/test_job_ttl.py")
    assert modules[:ttl_steps] == ["labs/test_job_ttl.py"] * ttl_steps


def config(*args: str, numprocesses: int | None = 4, backend: str = "local", reuse: str | None = None,
           worker: bool = False, cwd: Path = ROOT) -> SimpleNamespace:
    option = SimpleNamespace(numprocesses=numprocesses, backend=backend, reuse=reuse, collectonly=False, help=False)
    made = SimpleNamespace(option=option, rootpath=ROOT, args=list(args),
                           invocation_params=SimpleNamespace(dir=cwd))
    if worker:
        made.workerinput = {}
    return made


@pytest.mark.parametrize("made,early", [
    (config("labs"), True),
    (config("labs/test_job_ttl.py::test_job_completes"), True),
    (config("test_scaling.py", cwd=ROOT / "labs"), True),
    (config("labs", numprocesses=None), False),
    (config("labs", numprocesses=0), False),
    (config("labs", worker=True), False),
    (config("labs", backend="eks"), False),
    (config("labs", reuse="mine"), False),
    (config("tests"), False),
    (config("labs", "tests/unit"), False),
], ids=["labs -n 4", "one lab step", "from labs/", "no xdist", "-n 0", "a worker", "eks", "--reuse", "tests",
        "labs and tests"])
def test_the_controller_starts_the_environment_early_only_for_its_own_labs_run(made: SimpleNamespace,
                                                                                early: bool) -> None:
    assert _starts_environment_early(made) is early  # type: ignore[arg-type]


def test_the_benchmark_times_the_labs_as_nox_runs_them() -> None:
    spec = importlib.util.spec_from_file_location("benchmark", ROOT / "scripts" / "benchmark.py")
    assert spec and spec.loader
    benchmark = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(benchmark)
    args = benchmark.labs_pytest_args()
    assert args[0] == "labs" and "--dist" in args and args[args.index("--dist") + 1] == "loadgroup"
    assert f'"-n", "{args[args.index("-n") + 1]}"' in (ROOT / "noxfile.py").read_text()
