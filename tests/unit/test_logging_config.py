"""The aws-logging ConfigMap rules and the pod's Logging annotation."""

from __future__ import annotations

import pytest

from fargatelab.rules.logging_config import (LOGGING_WEBHOOK_NAME,
    LoggingEvent,
    denial_message,
    logging_annotation,
    validate_logging_configmap)

# The CloudWatch example from the AWS "Fargate logging" page.
CLOUDWATCH = {
    "flb_log_cw": "false",
    "filters.conf": (
        "[FILTER]\n    Name parser\n    Match *\n    Key_name log\n    Parser crio\n"
        "[FILTER]\n    Name kubernetes\n    Match kube.*\n    Merge_Log On\n    Keep_Log Off\n"
        "    Buffer_Size 0\n    Kube_Meta_Cache_TTL 300s\n"
    ),
    "output.conf": (
        "[OUTPUT]\n    Name cloudwatch_logs\n    Match   kube.*\n    region ap-northeast-2\n"
        "    log_group_name my-logs\n    log_stream_prefix from-fluent-bit-\n    log_retention_days 60\n"
        "    auto_create_group true\n"
    ),
    "parsers.conf": (
        "[PARSER]\n    Name crio\n    Format Regex\n"
        "    Regex ^(?<time>[^ ]+) (?<stream>stdout|stderr) (?<logtag>P|F) (?<log>.*)$\n"
        "    Time_Key    time\n    Time_Format %Y-%m-%dT%H:%M:%S.%L%z\n"
    ),
}


def output(name: str) -> dict[str, str]:
    return {"output.conf": f"[OUTPUT]\n    Name {name}\n    Match *\n"}


def test_aws_cloudwatch_example_is_accepted() -> None:
    assert validate_logging_configmap(CLOUDWATCH) is None


@pytest.mark.parametrize("plugin", ["es", "firehose", "kinesis_firehose", "cloudwatch", "cloudwatch_logs", "kinesis",
                                    "CloudWatch_Logs"])
def test_supported_output_plugin_is_accepted(plugin: str) -> None:
    assert validate_logging_configmap(output(plugin)) is None


@pytest.mark.parametrize("plugin", ["loki", "amazon_data_firehose", "stdout", "s3", "http"])
def test_unsupported_output_plugin_is_denied(plugin: str) -> None:
    assert validate_logging_configmap(output(plugin)) == (
        f"{plugin} is not a supported output plugin. Please fix the logging configmap"
    )


def test_loki_denial_is_the_documented_text() -> None:
    assert validate_logging_configmap(output("loki")) == (
        "loki is not a supported output plugin. Please fix the logging configmap"
    )


def test_second_output_is_checked_too() -> None:
    data = {"output.conf": "[OUTPUT]\n    Name cloudwatch\n    Match *\n[OUTPUT]\n    Name loki\n    Match *\n"}
    assert validate_logging_configmap(data) == "loki is not a supported output plugin. Please fix the logging configmap"


@pytest.mark.parametrize(
    ("size", "denied"),
    [(5300, False), (5301, True)],
    ids=["5300 chars accepted", "5301 chars denied"],
)
def test_size_limit(size: int, denied: bool) -> None:
    text = "[OUTPUT]\n    Name es\n    Match *\n"
    data = {"output.conf": text + "#" * (size - len(text))}
    expected = "Config map has too many chars." if denied else None
    assert validate_logging_configmap(data) == expected


def test_size_counts_every_value() -> None:
    data = {**output("es"), "filters.conf": "#" * 5300}
    assert validate_logging_configmap(data) == "Config map has too many chars."


@pytest.mark.parametrize("key", ["fluent-bit.conf", "input.conf", "outputs.conf"])
def test_unknown_key_is_denied(key: str) -> None:
    assert validate_logging_configmap({key: "x"}) == f"{key} is not a supported key. Please fix the logging configmap"


