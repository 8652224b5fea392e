"""Bearer tokens for an EKS cluster's Kubernetes API, made with botocore alone (no aws CLI, no eksctl).

A token is what ``aws eks get-token`` and aws-iam-authenticator make: an STS ``GetCallerIdentity`` URL
presigned for 60 seconds whose signature also covers the header ``x-k8s-aws-id: <cluster name>``,
base64url-encoded without padding, behind the prefix ``k8s-aws-v1.``. The cluster's authenticator
sends that request to STS (with the header) and learns who signed it; a token signed for another
cluster fails STS's signature check.

STS honours such a URL for 15 minutes after its ``X-Amz-Date`` (the 60-second presign expiry is only
checked by authenticators older than 0.3.0), so a token is given an expiry one minute short of that
and refreshed before it runs out: :class:`TokenSource` in-process, or ``kubectl`` itself through the
kubeconfig ``exec`` entry of :func:`exec_user`, which runs::

    python -m fargatelab.eks.token --cluster NAME --region REGION

and prints an ``ExecCredential`` with ``status.expirationTimestamp``. The Kubernetes Python client
re-runs the command once that expiry is less than five minutes away, kubectl once it has passed.

boto3's usual configuration applies: credentials from the environment, profile or instance role,
and ``AWS_ENDPOINT_URL`` / ``AWS_ENDPOINT_URL_STS`` for another STS endpoint (the local
environment's moto).

>>> token = encode("https://sts.ap-northeast-2.amazonaws.com/?Action=GetCallerIdentity")
>>> token
'k8s-aws-v1.aHR0cHM6Ly9zdHMuYXAtbm9ydGhlYXN0LTIuYW1hem9uYXdzLmNvbS8_QWN0aW9uPUdldENhbGxlcklkZW50aXR5'
>>> decode(token)
'https://sts.ap-northeast-2.amazonaws.com/?Action=GetCallerIdentity'
"""

from __future__ import annotations

import argparse
import base64
import datetime as _dt
import json
import sys
import threading
from dataclasses import dataclass
from typing import Any, Callable
from urllib.parse import parse_qs, urlsplit

__all__ = [
    "TOKEN_PREFIX",
    "CLUSTER_ID_HEADER",
    "PRESIGN_SECONDS",
    "TOKEN_LIFETIME",
    "EXPIRY_MARGIN",
    "EXEC_API_VERSION",
    "Token",
    "TokenSource",
    "presigned_url",
    "get_token",
    "encode",
    "decode",
    "signed_at",
    "exec_credential",
    "exec_user",
    "main",
]

TOKEN_PREFIX = "k8s-aws-v1."
CLUSTER_ID_HEADER = "x-k8s-aws-id"
#: X-Amz-Expires of the presigned URL, as aws-iam-authenticator sets it
PRESIGN_SECONDS = 60
#: how long STS accepts the URL after its X-Amz-Date
TOKEN_LIFETIME = _dt.timedelta(minutes=15)
#: the token's announced expiry is this much earlier than STS's limit
EXPIRY_MARGIN = _dt.timedelta(minutes=1)
EXEC_API_VERSION = "client.authentication.k8s.io/v1beta1"
_AMZ_DATE = "%Y%m%dT%H%M%SZ"


@dataclass(frozen=True)
class Token:
    value: str
    #: when the token should no longer be used (timezone-aware, UTC)
    expiration: _dt.datetime

    def fresh(self, now: _dt.datetime | None = None, margin: _dt.timedelta = _dt.timedelta(minutes=5)) -> bool:
        """Whether the token is still good for at least ``margin``."""
        now = now or _dt.datetime.now(_dt.timezone.utc)
        return self.expiration - margin > now


def encode(url: str) -> str:
    return TOKEN_PREFIX + base64.urlsafe_b64encode(url.encode()).decode().rstrip("=")


