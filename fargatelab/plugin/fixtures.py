"""The labs' fixtures: the cluster and its clients, and each scenario's ``lab``.

A module's shared setup is a fixture of its own built with ``module_lab``; every test's ``lab`` in that
module inherits it (its steps come first in the test's report, its namespaces are in the test's
diagnostics, its scoped names apply to the test's manifests), so a test body only does and asserts.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any, Callable, Iterator

import pytest

from ..backends.capabilities import skip_reason
from ..errors import HarnessError
from ..rules.timing import Timing, profile
from ..scenario import conditions as cond
from ..scenario import wait
from ..scenario.cleaner import sigint_held
from ..scenario.handle import ClusterHandle
from ..scenario.commands import Tools
from ..scenario.kube import Kube
from ..scenario.lab import Lab
from .run import backend_of
from .session import open_run_backend

__all__ = ["ModuleLab", "new_lab", "await_deleted_namespaces"]

#: ``module_lab(lock=None)``: the ``with`` that gives a module's shared setup its Lab
ModuleLab = Callable[..., contextlib.AbstractContextManager[Lab]]

_LAB = pytest.StashKey[Lab]()
_SETUPS = pytest.StashKey[list[Lab]]()
_SETTLE = pytest.StashKey[list[str]]()


@pytest.fixture(scope="session")
def cluster(pytestconfig: pytest.Config) -> ClusterHandle:
    """The cluster under test, from the chosen backend."""
    return open_run_backend(pytestconfig).handle


@pytest.fixture(scope="session")
def timing(cluster: ClusterHandle, pytestconfig: pytest.Config) -> Timing:
    return profile(pytestconfig.option.timing, pytestconfig.option.timing_scale)


@pytest.fixture(scope="session")
def kube(cluster: ClusterHandle, pytestconfig: pytest.Config) -> Kube:
    backend = backend_of(pytestconfig)
    return Kube(cluster.kubeconfig, liveness=backend.liveness if backend is not None else None)


@pytest.fixture(scope="session")
def aws(cluster: ClusterHandle) -> Callable[[str], Any]:
    """``aws("eks")``: a boto3 client for the cluster's AWS account (moto on local and kind).

    boto3 makes clients thread-unsafely (the clients themselves are safe), and shared setups are undone
    side by side, so making one is serialised.
    """
    import boto3

    env = cluster.aws_environment()
    session = boto3.session.Session(
        region_name=cluster.region,
        aws_access_key_id=env.get("AWS_ACCESS_KEY_ID"),
        aws_secret_access_key=env.get("AWS_SECRET_ACCESS_KEY"),
    )
    lock = threading.Lock()

    def client(service: str) -> Any:
        with lock:
            return session.client(service, endpoint_url=cluster.aws_endpoint)

    return client


def new_lab(config: pytest.Config, cluster: ClusterHandle, kube: Kube, aws: Callable[[str], Any], timing: Timing,
            record: list[tuple[str, object]] | None = None, scope: str = "",
            parents: Callable[[], list[Lab]] | None = None) -> Lab:
    """A Lab in the run's ``--mode`` whose waits stop as soon as the backend loses a component."""
    backend = backend_of(config)
    return Lab(cluster, kube, aws, timing, mode=config.option.mode,
               liveness=backend.liveness if backend is not None else None, record=record,
               settle=config.stash.get(_SETTLE, None), scope=scope, parents=parents,
               tools=lambda: tools_of(config))


_TOOLS = pytest.StashKey[Tools]()


def tools_of(config: pytest.Config) -> Tools:
    """The real CLIs (eksctl, helm, aws), provisioned once per process on first use (cached across runs);
    where they cannot be (no Go, no module proxy), Tools whose ``problem`` says why. A student's check
    runs the tools on their own PATH."""
    if _TOOLS not in config.stash and config.option.mode == "check":
        config.stash[_TOOLS] = Tools.on_path()
    if _TOOLS not in config.stash:
        from pathlib import Path

        from ..local.cli_tools import provision_clis

        try:
            clis = provision_clis()
            config.stash[_TOOLS] = Tools(clis.bin_dir, clis.versions)
        except HarnessError as exc:
            config.stash[_TOOLS] = Tools(Path(), {}, str(exc))
    return config.stash[_TOOLS]


def scope_of(node: pytest.Item | pytest.Module | None) -> str:
    """What makes replay names of a lab module its own: the ``lab`` marker's ``scope``, else the module's name
    (``test_root_shell.py`` -> ``root-shell``)."""
    if node is None:
        return ""
    mark = node.get_closest_marker("lab")
    if mark is not None and mark.kwargs.get("scope"):
        return str(mark.kwargs["scope"])
    module = node.getparent(pytest.Module)
    name = module.path.stem if module is not None else ""
    return name.removeprefix("test_").replace("_", "-")


