"""The pytest plugin of the labs: options, markers, the cluster fixtures and failure diagnostics.

Loaded by the repository's ``conftest.py``. Nothing here starts a cluster until a scenario asks for
the ``cluster`` fixture, so the harness's own tests run without one.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import threading
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from ..scenario import conditions as cond
from ..scenario import wait
from ..backends import BACKENDS, Backend, BackendOptions, open_backend
from ..report.cost import CostMeter
from ..errors import HarnessError
from ..rules.naming import validate_cluster_name, validate_run_id
from ..scenario.handle import Capability, ClusterHandle
from ..scenario.kube import Kube
from ..scenario.lab import Lab
from .run_end import RunEnd, finish, record_backend, save_observations, start_meter
from ..rules.timing import PROFILES, Timing, profile

__all__ = ["ModuleLab", "new_lab", "pytest_addoption", "pytest_configure"]

_BACKEND_KEY = pytest.StashKey[Backend]()
_METER_KEY = pytest.StashKey[CostMeter]()
_END_KEY = pytest.StashKey[RunEnd]()
_EARLY_START_KEY = pytest.StashKey[threading.Thread]()


def _cluster_name(value: str) -> str:
    return _argument(validate_cluster_name, value)


def _run_id(value: str) -> str:
    return _argument(validate_run_id, value)


def _argument(check: Callable[[str], str], value: str) -> str:
    try:
        return check(value)
    except HarnessError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("fargate-labs", "EKS-on-Fargate workshop labs")
    group.addoption("--backend", choices=BACKENDS, default="local",
                    help="local (default: a local EKS-on-Fargate environment), kind, or eks")
    group.addoption("--mode", choices=("replay", "check"), default="replay",
                    help="replay: create, assert, clean up; check: read-only self-check of a student's cluster")
    group.addoption("--cluster", default="eksworkshop", type=_cluster_name, help="EKS cluster name")
    group.addoption("--region", default="ap-northeast-2")
    group.addoption("--keep", action="store_true", help="leave what the run created in place")
    group.addoption("--run-id", default=None, type=_run_id,
                    help="run id tagging everything created (default: random)")
    group.addoption("--timing", choices=tuple(PROFILES), default="fast",
                    help="emulated latencies: fast, or eks (documented EKS latencies)")
    group.addoption("--timing-scale", type=float, default=1.0, help="multiply emulated latencies")
    group.addoption("--reuse", nargs="?", const=os.environ.get("FARGATE_LABS_ENV", "default"), default=None,
                    metavar="ENV", help="reuse a local environment already `up` (default name: $FARGATE_LABS_ENV)")
    group.addoption("--pod-execution-role-arn", default=None,
                    help="eks: use this Fargate pod execution role instead of creating one for the run")
    group.addoption("--i-understand-this-creates-resources", dest="allow_unsafe", action="store_true",
                    help="eks: replay on a cluster that is not tagged fargate-labs/sandbox=true")
    group.addoption("--kube-context", nargs="?", const="", default=None, metavar="CONTEXT",
                    help="eks: take the cluster name and region from this kubeconfig context (default: the current)")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "lab(name, document, waits=0): the workshop lab and document a scenario "
                            "replays; ``waits``: seconds of documented waiting no backend can shorten (a TTL, say)")
    config.addinivalue_line("markers", "needs(capability): skip unless the backend can do this")
    config.addinivalue_line("markers", "replay_only: the step changes the cluster, so check mode skips it")
    workerinput = getattr(config, "workerinput", None)
    if getattr(config.option, "loadscopereorder", None) and "--loadscope-reorder" not in config.invocation_params.args:
        # xdist would hand out the biggest groups first; the labs' own order (longest wait first) is better.
        config.option.loadscopereorder = False
    if workerinput is not None:
        config.option.run_id = workerinput["fargatelab_run_id"]
    elif not config.option.run_id:
        config.option.run_id = uuid.uuid4().hex[:8]
    if _starts_environment_early(config):
        from ..backends.local import start_in_background

        config.stash[_EARLY_START_KEY] = start_in_background(_options(config))


def _starts_environment_early(config: pytest.Config) -> bool:
    """The xdist controller of a labs run that makes its own local environment: it starts the environment
    while the workers start and collect, which takes about as long."""
    if getattr(config, "workerinput", None) is not None or not getattr(config.option, "numprocesses", None):
        return False
    o = config.option
    if o.backend != "local" or o.reuse or o.collectonly or getattr(o, "help", False):
        return False
    labs = Path(config.rootpath) / "labs"
    paths = [Path(config.invocation_params.dir, arg.split("::")[0]).resolve() for arg in config.args]
    return bool(paths) and all(p == labs or labs in p.parents for p in paths)


def pytest_configure_node(node: Any) -> None:
    """xdist: every worker gets the controller's run id, so all share one environment."""
    node.workerinput["fargatelab_run_id"] = node.config.option.run_id


