"""fargate-labs: the EKS-on-Fargate workshop labs replayed as pytest scenarios.

What a lab author uses, in one place::

    from fargatelab import Lab, expect, conditions as cond

The rest of the package is organised by concern (see docs/architecture.md): ``scenario`` (this API),
``plugin`` (the pytest layer), ``report``, ``backends``, ``local`` (the local environment), ``emulator``
(what EKS adds), ``eks`` (facts of EKS), ``rules`` (pure rules), ``cleanup`` and ``cli``. The names below
are loaded on first use, so the environment's own processes (the emulator, the AWS side) that import a
submodule do not pay for the pytest layer.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

#: public name -> (module, attribute)
_API = {
    "Lab": ("scenario.lab", "Lab"),
    "expect": ("scenario.lab", "expect"),
    "ModuleLab": ("plugin.fixtures", "ModuleLab"),
    "SharedSetups": ("plugin.shared", "SharedSetups"),
    "conditions": ("scenario.conditions", None),
    "Conditions": ("scenario.conditions", "Conditions"),
    "Condition": ("scenario.wait", "Condition"),
    "condition": ("scenario.wait", "condition"),
    "wait_for": ("scenario.wait", "for_"),
    "until": ("scenario.wait", "until"),
    "Kube": ("scenario.kube", "Kube"),
    "find_browser": ("scenario.browser", "find_browser"),
    "open_page": ("scenario.browser", "open_page"),
    "CommandResult": ("scenario.kube", "CommandResult"),
    "ClusterHandle": ("scenario.handle", "ClusterHandle"),
    "Capability": ("scenario.handle", "Capability"),
    "Failure": ("scenario.failures", "Failure"),
    "FactMismatch": ("scenario.failures", "FactMismatch"),
    "Missing": ("scenario.failures", "Missing"),
    "KubectlFailed": ("scenario.failures", "KubectlFailed"),
    "CommandFailed": ("scenario.failures", "CommandFailed"),
    "Ran": ("scenario.commands", "Ran"),
    "Tools": ("scenario.commands", "Tools"),
    "HarnessError": ("errors", "HarnessError"),
    "ExitCode": ("errors", "ExitCode"),
    "WaitTimeout": ("scenario.wait", "WaitTimeout"),
    "ComponentDied": ("scenario.wait", "ComponentDied"),
    "Cleaner": ("scenario.cleaner", "Cleaner"),
    "CleanupFailed": ("scenario.cleaner", "CleanupFailed"),
}

__all__ = [
    "Lab",
    "expect",
    "ModuleLab",
    "SharedSetups",
    "conditions",
    "Conditions",
    "Condition",
    "condition",
    "wait_for",
    "until",
    "Kube",
    "CommandResult",
    "ClusterHandle",
    "Capability",
    "Failure",
    "FactMismatch",
    "Missing",
    "KubectlFailed",
    "CommandFailed",
    "Ran",
    "Tools",
    "HarnessError",
    "ExitCode",
    "WaitTimeout",
    "ComponentDied",
    "Cleaner",
    "CleanupFailed",
]


def __getattr__(name: str) -> Any:
    if name not in _API:
        raise AttributeError(f"module 'fargatelab' has no attribute {name!r}")
    module, attribute = _API[name]
    loaded = importlib.import_module(f".{module}", __name__)
    value = loaded if attribute is None else getattr(loaded, attribute)
    globals()[name] = value
    return value


if TYPE_CHECKING:  # what type checkers and editors see
    from .errors import ExitCode, HarnessError
    from .plugin.fixtures import ModuleLab
    from .plugin.shared import SharedSetups
    from .scenario import conditions
    from .scenario.cleaner import Cleaner, CleanupFailed
    from .scenario.conditions import Conditions
    from .scenario.failures import FactMismatch, Failure, KubectlFailed, Missing
    from .scenario.handle import Capability, ClusterHandle
    from .scenario.kube import CommandResult, Kube
    from .scenario.lab import Lab, expect
    from .scenario.wait import ComponentDied, Condition, WaitTimeout, condition, until
    from .scenario.wait import for_ as wait_for
