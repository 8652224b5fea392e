"""The run's directory: ``reports/<run id>/`` with ``report.html``, ``summary.json``, ``summary.md`` and
``junit.xml``, and ``reports/latest`` pointing at the newest run.

Each file is written whole to a temporary name and renamed, so a reader (a CI upload, a browser left
open) never sees half a report.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from .model import RunReport
from .page import render_html
from .summary import render_summary_md, summary_json

__all__ = ["write_reports"]


def write_reports(model: RunReport, reports_dir: Path, junit: Path | None = None) -> Path:
    """Write ``<reports_dir>/<run id>/`` and point ``<reports_dir>/latest`` at it; returns the run's directory."""
    run_dir = reports_dir / (model.info.run_id or "run")
    run_dir.mkdir(parents=True, exist_ok=True)
    ours = {"report.html", "summary.json", "summary.md", "junit.xml"}
    others = sorted(p.name for p in run_dir.iterdir() if p.is_file() and p.name not in ours
                    and not p.name.startswith("."))
    _atomic_write(run_dir / "report.html", render_html(model, others))
    _atomic_write(run_dir / "summary.json", json.dumps(summary_json(model), indent=2, ensure_ascii=False) + "\n")
    _atomic_write(run_dir / "summary.md", render_summary_md(model))
    if junit is not None and junit.exists() and junit.resolve() != (run_dir / "junit.xml").resolve():
        _atomic_write(run_dir / "junit.xml", junit.read_text(encoding="utf-8"))
    latest = reports_dir / "latest"
    tmp = reports_dir / f".latest-{os.getpid()}"
    try:
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(run_dir.name, target_is_directory=True)
        os.replace(tmp, latest)
    except OSError:  # a filesystem without symlinks: a plain file naming the run
        tmp.unlink(missing_ok=True)
        if latest.is_symlink() or latest.is_file():
            latest.unlink()
        if not latest.exists():
            latest.write_text(run_dir.name + "\n")
    return run_dir


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
