"""Sessions: ``labs`` (the workshop labs on the local backend), ``tests`` (the harness's own tests),
``unit`` (the pure ones of those and the doctests, with no Kubernetes binary), ``lint`` (ruff),
``benchmark`` (speed and memory figures), ``kind-engine`` (a Docker engine and kind's node image, for
the kind backend and its tests), ``nightly`` (every lab on the sandbox EKS cluster), ``cleanup``
(leftovers of an interrupted run: ``nox -s cleanup -- --run-id X [--cluster C --region R | --env NAME]``).

Every session installs what it needs into its own virtualenv, pinned by ``constraints.txt``; the
Kubernetes binaries are provisioned on first use into ``~/.cache/fargate-labs`` (see docs/backends.md).
"""

from __future__ import annotations

import os

import nox

nox.options.sessions = ["tests"]
nox.options.reuse_existing_virtualenvs = True

PYTHON = "3.11"

#: How the labs run (scripts/benchmark.py times exactly this). The Job TTL lab starts first and sets the
#: run's floor while its worker mostly waits (sleep 10, then a 60 s TTL); three more workers carry the other
#: labs and keep the two cores busy meanwhile (with two they finished after it).
LABS_PYTEST_ARGS = ["labs", "-n", "4", "--dist", "loadgroup", "-p", "no:cacheprovider"]

#: The harness's tests that need no Kubernetes binary, no environment and no cluster (pyproject's default
#: selection too); ``INTEGRATION`` is exactly the rest.
UNIT = "not integration and not kind"
INTEGRATION = "integration or kind"

#: pytest's "no tests ran": a marker selection, narrowed further by -k or a path, may match nothing.
NO_TESTS = 5


def _install(session: nox.Session) -> None:
    session.install("-c", "constraints.txt", "-e", ".[dev]")


def _provision(session: nox.Session, *args: str) -> None:
    # A cold build takes many minutes: done once, visibly, before any test (`fargate-lab provision`: the Go
    # builds one after another, the Debian packages, the AWS CLI and the stand-in images beside them).
    session.run("fargate-lab", "provision", *args)


def _data_plane_of(args: list[str]) -> str | None:
    """The data plane pytest's arguments ask for: kwok for another backend (the kind backend's KWOK), the
    value of --data-plane, or None (the default, auto)."""
    for i, arg in enumerate(args):
        value = arg.split("=", 1)[1] if "=" in arg else (args[i + 1] if i + 1 < len(args) else "")
        if arg.split("=", 1)[0] == "--backend" and value != "local":
            return "kwok"
        if arg.split("=", 1)[0] == "--data-plane":
            return value
    return None


@nox.session(python=PYTHON)
def labs(session: nox.Session) -> None:
    """Replay every lab against the local backend (or pass pytest options, e.g. -- --backend eks).

    Reports: reports/<run id>/ (junit.xml, report.html, summary.json, summary.md); reports/latest is the newest.
    """
    _install(session)
    args = session.posargs or []
    data_plane = _data_plane_of(args)
    _provision(session, *(["--data-plane", data_plane] if data_plane else []))
    session.run("python", "-m", "pytest", *_labs_args(args), "--reports-dir=reports", *args)


def _labs_args(args: list[str]) -> list[str]:
    """LABS_PYTEST_ARGS, with three workers on another backend: a kind cluster's two worker nodes carry
    every pod of the run (no microVMs), and four workers starting their labs at once there made the
    kube-system lab's first look find a Running pod before its Fargate node (2026-12-02)."""
    if _data_plane_of(args) == "kwok" and any(a.split("=", 1)[0] == "--backend" for a in args):
        return ["labs", "-n", "3", *LABS_PYTEST_ARGS[3:]]
    return list(LABS_PYTEST_ARGS)


def _unit(session: nox.Session) -> None:
    session.run("python", "-m", "pytest", "--doctest-modules", "fargatelab", "-p", "no:cacheprovider", "-q",
                "--ignore=fargatelab/emulator/__main__.py")
    session.run("python", "-m", "pytest", "tests", "-m", UNIT, "-p", "no:cacheprovider",
                *(session.posargs or ["-q"]), success_codes=[0, NO_TESTS])


