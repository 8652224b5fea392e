"""Fargate profile selection: selectors, wildcards, precedence and the pinning label."""

from __future__ import annotations

import pytest

from fargatelab.rules.matching import (PROFILE_LABEL,
    Profile,
    Selector,
    kept_off_fargate,
    matching_profile,
    selector_matches,
    wildcard_match)

WILDCARDS = [
    ("study-*", "study-aews", True),
    ("study-*", "study-", True),
    ("study-*", "study", False),
    ("*", "", True),
    ("*", "anything", True),
    ("kube-system", "kube-system", True),
    ("kube-system", "kube-system2", False),
    ("kube-system", "Kube-System", False),
    ("team-?", "team-a", True),
    ("team-?", "team-", False),
    ("team-?", "team-ab", False),
    ("?-*-?", "a-middle-z", True),
    ("*-prod", "payments-prod", True),
    ("*-prod", "payments-prod-eu", False),
    ("a*b*c", "abc", True),
    ("a*b*c", "axxbyyc", True),
    ("a*b*c", "axxbyy", False),
    ("a.b", "a.b", True),
    ("a.b", "axb", False),
    ("[ab]", "a", False),
    ("[ab]", "[ab]", True),
    ("app+", "app+", True),
    ("app+", "appp", False),
    ("^x$", "^x$", True),
]


@pytest.mark.parametrize(
    ("pattern", "value", "expected"),
    WILDCARDS,
    ids=[f"{p!r} {'matches' if e else 'does not match'} {v!r}" for p, v, e in WILDCARDS],
)
def test_wildcard_match(pattern: str, value: str, expected: bool) -> None:
    assert wildcard_match(pattern, value) is expected


SELECTORS = [
    ("namespace only matches any labels", Selector("study-aews"), "study-aews", {"app": "x"}, True),
    ("namespace only matches no labels", Selector("study-aews"), "study-aews", {}, True),
    ("other namespace does not match", Selector("study-aews"), "default", {}, False),
    ("label required and present", Selector("default", {"app": "web"}), "default", {"app": "web", "tier": "1"}, True),
    ("label required but missing", Selector("default", {"app": "web"}), "default", {"tier": "1"}, False),
    ("label value differs", Selector("default", {"app": "web"}), "default", {"app": "api"}, False),
    ("all selector labels needed", Selector("default", {"app": "web", "env": "prod"}), "default", {"app": "web"}, False),
    ("all selector labels present", Selector("default", {"app": "web", "env": "prod"}), "default",
     {"app": "web", "env": "prod"}, True),
    ("wildcard label value", Selector("default", {"app": "web-*"}), "default", {"app": "web-frontend"}, True),
    ("wildcard label key", Selector("default", {"team.example.com/*": "payments"}), "default",
     {"team.example.com/owner": "payments"}, True),
    ("wildcard key and value must match the same label", Selector("default", {"a*": "x"}), "default",
     {"ab": "y", "c": "x"}, False),
    ("? in label value", Selector("default", {"v": "v?"}), "default", {"v": "v2"}, True),
    ("wildcard namespace and label", Selector("study-*", {"app": "*"}), "study-aews", {"app": "netshoot"}, True),
]


@pytest.mark.parametrize(
    ("selector", "namespace", "labels", "expected"),
    [row[1:] for row in SELECTORS],
    ids=[row[0] for row in SELECTORS],
)
def test_selector_matches(selector: Selector, namespace: str, labels: dict[str, str], expected: bool) -> None:
    assert selector_matches(selector, namespace, labels) is expected


GAME = Profile("fargate-game-2048", [Selector("fargate-game-2048")])
WILD = Profile("study_wildcard", [Selector("study-*")])
KUBE = Profile("kube-system", [Selector("kube-system")])
ALPHA = Profile("alpha", [Selector("study-aews")])
ZULU = Profile("zulu", [Selector("study-*", {"app": "*"})])
LABELLED = Profile("labelled", [Selector("default", {"compute": "fargate"}), Selector("batch")])
DELETING = Profile("aaa-deleting", [Selector("*")], status="DELETING")
CREATING = Profile("aaa-creating", [Selector("*")], status="CREATING")

