"""The run as a whole: its id, the backend it opens, and its end (final cleanup, leak check, cost).

The process that owns the run (the only one, or the pytest-xdist controller) makes the run id, starts a
local environment early when it makes one, takes down what the run shared, and writes the run's end;
workers borrow the controller's environment and hand their cost observations back.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from ..backends import Backend, open_backend
from ..errors import HarnessError
from .options import backend_options
from .run import BACKEND, END_INTERRUPTED, hand_to_worker, is_worker, owns_run, run_id
from .run_end import RUN_END, finish, record_backend, save_observations, start_meter

__all__ = ["open_run_backend", "reports_root"]

_METER = pytest.StashKey[Any]()
_EARLY_START = pytest.StashKey[threading.Thread]()


def pytest_configure(config: pytest.Config) -> None:
    from ..scenario.cleaner import terminate_as_interrupt

    terminate_as_interrupt()
    run_id(config)
    if getattr(config.option, "loadscopereorder", None) and "--loadscope-reorder" not in config.invocation_params.args:
        # xdist would hand out the biggest groups first; the labs' own order (longest wait first) is better.
        config.option.loadscopereorder = False
    if _starts_environment_early(config):
        from ..backends.local import start_in_background

        early = start_in_background(backend_options(config))
        if early is not None:
            config.stash[_EARLY_START] = early


def _starts_environment_early(config: pytest.Config) -> bool:
    """The xdist controller of a labs run that makes its own local environment: it starts the environment
    while the workers start and collect, which takes about as long."""
    if is_worker(config) or not getattr(config.option, "numprocesses", None):
        return False
    o = config.option
    if o.backend != "local" or o.reuse or o.collectonly or getattr(o, "help", False):
        return False
    if any(getattr(o, name, False) for name in ("list_labs", "showfixtures", "show_fixtures_per_test")):
        return False  # these run no test
    labs = Path(config.rootpath) / "labs"
    paths = [Path(config.invocation_params.dir, arg.split("::")[0]).resolve() for arg in config.args]
    return bool(paths) and all(p == labs or labs in p.parents for p in paths)


def pytest_configure_node(node: Any) -> None:
    hand_to_worker(node)


def open_run_backend(config: pytest.Config) -> Backend:
    """The run's backend in this process, opened on first use; bad options end the run in one line."""
    backend = config.stash.get(BACKEND, None)
    if backend is None:
        try:
            backend = open_backend(backend_options(config))
        except HarnessError as err:
            pytest.exit(f"fargate-labs: {err}", returncode=err.code)
        record_backend(reports_root(config), config.option.backend, config.option.mode, backend.handle)
        config.stash[_METER] = start_meter(backend.handle)
        config.stash[BACKEND] = backend
    return backend


def pytest_unconfigure(config: pytest.Config) -> None:
    early = config.stash.get(_EARLY_START, None)
    if early is not None:
        early.join()  # a start still under way finishes before it is taken down
    backend = config.stash.get(BACKEND, None)
    if backend is not None:
        if owns_run(config):  # a worker borrows the run's backend: the owner takes it down
            backend.close()
    elif owns_run(config) and not config.option.keep:
        # Workers may have made the shared environment (or kind cluster); the owner takes it down.
        if config.option.backend == "local" and not config.option.reuse:
            from ..local.environment import LocalEnvironment

            LocalEnvironment(f"labs-{run_id(config)}").down(quiet=True)
        elif config.option.backend == "kind":
            from ..backends.kind import remove

            remove(run_id(config))


def reports_root(config: pytest.Config) -> Path:
    """Where reports go: ``--reports-dir`` if given, else reports/ under the root."""
    given = getattr(config.option, "reports_dir", None)
    if given:
        path = Path(given)
        return path if path.is_absolute() else Path(config.invocation_params.dir) / path
    return Path(config.rootpath) / "reports"


@pytest.hookimpl(hookwrapper=True, tryfirst=True, specname="pytest_sessionfinish")
def pytest_sessionfinish_holds_ctrl_c(session: pytest.Session) -> Any:
    """The run's end (final cleanup, leak check, cost, reports) is cleanup too: a Ctrl-C that comes meanwhile
    is held back until it ends, and the reports say the run was interrupted there."""
    from ..scenario.cleaner import sigint_held

    with sigint_held() as interrupted:
        session.config.stash[END_INTERRUPTED] = interrupted
        yield
    if interrupted:
        session.exitstatus = pytest.ExitCode.INTERRUPTED


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """After every scenario's cleanup: the eks run's final cleanup and leak check, and the cost report."""
    config = session.config
    meter = config.stash.get(_METER, None)
    if not owns_run(config):
        if meter is not None:  # the owner merges what each worker saw
            save_observations(reports_root(config), run_id(config), meter)
        return
    end = finish(reports_root(config), run_id(config), keep=config.option.keep, meter=meter)
    config.stash[RUN_END] = end
    if end.exit_code and session.exitstatus == 0:
        session.exitstatus = end.exit_code


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    end = config.stash.get(RUN_END, None)
    if end is None or not end.lines:
        return
    terminalreporter.section("fargate-labs run " + run_id(config))
    for line in end.lines:
        terminalreporter.write_line(line, red=line.startswith(("LEAK", "cleanup")))
    for error in end.cleanup_errors:
        terminalreporter.write_line(f"cleanup error: {error}", red=True)
