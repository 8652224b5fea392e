"""The Fargate profiles of the cluster as the EKS API reports them, refreshed in the background.

The webhook and the fargate-scheduler read :meth:`ProfileCache.snapshot`; a profile counts for new pods
only once it is ACTIVE. When a profile goes away (DELETING), its pods are stopped: EKS deletes them, and
their controllers' replacements stay Pending unless another profile matches.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Callable

from ..rules.matching import Profile
from .aws_generation import Generation

__all__ = ["ProfileCache"]

log = logging.getLogger(__name__)


class ProfileCache:
    #: The background refresh only has to notice profiles going away (the webhook reads them afresh for each
    #: new pod): once a second is well inside the minutes EKS takes to delete one, and a quarter of the
    #: AWS endpoint's load that four refreshes a second made.
    INTERVAL = 1.0

    def __init__(self, eks: Any, cluster: str, interval: float = INTERVAL) -> None:
        self._eks = eks
        # Every refresh would list and describe every profile (two dozen calls once the labs run): asked
        # first, the AWS side says whether any profile changed at all.
        self._generation = Generation(getattr(getattr(eks, "meta", None), "endpoint_url", None), "eks")
        self._cluster = cluster
        self._interval = interval
        self._profiles: list[Profile] = []
        self._lock = threading.Lock()
        self._listeners: list[Callable[[set[str]], None]] = []
        self._refresh_lock = threading.Lock()
        self.healthy = threading.Event()

    def snapshot(self) -> list[Profile]:
        with self._lock:
            return list(self._profiles)

    def current(self) -> list[Profile]:
        """The profiles as EKS reports them at this moment (the webhook's view).

        On EKS a profile that reports ACTIVE already selects new pods; reading on demand keeps that
        true here, where a cached copy would lag a poll interval behind.
        """
        try:
            self.refresh()
        except Exception as exc:  # AWS endpoint unreachable: fall back to the last known profiles
            log.warning("cannot refresh Fargate profiles: %s", exc)
        return self.snapshot()

    def subnets(self) -> dict[str, list[str]]:
        return {p.name: list(p.subnets) for p in self.snapshot()}

    def on_removed(self, listener: Callable[[set[str]], None]) -> None:
        """Call ``listener`` with the names of profiles that stopped being ACTIVE."""
        self._listeners.append(listener)

    def refresh(self) -> None:
        with self._refresh_lock:
            if self._generation.changed():
                self._refresh()
                self._generation.mark()

    def _refresh(self) -> None:
        names: list[str] = []
        token: dict[str, str] = {}
        while True:
            page = self._eks.list_fargate_profiles(clusterName=self._cluster, **token)
            names += page.get("fargateProfileNames", [])
            if not page.get("nextToken"):
                break
            token = {"nextToken": page["nextToken"]}
        profiles = []
        for name in names:
            try:
                d = self._eks.describe_fargate_profile(clusterName=self._cluster, fargateProfileName=name)
            except self._eks.exceptions.ResourceNotFoundException:
                continue
            profiles.append(Profile.from_api(d["fargateProfile"]))
        with self._lock:
            before = {p.name for p in self._profiles if p.status == "ACTIVE"}
            self._profiles = profiles
        after = {p.name for p in profiles if p.status == "ACTIVE"}
        if before - after:
            for listener in self._listeners:
                listener(before - after)

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                self.refresh()
                self.healthy.set()
            except Exception as exc:  # the AWS endpoint may restart; keep the last known profiles
                self.healthy.clear()
                log.warning("cannot list Fargate profiles: %s", exc)
            stop.wait(self._interval)
