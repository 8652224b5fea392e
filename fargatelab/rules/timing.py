"""Timing profiles: how long Fargate takes, so waits are tested against realistic latency without AWS.

``fast`` keeps the local suite quick; ``eks`` reproduces the documented latencies (profile creation in
minutes, a pod 45-60 s from creation to Running). Both scale by a factor, and the waits of the
scenarios derive their timeouts from the same profile.

>>> eks = profile("eks")
>>> eks.node_provision + eks.pod_start  # documented: 45-60 s from creation to Running
52.0
>>> profile("eks", 0.1).profile_create
24.0
>>> profile("fast").pod_start < profile("eks").pod_start
True
>>> profile("fast").microvm_wait, profile("eks").microvm_wait  # a real start of about 3 s makes up the rest
(0.0, 49.0)
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..errors import ExitCode, HarnessError

__all__ = ["Timing", "profile", "PROFILES"]


@dataclass(frozen=True)
class Timing:
    name: str
    #: CREATING -> ACTIVE of a Fargate profile
    profile_create: float
    #: DELETING -> gone
    profile_delete: float
    #: from the pod being bound to its Fargate node until it runs (node registration, image pull)
    pod_start: float
    #: how long a pod on a fresh Fargate node waits before it is bound (capacity provisioning)
    node_provision: float
    #: the ALBs' health-check intervals and timeouts, relative to what the target group says
    health_check_scale: float = 1.0
    #: on microVMs, how long a pod waits for capacity before it is bound: the documented latency less the
    #: microVM's own start (about 3 s), which is real and needs no emulated wait on top
    microvm_wait: float = 0.0

    def timeout(self, documented_seconds: float, slack: float = 30.0) -> float:
        """A wait's timeout: the documented duration under this profile, plus slack for a slow machine."""
        return documented_seconds + slack

    @property
    def pod_ready_timeout(self) -> float:
        return self.node_provision + self.pod_start + 60.0

    @property
    def profile_active_timeout(self) -> float:
        return self.profile_create + 60.0


PROFILES = {
    # Every transition still shows (CREATING, then ACTIVE); EKS allows one at a time per cluster, so the
    # labs' profiles queue for each other (four workers make theirs at the same moment when a run starts)
    # and each second here is tens of seconds of a run.
    "fast": Timing("fast", profile_create=0.25, profile_delete=0.25, pod_start=1.0, node_provision=0.5,
                   health_check_scale=1 / 15),
    # Documented: a profile became ACTIVE after about 4 minutes; pods take 45-60 s to run.
    "eks": Timing("eks", profile_create=240.0, profile_delete=300.0, pod_start=40.0, node_provision=12.0,
                  microvm_wait=49.0),
}


def profile(name: str = "fast", scale: float = 1.0) -> Timing:
    try:
        base = PROFILES[name]
    except KeyError:
        raise HarnessError(
            f"unknown timing profile {name!r}: choose one of {', '.join(PROFILES)}", ExitCode.USAGE
        ) from None
    if scale <= 0:
        raise HarnessError(f"timing scale must be positive, got {scale}", ExitCode.USAGE)
    return replace(
        base,
        profile_create=base.profile_create * scale,
        profile_delete=base.profile_delete * scale,
        pod_start=base.pod_start * scale,
        node_provision=base.node_provision * scale,
        health_check_scale=base.health_check_scale * scale,
        microvm_wait=base.microvm_wait * scale,
    )
