"""The local AWS side: moto's server, extended with Fargate behaviour and seeded with the workshop.

Run ``python -m fargatelab.local.aws.server --port PORT ...``. Stdout carries exactly one line,
``READY <port>``, once the seed is in place and requests are served; everything else goes to
stderr. SIGTERM/SIGINT shut the server down and exit 0.

EKS's ``DescribeClusterVersions`` is answered here (see :mod:`.cluster_versions`). Besides the AWS APIs the
server answers, under ``/_fargatelab/``:
  GET    seed    the ids returned by ``seed_workshop`` (JSON)
  POST   target-health  {target group ARN: {"id:port": {"State", "Reason", "Description"}}}: what the ALB
                 data plane measured, reported by DescribeTargetHealth (see :mod:`.load_balancers`)
  GET    secret?access_key_id=ID  the secret of a key moto issued (for the token-review webhook)
  GET    calls   {"service:Action": count} of the API calls since the last GET (which resets them)
  GET    generation  {"eks": n, "elbv2": n, ...}: how many times each service's state changed (see
                 :mod:`.generations`); a poller skips its pass while the number stays the same
  GET    inject  pending injected faults
  POST   inject  {"action": "CreateFargateProfile", "error": "ResourceInUseException",
                  "count": 1, "message": optional, "status": optional HTTP status}
                 (or a list of those): the next ``count`` calls of that API action fail
  DELETE inject  drop all pending faults
Faults can also be preset with the env var FARGATELAB_AWS_FAULTS (a JSON list of the same).
"""

from __future__ import annotations

import argparse
import errno
import ipaddress
import json
import logging
import os
import signal
import socket
import sys
import threading
from dataclasses import asdict, dataclass
from typing import Any, Callable, Iterable

from ...errors import ExitCode
from .generations import GENERATIONS

__all__ = [
    "Fault",
    "FaultPlan",
    "FAULTS",
    "FAULTS_ENV",
    "install_fault_injection",
    "fixed_module_list",
    "faults_from_env",
    "build_app",
    "main",
]

FAULTS_ENV = "FARGATELAB_AWS_FAULTS"
_PREFIX = "/_fargatelab/"
_PROG = "fargatelab.local.aws.server"


@dataclass
class Fault:
    """The next ``count`` calls of ``action`` (API name, e.g. CreateFargateProfile) fail with ``error``."""

    action: str
    error: str
    count: int = 1
    message: str | None = None
    status: int | None = None

    @classmethod
    def parse(cls, raw: Any) -> Fault:
        if (
            not isinstance(raw, dict)
            or not isinstance(raw.get("action"), str)
            or not isinstance(raw.get("error"), str)
        ):
            raise ValueError('a fault needs string fields "action" and "error"')
        count, status = raw.get("count", 1), raw.get("status")
        if not isinstance(count, int) or count < 1:
            raise ValueError('"count" must be a positive integer')
        if status is not None and (not isinstance(status, int) or not 400 <= status <= 599):
            raise ValueError('"status" must be an HTTP error status')
        message = raw.get("message")
        return cls(raw["action"], raw["error"], count, None if message is None else str(message), status)


class FaultPlan:
    """Thread-safe queue of injected faults, consumed one call at a time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []

    def add(self, faults: Iterable[Fault]) -> None:
        with self._lock:
            self._faults.extend(faults)

    def take(self, action: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.action == action:
                    fault.count -= 1
                    if fault.count == 0:
                        self._faults.remove(fault)
                    return fault
        return None

    def pending(self) -> list[dict[str, Any]]:
        with self._lock:
            return [asdict(f) for f in self._faults]

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()


FAULTS = FaultPlan()
_patched: list[Callable[..., Any]] = []


class Calls:
    """Every API action the server was asked for since the last reset, counted: what a real CLI (eksctl, the
    AWS CLI) calls, found by running it (``GET /_fargatelab/calls``), for the IAM policies of the docs."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: dict[str, int] = {}

    def record(self, action: str) -> None:
        with self._lock:
            self._seen[action] = self._seen.get(action, 0) + 1

    def take(self) -> dict[str, int]:
        with self._lock:
            seen, self._seen = self._seen, {}
        return dict(sorted(seen.items()))


CALLS = Calls()


