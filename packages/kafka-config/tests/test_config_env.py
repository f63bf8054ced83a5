from __future__ import annotations

import pytest

from coffeebuddy.infra.kafka.config import KafkaSettings, KafkaSettingsError, SettingProblem


def test_config_env_defaults_are_production_safe() -> None:
    settings = KafkaSettings.from_env({"KAFKA_BOOTSTRAP_SERVERS": "a:9092, b:9093"})
    assert settings.bootstrap_servers == ["a:9092", "b:9093"]
    assert settings.acks == "all"
    assert settings.enable_idempotence is True
    assert settings.client_id == "coffeebuddy"
    assert settings.security_protocol == "PLAINTEXT"


def test_config_env_reports_every_problem_at_once() -> None:
    with pytest.raises(KafkaSettingsError) as info:
        KafkaSettings.from_env(
            {
                "KAFKA_BOOTSTRAP_SERVERS": "a:9092",
                "KAFKA_ACKS": "two",
                "KAFKA_LINGER_MS": "soon",
                "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            }
        )
    variables = {p.variable for p in info.value.problems}
    assert variables == {
        "KAFKA_ACKS",
        "KAFKA_LINGER_MS",
        "KAFKA_SASL_MECHANISM",
        "KAFKA_SASL_USERNAME",
        "KAFKA_SASL_PASSWORD",
    }
    assert SettingProblem("KAFKA_ACKS", "must be one of 0, 1, all (got 'two')") in (
        info.value.problems
    )
    assert isinstance(info.value, ValueError)