PRECEDENCE = [
    ("single profile by namespace", [GAME, WILD, KUBE], "fargate-game-2048", {}, "fargate-game-2048"),
    ("wildcard namespace profile", [GAME, WILD, KUBE], "study-aews", {}, "study_wildcard"),
    ("kube-system profile", [GAME, WILD, KUBE], "kube-system", {"k8s-app": "kube-dns"}, "kube-system"),
    ("no profile for default namespace", [GAME, WILD, KUBE], "default", {}, None),
    ("no profiles at all", [], "default", {}, None),
    ("several match: first by sorted name", [WILD, ZULU, ALPHA], "study-aews", {"app": "x"}, "alpha"),
    ("sorted name is ASCII order, '-' before '_'", [Profile("a_b", [Selector("*")]), Profile("a-b", [Selector("*")])],
     "x", {}, "a-b"),
    ("order of the list does not matter", [ALPHA, ZULU, WILD], "study-aews", {"app": "x"}, "alpha"),
    ("any selector of a profile may match", [LABELLED], "batch", {}, "labelled"),
    ("labelled selector needs the label", [LABELLED], "default", {}, None),
    ("labelled selector with the label", [LABELLED], "default", {"compute": "fargate"}, "labelled"),
    ("DELETING profile does not count", [DELETING, WILD], "study-aews", {}, "study_wildcard"),
    ("CREATING profile does not count", [CREATING], "study-aews", {}, None),
    ("pinned profile wins over alphabetical", [WILD, ZULU, ALPHA], "study-aews", {"app": "x", PROFILE_LABEL: "zulu"},
     "zulu"),
    ("pinned profile that does not match gives none", [WILD, ALPHA, GAME], "study-aews",
     {PROFILE_LABEL: "fargate-game-2048"}, None),
    ("pinned profile that does not exist gives none", [WILD, ALPHA], "study-aews", {PROFILE_LABEL: "gone"}, None),
    ("pinned name is not a pattern", [WILD, ALPHA], "study-aews", {PROFILE_LABEL: "*"}, None),
    ("pinned profile must be ACTIVE", [DELETING, WILD], "study-aews", {PROFILE_LABEL: "aaa-deleting"}, None),
]


@pytest.mark.parametrize(
    ("profiles", "namespace", "labels", "expected"),
    [row[1:] for row in PRECEDENCE],
    ids=[row[0] for row in PRECEDENCE],
)
def test_matching_profile(profiles: list[Profile], namespace: str, labels: dict[str, str], expected: str | None) -> None:
    found = matching_profile(profiles, namespace, labels)
    assert (found.name if found else None) == expected


def test_matching_profile_accepts_no_labels() -> None:
    assert matching_profile([WILD], "study-aews", None) == WILD


def test_from_api_reads_describe_fargate_profile() -> None:
    answer = {
        "fargateProfile": {
            "fargateProfileName": "fargate-game-2048",
            "fargateProfileArn": "arn:aws:eks:ap-northeast-2:111122223333:fargateprofile/c/fargate-game-2048/x",
            "clusterName": "c",
            "podExecutionRoleArn": "arn:aws:iam::111122223333:role/eksctl-c-FargatePodExecutionRole-X",
            "subnets": ["subnet-a", "subnet-b", "subnet-c"],
            "selectors": [{"namespace": "fargate-game-2048"}, {"namespace": "x", "labels": {"a": "b"}}],
            "status": "ACTIVE",
            "tags": {},
        }
    }
    profile = Profile.from_api(answer)
    assert profile == Profile(
        "fargate-game-2048",
        [Selector("fargate-game-2048", {}), Selector("x", {"a": "b"})],
        "ACTIVE",
        ["subnet-a", "subnet-b", "subnet-c"],
    )
    assert Profile.from_api(answer["fargateProfile"]) == profile


def test_from_api_keeps_the_status() -> None:
    profile = Profile.from_api({"fargateProfileName": "p", "selectors": [{"namespace": "*"}], "status": "CREATING"})
    assert profile.status == "CREATING"
    assert matching_profile([profile], "any", {}) is None


def test_profiles_are_frozen() -> None:
    with pytest.raises(AttributeError):
        GAME.name = "other"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("metadata", "expected"),
    [
        ({"annotations": {"eks.amazonaws.com/compute-type": "ec2"}}, True),
        ({"annotations": {"eks.amazonaws.com/compute-type": "fargate"}}, False),
        ({"annotations": {}}, False),
        ({}, False),
    ],
    ids=["compute-type ec2 keeps CoreDNS off", "compute-type fargate", "no annotations", "no metadata"],
)
def test_kept_off_fargate(metadata: dict[str, dict[str, str]], expected: bool) -> None:
    assert kept_off_fargate(metadata) is expected
