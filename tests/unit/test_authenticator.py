"""The local environment's aws-iam-authenticator: token checks, the signed cluster header, mapping."""

from __future__ import annotations

import datetime as dt
from typing import Any

import boto3
import pytest

from fargatelab.eks import token as eks_token
from fargatelab.emulator.authenticator import Authenticator
from fargatelab.emulator.identity_mapping import map_identity
from fargatelab.emulator.token_verifier import Identity, ParsedToken, TokenRejected, parse_token, verify_signature

ENDPOINT = "http://127.0.0.1:4566"
ACCOUNT = "123456789012"
UTC = dt.timezone.utc


@pytest.fixture
def token(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("AWS_ENDPOINT_URL", ENDPOINT)
    monkeypatch.delenv("AWS_ENDPOINT_URL_STS", raising=False)

    def make(cluster: str = "eksworkshop", key: str = "testing", secret: str = "testing", session_token: str | None = None) -> str:
        session = boto3.session.Session(aws_access_key_id=key, aws_secret_access_key=secret,
                                        aws_session_token=session_token)
        return eks_token.get_token(cluster, "ap-northeast-2", session).value

    return make


def _auth(identity: Identity | None = None, **kw: Any) -> Authenticator:
    ident = identity or Identity(f"arn:aws:sts::{ACCOUNT}:user/moto", ACCOUNT, "AKIAIOSFODNN7EXAMPLE", "testing")
    return Authenticator("eksworkshop", [ENDPOINT], {"testing": "testing", "ASIAEXAMPLE": "s3cr3t"},
                         lambda: ACCOUNT, identity=lambda parsed, cluster: ident, **kw)


def test_a_fresh_token_for_this_cluster_is_accepted(token: Any) -> None:
    parsed = parse_token(token(), [ENDPOINT])
    assert parsed.access_key_id == "testing"
    assert verify_signature(parsed, "eksworkshop", "testing")


def test_session_tokens_are_covered_by_the_signature(token: Any) -> None:
    parsed = parse_token(token(key="ASIAEXAMPLE", secret="s3cr3t", session_token="FQoG+/abc=="), [ENDPOINT])
    assert parsed.params["X-Amz-Security-Token"] == "FQoG+/abc=="
    assert verify_signature(parsed, "eksworkshop", "s3cr3t")


def test_a_token_for_another_cluster_fails_the_signature(token: Any) -> None:
    parsed = parse_token(token(cluster="other"), [ENDPOINT])
    assert not verify_signature(parsed, "eksworkshop", "testing")
    review = _auth().review({"apiVersion": "authentication.k8s.io/v1", "spec": {"token": token(cluster="other")}})
    assert review["status"]["authenticated"] is False
    assert "x-k8s-aws-id" in review["status"]["error"]


def test_a_wrong_secret_fails_the_signature(token: Any) -> None:
    assert not verify_signature(parse_token(token(), [ENDPOINT]), "eksworkshop", "other-secret")


def test_expired_token_is_rejected(token: Any) -> None:
    later = dt.datetime.now(UTC) + dt.timedelta(minutes=16)
    with pytest.raises(TokenRejected, match="expired"):
        parse_token(token(), [ENDPOINT], now=later)
    # 14 minutes later it still works (the token announces expiry at 14 minutes)
    parse_token(token(), [ENDPOINT], now=dt.datetime.now(UTC) + dt.timedelta(minutes=14))


def test_unexpected_endpoint_is_rejected(token: Any) -> None:
    with pytest.raises(TokenRejected, match="unexpected STS endpoint"):
        parse_token(token(), ["https://sts.ap-northeast-2.amazonaws.com"])


def test_other_actions_and_unsigned_header_are_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", ENDPOINT)
    sts = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing").client(
        "sts", region_name="ap-northeast-2")
    other_action = sts.generate_presigned_url("get_session_token", Params={}, ExpiresIn=60, HttpMethod="GET")
    with pytest.raises(TokenRejected, match="unexpected action"):
        parse_token(eks_token.encode(other_action), [ENDPOINT])
    unsigned = sts.generate_presigned_url("get_caller_identity", Params={}, ExpiresIn=60, HttpMethod="GET")
    with pytest.raises(TokenRejected, match="signed headers"):
        parse_token(eks_token.encode(unsigned), [ENDPOINT])