def pytest_unconfigure(config: pytest.Config) -> None:
    early = config.stash.get(_EARLY_START_KEY, None)
    if early is not None:
        early.join()  # a start still under way finishes before it is taken down
    backend = config.stash.get(_BACKEND_KEY, None)
    if backend is not None:
        backend.close()
    elif getattr(config, "workerinput", None) is None and not config.option.keep:
        # Workers may have made the shared environment (or kind cluster); the controller takes it down.
        if config.option.backend == "local" and not config.option.reuse:
            from ..local.environment import LocalEnvironment

            LocalEnvironment(f"labs-{config.option.run_id}").down(quiet=True)
        elif config.option.backend == "kind":
            from ..backends.kind import remove

            remove(config.option.run_id)


def _options(config: pytest.Config) -> BackendOptions:
    o = config.option
    return BackendOptions(backend=o.backend, mode=o.mode, cluster=o.cluster, region=o.region, run_id=o.run_id,
                          timing=o.timing, timing_scale=o.timing_scale, reuse=o.reuse,
                          pod_execution_role_arn=o.pod_execution_role_arn, allow_unsafe=o.allow_unsafe,
                          kube_context=o.kube_context, keep=o.keep)


@pytest.fixture(scope="session")
def cluster(pytestconfig: pytest.Config) -> ClusterHandle:
    """The cluster under test, from the chosen backend."""
    backend = pytestconfig.stash.get(_BACKEND_KEY, None)
    if backend is None:
        try:
            backend = open_backend(_options(pytestconfig))
        except HarnessError as err:
            pytest.exit(f"fargate-labs: {err}", returncode=err.code)
        record_backend(_reports_root(pytestconfig), pytestconfig.option.backend, pytestconfig.option.mode, backend.handle)
        pytestconfig.stash[_METER_KEY] = start_meter(backend.handle)
        if os.environ.get("PYTEST_XDIST_WORKER") is None:
            pytestconfig.stash[_BACKEND_KEY] = backend
        else:
            # Only the controller takes a shared environment down.
            pytestconfig.stash[_BACKEND_KEY] = _Borrowed(backend)
    return backend.handle


class _Borrowed:
    def __init__(self, backend: Backend) -> None:
        self._backend = backend
        self.handle = backend.handle
        self.discards_cluster = backend.discards_cluster

    def liveness(self) -> str | None:
        return self._backend.liveness()

    def close(self) -> None:
        pass


@pytest.fixture(scope="session")
def timing(cluster: ClusterHandle, pytestconfig: pytest.Config) -> Timing:
    return profile(pytestconfig.option.timing, pytestconfig.option.timing_scale)


@pytest.fixture(scope="session")
def kube(cluster: ClusterHandle, pytestconfig: pytest.Config) -> Kube:
    backend = pytestconfig.stash.get(_BACKEND_KEY, None)
    return Kube(cluster.kubeconfig, liveness=backend.liveness if backend is not None else None)


