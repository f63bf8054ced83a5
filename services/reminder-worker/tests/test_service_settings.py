"""ServiceSettings, JSON logging and the CLI's configuration errors."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys

import pytest

from coffeebuddy.services.reminder_worker import (
    ServiceSettings,
    ServiceSettingsError,
    configure_logging,
)
from coffeebuddy.services.reminder_worker._logging import JsonFormatter


def test_defaults_with_a_token() -> None:
    s = ServiceSettings.from_env({"SLACK_BOT_TOKEN": "xoxb-123-secret"})
    assert s.slack_api_base_url == "https://slack.com/api/"
    assert (s.http_port, s.drain_timeout_s) == (8080, 20.0)
    assert s.drain_timeout_s < 30  # below Kubernetes' default terminationGracePeriodSeconds
    assert "xoxb-123-secret" not in repr(s)
    assert "xoxb-123-secret" not in str(s)


def test_every_problem_is_reported_at_once_and_names_the_variable() -> None:
    with pytest.raises(ServiceSettingsError) as info:
        ServiceSettings.from_env(
            {
                "WORKER_HTTP_PORT": "eighty",
                "WORKER_DRAIN_TIMEOUT_S": "0",
                "SLACK_API_BASE_URL": "slack.com/api",
                "LOG_LEVEL": "chatty",
                "REMINDER_CLAIM_AHEAD_S": "5",
            }
        )
    variables = {var for var, _ in info.value.problems}
    assert variables == {
        "SLACK_BOT_TOKEN",
        "WORKER_HTTP_PORT",
        "WORKER_DRAIN_TIMEOUT_S",
        "SLACK_API_BASE_URL",
        "LOG_LEVEL",
        "REMINDER_CLAIM_AHEAD_S",
    }
    assert "eighty" in str(info.value)
    assert "REMINDER_CLAIM_AHEAD_S: must be below REMINDER_CLAIM_START_WINDOW_S" in str(info.value)


def test_claim_ahead_defaults_to_a_quarter_second_and_can_be_turned_off() -> None:
    assert ServiceSettings.from_env({"SLACK_BOT_TOKEN": "xoxb-1"}).reminder.claim_ahead_s == 0.25
    env = {"SLACK_BOT_TOKEN": "xoxb-1", "REMINDER_CLAIM_AHEAD_S": "0"}
    assert ServiceSettings.from_env(env).reminder.claim_ahead_s == 0.0


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("", (50_000, 20, 100)), ("python", None), (" 100000, 10 ,50 ", (100_000, 10, 50))],
)
def test_gc_thresholds_ours_by_default_pythons_on_request_or_given(
    raw: str, expected: tuple[int, int, int] | None
) -> None:
    env = {"SLACK_BOT_TOKEN": "xoxb-1", "REMINDER_GC_THRESHOLDS": raw}
    assert ServiceSettings.from_env(env).reminder.gc_thresholds == expected


@pytest.mark.parametrize("raw", ["50000,20", "0,10,10", "a,b,c", "1,2,3,4"])
def test_bad_gc_thresholds_are_named_with_the_value(raw: str) -> None:
    with pytest.raises(ServiceSettingsError) as info:
        ServiceSettings.from_env({"SLACK_BOT_TOKEN": "xoxb-1", "REMINDER_GC_THRESHOLDS": raw})
    assert [var for var, _ in info.value.problems] == ["REMINDER_GC_THRESHOLDS"]
    assert repr(raw) in str(info.value)


def test_token_value_never_in_errors() -> None:
    with pytest.raises(ServiceSettingsError) as info:
        ServiceSettings.from_env({"SLACK_BOT_TOKEN": "xoxb-has space", "WORKER_HTTP_PORT": "-1"})
    assert "xoxb-has space" not in str(info.value)


def test_removed_variables_are_named_not_silently_ignored(caplog: pytest.LogCaptureFixture) -> None:
    """The in-process fake Slack left the service (it is a test double of its own): a token is
    required, and a variable of a removed or renamed setting is named in the log."""
    env = {"COFFEEBUDDY_DEV_FAKE_SLACK": "1", "SLACK_AUTH_PROBE_MAX_S": "5"}
    with caplog.at_level(logging.WARNING), pytest.raises(ServiceSettingsError) as info:
        ServiceSettings.from_env(env)
    assert [var for var, _ in info.value.problems] == ["SLACK_BOT_TOKEN"]
    assert "COFFEEBUDDY_DEV_FAKE_SLACK is no setting any more" in caplog.text
    assert (
        "SLACK_AUTH_PROBE_MAX_S is no setting any more: renamed to REMINDER_AUTH_PROBE_MAX_S"
        in (caplog.text)
    )


def test_json_formatter_one_object_per_line_with_ids_and_redaction() -> None:
    stream = io.StringIO()
    configure_logging("INFO", secrets=["xoxb-very-secret"], stream=stream)
    try:
        log = logging.getLogger("coffeebuddy.test")
        log.info("sent with xoxb-very-secret", extra={"run_id": "run-1", "reminder_id": "rem-1"})
        log.warning("plain")
    finally:
        logging.getLogger().handlers.clear()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert first["run_id"] == "run-1"
    assert first["reminder_id"] == "rem-1"
    assert first["level"] == "INFO"
    assert first["logger"] == "coffeebuddy.test"
    assert "xoxb-very-secret" not in lines[0]
    assert "event_id" not in second
    assert JsonFormatter().format(logging.makeLogRecord({"msg": "x"})).startswith("{")


def test_cli_exits_2_naming_every_missing_variable() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "SLACK_"))}
    result = subprocess.run(
        [sys.executable, "-m", "coffeebuddy.services.reminder_worker"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    record = json.loads(result.stderr.strip().splitlines()[-1])
    assert record["level"] == "ERROR"
    assert "SLACK_BOT_TOKEN" in record["message"]
    assert "KAFKA_BOOTSTRAP_SERVERS" in record["message"]


def test_json_logs_keep_the_structured_fields_passed_in_extra() -> None:
    stream = io.StringIO()
    configure_logging("INFO", secrets=["xoxb-very-secret"], stream=stream)
    try:
        logging.getLogger("coffeebuddy.test").info(
            "reminder sent",
            extra={
                "worker_id": "reminder-worker-abc",
                "outcome": "sent",
                "error_class": "TimeoutError",
                "lateness_s": 0.123,
                "partitions": [0, 3],
                "token_echo": "xoxb-very-secret",
            },
        )
    finally:
        logging.getLogger().handlers.clear()
    [line] = stream.getvalue().splitlines()
    record = json.loads(line)
    assert record["worker_id"] == "reminder-worker-abc"
    assert record["outcome"] == "sent"
    assert record["error_class"] == "TimeoutError"
    assert record["lateness_s"] == 0.123
    assert record["partitions"] == [0, 3]
    assert record["token_echo"] == "<redacted>"
    assert "args" not in record
    assert "msg" not in record


@pytest.mark.parametrize(
    ("typo", "meant"),
    [
        ("REMINDER_MAX_PENDNG", "REMINDER_MAX_PENDING"),
        ("WORKER_HTTP_POR", "WORKER_HTTP_PORT"),
        ("SLACK_TIMEOUT_SEC", "SLACK_TIMEOUT_S"),
        ("KAFKA_LINGER_M", "KAFKA_LINGER_MS"),
    ],
)
def test_a_typo_in_any_prefix_gets_did_you_mean_from_the_cli(typo: str, meant: str) -> None:
    """REMINDER_*, WORKER_* and SLACK_* typos are reported the way a KAFKA_* typo is."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "SLACK_"))}
    env.update(
        {
            "SLACK_BOT_TOKEN": "xoxb-typo-check",
            "KAFKA_BOOTSTRAP_SERVERS": "localhost:9092",
            typo: "5",
        }
    )
    result = subprocess.run(
        [sys.executable, "-m", "coffeebuddy.services.reminder_worker", "--check-config"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert f"{typo} is not a" in result.stderr
    assert f"did you mean {meant}?" in result.stderr
    assert "xoxb-typo-check" not in result.stderr + result.stdout
