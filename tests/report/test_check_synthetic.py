"""``fargate-lab check`` end to end on the synthetic lab: its real pytest process, its real ``summary.json``.

The synthetic lab's ``lab`` fixture stands in for a cluster, so the eks backend the check asks for is never
opened: what is checked is the command, the run's reports and what the check makes of them.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from test_report_integration import make_lab_dir


def test_check_reports_each_lab_from_its_run(tmp_path: Path) -> None:
    labs = make_lab_dir(tmp_path / "labs")
    result = subprocess.run([sys.executable, "-m", "fargatelab.cli", "check", "--labs", str(labs),
                             "--cluster", "synthetic-cluster", "--region", "ap-northeast-2",
                             "--reports-dir", str(tmp_path / "reports")],
                            cwd=tmp_path, capture_output=True, text=True, timeout=300)
    out = result.stdout
    assert result.returncode == 1, out + result.stderr
    assert "fargate-lab check: cluster synthetic-cluster in ap-northeast-2 (given), read-only" in out
    assert "✘ Lab 9 — synthetic scaling: not yet (4 of 9 steps done)" in out
    assert ("    ✘ netshoot present: missing: Deployment study-aews/netshoot\n"
            "      run: kubectl apply -f netshoot.yaml\n") in out
    assert "    ✘ scale [5->3]: expected 3, got 5\n" in out
    assert "0 of 1 labs done\n" in out
    [run] = (tmp_path / "reports").glob("check-*")
    assert (run / "summary.md").read_text().startswith("# fargate-labs: check of cluster `synthetic-cluster`")
    assert f"summary: {run / 'summary.md'}" in out
