"""Checking a ``k8s-aws-v1.`` token as aws-iam-authenticator's server does, and learning who signed it.

1. decode it: ``k8s-aws-v1.`` + unpadded base64url of a URL;
2. check that URL is a presigned STS ``GetCallerIdentity`` request to the expected STS endpoint (the
   environment's AWS endpoint, i.e. moto), path ``/``, only the query parameters STS presigning produces,
   ``x-k8s-aws-id`` among the signed headers, ``X-Amz-Expires`` at most 15 minutes and ``X-Amz-Date``
   less than 15 minutes old;
3. check the signature covers ``x-k8s-aws-id: <this cluster>``. On AWS, STS does that when the
   authenticator replays the request with the header; moto verifies no signatures, so the SigV4
   signature is recomputed here with the secret of the access key. A token signed for another cluster,
   or by an unknown key, is refused;
4. replay the request to STS with the ``x-k8s-aws-id`` header, as the authenticator does, and read the
   caller's ARN, account and user id from the answer. moto's server picks the service of a request from
   the credential scope of its ``Authorization`` header; a presigned request has the scope only in its
   query, so the same scope is passed in that header too (this never talks to real STS).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import hmac
import json
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Mapping
from urllib.parse import quote, unquote, urlsplit

from ..eks.token import CLUSTER_ID_HEADER, TOKEN_LIFETIME, decode

__all__ = ["TokenRejected", "ParsedToken", "Identity", "parse_token", "verify_signature", "caller_identity"]

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
