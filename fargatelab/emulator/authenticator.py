"""The local environment's aws-iam-authenticator: a TokenReview webhook for ``k8s-aws-v1.`` tokens.

kube-apiserver is started with ``--authentication-token-webhook-config-file`` pointing here, so the local
API server accepts the same bearer tokens as an EKS cluster (see :mod:`fargatelab.eks.token`). For each
token this does what aws-iam-authenticator's server does:

1. decode it: ``k8s-aws-v1.`` + unpadded base64url of a URL;
2. check that URL is a presigned STS ``GetCallerIdentity`` request to the expected STS endpoint (the
   environment's AWS endpoint, i.e. moto, given by ``--sts-endpoint``), path ``/``, only the query
   parameters STS presigning produces, ``x-k8s-aws-id`` among the signed headers, ``X-Amz-Expires`` at
   most 15 minutes and ``X-Amz-Date`` less than 15 minutes old;
3. check the signature covers ``x-k8s-aws-id: <this cluster>``. On AWS, STS does that when the
   authenticator replays the request with the header; moto verifies no signatures, so this webhook
   recomputes the SigV4 signature itself with the secret of the access key (``--access-key ID=SECRET``;
   the environment passes moto's dummy ``testing=testing``). A token signed for another cluster, or by
   an unknown key, is refused;
4. replay the request to STS with the ``x-k8s-aws-id`` header, as the authenticator does, and read the
   caller's ARN, account and user id from the answer. moto's server picks the service of a request from
   the credential scope of its ``Authorization`` header; a presigned request has the scope only in its
   query, so the same scope is passed in that header too (this webhook never talks to real STS);
5. map the caller to a Kubernetes user.

Mapping (what EKS does for the cluster creator, applied to the cluster's whole account):

* ``arn:aws:sts::<account>:assumed-role/<role>/<session>`` -> username
  ``arn:aws:sts::<account>:assumed-role/<role>/<session>``, canonical ARN
  ``arn:aws:iam::<account>:role/<role>``;
* ``arn:aws:iam::<account>:user/<name>`` (and moto's ``arn:aws:sts::<account>:user/<name>``) -> username
  ``arn:aws:iam::<account>:user/<name>``;
* ``arn:aws:iam::<account>:root`` -> username ``arn:aws:iam::<account>:root``;
* every identity of the cluster's account (``--account-id``, else the account the moto seed reports)
  gets the group ``system:masters``, except a user or role whose name ends in ``ReadOnly``: it gets
  ``fargate-labs:view`` (read-only RBAC, installed with the add-ons), the local stand-in for an EKS access
  entry with AmazonEKSViewPolicy, so check mode can be run as students run it;
  identities of other accounts are not authenticated.

The user's uid is ``aws-iam-authenticator:<account>:<user id>`` and its extra fields carry ``arn``,
``canonicalArn``, ``sessionName`` and ``accessKeyId``, as on EKS.

Run ``python -m fargatelab.emulator.authenticator --port P --cert C --key K --cluster NAME
--sts-endpoint URL``; it prints ``READY authenticator=<host>:<port>`` once it serves.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import hashlib
import hmac
import json
import logging
import re
import signal
import sys
import threading
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping
from urllib.parse import quote, unquote, urlsplit

import yaml

from ..eks.token import CLUSTER_ID_HEADER, TOKEN_LIFETIME, decode
from .https_json import JsonHandler, https_server

__all__ = [
    "TokenRejected",
    "Identity",
    "ParsedToken",
    "parse_token",
    "verify_signature",
    "caller_identity",
    "map_identity",
    "Authenticator",
    "AuthenticatorServer",
    "webhook_kubeconfig",
    "apiserver_flags",
    "main",
]

log = logging.getLogger("fargatelab.authenticator")

_ALLOWED_PARAMS = {"action", "version", "x-amz-algorithm", "x-amz-credential", "x-amz-date", "x-amz-expires",
                   "x-amz-security-token", "x-amz-signature", "x-amz-signedheaders", "x-amz-user-agent"}
_AMZ_DATE = "%Y%m%dT%H%M%SZ"
_CLOCK_SKEW = _dt.timedelta(minutes=5)
_EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
_DEFAULT_PORTS = {"http": "80", "https": "443"}


class TokenRejected(Exception):
    """The token is not a valid EKS token for this cluster; the message says why (logged, not shown)."""


@dataclass(frozen=True)
class ParsedToken:
    url: str
    params: dict[str, str]
    access_key_id: str
    signed_at: _dt.datetime


@dataclass(frozen=True)
class Identity:
    arn: str
    account: str
    user_id: str
    access_key_id: str = ""


def _host(netloc: str, scheme: str) -> str:
    host, _, port = netloc.rpartition(":") if netloc.count(":") == 1 else (netloc, "", "")
    if port and _DEFAULT_PORTS.get(scheme) == port:
        return host
    return netloc


def parse_token(token: str, sts_endpoints: list[str], now: _dt.datetime | None = None) -> ParsedToken:
    """Decode ``token`` and check its URL is a fresh presigned GetCallerIdentity for one of ``sts_endpoints``."""
    now = now or _dt.datetime.now(_dt.timezone.utc)
    try:
        url = decode(token)
    except ValueError as exc:
        raise TokenRejected(str(exc)) from None
    parts = urlsplit(url)
    origin = f"{parts.scheme}://{_host(parts.netloc, parts.scheme)}"
    allowed = {f"{urlsplit(e).scheme}://{_host(urlsplit(e).netloc, urlsplit(e).scheme)}" for e in sts_endpoints}
    if origin not in allowed:
        raise TokenRejected(f"unexpected STS endpoint {origin} (expected one of {sorted(allowed)})")
    if parts.path not in ("/", ""):
        raise TokenRejected(f"unexpected path {parts.path!r}")
    params: dict[str, str] = {}
    for pair in parts.query.split("&") if parts.query else []:
        key, _, value = pair.partition("=")
        key, value = unquote(key), unquote(value)
        if key.lower() not in _ALLOWED_PARAMS:
            raise TokenRejected(f"unexpected query parameter {key!r}")
        if key in params:
            raise TokenRejected(f"query parameter {key!r} repeated")
        params[key] = value
    if params.get("Action") != "GetCallerIdentity":
        raise TokenRejected(f"unexpected action {params.get('Action')!r}")
    if params.get("X-Amz-Algorithm") != "AWS4-HMAC-SHA256":
        raise TokenRejected("not a SigV4 presigned URL")
    signed = params.get("X-Amz-SignedHeaders", "").lower().split(";")
    if CLUSTER_ID_HEADER not in signed:
        raise TokenRejected(f"{CLUSTER_ID_HEADER} is not among the signed headers")
    try:
        expires = int(params.get("X-Amz-Expires", ""))
    except ValueError:
        raise TokenRejected("X-Amz-Expires is not a number") from None
    if not 0 < expires <= TOKEN_LIFETIME.total_seconds():
        raise TokenRejected(f"X-Amz-Expires {expires} is not within 15 minutes")
    try:
        date = _dt.datetime.strptime(params.get("X-Amz-Date", ""), _AMZ_DATE).replace(tzinfo=_dt.timezone.utc)
    except ValueError:
        raise TokenRejected("X-Amz-Date is missing or malformed") from None
    if now > date + TOKEN_LIFETIME:
        raise TokenRejected("X-Amz-Date is expired (15 minute expiration)")
    if date > now + _CLOCK_SKEW:
        raise TokenRejected("X-Amz-Date is in the future")
    credential = params.get("X-Amz-Credential", "").split("/")
    if len(credential) != 5 or credential[3] != "sts" or credential[4] != "aws4_request":
        raise TokenRejected("X-Amz-Credential is not an STS credential scope")
    return ParsedToken(url, params, credential[0], date)


def _canonical_query(params: Mapping[str, str]) -> str:
    pairs = sorted((quote(k, safe="-_.~"), quote(v, safe="-_.~")) for k, v in params.items()
                   if k != "X-Amz-Signature")
    return "&".join(f"{k}={v}" for k, v in pairs)


def _signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    key = f"AWS4{secret}".encode()
    for part in (date, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def verify_signature(parsed: ParsedToken, cluster: str, secret: str) -> bool:
    """Whether the URL's SigV4 signature is right for ``x-k8s-aws-id: cluster`` and ``secret``.

    Both payload hashes SDKs use for presigned GETs are accepted (``UNSIGNED-PAYLOAD`` from botocore,
    the hash of the empty body from the Go SDK).
    """
    parts = urlsplit(parsed.url)
    params = parsed.params
    signed = params["X-Amz-SignedHeaders"].lower().split(";")
    values = {"host": _host(parts.netloc, parts.scheme), CLUSTER_ID_HEADER: cluster}
    if any(h not in values for h in signed):
        return False  # a header whose value the authenticator cannot know
    canonical_headers = "".join(f"{h}:{values[h].strip()}\n" for h in sorted(signed))
    _key, date, region, service, _ = params["X-Amz-Credential"].split("/")
    scope = f"{date}/{region}/{service}/aws4_request"
    key = _signing_key(secret, date, region, service)
    for payload in ("UNSIGNED-PAYLOAD", _EMPTY_SHA256):
        canonical = "\n".join(["GET", parts.path or "/", _canonical_query(params), canonical_headers,
                               ";".join(sorted(signed)), payload])
        to_sign = "\n".join(["AWS4-HMAC-SHA256", params["X-Amz-Date"], scope,
                             hashlib.sha256(canonical.encode()).hexdigest()])
        signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
        if hmac.compare_digest(signature, params.get("X-Amz-Signature", "")):
            return True
    return False


def _strip_ns(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def caller_identity(parsed: ParsedToken, cluster: str, timeout: float = 10.0) -> Identity:
    """Replay the presigned request to STS with the cluster header; the identity STS answers with."""
    scope = parsed.params["X-Amz-Credential"]
    headers = {
        CLUSTER_ID_HEADER: cluster,
        "Accept": "application/json",
        # moto's server routes by this scope (see the module docstring); STS itself would refuse it.
        "Authorization": f"AWS4-HMAC-SHA256 Credential={scope}, SignedHeaders={parsed.params['X-Amz-SignedHeaders']}, "
                         f"Signature={parsed.params.get('X-Amz-Signature', '')}",
    }
    request = urllib.request.Request(parsed.url, headers=headers, method="GET")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - the checked STS URL
            body = response.read()
    except urllib.error.HTTPError as exc:
        raise TokenRejected(f"STS refused the request: HTTP {exc.code}") from None
    except OSError as exc:
        raise TokenRejected(f"STS unreachable: {exc}") from None
    result: dict[str, str] = {}
    text = body.decode(errors="replace").strip()
    if text.startswith("{"):
        data = json.loads(text)
        result = data.get("GetCallerIdentityResponse", {}).get("GetCallerIdentityResult", {})
    else:
        try:
            root = ET.fromstring(text)
        except ET.ParseError:
            raise TokenRejected("STS answered with neither JSON nor XML") from None
        for element in root.iter():
            if _strip_ns(element.tag) in ("Arn", "Account", "UserId") and element.text:
                result[_strip_ns(element.tag)] = element.text
    if not result.get("Arn") or not result.get("Account"):
        raise TokenRejected("STS answer has no caller identity")
    return Identity(result["Arn"], result["Account"], result.get("UserId", ""), parsed.access_key_id)


_ASSUMED_ROLE = re.compile(r"^arn:(aws[a-z-]*):sts::(\d{12}):assumed-role/(?:.*/)?([^/]+)/([^/]+)$")
_USER = re.compile(r"^arn:(aws[a-z-]*):(?:iam|sts)::(\d{12}):user/(?:.*/)?([^/]+)$")
#: the group of read-only identities; the add-ons bind it to a get/list/watch ClusterRole
VIEW_GROUP = "fargate-labs:view"

_ROOT = re.compile(r"^arn:(aws[a-z-]*):iam::(\d{12}):root$")


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


def map_identity(identity: Identity, account: str) -> dict[str, Any] | None:
    """The Kubernetes ``UserInfo`` of an identity, or None when it may not use this cluster.

    >>> map_identity(Identity("arn:aws:sts::123456789012:assumed-role/Admin/alice", "123456789012", "AROA1:alice"),
    ...              "123456789012")["username"]
    'arn:aws:sts::123456789012:assumed-role/Admin/alice'
    >>> map_identity(Identity("arn:aws:sts::123456789012:user/moto", "123456789012", "AKIA"), "123456789012")["groups"]
    ['system:masters']
    >>> map_identity(Identity("arn:aws:iam::999999999999:user/x", "999999999999", "AIDA"), "123456789012") is None
    True
    >>> map_identity(Identity("arn:aws:iam::123456789012:user/StudentReadOnly", "123456789012", "AIDA"),
    ...              "123456789012")["groups"]
    ['fargate-labs:view']
    """
    if identity.account != account:
        return None
    session = ""
    if m := _ASSUMED_ROLE.match(identity.arn):
        partition, acct, role, session = m.groups()
        username, canonical = identity.arn, f"arn:{partition}:iam::{acct}:role/{role}"
    elif m := _USER.match(identity.arn):
        partition, acct, name = m.groups()
        username = canonical = f"arn:{partition}:iam::{acct}:user/{name}"
    elif m := _ROOT.match(identity.arn):
        username = canonical = identity.arn
    else:
        return None
    read_only = canonical.rsplit("/", 1)[-1].lower().endswith("readonly")
    return {
        "username": username,
        "uid": f"aws-iam-authenticator:{identity.account}:{identity.user_id}",
        "groups": [VIEW_GROUP if read_only else "system:masters"],
        "extra": {"arn": [identity.arn], "canonicalArn": [canonical], "sessionName": [session],
                  "accessKeyId": [identity.access_key_id]},
    }


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
