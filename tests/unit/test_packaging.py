"""pyproject.toml declares what the code imports: check mode, explain and the eks backend need only the core
dependencies; the local and kind backends have extras of their own; the licence and metadata are set."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
FIRST_PARTY = {"fargatelab", "labs"}

#: where an import may come from an extra: the local environment (and the emulation it launches), kind, and
#: the shell completion the command offers when its extra is installed
EXTRA_OF = [("fargatelab/local/", "local"), ("fargatelab/emulator/", "local"), ("fargatelab/backends/kind.py", "kind"),
            ("fargatelab/kind/", "kind"),
            ("fargatelab/cli/main.py", "cli")]


def _name(requirement: str) -> str:
    return re.sub(r"[-_.]+", "-", Requirement(requirement).name).lower()


CORE = {_name(r) for r in PROJECT["dependencies"]}
EXTRAS = {extra: {_name(r) for r in reqs} for extra, reqs in PROJECT["optional-dependencies"].items()}


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return {name for name in found if name not in sys.stdlib_module_names and name not in FIRST_PARTY}


def _sources() -> list[Path]:
    return sorted([*(ROOT / "fargatelab").rglob("*.py"), *(ROOT / "labs").rglob("*.py")])


def test_every_third_party_import_is_declared_where_it_is_needed() -> None:
    distributions = importlib.metadata.packages_distributions()
    undeclared = []
    for path in _sources():
        relative = path.relative_to(ROOT).as_posix()
        extra = next((e for prefix, e in EXTRA_OF if relative.startswith(prefix)), None)
        allowed = CORE | (EXTRAS[extra] if extra else set())
        for module in sorted(_imports(path)):
            dists = {re.sub(r"[-_.]+", "-", d).lower() for d in distributions.get(module, [])}
            assert dists, f"{relative} imports {module}, which no installed distribution provides"
            if not dists & allowed:
                undeclared.append(f"{relative}: {module} ({', '.join(sorted(dists))}) not in "
                                  + (f"the core dependencies or [{extra}]" if extra else "the core dependencies"))
    assert not undeclared, "\n".join(undeclared)


def test_extras() -> None:
    assert "moto" not in CORE and "moto" in EXTRAS["local"]
    assert not any("pytest-kind" in name for extra in EXTRAS.values() for name in extra), \
        "the kind backend drives the kind CLI itself (fargatelab/kind/cluster.py)"
    assert EXTRAS["local"] <= EXTRAS["kind"], "kind runs the local environment's emulation and AWS side"
    assert EXTRAS["local"] | EXTRAS["kind"] | EXTRAS["cli"] <= EXTRAS["dev"]
    assert {"mypy", "ruff"} <= EXTRAS["dev"]
    assert 'moto[server]' in " ".join(PROJECT["optional-dependencies"]["local"])


def test_licence_and_metadata() -> None:
    licence = (ROOT / "LICENSE").read_text()
    assert licence.startswith("MIT License") and "fargate-labs authors" in licence
    assert PROJECT["license"] == "MIT" and PROJECT["license-files"] == ["LICENSE"]
    assert PROJECT["readme"] == "README.md"
    classifiers = PROJECT["classifiers"]
    assert "Framework :: Pytest" in classifiers and "Programming Language :: Python :: 3.11" in classifiers
    assert not any(c.startswith("License ::") for c in classifiers)  # the licence expression says it
    assert importlib.metadata.metadata("fargate-labs")["License-Expression"] == "MIT"


BLOCK_EXTRAS = r'''
import importlib.abc, sys

class Absent(importlib.abc.MetaPathFinder):
    """The packages of the extras, as on a machine with only the core dependencies."""
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {"moto", "werkzeug", "pytest_kind", "shtab", "flask"}:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, Absent())
'''


def test_check_mode_explain_and_the_eks_backend_run_on_the_core_dependencies(tmp_path: Path) -> None:
    script = BLOCK_EXTRAS + r'''
import pytest
import fargatelab.backends.eks, fargatelab.cli.check, fargatelab.cli.cleanup, fargatelab.plugin.session
from fargatelab.cli.main import main
assert main(["explain", "-f", "fixtures/manifests/netshoot.yaml"]) == 0
sys.exit(pytest.main(["labs", "--backend", "eks", "--mode", "check", "--collect-only", "-q",
                      "-p", "no:cacheprovider"]))
'''
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert re.search(r"^\d+ tests collected", result.stdout.splitlines()[-1]), result.stdout[-500:]


@pytest.mark.parametrize("module", ["moto", "werkzeug", "pytest_kind", "shtab"])
def test_the_blocker_really_blocks(module: str) -> None:
    result = subprocess.run([sys.executable, "-c", BLOCK_EXTRAS + f"import {module}\n"], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode != 0 and "ModuleNotFoundError" in result.stderr
