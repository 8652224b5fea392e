"""docs/iam: the replay policy grants what the eks backend does, the check policy only reads."""

from __future__ import annotations

import fnmatch
import json
from pathlib import Path

from fargatelab.backends.eks_preflight import (EKSCTL_ROLE_ACTIONS, EKSCTL_STACK_ACTIONS, READ_ACTIONS,
                                               REPLAY_WRITE_ACTIONS)

DOCS = Path(__file__).resolve().parents[2] / "docs" / "iam"


def _actions(name: str) -> list[str]:
    policy = json.loads((DOCS / name).read_text())
    assert policy["Version"] == "2012-10-17"
    out: list[str] = []
    for statement in policy["Statement"]:
        assert statement["Effect"] == "Allow"
        actions = statement["Action"]
        out += [actions] if isinstance(actions, str) else actions
    return out


def _granted(action: str, granted: list[str]) -> bool:
    return any(fnmatch.fnmatchcase(action.lower(), g.lower()) for g in granted)


def test_replay_policy_covers_every_action_of_a_replay() -> None:
    granted = _actions("replay-policy.json")
    missing = [a for a in (*READ_ACTIONS, *REPLAY_WRITE_ACTIONS, *EKSCTL_STACK_ACTIONS, *EKSCTL_ROLE_ACTIONS,
                           "iam:SimulatePrincipalPolicy", "tag:GetResources") if not _granted(a, granted)]
    assert missing == []
    assert not any("*" in a for a in granted), "no wildcard actions in the least-privilege policy"


def test_check_policy_reads_only() -> None:
    granted = _actions("check-policy.json")
    assert [a for a in READ_ACTIONS if not _granted(a, granted)] == []
    verbs = {a.split(":", 1)[1] for a in granted}
    assert all(v.startswith(("Describe", "List", "Get")) for v in verbs), verbs
    assert not [a for a in REPLAY_WRITE_ACTIONS if _granted(a, granted) and not a.split(":")[1].startswith(
        ("Get", "List"))]


def test_replay_writes_are_scoped_to_the_harness() -> None:
    policy = json.loads((DOCS / "replay-policy.json").read_text())
    for statement in policy["Statement"]:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        writes = [a for a in actions if not a.split(":")[1].startswith(("Describe", "List", "Get", "Simulate"))
                  and a != "sts:GetCallerIdentity"]
        if writes:
            resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
            assert "*" not in resources, statement["Sid"]
