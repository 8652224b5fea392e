"""The local environment's aws-iam-authenticator: a TokenReview webhook for ``k8s-aws-v1.`` tokens.

kube-apiserver is started with ``--authentication-token-webhook-config-file`` pointing here, so the local
API server accepts the same bearer tokens as an EKS cluster (see :mod:`fargatelab.eks.token`). For each
token this does what aws-iam-authenticator's server does: checks the token and asks STS who signed it
(:mod:`~fargatelab.emulator.token_verifier`; the STS endpoint is the environment's moto, given by
``--sts-endpoint``, and signatures are verified with the secrets of ``--access-key ID=SECRET``, for which
the environment passes moto's dummy ``testing=testing``), then maps the caller to a Kubernetes user
(:mod:`~fargatelab.emulator.identity_mapping`; the cluster's account is ``--account-id``, else the account
the moto seed reports).

Run ``python -m fargatelab.emulator.authenticator --port P --cert C --key K --cluster NAME
--sts-endpoint URL``; it prints ``READY authenticator=<host>:<port>`` once it serves.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import logging
import signal
import sys
import threading
import urllib.request
from pathlib import Path
from typing import Any, Callable, Mapping

import yaml

from ..eks.token import CLUSTER_ID_HEADER
from .https_json import JsonHandler, https_server
from .identity_mapping import map_identity
from .token_verifier import Identity, ParsedToken, TokenRejected, caller_identity, parse_token, verify_signature

__all__ = ["Authenticator", "AuthenticatorServer", "webhook_kubeconfig", "apiserver_flags", "main"]

log = logging.getLogger("fargatelab.authenticator")


def _issued_secret(endpoints: list[str], access_key_id: str) -> str | None:
    """Ask the moto server for the secret of a key it issued (a student's own IAM user, say)."""
    import urllib.parse
    import urllib.request

    for endpoint in endpoints:
        url = f"{endpoint.rstrip('/')}/_fargatelab/secret?{urllib.parse.urlencode({'access_key_id': access_key_id})}"
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310 - the local moto server
                secret = json.loads(resp.read()).get("secret")
                return str(secret) if secret else None
        except OSError:
            continue
    return None


class Authenticator:
    """TokenReview logic: ``review(request_body) -> response_body``."""

    def __init__(self, cluster: str, sts_endpoints: list[str], secrets: Mapping[str, str],
                 account: Callable[[], str | None], identity: Callable[[ParsedToken, str], Identity] = caller_identity,
                 clock: Callable[[], _dt.datetime] = lambda: _dt.datetime.now(_dt.timezone.utc)) -> None:
        self.cluster = cluster
        self.sts_endpoints = sts_endpoints
        self.secrets = dict(secrets)
        self.account = account
        self.identity = identity
        self.clock = clock

    def authenticate(self, token: str) -> dict[str, Any]:
        """UserInfo for ``token``; TokenRejected says why not."""
        parsed = parse_token(token, self.sts_endpoints, self.clock())
        secret = self.secrets.get(parsed.access_key_id) or _issued_secret(self.sts_endpoints, parsed.access_key_id)
        if secret is None:
            raise TokenRejected(f"cannot verify a signature by unknown access key {parsed.access_key_id}")
        if not verify_signature(parsed, self.cluster, secret):
            raise TokenRejected(f"signature does not match {CLUSTER_ID_HEADER}: {self.cluster} "
                                "(a token for another cluster, or a forged one)")
        identity = self.identity(parsed, self.cluster)
        account = self.account()
        if account is None:
            raise TokenRejected("the cluster's account is not known yet")
        user = map_identity(identity, account)
        if user is None:
            raise TokenRejected(f"{identity.arn} is not mapped to a user of this cluster")
        return user

    def review(self, body: dict[str, Any]) -> dict[str, Any]:
        spec = body.get("spec") or {}
        token = spec.get("token") or ""
        api_version = body.get("apiVersion") or "authentication.k8s.io/v1"
        status: dict[str, Any]
        try:
            user = self.authenticate(token)
        except TokenRejected as exc:
            if token.startswith("k8s-aws-v1."):
                log.info("token rejected: %s", exc)
            status = {"authenticated": False, "error": str(exc)}
        else:
            log.info("authenticated %s", user["username"])
            status = {"authenticated": True, "user": user}
            if spec.get("audiences"):
                status["audiences"] = list(spec["audiences"])
        return {"apiVersion": api_version, "kind": "TokenReview", "status": status}


class AuthenticatorServer:
    def __init__(self, host: str, port: int, cert: str, key: str, authenticator: Authenticator) -> None:
        auth = authenticator

        class Handler(JsonHandler):
            def do_POST(self) -> None:  # noqa: N802
                if self.route != "/authenticate":
                    self.reply(404, {"error": "not found"})
                    return
                try:
                    body = self.read_json()
                except ValueError:
                    self.reply(400, {"error": "not JSON"})
                    return
                self.reply(200, auth.review(body))

        Handler.log = log
        self.httpd = https_server(host, port, cert, key, Handler)
        self.port: int = self.httpd.server_address[1]


def webhook_kubeconfig(path: Path, url: str, ca_file: Path) -> Path:
    """The kubeconfig-format file of ``--authentication-token-webhook-config-file``."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "aws-iam-authenticator",
                      "cluster": {"server": url, "certificate-authority": str(ca_file)}}],
        "users": [{"name": "kube-apiserver", "user": {}}],
        "contexts": [{"name": "webhook", "context": {"cluster": "aws-iam-authenticator", "user": "kube-apiserver"}}],
        "current-context": "webhook",
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def apiserver_flags(config_file: Path) -> list[str]:
    return [f"--authentication-token-webhook-config-file={config_file}",
            "--authentication-token-webhook-version=v1",
            # EKS tokens live 15 minutes; a short cache keeps revocation (and tests) prompt.
            "--authentication-token-webhook-cache-ttl=30s"]


def _account_from_seed(sts_endpoint: str) -> Callable[[], str | None]:
    known: list[str] = []

    def account() -> str | None:
        if not known:
            try:
                with urllib.request.urlopen(f"{sts_endpoint.rstrip('/')}/_fargatelab/seed", timeout=5) as r:  # noqa: S310
                    found = json.loads(r.read()).get("account_id")
            except (OSError, ValueError):
                return None
            if found:
                known.append(str(found))
        return known[0] if known else None

    return account


def _args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m fargatelab.emulator.authenticator")
    p.add_argument("--host", default="127.0.0.1", help="address the API server can reach")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--cert", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--cluster", required=True, help="the value x-k8s-aws-id must carry")
    p.add_argument("--sts-endpoint", required=True, action="append", help="accepted STS endpoint (repeatable)")
    p.add_argument("--access-key", action="append", default=[], metavar="ID=SECRET",
                   help="a key whose signatures can be verified (repeatable)")
    p.add_argument("--account-id", default=None, help="the cluster's account (default: from the moto seed)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    secrets = dict(k.split("=", 1) for k in args.access_key if "=" in k)
    account: Callable[[], str | None] = (lambda: args.account_id) if args.account_id \
        else _account_from_seed(args.sts_endpoint[0])
    server = AuthenticatorServer(args.host, args.port, args.cert, args.key,
                                 Authenticator(args.cluster, args.sts_endpoint, secrets, account))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    thread = threading.Thread(target=server.httpd.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
    thread.start()
    print(f"READY authenticator={args.host}:{server.port}", flush=True)
    stop.wait()
    server.httpd.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