@pytest.fixture(scope="session")
def namespaces_deleted_at_end(pytestconfig: pytest.Config, kube: Kube) -> Iterator[list[str]]:
    """Namespaces only this run uses, whose deletion a scenario's cleanup started: the run (each xdist
    worker, for its own) waits until all are gone at its end, together, instead of 5 s or more each.

    Unless the cluster goes with the run (a local environment it made, without --keep): then they go
    with it, and waiting for them would only make the run longer.
    """
    pending: list[str] = []
    pytestconfig.stash[_SETTLE] = pending
    yield pending
    del pytestconfig.stash[_SETTLE]
    await_deleted_namespaces(backend_of(pytestconfig), kube, pending)


def await_deleted_namespaces(backend: Any, kube: Kube, names: list[str], timeout: float = 120) -> None:
    """The last of the cleanup: Ctrl-C is held back until the namespaces are gone, as during a step's own."""
    if names and not backend.discards_cluster:
        with sigint_held() as interrupted:
            wait.for_(cond.NamespacesDeleted(kube, sorted(set(names))), timeout, 0.5, backend.liveness)
        if interrupted:
            raise KeyboardInterrupt("interrupted while the run's namespaces were being deleted; all are gone")


@pytest.fixture
def lab(request: pytest.FixtureRequest, cluster: ClusterHandle, kube: Kube, aws: Callable[[str], Any],
        timing: Timing, namespaces_deleted_at_end: list[str]) -> Iterator[Lab]:
    """One scenario's view of its lab: names, documented steps, waits, and cleanup in reverse order.

    It inherits every setup its module made with ``module_lab``, whenever that setup is made.
    """
    for mark in request.node.iter_markers("needs"):
        if not cluster.can(mark.args[0]):
            pytest.skip(skip_reason(mark.args[0], request.config.option.backend, request.config.option.mode))
    module = request.node.getparent(pytest.Module)

    def setups() -> list[Lab]:
        return list(module.stash.get(_SETUPS, [])) if module is not None else []

    the_lab = new_lab(request.config, cluster, kube, aws, timing, record=request.node.user_properties,
                      scope=scope_of(request.node), parents=setups)
    request.node.stash[_LAB] = the_lab
    try:
        yield the_lab
    finally:
        if not request.config.option.keep:
            the_lab.cleanup()


@pytest.fixture(scope="module")
def module_lab(request: pytest.FixtureRequest, pytestconfig: pytest.Config, cluster: ClusterHandle, kube: Kube,
               aws: Callable[[str], Any], timing: Timing, namespaces_deleted_at_end: list[str]) -> ModuleLab:
    """Makes the Lab of a module's shared setup, for a module-scoped fixture::

        @pytest.fixture(scope="module")
        def namespace(module_lab: ModuleLab) -> Iterator[str]:
            with module_lab() as setup:
                yield setup.profiled_namespace(setup.scoped("study-aews"))

    Every test of the module inherits it. Leaving the ``with`` undoes what the setup made, unless --keep.
    ``lock="kube-system"``: in replay mode, the cluster lock of that name (see :meth:`Lab.cluster_lock`) is
    taken before the Lab is handed out and held until its cleanup is done; check mode takes none.
    """
    module = request.node if isinstance(request.node, pytest.Module) else request.node.getparent(pytest.Module)

    @contextlib.contextmanager
    def make(lock: str | None = None) -> Iterator[Lab]:
        setup = new_lab(pytestconfig, cluster, kube, aws, timing, record=[], scope=scope_of(module))
        with setup.cluster_lock(lock) if lock and setup.replay else contextlib.nullcontext():
            if module is not None:
                module.stash.setdefault(_SETUPS, []).append(setup)
            try:
                yield setup
            finally:
                if not pytestconfig.option.keep:
                    setup.cleanup()

    return make


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.config.option.mode == "check" and item.get_closest_marker("replay_only"):
        pytest.skip("check mode never changes the cluster; this step only exists in replay mode")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    the_lab = item.stash.get(_LAB, None)
    if the_lab is not None and (call.when == "call" or call.excinfo is not None):
        # The setups' steps come first in the test's report (they were made before the test body ran).
        item.user_properties[:0] = [s for s in the_lab.inherited_steps() if s not in item.user_properties]
    report = yield
    if the_lab is not None and report.failed and call.when in ("call", "setup"):
        for title, body in the_lab.diagnostics():
            report.sections.append((f"diagnostics: {title}", body))
    if report.failed and call.excinfo is not None and call.excinfo.errisinstance(HarnessError):
        # Bad input (a manifest that is not YAML, say) is one line that says what to do, not a traceback.
        report.longrepr = f"fargate-labs: {call.excinfo.value}"
    return report
