"""The docs keep up with the code: every exit code is in troubleshooting.md, every lab module in labs.md."""

from __future__ import annotations

from pathlib import Path

import pytest

from fargatelab.errors import ExitCode

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"


def test_every_exit_code_is_explained() -> None:
    text = (DOCS / "troubleshooting.md").read_text()
    codes = {name: value for name, value in vars(ExitCode).items() if name.isupper()}
    missing = [f"{name} ({value})" for name, value in codes.items() if f"| {value} | `{name}` |" not in text]
    assert not missing, f"add a row `| <code> | `<NAME>` | meaning | what to do |` to docs/troubleshooting.md for: {missing}"


@pytest.mark.parametrize("module", sorted(p.name for p in (ROOT / "labs").glob("test_*.py")))
def test_every_lab_is_mapped_to_its_document(module: str) -> None:
    assert f"`labs/{module}`" in (DOCS / "labs.md").read_text(), (
        f"docs/labs.md: add labs/{module} (its document, steps and the outcomes asserted)")


@pytest.mark.parametrize("doc", ["getting-started.md", "labs.md", "check-mode.md", "writing-a-lab.md",
                                 "troubleshooting.md", "reports.md"])
def test_docs_exist_and_have_a_title(doc: str) -> None:
    assert (DOCS / doc).read_text().startswith("# ")
