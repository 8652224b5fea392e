"""Which Kubernetes user an AWS identity is on the cluster: what EKS does for the cluster creator, applied
to the cluster's whole account.

* ``arn:aws:sts::<account>:assumed-role/<role>/<session>`` -> username
  ``arn:aws:sts::<account>:assumed-role/<role>/<session>``, canonical ARN
  ``arn:aws:iam::<account>:role/<role>``;
* ``arn:aws:iam::<account>:user/<name>`` (and moto's ``arn:aws:sts::<account>:user/<name>``) -> username
  ``arn:aws:iam::<account>:user/<name>``;
* ``arn:aws:iam::<account>:root`` -> username ``arn:aws:iam::<account>:root``;
* every identity of the cluster's account gets the group ``system:masters``, except a user or role whose
  name ends in ``ReadOnly``: it gets ``fargate-labs:view`` (read-only RBAC, installed with the add-ons),
  the local stand-in for an EKS access entry with AmazonEKSViewPolicy, so check mode can be run as
  students run it; identities of other accounts are not authenticated.

The user's uid is ``aws-iam-authenticator:<account>:<user id>`` and its extra fields carry ``arn``,
``canonicalArn``, ``sessionName`` and ``accessKeyId``, as on EKS.
"""

from __future__ import annotations

import re
from typing import Any

from .token_verifier import Identity

__all__ = ["VIEW_GROUP", "map_identity"]

_ASSUMED_ROLE = re.compile(r"^arn:(aws[a-z-]*):sts::(\d{12}):assumed-role/(?:.*/)?([^/]+)/([^/]+)$")
_USER = re.compile(r"^arn:(aws[a-z-]*):(?:iam|sts)::(\d{12}):user/(?:.*/)?([^/]+)$")
_ROOT = re.compile(r"^arn:(aws[a-z-]*):iam::(\d{12}):root$")
#: the group of read-only identities; the add-ons bind it to a get/list/watch ClusterRole
VIEW_GROUP = "fargate-labs:view"


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