@pytest.fixture(scope="session")
def aws(cluster: ClusterHandle) -> Callable[[str], Any]:
    """``aws("eks")``: a boto3 client for the cluster's AWS account (moto on local and kind)."""
    import boto3

    env = cluster.aws_environment()
    session = boto3.session.Session(
        region_name=cluster.region,
        aws_access_key_id=env.get("AWS_ACCESS_KEY_ID"),
        aws_secret_access_key=env.get("AWS_SECRET_ACCESS_KEY"),
    )
    return lambda service: session.client(service, endpoint_url=cluster.aws_endpoint)


def new_lab(config: pytest.Config, cluster: ClusterHandle, kube: Kube, aws: Callable[[str], Any], timing: Timing,
            record: list[tuple[str, object]] | None = None) -> Lab:
    """A Lab in the run's ``--mode`` whose waits stop as soon as the backend loses a component.

    For fixtures of the run's own (the 2048 games, say); the ``cluster`` fixture must have opened the backend.
    """
    backend = config.stash[_BACKEND_KEY]
    return Lab(cluster, kube, aws, timing, mode=config.option.mode, liveness=backend.liveness, record=record,
               settle=config.stash.get(_SETTLE_KEY, None))


_SETTLE_KEY = pytest.StashKey[list[str]]()


@pytest.fixture(scope="session")
def namespaces_deleted_at_end(pytestconfig: pytest.Config, kube: Kube) -> Iterator[list[str]]:
    """Namespaces only this run uses, whose deletion a scenario's cleanup started: the run (each xdist
    worker, for its own) waits until all are gone at its end, together, instead of 5 s or more each.

    Unless the cluster goes with the run (a local environment it made, without --keep): then they go
    with it, and waiting for them would only make the run longer.
    """
    pending: list[str] = []
    pytestconfig.stash[_SETTLE_KEY] = pending
    yield pending
    del pytestconfig.stash[_SETTLE_KEY]
    await_deleted_namespaces(pytestconfig.stash[_BACKEND_KEY], kube, pending)


def await_deleted_namespaces(backend: Backend, kube: Kube, names: list[str], timeout: float = 120) -> None:
    if names and not backend.discards_cluster:
        wait.for_(cond.NamespacesDeleted(kube, sorted(set(names))), timeout, 0.5, backend.liveness)


@pytest.fixture
def lab(request: pytest.FixtureRequest, cluster: ClusterHandle, kube: Kube, aws: Callable[[str], Any],
        timing: Timing, namespaces_deleted_at_end: list[str]) -> Iterator[Lab]:
    """One scenario's view of its lab: names, documented steps, waits, and cleanup in reverse order."""
    for mark in request.node.iter_markers("needs"):
        if not cluster.can(mark.args[0]):
            pytest.skip(f"needs {mark.args[0]}: {Capability.REASONS.get(mark.args[0], mark.args[0])}")
    the_lab = new_lab(request.config, cluster, kube, aws, timing, record=request.node.user_properties)
    request.node.stash[_LAB_KEY] = the_lab
    try:
        yield the_lab
    finally:
        if not request.config.option.keep:
            the_lab.cleanup()


_LAB_KEY = pytest.StashKey[Lab]()

#: ``module_lab(lock=None)``: the ``with`` that gives a module's shared setup its Lab
ModuleLab = Callable[..., contextlib.AbstractContextManager[Lab]]