def install_fault_injection() -> None:
    """Make every moto service consult FAULTS before running an action (idempotent)."""
    from moto.core.exceptions import ServiceException
    from moto.core.responses import ActionResult, BaseResponse

    if _patched:
        return

    class InjectedFault(ServiceException):
        # Defined outside moto on purpose: moto looks up an error's shape in the service model
        # named after the exception's module, and "moto.core" names no service.
        pass

    original = BaseResponse.call_action
    _patched.append(original)

    def call_action(self: BaseResponse) -> Any:
        try:
            action = self._get_action()
        except Exception:  # unknown routes are moto's to answer
            return original(self)
        if action:
            CALLS.record(f"{getattr(self, 'service_name', '') or '?'}:{action}")
        fault = FAULTS.take(action) if action else None
        if fault is None:
            try:
                return original(self)
            finally:  # once carried out: a poller that sees the new generation reads the new state
                if action:
                    GENERATIONS.after_call(getattr(self, "service_name", "") or "?", action)
        # moto's serializer renders the error in the service's own protocol and takes the
        # HTTP status from the service model (e.g. 409 for EKS ResourceInUseException).
        message = fault.message or f"Injected {fault.error} for {action}"
        status, headers, body = self.serialized(ActionResult(InjectedFault(fault.error, message)))
        if fault.status is not None:
            status = fault.status
        headers["status"] = str(status)
        return status, headers, body

    BaseResponse.call_action = call_action  # type: ignore[method-assign]


def faults_from_env() -> list[Fault]:
    """Faults preset in FARGATELAB_AWS_FAULTS (JSON object or list); raises ValueError if malformed."""
    raw = os.environ.get(FAULTS_ENV, "").strip()
    if not raw:
        return []
    loaded = json.loads(raw)
    return [Fault.parse(f) for f in (loaded if isinstance(loaded, list) else [loaded])]


def _secret_of(access_key_id: str) -> str | None:
    """The secret of an access key moto issued (IAM user keys, STS session credentials).

    moto checks no signature; the token-review webhook does, and asks here for the secret it needs
    (loopback only, dummy credentials only).
    """
    from moto.iam.models import iam_backends
    from moto.sts.models import sts_backends

    for account_backends in iam_backends.values():
        for backend in account_backends.values():
            for user in backend.users.values():
                for key in user.access_keys:
                    if key.access_key_id == access_key_id:
                        return str(key.secret_access_key)
    for sts_account in sts_backends.values():
        for sts in sts_account.values():
            for role in getattr(sts, "assumed_roles", []):
                if role.access_key_id == access_key_id:
                    return str(role.secret_access_key)
    return None


def fixed_module_list() -> None:
    """Route requests without listing moto's package directory each time.

    moto finds a request's service among the folders of its package, listed anew (a stat call per entry,
    some 180) for every request; during a lab run that listing was a fifth of the server's CPU. The
    folders do not change while the server runs, so one listing serves them all (idempotent).
    """
    from moto import backends

    if getattr(backends.list_of_moto_modules, "fixed", False):
        return
    modules = tuple(backends.list_of_moto_modules())

    def listed() -> tuple[str, ...]:
        return modules

    listed.fixed = True  # type: ignore[attr-defined]
    backends.list_of_moto_modules = listed  # type: ignore[assignment]


def build_app(moto_app: Any, seed: dict[str, Any]) -> Callable[..., Iterable[bytes]]:
    """Wrap moto's WSGI app with the ``/_fargatelab/`` control endpoints."""
    from werkzeug.wrappers import Request, Response

    from .load_balancers import report_health

    def control(request: Request) -> Response:
        what = request.path[len(_PREFIX) :]
        if what == "seed" and request.method == "GET":
            return _json(seed)
        if what == "secret" and request.method == "GET":
            secret = _secret_of(request.args.get("access_key_id", ""))
            return _json({"secret": secret} if secret else {"error": "unknown access key"}, 200 if secret else 404)
        if what == "target-health" and request.method == "POST":
            try:
                report_health(json.loads(request.get_data(as_text=True) or "{}"))
            except (ValueError, AttributeError) as err:
                return _json({"error": str(err)}, 400)
            GENERATIONS.bump("elbv2")  # DescribeTargetHealth answers with it from now on
            return _json({"ok": True})
        if what == "generation" and request.method == "GET":
            return _json(GENERATIONS.snapshot())
        if what == "calls" and request.method == "GET":
            return _json(CALLS.take())
        if what != "inject":
            return _json({"error": f"unknown endpoint {request.path}"}, 404)
        if request.method == "POST":
            try:
                raw = json.loads(request.get_data(as_text=True) or "null")
                FAULTS.add([Fault.parse(f) for f in (raw if isinstance(raw, list) else [raw])])
            except ValueError as err:  # json.JSONDecodeError is a ValueError
                return _json({"error": str(err)}, 400)
        elif request.method == "DELETE":
            FAULTS.clear()
        elif request.method != "GET":
            return _json({"error": "use GET, POST or DELETE"}, 405)
        return _json({"pending": FAULTS.pending()})

    def _json(data: Any, status: int = 200) -> Response:
        return Response(json.dumps(data), status=status, mimetype="application/json")

    def cluster_versions(request: Request) -> Response:
        from ..binaries import KUBERNETES_VERSION
        from .cluster_versions import describe_cluster_versions

        status, body = describe_cluster_versions(KUBERNETES_VERSION, request.args.to_dict(flat=False))
        return _json(body, status)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == "/cluster-versions" and environ.get("REQUEST_METHOD") == "GET":
            # EKS's DescribeClusterVersions: no other service has this path, and moto answers it with 404.
            CALLS.record("eks:DescribeClusterVersions")
            return cluster_versions(Request(environ))(environ, start_response)  # type: ignore[no-any-return]
        if str(environ.get("PATH_INFO", "")).startswith(_PREFIX):
            response: Iterable[bytes] = control(Request(environ))(environ, start_response)
            return response
        result: Iterable[bytes] = moto_app(environ, start_response)
        return result

    return app


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog=_PROG, description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--host", default="127.0.0.1", help="loopback address to bind")
    p.add_argument("--port", type=int, required=True, help="TCP port; 0 picks a free one (see READY)")
    p.add_argument("--region", default="ap-northeast-2")
    p.add_argument("--cluster-name", default="eksworkshop")
    p.add_argument("--endpoint", required=True, help="Kubernetes API URL DescribeCluster returns")
    p.add_argument("--ca-file", required=True, help="PEM CA of that API server")
    p.add_argument("--profile-create-seconds", type=float, default=2.0)
    p.add_argument("--profile-delete-seconds", type=float, default=2.0)
    p.add_argument("--run-id", required=True, help="value of the fargate-labs/run-id tag")
    return p.parse_args(argv)


