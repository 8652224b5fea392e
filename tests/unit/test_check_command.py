"""``fargate-lab check`` without a cluster: its arguments, the pytest command it runs, and what it prints and
exits with, from a synthetic ``summary.json`` written where that command would write it."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any, Callable

import pytest
import yaml

from fargatelab.cli import check
from fargatelab.cli.main import get_parser, main
from fargatelab.errors import ExitCode, HarnessError

ROOT = Path(__file__).resolve().parents[2]
ARN = "arn:aws:eks:ap-northeast-2:123456789012:cluster/eksworkshop"


def _step(step: str, outcome: str, **extra: Any) -> dict[str, Any]:
    return {"step": step, "outcome": outcome, "ok": outcome in ("passed", "xfailed"),
            "mark": {"passed": "✔", "failed": "✘", "error": "⚠", "skipped": "–", "not run": "·"}[outcome],
            "missing": None, "fix": None, "expected": None, "actual": None, "message": None, "commands": [],
            **extra}


def summary(done: bool = False) -> dict[str, Any]:
    """A check of Labs 1, 2 and 3: Lab 1 done, Lab 2 done or not, Lab 3 only replay steps."""
    lab2 = [_step("manifest [fargate-game-2048]", "passed")]
    if done:
        lab2.append(_step("load balancer [fargate-game-2048]", "passed"))
    else:
        lab2 += [_step("ingress hostname [fargate-game-2048]", "failed",
                       missing="Ingress fargate-game-2048/ingress-2048",
                       fix="kubectl apply -f fargate_2048_full.yaml"),
                 _step("fargate nodes [fargate-game-2048]", "failed", expected="5", actual="3",
                       commands=["kubectl get nodes -l eks.amazonaws.com/compute-type=fargate  =>  kubectl get nodes"]),
                 _step("reconciled event [fargate-game-2048]", "error", message="`kubectl get events` failed (1)")]
    return {
        "run": {"run_id": "check-x", "mode": "check", "interrupted": False, "stop_reason": ""},
        "verdict": "PASSED" if done else "FAILED",
        "labs": [
            {"lab": "Lab 1 — Fargate profile", "steps": [_step("create profile", "passed"),
                                                        _step("profile rule [6 selectors]", "skipped")]},
            {"lab": "Lab 2 — the 2048 game behind an ALB Ingress", "steps": lab2},
            {"lab": "Lab 3 — scaling replicas and the node count", "steps": [_step("scale [5->3]", "skipped")]},
        ],
        "collection_errors": [],
    }


def test_progress_per_lab_names_what_is_missing_and_the_command() -> None:
    assert check.progress_lines(summary()) == [
        "✔ Lab 1 — Fargate profile: done (1 of 1 steps)",
        "✘ Lab 2 — the 2048 game behind an ALB Ingress: not yet (1 of 4 steps done)",
        "    ✘ ingress hostname [fargate-game-2048]: missing: Ingress fargate-game-2048/ingress-2048",
        "      run: kubectl apply -f fargate_2048_full.yaml",
        "    ✘ fargate nodes [fargate-game-2048]: expected 5, got 3",
        "      run: kubectl get nodes -l eks.amazonaws.com/compute-type=fargate",
        "    ⚠ reconciled event [fargate-game-2048]: could not be checked: `kubectl get events` failed (1)",
        "– Lab 3 — scaling replicas and the node count: nothing to check (its steps only run in replay, or need "
        "what the cluster lacks)",
        "1 of 2 labs done",
    ]
    assert not check.all_done(summary())
    assert check.all_done(summary(done=True))
    assert check.progress_lines(summary(done=True))[-1] == "2 of 2 labs done — everything checked is done"


def test_an_interrupted_run_or_a_lab_that_did_not_load_is_not_done() -> None:
    stopped = summary(done=True)
    stopped["run"]["interrupted"] = True
    broken = summary(done=True)
    broken["collection_errors"] = [{"module": "labs/test_x.py", "message": "SyntaxError: invalid syntax"}]
    assert not check.all_done(stopped) and not check.all_done(broken)
    assert check.progress_lines(broken)[0] == "⚠ labs/test_x.py: could not be loaded: SyntaxError: invalid syntax"


def test_the_pytest_command() -> None:
    labs = ROOT / "labs"
    argv = check.check_command(labs, "student", "check-1", Path("/r"), ["4", "netshoot"], workers=2)
    assert argv[1:4] == ["-m", "pytest", str(labs)]
    text = " ".join(argv)
    for part in ("-p fargatelab.plugin", "-p no:pytest-kind-ng", "-p no:pytest11.testinfra", "--backend eks",
                 "--mode check", "--kube-context=student", "--run-id check-1", "--reports-dir /r",
                 "-n 2 --dist loadgroup", "--lab 4 --lab netshoot"):
        assert part in text, part
    current = check.check_command(labs, None, "check-1", Path("/r"), [], workers=1)
    assert "--kube-context=" in current and "-n" not in current
    given = check.check_command(labs, ("eksworkshop", "us-east-1"), "check-1", Path("/r"), [], workers=1)
    assert "--cluster eksworkshop --region us-east-1" in " ".join(given) and "--kube-context=" not in " ".join(given)


@pytest.mark.parametrize("argv,error", [
    (["check", "--watch", "0"], "--watch takes a number of seconds of at least 1"),
    (["check", "--watch", "soon"], "'soon' is not a whole number of seconds"),
    (["check", "--workers", "two"], "invalid int value"),
])
def test_bad_arguments_are_usage_errors(argv: list[str], error: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == ExitCode.USAGE and error in capsys.readouterr().err


@pytest.fixture
def kubeconfig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A kubeconfig as ``aws eks update-kubeconfig`` writes it, current context the cluster's ARN, plus another."""
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": ARN,
        "clusters": [{"name": ARN, "cluster": {"server": "https://x"}},
                     {"name": "kind-x", "cluster": {"server": "https://127.0.0.1:1"}}],
        "users": [{"name": ARN, "user": {}}, {"name": "kind-x", "user": {}}],
        "contexts": [{"name": ARN, "context": {"cluster": ARN, "user": ARN}},
                     {"name": "kind-x", "context": {"cluster": "kind-x", "user": "kind-x"}}],
    }))
    monkeypatch.setenv("KUBECONFIG", str(path))
    return path