def decode(token: str) -> str:
    """The presigned URL inside a token; ValueError if it is not a ``k8s-aws-v1.`` token."""
    if not token.startswith(TOKEN_PREFIX):
        raise ValueError(f"token does not start with {TOKEN_PREFIX}")
    body = token[len(TOKEN_PREFIX):]
    if not body or "=" in body:
        raise ValueError("token is not unpadded base64url")
    try:
        return base64.b64decode(body + "=" * (-len(body) % 4), altchars=b"-_", validate=True).decode()
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"token is not base64url: {exc}") from None


def signed_at(url: str) -> _dt.datetime:
    """The X-Amz-Date of a presigned URL (UTC)."""
    values = parse_qs(urlsplit(url).query).get("X-Amz-Date")
    if not values:
        raise ValueError("presigned URL has no X-Amz-Date")
    return _dt.datetime.strptime(values[0], _AMZ_DATE).replace(tzinfo=_dt.timezone.utc)


def presigned_url(cluster: str, region: str, session: Any = None) -> str:
    """A GetCallerIdentity URL presigned for ``PRESIGN_SECONDS``, its signature covering the cluster header."""
    if session is None:
        import boto3

        session = boto3.session.Session()
    sts = session.client("sts", region_name=region)

    def add_cluster_header(request: Any, **_: Any) -> None:
        request.headers[CLUSTER_ID_HEADER] = cluster

    sts.meta.events.register("before-sign.sts.GetCallerIdentity", add_cluster_header)
    url: str = sts.generate_presigned_url("get_caller_identity", Params={}, ExpiresIn=PRESIGN_SECONDS,
                                          HttpMethod="GET")
    return url


def get_token(cluster: str, region: str, session: Any = None) -> Token:
    url = presigned_url(cluster, region, session)
    return Token(encode(url), signed_at(url) + TOKEN_LIFETIME - EXPIRY_MARGIN)


class TokenSource:
    """A token that is made anew whenever the current one has less than ``margin`` left (thread-safe)."""

    def __init__(self, cluster: str, region: str, session: Any = None,
                 margin: _dt.timedelta = _dt.timedelta(minutes=5),
                 clock: Callable[[], _dt.datetime] = lambda: _dt.datetime.now(_dt.timezone.utc)) -> None:
        self.cluster, self.region, self.session = cluster, region, session
        self.margin, self.clock = margin, clock
        self._token: Token | None = None
        self._lock = threading.Lock()

    def token(self) -> Token:
        with self._lock:
            if self._token is None or not self._token.fresh(self.clock(), self.margin):
                self._token = get_token(self.cluster, self.region, self.session)
            return self._token

    def refresh_hook(self) -> Callable[[Any], None]:
        """A ``refresh_api_key_hook`` for ``kubernetes.client.Configuration``."""

        def hook(configuration: Any) -> None:
            configuration.api_key["BearerToken"] = self.token().value
            configuration.api_key_prefix["BearerToken"] = "Bearer"

        return hook


def exec_credential(token: Token) -> dict[str, Any]:
    stamp = token.expiration.astimezone(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"kind": "ExecCredential", "apiVersion": EXEC_API_VERSION, "spec": {},
            "status": {"expirationTimestamp": stamp, "token": token.value}}


def exec_user(cluster: str, region: str, python: str | None = None) -> dict[str, Any]:
    """The kubeconfig ``user`` entry that has kubectl run this module for a fresh token."""
    return {"exec": {
        "apiVersion": EXEC_API_VERSION,
        "command": python or sys.executable,
        "args": ["-m", "fargatelab.eks.token", "--cluster", cluster, "--region", region],
        "interactiveMode": "Never",
        "provideClusterInfo": False,
    }}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m fargatelab.eks.token",
                                description="Print an ExecCredential with an EKS bearer token.")
    p.add_argument("--cluster", required=True)
    p.add_argument("--region", required=True)
    args = p.parse_args(argv)
    from botocore.exceptions import BotoCoreError, ClientError

    from ..errors import ExitCode

    try:
        token = get_token(args.cluster, args.region)
    except (BotoCoreError, ClientError) as exc:
        print(f"fargatelab.eks.token: error: cannot sign an STS request: {exc}", file=sys.stderr)
        return ExitCode.NO_CREDENTIALS
    json.dump(exec_credential(token), sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
