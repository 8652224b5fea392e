"""The run: its id, made once by the process that starts it, and who owns what it opens.

With pytest-xdist the controller makes the run id and hands it to every worker; the controller owns
the run (it takes a shared environment down and writes the reports), the workers borrow. Every other
module of the pytest layer asks here instead of looking at xdist's attributes itself.
"""

from __future__ import annotations

from typing import Any

import pytest

from ..rules.naming import new_run_id

__all__ = ["RUN_ID_KEY", "BACKEND", "END_INTERRUPTED", "backend_of", "is_worker", "owns_run", "run_id", "worker_id"]

#: the key under which xdist hands the controller's run id to each worker
RUN_ID_KEY = "fargatelab_run_id"
BACKEND = pytest.StashKey[Any]()
#: the Ctrl-C held back during the run's end (non-empty if one came)
END_INTERRUPTED = pytest.StashKey[list[str]]()


def is_worker(config: pytest.Config) -> bool:
    """An xdist worker: it runs tests of a run that another process owns."""
    return getattr(config, "workerinput", None) is not None


def owns_run(config: pytest.Config) -> bool:
    """The controller, or a run without xdist: it takes down what the run shares and writes the reports."""
    return not is_worker(config)


def worker_id(config: pytest.Config) -> str | None:
    """``gw0``, ``gw1``…; None outside a worker."""
    return config.workerinput["workerid"] if is_worker(config) else None  # type: ignore[attr-defined]


def run_id(config: pytest.Config) -> str:
    """This run's id: ``--run-id``, the controller's (in a worker), or one made now and kept."""
    if is_worker(config):
        config.option.run_id = config.workerinput[RUN_ID_KEY]  # type: ignore[attr-defined]
    elif not config.option.run_id:
        config.option.run_id = new_run_id()
    value: str = config.option.run_id
    return value


def hand_to_worker(node: Any) -> None:
    """xdist: the worker gets the controller's run id, so all share one environment."""
    node.workerinput[RUN_ID_KEY] = run_id(node.config)


def backend_of(config: pytest.Config) -> Any:
    """The backend the ``cluster`` fixture opened in this process, or None before it (or without one)."""
    return config.stash.get(BACKEND, None)
