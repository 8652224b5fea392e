"""Fargate's built-in log router: the ``aws-logging`` ConfigMap rules and the pod's ``Logging`` annotation.

The validating webhook denies a ConfigMap in ``aws-observability`` that breaks the
documented rules. Two denial texts are recorded from live clusters and reproduced
exactly (``... is not a supported output plugin. Please fix the logging configmap``
and ``Config map has too many chars.``); the others (unknown key, misplaced or
unsupported section, unsupported filter) follow the same pattern but are our wording.

The 5300-character limit is counted over the data values (the Fluent Bit text itself).
Plugin names are compared case-insensitively, as Fluent Bit does, and quoted as written.

>>> validate_logging_configmap({"output.conf": "[OUTPUT]\\n    Name loki\\n    Match *\\n"})
'loki is not a supported output plugin. Please fix the logging configmap'
>>> validate_logging_configmap({"output.conf": "[OUTPUT]\\n    Name cloudwatch_logs\\n    Match kube.*\\n"}) is None
True
"""

from __future__ import annotations

import re
from typing import NamedTuple

__all__ = [
    "LOGGING_WEBHOOK_NAME",
    "LOGGING_NAMESPACE",
    "LOGGING_CONFIGMAP",
    "MAX_CHARS",
    "ALLOWED_KEYS",
    "SUPPORTED_OUTPUTS",
    "SUPPORTED_FILTERS",
    "LoggingEvent",
    "validate_logging_configmap",
    "denial_message",
    "logging_annotation",
]

LOGGING_WEBHOOK_NAME = "0500-amazon-eks-fargate-configmaps-admission.amazonaws.com"
LOGGING_NAMESPACE = "aws-observability"
LOGGING_CONFIGMAP = "aws-logging"
MAX_CHARS = 5300
ALLOWED_KEYS = ("filters.conf", "output.conf", "parsers.conf", "flb_log_cw")
SUPPORTED_OUTPUTS = ("es", "firehose", "kinesis_firehose", "cloudwatch", "cloudwatch_logs", "kinesis")
SUPPORTED_FILTERS = ("grep", "parser", "record_modifier", "rewrite_tag", "throttle", "nest", "modify", "kubernetes")

_SECTION_OF_KEY = {"filters.conf": "FILTER", "output.conf": "OUTPUT", "parsers.conf": "PARSER"}
_HEADER = re.compile(r"^\[\s*([A-Za-z_]+)\s*\]$")
_FIX = "Please fix the logging configmap"


class LoggingEvent(NamedTuple):
    """A pod event from the fargate-scheduler about logging."""

    type: str
    reason: str
    message: str


def _sections(text: str) -> list[tuple[str, str | None]]:
    """Each section header in order with its ``Name`` value (None when missing)."""
    found: list[tuple[str, str | None]] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        header = _HEADER.match(line)
        if header:
            found.append((header.group(1).upper(), None))
            continue
        key, _, value = line.partition(" ")
        if found and key.lower() == "name" and found[-1][1] is None:
            found[-1] = (found[-1][0], value.strip())
    return found


def validate_logging_configmap(data: dict[str, str]) -> str | None:
    """The webhook's denial reason for this ConfigMap ``data``, or None when it is accepted.

    >>> validate_logging_configmap({"output.conf": "x" * 5301})
    'Config map has too many chars.'
    >>> validate_logging_configmap({"fluent-bit.conf": "[SERVICE]"})
    'fluent-bit.conf is not a supported key. Please fix the logging configmap'
    >>> validate_logging_configmap({"output.conf": "[INPUT]\\n    Name tail\\n"})
    '[INPUT] is not a supported section in output.conf. Please fix the logging configmap'
    """
    if sum(len(value or "") for value in data.values()) > MAX_CHARS:
        return "Config map has too many chars."
    for key in data:
        if key not in ALLOWED_KEYS:
            return f"{key} is not a supported key. {_FIX}"
    for key, section in _SECTION_OF_KEY.items():
        for found, name in _sections(data.get(key) or ""):
            if found != section:
                return f"[{found}] is not a supported section in {key}. {_FIX}"
            if section == "OUTPUT" and name is not None and name.lower() not in SUPPORTED_OUTPUTS:
                return f"{name} is not a supported output plugin. {_FIX}"
            if section == "FILTER" and name is not None and name.lower() not in SUPPORTED_FILTERS:
                return f"{name} is not a supported filter plugin. {_FIX}"
    return None


def denial_message(reason: str) -> str:
    """The text ``kubectl apply`` prints when the webhook denies the ConfigMap.

    >>> denial_message("Config map has too many chars.")
    'admission webhook "0500-amazon-eks-fargate-configmaps-admission.amazonaws.com" denied the request: Config map has too many chars.'
    """
    return f'admission webhook "{LOGGING_WEBHOOK_NAME}" denied the request: {reason}'


def logging_annotation(
    configmap_present: bool, valid: bool = True, reason: str | None = None
) -> tuple[str, LoggingEvent]:
    """The pod's ``Logging`` annotation value and the event the fargate-scheduler records.

    An invalid ConfigMap (one that got in before the webhook, say) gives the recorded
    event text "Disabled logging for pod due to invalid configmap. <reason>"; its
    annotation value ``LoggingDisabled: LOGGING_CONFIGMAP_INVALID`` is our guess.

    >>> logging_annotation(True, True)
    ('LoggingEnabled', LoggingEvent(type='Normal', reason='LoggingEnabled', message='Successfully enabled logging for pod'))
    >>> value, event = logging_annotation(False, False)
    >>> value
    'LoggingDisabled: LOGGING_CONFIGMAP_NOT_FOUND'
    >>> print(event.type, event.reason, event.message)
    Warning LoggingDisabled Disabled logging because aws-logging configmap was not found. configmap "aws-logging" not found
    """
    if not configmap_present:
        return "LoggingDisabled: LOGGING_CONFIGMAP_NOT_FOUND", LoggingEvent(
            "Warning",
            "LoggingDisabled",
            f'Disabled logging because {LOGGING_CONFIGMAP} configmap was not found. '
            f'configmap "{LOGGING_CONFIGMAP}" not found',
        )
    if not valid:
        message = "Disabled logging for pod due to invalid configmap."
        return "LoggingDisabled: LOGGING_CONFIGMAP_INVALID", LoggingEvent(
            "Warning", "LoggingDisabled", f"{message} {reason}" if reason else message
        )
    return "LoggingEnabled", LoggingEvent("Normal", "LoggingEnabled", "Successfully enabled logging for pod")