def test_extra_query_parameters_are_rejected(token: Any) -> None:
    url = eks_token.decode(token()) + "&Foo=bar"
    with pytest.raises(TokenRejected, match="unexpected query parameter"):
        parse_token(eks_token.encode(url), [ENDPOINT])


def test_not_an_eks_token() -> None:
    review = _auth().review({"spec": {"token": "eyJhbGciOiJSUzI1NiJ9.e30.sig"}})
    assert review["status"]["authenticated"] is False


def test_unknown_access_key_is_rejected(token: Any) -> None:
    review = _auth().review({"spec": {"token": token(key="AKIAUNKNOWN", secret="x")}})
    assert review["status"]["authenticated"] is False
    assert "unknown access key" in review["status"]["error"]


def test_review_maps_the_caller_to_system_masters(token: Any) -> None:
    review = _auth().review({"apiVersion": "authentication.k8s.io/v1",
                             "spec": {"token": token(), "audiences": ["https://kubernetes.default.svc"]}})
    status = review["status"]
    assert status["authenticated"] is True
    assert status["user"]["username"] == f"arn:aws:iam::{ACCOUNT}:user/moto"
    assert status["user"]["groups"] == ["system:masters"]
    assert status["user"]["uid"] == f"aws-iam-authenticator:{ACCOUNT}:AKIAIOSFODNN7EXAMPLE"
    assert status["user"]["extra"]["accessKeyId"] == ["testing"]
    assert status["audiences"] == ["https://kubernetes.default.svc"]


def test_other_accounts_are_not_authenticated(token: Any) -> None:
    stranger = Identity("arn:aws:iam::999999999999:user/eve", "999999999999", "AIDA")
    review = _auth(stranger).review({"spec": {"token": token()}})
    assert review["status"]["authenticated"] is False
    assert "not mapped" in review["status"]["error"]


@pytest.mark.parametrize("arn,username,canonical,session", [
    (f"arn:aws:sts::{ACCOUNT}:assumed-role/Admin/alice", f"arn:aws:sts::{ACCOUNT}:assumed-role/Admin/alice",
     f"arn:aws:iam::{ACCOUNT}:role/Admin", "alice"),
    (f"arn:aws:iam::{ACCOUNT}:user/ci/bob", f"arn:aws:iam::{ACCOUNT}:user/bob", f"arn:aws:iam::{ACCOUNT}:user/bob", ""),
    (f"arn:aws:iam::{ACCOUNT}:root", f"arn:aws:iam::{ACCOUNT}:root", f"arn:aws:iam::{ACCOUNT}:root", ""),
])
def test_mapping(arn: str, username: str, canonical: str, session: str) -> None:
    user = map_identity(Identity(arn, ACCOUNT, "ID"), ACCOUNT)
    assert user is not None
    assert user["username"] == username
    assert user["extra"]["canonicalArn"] == [canonical]
    assert user["extra"]["sessionName"] == [session]


def test_parsed_token_is_what_the_identity_call_gets(token: Any) -> None:
    seen: list[ParsedToken] = []

    def identity(parsed: ParsedToken, cluster: str) -> Identity:
        seen.append(parsed)
        assert cluster == "eksworkshop"
        return Identity(f"arn:aws:sts::{ACCOUNT}:user/moto", ACCOUNT, "X")

    auth = Authenticator("eksworkshop", [ENDPOINT], {"testing": "testing"}, lambda: ACCOUNT, identity=identity)
    auth.authenticate(token())
    assert seen and seen[0].url.startswith(ENDPOINT + "/?")