SECTIONS = [
    ("INPUT not allowed", {"output.conf": "[INPUT]\n    Name tail\n"}, "[INPUT] is not a supported section in output.conf"),
    ("SERVICE not allowed", {"filters.conf": "[SERVICE]\n    Flush 1\n"}, "[SERVICE] is not a supported section in filters.conf"),
    ("OUTPUT under filters.conf", {"filters.conf": "[OUTPUT]\n    Name es\n    Match *\n"},
     "[OUTPUT] is not a supported section in filters.conf"),
    ("FILTER under parsers.conf", {"parsers.conf": "[FILTER]\n    Name grep\n    Match *\n"},
     "[FILTER] is not a supported section in parsers.conf"),
]


@pytest.mark.parametrize(("data", "start"), [s[1:] for s in SECTIONS], ids=[s[0] for s in SECTIONS])
def test_misplaced_or_unsupported_section_is_denied(data: dict[str, str], start: str) -> None:
    assert validate_logging_configmap(data) == f"{start}. Please fix the logging configmap"


@pytest.mark.parametrize("plugin", ["grep", "parser", "record_modifier", "rewrite_tag", "throttle", "nest", "modify",
                                    "kubernetes"])
def test_supported_filter_is_accepted(plugin: str) -> None:
    assert validate_logging_configmap({"filters.conf": f"[FILTER]\n    Name {plugin}\n    Match *\n"}) is None


def test_unsupported_filter_is_denied() -> None:
    data = {"filters.conf": "[FILTER]\n    Name lua\n    Match *\n"}
    assert validate_logging_configmap(data) == "lua is not a supported filter plugin. Please fix the logging configmap"


def test_empty_configmap_is_accepted() -> None:
    assert validate_logging_configmap({}) is None


def test_denial_message_names_the_webhook() -> None:
    assert LOGGING_WEBHOOK_NAME == "0500-amazon-eks-fargate-configmaps-admission.amazonaws.com"
    assert denial_message("Config map has too many chars.") == (
        'admission webhook "0500-amazon-eks-fargate-configmaps-admission.amazonaws.com" '
        "denied the request: Config map has too many chars."
    )


ANNOTATIONS = [
    ("configmap present and valid -> LoggingEnabled", True, True, None,
     ("LoggingEnabled", LoggingEvent("Normal", "LoggingEnabled", "Successfully enabled logging for pod"))),
    ("no configmap -> LOGGING_CONFIGMAP_NOT_FOUND", False, False, None,
     ("LoggingDisabled: LOGGING_CONFIGMAP_NOT_FOUND",
      LoggingEvent("Warning", "LoggingDisabled",
                   'Disabled logging because aws-logging configmap was not found. configmap "aws-logging" not found'))),
    ("no configmap, valid flag ignored", False, True, None,
     ("LoggingDisabled: LOGGING_CONFIGMAP_NOT_FOUND",
      LoggingEvent("Warning", "LoggingDisabled",
                   'Disabled logging because aws-logging configmap was not found. configmap "aws-logging" not found'))),
    ("invalid configmap with reason", True, False,
     "amazon_data_firehose is not a supported output plugin. Please fix the logging configmap",
     ("LoggingDisabled: LOGGING_CONFIGMAP_INVALID",
      LoggingEvent("Warning", "LoggingDisabled",
                   "Disabled logging for pod due to invalid configmap. amazon_data_firehose is not a supported "
                   "output plugin. Please fix the logging configmap"))),
]


@pytest.mark.parametrize(("present", "valid", "reason", "expected"), [a[1:] for a in ANNOTATIONS],
                         ids=[a[0] for a in ANNOTATIONS])
def test_logging_annotation(present: bool, valid: bool, reason: str | None,
                            expected: tuple[str, LoggingEvent]) -> None:
    assert logging_annotation(present, valid, reason) == expected


def test_logging_event_unpacks_as_type_reason_message() -> None:
    _, (event_type, reason, message) = logging_annotation(True, True)
    assert (event_type, reason, message) == ("Normal", "LoggingEnabled", "Successfully enabled logging for pod")
