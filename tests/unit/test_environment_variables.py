"""Every ``FARGATE_LABS_*`` variable is documented in docs/environment-variables.md, and those of the package
and its scripts in ``fargate-lab --help`` too."""

from __future__ import annotations

import re
from pathlib import Path

from fargatelab.cli.help_text import ENVIRONMENT
from fargatelab.cli.main import get_parser

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "environment-variables.md"
VARIABLE = re.compile(r"FARGATE_LABS_[A-Z0-9_]*[A-Z0-9]")


def _used(*places: str) -> set[str]:
    found: set[str] = set()
    for place in places:
        path = ROOT / place
        for source in ([path] if path.is_file() else [*path.rglob("*.py"), *path.rglob("*.sh")]):
            found |= set(VARIABLE.findall(source.read_text(encoding="utf-8", errors="replace")))
    return found


def test_the_package_and_scripts_variables_are_in_the_help_and_the_doc() -> None:
    used = _used("fargatelab", "scripts", "noxfile.py", "conftest.py", "labs")
    assert used, "the search found nothing: is the pattern right?"
    help_text = get_parser().format_help()
    doc = DOC.read_text()
    assert not sorted(used - set(ENVIRONMENT)), "add them to fargatelab/cli/help_text.py ENVIRONMENT"
    assert not [v for v in used if v not in help_text]
    assert not [v for v in used if f"| `{v}` |" not in doc], "add a row to docs/environment-variables.md"


def test_the_tests_variables_are_in_the_doc() -> None:
    doc = DOC.read_text()
    missing = sorted(v for v in _used("tests", ".ci/run") if f"`{v}`" not in doc)
    assert not missing, f"docs/environment-variables.md: document {missing}"


def test_the_readme_links_the_doc() -> None:
    assert "(docs/environment-variables.md)" in (ROOT / "README.md").read_text()