class FakePytest:
    """Stands in for the check's pytest process: writes each round's summary.json where the command says."""

    def __init__(self, rounds: list[tuple[int, dict[str, Any] | None]]) -> None:
        self.rounds, self.argvs = list(rounds), []

    def __call__(self, argv: list[str], cwd: Path) -> int:
        self.argvs.append(argv)
        code, data = self.rounds.pop(0)
        if data is not None:
            run = Path(argv[argv.index("--reports-dir") + 1]) / argv[argv.index("--run-id") + 1]
            run.mkdir(parents=True)
            (run / "summary.json").write_text(json.dumps(data))
            (run / "summary.md").write_text("# fargate-labs: check of cluster `eksworkshop`\n")
        return code


def _check(tmp_path: Path, runner: FakePytest, *argv: str, sleep: Callable[[float], None] = lambda s: None) -> tuple[int, str]:
    args = get_parser().parse_args(["check", "--reports-dir", str(tmp_path / "reports"), *argv])
    out = io.StringIO()
    return check.run_check(args, runner=runner, sleep=sleep, out=out), out.getvalue()


def test_a_check_from_the_current_context(kubeconfig: Path, tmp_path: Path) -> None:
    runner = FakePytest([(1, summary())])
    code, out = _check(tmp_path, runner)
    assert code == 1
    assert out.startswith("fargate-lab check: cluster eksworkshop in ap-northeast-2 (the current context), read-only")
    assert "      run: kubectl apply -f fargate_2048_full.yaml\n" in out
    [run] = (tmp_path / "reports").iterdir()
    assert out.rstrip().endswith(f"summary: {run / 'summary.md'}")
    assert "--kube-context=" in runner.argvs[0]


def test_everything_done_exits_0(kubeconfig: Path, tmp_path: Path) -> None:
    code, out = _check(tmp_path, FakePytest([(0, summary(done=True))]), "--context", ARN, "--lab", "2")
    assert code == 0 and "2 of 2 labs done — everything checked is done" in out


def test_an_unknown_context_is_bad_input(kubeconfig: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--context", "nope"]) == ExitCode.BAD_INPUT
    assert "kubeconfig context 'nope' does not exist" in capsys.readouterr().err
    assert main(["check", "--context", "kind-x"]) == ExitCode.BAD_INPUT
    assert "does not name an EKS cluster" in capsys.readouterr().err
    assert main(["check", "--cluster", "eksworkshop"]) == ExitCode.USAGE
    assert "give --cluster with --region" in capsys.readouterr().err


def test_a_check_that_could_not_run_keeps_its_code(kubeconfig: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    stopped = summary()
    stopped["run"].update(interrupted=True, stop_reason="stopped: fargate-labs: no AWS credentials")
    code, out = _check(tmp_path, FakePytest([(ExitCode.NO_CREDENTIALS, stopped)]))
    assert code == ExitCode.NO_CREDENTIALS and "not yet" not in out
    assert "fargate-lab: error: the check stopped before it could say (stopped: fargate-labs: no AWS credentials)" \
        in capsys.readouterr().err
    code, out = _check(tmp_path, FakePytest([(4, None)]), "--lab", "99")
    assert code == ExitCode.USAGE
    assert "fargate-lab: error: the check did not run (pytest exited 4)" in capsys.readouterr().err


def test_watch_checks_again_until_done(kubeconfig: Path, tmp_path: Path) -> None:
    slept: list[float] = []
    runner = FakePytest([(1, summary()), (1, summary()), (0, summary(done=True))])
    code, out = _check(tmp_path, runner, "--watch", "30", sleep=slept.append)
    assert code == 0 and slept == [30, 30] and len(runner.argvs) == 3
    assert out.count("checking again in 30 s (Ctrl-C stops)") == 2
    assert len(list((tmp_path / "reports").iterdir())) == 1  # a watch keeps its newest round only


def test_ctrl_c_during_a_watch_exits_130(kubeconfig: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    def interrupted(_seconds: float) -> None:
        raise KeyboardInterrupt

    code, _out = _check(tmp_path, FakePytest([(1, summary())]), "--watch", "5", sleep=interrupted)
    assert code == ExitCode.INTERRUPTED
    assert "check stopped (Ctrl-C); it changed nothing on the cluster" in capsys.readouterr().err

    def ctrl_c(argv: list[str], cwd: Path) -> int:
        raise KeyboardInterrupt

    code, _out = _check(tmp_path, ctrl_c)  # type: ignore[arg-type]
    assert code == ExitCode.INTERRUPTED


def test_the_labs_are_found_or_named(tmp_path: Path) -> None:
    assert check.find_labs(None) == ROOT / "labs"
    assert check.find_labs(str(ROOT / "labs")) == ROOT / "labs"
    with pytest.raises(HarnessError, match="holds no lab modules"):
        check.find_labs(str(tmp_path))
