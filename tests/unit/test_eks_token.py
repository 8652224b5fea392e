"""EKS bearer tokens: format, the signed cluster header, expiry and refresh. No network: presigning is local."""

from __future__ import annotations

import base64
import datetime as dt
import json
import subprocess
import sys
from urllib.parse import parse_qs, urlsplit

import boto3
import pytest

from fargatelab.eks import token as eks_token

UTC = dt.timezone.utc


@pytest.fixture
def session(monkeypatch: pytest.MonkeyPatch) -> boto3.session.Session:
    for var in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_STS", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    return boto3.session.Session(aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="secret",
                                 region_name="ap-northeast-2")


def _query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def test_token_is_prefixed_unpadded_base64url_of_a_presigned_get_caller_identity(session: boto3.session.Session) -> None:
    token = eks_token.get_token("eksworkshop", "ap-northeast-2", session)
    assert token.value.startswith("k8s-aws-v1.")
    body = token.value[len("k8s-aws-v1."):]
    assert "=" not in body and "+" not in body and "/" not in body
    url = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).decode()
    assert url == eks_token.decode(token.value)
    parts = urlsplit(url)
    assert parts.scheme == "https"
    assert parts.netloc == "sts.ap-northeast-2.amazonaws.com"
    assert parts.path == "/"
    q = _query(url)
    assert q["Action"] == "GetCallerIdentity"
    assert q["Version"] == "2011-06-15"
    assert q["X-Amz-Algorithm"] == "AWS4-HMAC-SHA256"
    assert q["X-Amz-Credential"].startswith("AKIDEXAMPLE/") and q["X-Amz-Credential"].endswith(
        "/ap-northeast-2/sts/aws4_request")
    assert q["X-Amz-Expires"] == "60"
    assert "X-Amz-Signature" in q


def test_the_cluster_header_is_signed(session: boto3.session.Session) -> None:
    url = eks_token.decode(eks_token.get_token("eksworkshop", "ap-northeast-2", session).value)
    assert "x-k8s-aws-id" in _query(url)["X-Amz-SignedHeaders"].split(";")
    # The header value is not in the URL: a different cluster gives a different signature.
    other = eks_token.decode(eks_token.get_token("other", "ap-northeast-2", session).value)
    assert _query(other)["X-Amz-Signature"] != _query(url)["X-Amz-Signature"] or \
        _query(other)["X-Amz-Date"] != _query(url)["X-Amz-Date"]


def test_expiry_is_fourteen_minutes_after_signing(session: boto3.session.Session) -> None:
    before = dt.datetime.now(UTC).replace(microsecond=0)
    token = eks_token.get_token("eksworkshop", "ap-northeast-2", session)
    after = dt.datetime.now(UTC)
    signed = eks_token.signed_at(eks_token.decode(token.value))
    assert before <= signed <= after
    assert token.expiration == signed + dt.timedelta(minutes=14)
    assert token.fresh(signed + dt.timedelta(minutes=8))
    assert not token.fresh(signed + dt.timedelta(minutes=10))  # < 5 minutes left: refresh


def test_token_source_refreshes_before_expiry(session: boto3.session.Session) -> None:
    now = [dt.datetime.now(UTC)]
    source = eks_token.TokenSource("eksworkshop", "ap-northeast-2", session, clock=lambda: now[0])
    first = source.token()
    assert source.token() is first
    now[0] = first.expiration - dt.timedelta(minutes=4)
    second = source.token()
    assert second is not first


def test_refresh_hook_sets_the_bearer_token(session: boto3.session.Session) -> None:
    from kubernetes import client

    cfg = client.Configuration()
    source = eks_token.TokenSource("eksworkshop", "ap-northeast-2", session)
    cfg.refresh_api_key_hook = source.refresh_hook()
    header = cfg.get_api_key_with_prefix("BearerToken")
    assert header is not None and header.startswith("Bearer k8s-aws-v1.")


def test_endpoint_url_is_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:4566")
    session = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing")
    url = eks_token.decode(eks_token.get_token("eksworkshop", "ap-northeast-2", session).value)
    assert urlsplit(url).netloc == "127.0.0.1:4566"


def test_decode_rejects_other_tokens() -> None:
    for bad in ("eyJhbGciOi.x.y", "k8s-aws-v1.", "k8s-aws-v1.aGVsbG8=", "k8s-aws-v1.%%%"):
        with pytest.raises(ValueError):
            eks_token.decode(bad)


def test_exec_credential_shape(session: boto3.session.Session) -> None:
    token = eks_token.get_token("eksworkshop", "ap-northeast-2", session)
    cred = eks_token.exec_credential(token)
    assert cred["kind"] == "ExecCredential"
    assert cred["apiVersion"] == "client.authentication.k8s.io/v1beta1"
    assert cred["status"]["token"] == token.value
    stamp = dt.datetime.strptime(cred["status"]["expirationTimestamp"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert stamp == token.expiration.replace(microsecond=0)


def test_module_prints_an_exec_credential(tmp_path: object) -> None:
    env = {"PATH": "/usr/bin:/bin", "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": "secret",
           "HOME": str(tmp_path)}
    out = subprocess.run([sys.executable, "-m", "fargatelab.eks.token", "--cluster", "c1", "--region", "eu-west-1"],
                         capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    cred = json.loads(out.stdout)
    url = eks_token.decode(cred["status"]["token"])
    assert urlsplit(url).netloc == "sts.eu-west-1.amazonaws.com"


def test_module_without_credentials_fails_in_one_line(tmp_path: object) -> None:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "AWS_CONFIG_FILE": "/nonexistent",
           "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent", "AWS_EC2_METADATA_DISABLED": "true"}
    out = subprocess.run([sys.executable, "-m", "fargatelab.eks.token", "--cluster", "c1", "--region", "eu-west-1"],
                         capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 12
    assert len(out.stderr.strip().splitlines()) == 1
    assert "credentials" in out.stderr.lower()