@pytest.fixture(scope="module")
def module_lab(pytestconfig: pytest.Config, cluster: ClusterHandle, kube: Kube, aws: Callable[[str], Any],
               timing: Timing, namespaces_deleted_at_end: list[str]) -> ModuleLab:
    """Makes the Lab of a module's shared setup, for a module-scoped fixture::

        @pytest.fixture(scope="module")
        def namespace(module_lab: ModuleLab) -> Iterator[str]:
            with module_lab() as setup:
                yield setup.profiled_namespace("sizing")

    The Lab records its steps in a list of its own (hand ``setup.record`` to each test's ``lab`` to report
    them, and add the module's namespaces to ``lab.namespaces`` for its diagnostics). Leaving the ``with``
    undoes what the setup made, unless --keep. ``lock="kube-system"``: in replay mode, the cluster lock of
    that name (see :meth:`Lab.cluster_lock`) is taken before the Lab is handed out and held until its
    cleanup is done; check mode changes nothing, so takes none.
    """

    @contextlib.contextmanager
    def make(lock: str | None = None) -> Iterator[Lab]:
        setup = new_lab(pytestconfig, cluster, kube, aws, timing, record=[])
        with setup.cluster_lock(lock) if lock and setup.replay else contextlib.nullcontext():
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
    report = yield
    the_lab = item.stash.get(_LAB_KEY, None)
    if the_lab is not None and report.failed and call.when in ("call", "setup"):
        for title, body in the_lab.diagnostics():
            report.sections.append((f"diagnostics: {title}", body))
    if report.failed and call.excinfo is not None and call.excinfo.errisinstance(HarnessError):
        # Bad input (a manifest that is not YAML, say) is one line that says what to do, not a traceback.
        report.longrepr = f"fargate-labs: {call.excinfo.value}"
    return report


def _reports_root(config: pytest.Config) -> Path:
    """Where reports go: ``--reports-dir`` (fargatelab.plugin.reporting) if given, else reports/ under the root."""
    given = getattr(config.option, "reports_dir", None)
    if given:
        path = Path(given)
        return path if path.is_absolute() else Path(config.invocation_params.dir) / path
    return Path(config.rootpath) / "reports"


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """After every scenario's cleanup: the eks run's final cleanup and leak check, and the cost report."""
    config = session.config
    meter = config.stash.get(_METER_KEY, None)
    if getattr(config, "workerinput", None) is not None:
        if meter is not None:  # the controller merges what each worker saw
            save_observations(_reports_root(config), config.option.run_id, meter)
        return
    end = finish(_reports_root(config), config.option.run_id, keep=config.option.keep, meter=meter)
    config.stash[_END_KEY] = end
    if end.exit_code and session.exitstatus == 0:
        session.exitstatus = end.exit_code


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    end = config.stash.get(_END_KEY, None)
    if end is None or not end.lines:
        return
    terminalreporter.section("fargate-labs run " + str(config.option.run_id))
    for line in end.lines:
        terminalreporter.write_line(line, red=line.startswith(("LEAK", "cleanup")))
    for error in end.cleanup_errors:
        terminalreporter.write_line(f"cleanup error: {error}", red=True)


def _documented_wait(item: pytest.Item) -> float:
    mark = item.get_closest_marker("lab")
    return float(mark.kwargs.get("waits", 0)) if mark else 0.0


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Labs that must wait longest go first, the rest keep their order: on N workers the run then lasts
    about as long as its longest lab, not that lab started last. (Every process sorts the same way, so
    xdist's workers still agree on the collection.)"""
    items.sort(key=lambda item: -_documented_wait(item))
    _xdist_groups_on_pytest_9_2(config, items)


def _xdist_groups_on_pytest_9_2(config: pytest.Config, items: list[pytest.Item]) -> None:
    """xdist ``--dist loadgroup`` on pytest >= 9.2: put the ``@<group>`` suffix where pytest keeps node ids now.

    pytest-xdist (<= 3.8) tells the controller an item's group by appending ``@<group>`` to ``item._nodeid``
    in the worker; pytest 9.2 keeps node ids as a structured ``item._id`` and ignores ``_nodeid``, so the
    groups are silently lost and grouped tests spread over workers (pytest-dev/pytest-xdist#1386).
    """
    if not getattr(config.option, "loadgroup", False):  # set in xdist workers only
        return
    try:
        from _pytest.nodeid import NodeId
    except ImportError:  # pytest < 9.2: xdist's own suffix works
        return
    for item in items:
        groups = {str(m.args[0] if m.args else m.kwargs.get("name", "default")) for m in item.iter_markers("xdist_group")}
        if groups and "@" not in item.nodeid and isinstance(getattr(item, "_id", None), NodeId):
            item._id = NodeId.parse(f"{item.nodeid}@{'_'.join(sorted(groups))}")
