"""``fargate-lab check``: a student's self-check of their own EKS cluster, read-only, lab by lab.

It finds the cluster and region in the kubeconfig context (the current one, or ``--context``), runs the labs
in check mode in a pytest process of their own (``pytest labs --backend eks --mode check --kube-context=…``,
with pytest-xdist), and reads that run's ``summary.json`` to say, per lab, *done* or *not yet* and the
command that would do each missing step. The run's ``summary.md`` is the student's summary.

Exit: 0 when every checked step is done, 1 when some are not yet; when the check could not run at all (no
credentials, no such cluster, ...) the code of that failure (docs/troubleshooting.md). ``--watch N`` checks
again every N seconds until everything is done; Ctrl-C stops it (130).
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence, TextIO

from ..errors import ExitCode, HarnessError

__all__ = ["add_parser", "run_check", "check_command", "progress_lines", "all_done", "find_labs"]

#: pytest plugins the labs must not load: their options are not the harness's (see pyproject's addopts)
BLOCKED_PLUGINS = ("pytest-kind-ng", "pytest11.testinfra")
NOT_YET = 1
#: pytest's own exit codes that mean nothing was checked (usage error, no tests), and its Ctrl-C
_PYTEST_CODES = (0, 1, 4, 5)
_PYTEST_INTERRUPTED = 2

Runner = Callable[[list[str], Path], int]


def _seconds(value: str) -> int:
    try:
        seconds = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number of seconds") from None
    if seconds < 1:
        raise argparse.ArgumentTypeError("--watch takes a number of seconds of at least 1")
    return seconds


def add_parser(sub: Any, description: str) -> None:
    p = sub.add_parser("check", help="check your own EKS cluster against the labs (read-only)",
                       description=description)
    p.add_argument("--context", default=None, metavar="NAME",
                   help="kubeconfig context of the cluster (default: the current context)")
    p.add_argument("--cluster", default=None, help="the EKS cluster's name, instead of a kubeconfig context "
                   "(with --region)")
    p.add_argument("--region", default=None, help="the cluster's AWS region (with --cluster)")
    p.add_argument("--lab", action="append", default=[], metavar="N|WORD",
                   help="check only this lab: its number or a word of its name (repeatable)")
    p.add_argument("--watch", type=_seconds, default=None, metavar="SECONDS",
                   help="check again every SECONDS seconds until every checked step is done")
    p.add_argument("--labs", default=None, metavar="DIR", help="the labs directory (default: labs/ of this repository)")
    p.add_argument("--reports-dir", default=None, metavar="DIR",
                   help="where the run's reports go (default: reports/ beside the labs)")
    p.add_argument("-n", "--workers", type=int, default=2, metavar="N", help="pytest-xdist processes (default 2)")


def find_labs(given: str | None) -> Path:
    """The labs' directory: ``--labs``, else ``labs/`` here, else ``labs/`` of the repository this package is in."""
    if given:
        path = Path(given).resolve()
        if not path.is_dir() or not any(path.glob("test_*.py")):
            raise HarnessError(f"{given} holds no lab modules (test_*.py): pass the labs directory",
                               ExitCode.BAD_INPUT)
        return path
    for candidate in (Path.cwd() / "labs", Path(__file__).resolve().parents[2] / "labs"):
        if candidate.is_dir() and any(candidate.glob("test_*.py")):
            return candidate.resolve()
    raise HarnessError("cannot find the labs: run this from the fargate-labs repository, or pass --labs DIR",
                       ExitCode.BAD_INPUT)


def check_command(labs: Path, target: tuple[str, str] | str | None, run_id: str, reports_dir: Path,
                  labs_wanted: Sequence[str], workers: int) -> list[str]:
    """The pytest command of one check; ``target`` is (cluster, region), or a kubeconfig context (None: the
    current one)."""
    argv = [sys.executable, "-m", "pytest", str(labs), "-p", "fargatelab.plugin", "-p", "no:cacheprovider"]
    for plugin in BLOCKED_PLUGINS:
        argv += ["-p", f"no:{plugin}"]
    argv += ["--backend", "eks", "--mode", "check"]
    argv += ["--cluster", target[0], "--region", target[1]] if isinstance(target, tuple) else \
        [f"--kube-context={target or ''}"]
    argv += ["--run-id", run_id, "--reports-dir", str(reports_dir), "-q"]
    if workers > 1:
        argv += ["-n", str(workers), "--dist", "loadgroup"]
    for wanted in labs_wanted:
        argv += ["--lab", wanted]
    return argv


# --- what the run's summary says ----------------------------------------------------------------------

def _checked(lab: dict[str, Any]) -> list[dict[str, Any]]:
    """The steps check mode was to check: a skipped step (replay only, or what the cluster lacks) is not one."""
    return [s for s in lab.get("steps", []) if s.get("outcome") != "skipped"]


def all_done(summary: dict[str, Any]) -> bool:
    """Every checked step of every lab holds, the run was not stopped, and every lab module loaded."""
    if summary.get("run", {}).get("interrupted") or summary.get("collection_errors"):
        return False
    return all(step.get("ok") for lab in summary.get("labs", []) for step in _checked(lab))