def _fail(message: str, code: int) -> int:
    print(f"{_PROG}: {message}", file=sys.stderr, flush=True)
    return code


def _bind(host: str, port: int) -> socket.socket:
    # Bound here rather than by werkzeug, which prints several lines and exits 1 on a taken port.
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return socket.create_server((host, port), family=family)


def _is_loopback(host: str) -> bool:
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    if not _is_loopback(args.host):
        # moto checks no credentials: anything that can reach it can change the emulated account.
        return _fail(f"--host {args.host} is not a loopback address; use 127.0.0.1", ExitCode.BAD_INPUT)
    try:
        with open(args.ca_file, encoding="utf-8") as fh:
            ca_pem = fh.read()
    except OSError as err:
        return _fail(f"cannot read --ca-file {args.ca_file}: {err.strerror}", ExitCode.BAD_INPUT)
    # Callers parse stdout for the READY line only; anything moto or boto might print goes to stderr.
    ready_out, sys.stdout = sys.stdout, sys.stderr
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    try:
        sock = _bind(args.host, args.port)
    except OSError as err:
        if err.errno == errno.EADDRINUSE:
            return _fail(
                f"port {args.port} on {args.host} is already in use; choose another --port",
                ExitCode.PORT_IN_USE,
            )
        return _fail(f"cannot listen on {args.host}:{args.port}: {err.strerror}", ExitCode.PORT_IN_USE)
    port = sock.getsockname()[1]
    os.environ.setdefault("MOTO_PORT", str(port))  # some moto services build URLs from it
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no per-request log lines

    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
    from werkzeug.serving import make_server

    from . import fargate_profiles, load_balancers
    from .network import seed_workshop

    try:
        preset = faults_from_env()
    except ValueError as err:
        return _fail(f"{FAULTS_ENV} is not a valid fault list: {err}", ExitCode.BAD_INPUT)
    fargate_profiles.install(args.profile_create_seconds, args.profile_delete_seconds)
    GENERATIONS.add_source("eks", fargate_profiles.transitions)
    load_balancers.install()
    install_fault_injection()
    fixed_module_list()
    seed: dict[str, Any] = {}
    app = build_app(DomainDispatcherApplication(create_backend_app), seed)
    server = make_server(args.host, port, app, threaded=True, fd=sock.fileno())
    sock.close()  # werkzeug holds its own duplicate of the listening socket
    thread = threading.Thread(target=server.serve_forever, name="moto-server", daemon=True)
    thread.start()
    try:
        url_host = f"[{args.host}]" if ":" in args.host else args.host
        seed.update(
            seed_workshop(
                args.region,
                args.cluster_name,
                args.endpoint,
                ca_pem,
                args.run_id,
                endpoint_url=f"http://{url_host}:{port}",
            )
        )
        # Preset faults are armed only now, so they hit the harness's calls and not the seeding.
        FAULTS.add(preset)
        if not stop.is_set():
            print(f"READY {port}", file=ready_out, flush=True)
        while not stop.wait(0.5):
            pass
    except Exception as err:  # a seeding failure must still free the port
        return _fail(f"seeding the workshop failed: {type(err).__name__}: {err}", ExitCode.START_FAILED)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
    return ExitCode.OK


if __name__ == "__main__":
    sys.exit(main())