@nox.session(python=PYTHON)
def unit(session: nox.Session) -> None:
    """The pure tests and the doctests: no Kubernetes binary is provisioned, no environment started.

    ``.[dev]`` like the other sessions: the pure tests check every extra's packages too (moto's mocks, the
    kind and testinfra plugins' options, shell completion).
    """
    _install(session)
    _unit(session)


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """The harness's own tests: pure rules, the AWS side, the local environment and the emulation."""
    _install(session)
    # The pure tests first: a broken rule fails in seconds, not after the binaries' build.
    _unit(session)
    # The lab runs these tests start use KWOK nodes (tests/conftest.py); the microVM tests, the host's own.
    _provision(session, "--data-plane", "kwok")
    _provision(session, "--no-tools")
    session.run("python", "-m", "pytest", "tests", "-m", INTEGRATION, "-p", "no:cacheprovider",
                *(session.posargs or ["-q"]), success_codes=[0, NO_TESTS])
    session.run("mypy", "fargatelab")


@nox.session(python=PYTHON, name="kind-engine")
def kind_engine(session: nox.Session) -> None:
    """A Docker engine for the kind backend (Debian's docker.io, installed and started where missing) and
    kind's node image, built once: then `nox -s tests` also runs the kind tests on a real kind cluster."""
    _install(session)
    session.run("fargate-lab", "kind-engine", "--node-image")


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff over the whole repository, configured in pyproject.toml (pass options: -- --statistics)."""
    session.install("-c", "constraints.txt", "ruff")
    session.run("ruff", "check", ".", *session.posargs)


@nox.session(python=PYTHON)
def benchmark(session: nox.Session) -> None:
    """Print cold/warm provisioning, up/down times, RSS and the labs' wall time (no assertions)."""
    _install(session)
    session.run("python", "scripts/benchmark.py", *session.posargs)


@nox.session(python=PYTHON)
def nightly(session: nox.Session) -> None:
    """Replay every lab on the sandbox EKS cluster; non-zero on any failure or leak (see docs/nightly.md).

    ``nox -s nightly -- --cluster NAME --region REGION`` (default: $EKS_CLUSTER / $AWS_REGION). eks backend,
    replay mode; reports/<run id>/ gets junit.xml, report.html, summary.md, cost.json and leaks.json. After
    pytest, whatever happened, ``fargate-lab cleanup`` runs for the same run id as a safety net: it exits 17
    if anything of the run is still there.
    """
    import datetime

    _install(session)
    args = list(session.posargs)
    cluster = os.environ.get("EKS_CLUSTER", "eksworkshop")
    region = os.environ.get("AWS_REGION", "ap-northeast-2")
    for flag in ("--cluster", "--region"):
        if flag in args:
            value = args[args.index(flag) + 1]
            cluster, region = (value, region) if flag == "--cluster" else (cluster, value)
        else:
            args += [flag, cluster if flag == "--cluster" else region]
    run_id = os.environ.get("NIGHTLY_RUN_ID") or f"nightly-{datetime.datetime.now(datetime.timezone.utc):%Y%m%d%H%M}"
    try:
        session.run("python", "-m", "pytest", "labs", "--backend", "eks", "--mode", "replay", "--run-id", run_id,
                    "-n", "2", "--dist", "loadgroup", "-p", "no:cacheprovider",
                    f"--junitxml=reports/{run_id}/junit.xml", *args)
    finally:
        session.run("fargate-lab", "cleanup", "--run-id", run_id, "--cluster", cluster, "--region", region)


@nox.session(python=PYTHON)
def cleanup(session: nox.Session) -> None:
    """Remove everything tagged with a run id: ``nox -s cleanup -- --run-id X``."""
    _install(session)
    session.run("fargate-lab", "cleanup", *session.posargs, env={"PYTHONUNBUFFERED": "1", **os.environ})