def _what(step: dict[str, Any]) -> str:
    if step.get("outcome") == "not run":
        return "not checked: the run stopped before it"
    if step.get("outcome") == "error":
        return f"could not be checked: {step.get('message') or 'error'}"
    if step.get("missing"):
        return f"missing: {step['missing']}"
    if step.get("expected") is not None:
        return f"expected {step['expected']}, got {step.get('actual')}"
    return str(step.get("message") or step.get("outcome") or "not done").splitlines()[0]


def _command(step: dict[str, Any]) -> str | None:
    if step.get("fix"):
        return str(step["fix"])
    commands = step.get("commands") or []
    return str(commands[-1]).split("  =>  ")[0] if commands else None


def progress_lines(summary: dict[str, Any]) -> list[str]:
    """Per lab, done or not yet, and for each step not yet what is missing and the command that does it."""
    lines = []
    for error in summary.get("collection_errors", []):
        lines.append(f"⚠ {error.get('module')}: could not be loaded: {str(error.get('message', '')).splitlines()[0]}")
    done_labs = counted_labs = 0
    for lab in summary.get("labs", []):
        checked = _checked(lab)
        title = lab.get("lab") or lab.get("module")
        if not checked:
            lines.append(f"– {title}: nothing to check (its steps only run in replay, or need what the cluster lacks)")
            continue
        counted_labs += 1
        ok = [s for s in checked if s.get("ok")]
        if len(ok) == len(checked):
            done_labs += 1
            lines.append(f"✔ {title}: done ({len(ok)} of {len(checked)} steps)")
            continue
        lines.append(f"✘ {title}: not yet ({len(ok)} of {len(checked)} steps done)")
        for step in checked:
            if step.get("ok"):
                continue
            lines.append(f"    {step.get('mark') or '✘'} {step.get('step')}: {_what(step)}")
            command = _command(step)
            if command:
                lines.append(f"      run: {command}")
    lines.append(f"{done_labs} of {counted_labs} labs done" + (" — everything checked is done" if all_done(summary)
                                                                 else ""))
    return lines


# --- the command -----------------------------------------------------------------------------------

def _run_pytest(argv: list[str], cwd: Path) -> int:
    proc = subprocess.Popen(argv, cwd=cwd)
    try:
        return proc.wait()
    except KeyboardInterrupt:
        # A terminal's Ctrl-C reached pytest as well: let it end its run; a signal sent to us alone is passed on.
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        raise


def _error(line: str) -> None:
    print(f"fargate-lab: error: {line}", file=sys.stderr, flush=True)


def _read_summary(run_dir: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def run_check(args: argparse.Namespace, runner: Runner = _run_pytest, sleep: Callable[[float], None] = time.sleep,
              out: TextIO | None = None) -> int:
    from ..backends.eks_connection import target_from_context
    from ..rules.naming import new_run_id, validate_cluster_name

    stream = out or sys.stdout

    def say(line: str) -> None:
        print(line, file=stream, flush=True)

    target: tuple[str, str] | str | None
    if args.cluster or args.region:
        if not (args.cluster and args.region) or args.context:
            raise HarnessError("give --cluster with --region, or --context, or neither (the current context)",
                               ExitCode.USAGE)
        cluster, region = target = (validate_cluster_name(args.cluster), args.region)
        where = "given"
    else:
        cluster, region = target_from_context(args.context)
        target = args.context
        where = f"context {args.context}" if args.context else "the current context"
    labs = find_labs(args.labs)
    reports = Path(args.reports_dir).resolve() if args.reports_dir else labs.parent / "reports"
    previous: Path | None = None
    try:
        while True:
            run_id = f"check-{new_run_id()}"
            say(f"fargate-lab check: cluster {cluster} in {region} ({where}), read-only, run {run_id}")
            code = runner(check_command(labs, target, run_id, reports, args.lab, args.workers), labs.parent)
            summary = _read_summary(reports / run_id)
            if summary is not None and previous is not None:
                shutil.rmtree(previous, ignore_errors=True)  # a watch keeps only its newest round's reports
            previous = reports / run_id
            if summary is None:
                _error(f"the check did not run (pytest exited {code}): the lines above say why")
                if code == _PYTEST_INTERRUPTED:
                    return ExitCode.INTERRUPTED
                return code if code not in _PYTEST_CODES else ExitCode.USAGE
            stopped = summary.get("run", {})
            if stopped.get("interrupted") and code not in (ExitCode.OK, NOT_YET):
                _error(f"the check stopped before it could say ({stopped.get('stop_reason')})")
                return ExitCode.INTERRUPTED if code == _PYTEST_INTERRUPTED else code
            say("")
            for line in progress_lines(summary):
                say(line)
            say(f"summary: {reports / run_id / 'summary.md'}")
            if all_done(summary):
                return ExitCode.OK
            if args.watch is None:
                return NOT_YET
            say(f"checking again in {args.watch} s (Ctrl-C stops)")
            sleep(args.watch)
    except KeyboardInterrupt:
        print("fargate-lab: check stopped (Ctrl-C); it changed nothing on the cluster", file=sys.stderr)
        return ExitCode.INTERRUPTED
