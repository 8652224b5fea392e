"""Which Fargate profile, if any, takes a pod.

A selector matches a pod when its namespace pattern matches the pod's namespace and
every label of the selector (key and value patterns) matches some label of the pod.
A profile matches when any of its selectors does; only ``ACTIVE`` profiles count.

Several matching profiles: the first by sorted profile name wins. A pod can pin one
with the label ``eks.amazonaws.com/fargate-profile: <name>``; AWS says "the pod must
still match a selector in that profile", so a pinned pod gets that profile or nothing
(no fall-back to another profile when the pinned one does not match or does not
exist). The pin is compared by exact name, not as a pattern.

>>> game = Profile("fargate-game-2048", [Selector("fargate-game-2048")])
>>> study = Profile("study_wildcard", [Selector("study-*")])
>>> matching_profile([game, study], "study-aews", {"app": "netshoot"}).name
'study_wildcard'
>>> matching_profile([game, study], "default", {}) is None
True
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Iterable

__all__ = [
    "PROFILE_LABEL",
    "COMPUTE_TYPE_ANNOTATION",
    "Selector",
    "Profile",
    "wildcard_match",
    "selector_matches",
    "profile_matches",
    "matching_profile",
    "kept_off_fargate",
]

PROFILE_LABEL = "eks.amazonaws.com/fargate-profile"
COMPUTE_TYPE_ANNOTATION = "eks.amazonaws.com/compute-type"


@lru_cache(maxsize=512)
def _pattern(pattern: str) -> re.Pattern[str]:
    # Escape everything so that only * and ? carry meaning (no regex, no [ranges]).
    parts = [".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in pattern]
    return re.compile("".join(parts), re.DOTALL)


def wildcard_match(pattern: str, value: str) -> bool:
    """``*`` matches any run of characters (also none), ``?`` exactly one; case matters.

    >>> wildcard_match("study-*", "study-aews"), wildcard_match("study-*", "study")
    (True, False)
    >>> wildcard_match("team-?", "team-a"), wildcard_match("team-?", "team-ab")
    (True, False)
    >>> wildcard_match("a.b", "axb"), wildcard_match("[ab]", "a")
    (False, False)
    """
    return _pattern(pattern).fullmatch(value) is not None


@dataclass(frozen=True)
class Selector:
    """One profile selector: a namespace pattern and optional label patterns."""

    namespace: str
    labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Profile:
    """A Fargate profile as far as pod placement cares."""

    name: str
    selectors: list[Selector]
    status: str = "ACTIVE"
    subnets: list[str] = field(default_factory=list)

    @classmethod
    def from_api(cls, d: dict[str, Any]) -> Profile:
        """Build from ``describe_fargate_profile`` output (with or without its wrapper).

        >>> Profile.from_api({"fargateProfile": {"fargateProfileName": "kube-system",
        ...     "selectors": [{"namespace": "kube-system"}], "status": "ACTIVE",
        ...     "subnets": ["subnet-1"]}})
        Profile(name='kube-system', selectors=[Selector(namespace='kube-system', labels={})], status='ACTIVE', subnets=['subnet-1'])
        """
        body = d.get("fargateProfile", d)
        return cls(
            name=body["fargateProfileName"],
            selectors=[
                Selector(s["namespace"], dict(s.get("labels") or {}))
                for s in body.get("selectors") or []
            ],
            status=body.get("status", "ACTIVE"),
            subnets=list(body.get("subnets") or []),
        )


def selector_matches(selector: Selector, namespace: str, labels: dict[str, str]) -> bool:
    """True when the namespace and every selector label match the pod.

    >>> s = Selector("study-*", {"app": "net*"})
    >>> selector_matches(s, "study-aews", {"app": "netshoot", "x": "y"})
    True
    >>> selector_matches(s, "study-aews", {"role": "netshoot"})
    False
    """
    if not wildcard_match(selector.namespace, namespace):
        return False
    return all(
        any(wildcard_match(key, k) and wildcard_match(value, v) for k, v in labels.items())
        for key, value in selector.labels.items()
    )


def profile_matches(profile: Profile, namespace: str, labels: dict[str, str]) -> bool:
    """True when the profile is ACTIVE and one of its selectors matches."""
    return profile.status == "ACTIVE" and any(
        selector_matches(s, namespace, labels) for s in profile.selectors
    )


def matching_profile(
    profiles: Iterable[Profile], namespace: str, labels: dict[str, str] | None
) -> Profile | None:
    """The profile that takes the pod, or None (then the pod is not for Fargate).

    >>> a = Profile("a-profile", [Selector("*")])
    >>> b = Profile("b-profile", [Selector("default")])
    >>> matching_profile([b, a], "default", {}).name
    'a-profile'
    >>> matching_profile([b, a], "default", {PROFILE_LABEL: "b-profile"}).name
    'b-profile'
    >>> matching_profile([b, a], "other", {PROFILE_LABEL: "b-profile"}) is None
    True
    """
    labels = labels or {}
    candidates = [p for p in profiles if profile_matches(p, namespace, labels)]
    pinned = labels.get(PROFILE_LABEL)
    if pinned is not None:
        candidates = [p for p in candidates if p.name == pinned]
    return min(candidates, key=lambda p: p.name, default=None)


def kept_off_fargate(pod_metadata: dict[str, Any]) -> bool:
    """True when the pod asks for EC2 with ``eks.amazonaws.com/compute-type: ec2``.

    That is how CoreDNS stays off Fargate until the annotation is removed.

    >>> kept_off_fargate({"annotations": {COMPUTE_TYPE_ANNOTATION: "ec2"}})
    True
    >>> kept_off_fargate({"labels": {"k8s-app": "kube-dns"}})
    False
    """
    annotations = pod_metadata.get("annotations") or {}
    return annotations.get(COMPUTE_TYPE_ANNOTATION) == "ec2"
