"""KIT: configuring Kafka clients from the environment (public API of the config package only)."""

from __future__ import annotations

import inspect
import logging
import ssl
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from coffeebuddy.infra.kafka.config import (
    KafkaConnectionError,
    KafkaSettings,
    KafkaSettingsError,
    SettingProblem,
    check_connection,
)
from coffeebuddy.infra.kafka.testing import free_port

PASSWORD = "kit-secret-pw-3Jd"

SASL_ENV = {
    "KAFKA_BOOTSTRAP_SERVERS": "broker-1:9092,broker-2:9092",
    "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
    "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
    "KAFKA_SASL_USERNAME": "svc-reminders",
    "KAFKA_SASL_PASSWORD": PASSWORD,
}


def _keyword_args(cls: type) -> set[str]:
    params = inspect.signature(cls).parameters.values()
    return {p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY}


def test_kit_config_from_env_defaults() -> None:
    settings = KafkaSettings.from_env({"KAFKA_BOOTSTRAP_SERVERS": "a:9092, b:9093"})
    assert settings.bootstrap_servers == ["a:9092", "b:9093"]
    assert (settings.acks, settings.enable_idempotence) == ("all", True)
    assert settings.security_protocol == "PLAINTEXT"
    assert settings.client_id == "coffeebuddy"


def test_kit_config_every_problem_at_once() -> None:
    with pytest.raises(KafkaSettingsError) as info:
        KafkaSettings.from_env(
            {
                "KAFKA_BOOTSTRAP_SERVERS": "no-port",
                "KAFKA_ACKS": "two",
                "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
                "KAFKA_SASL_PASSWORD": PASSWORD,
                "KAFKA_SESSION_TIMEOUT_MS": "1000",
                "KAFKA_HEARTBEAT_INTERVAL_MS": "2000",
            }
        )
    error = info.value
    assert isinstance(error, ValueError)
    assert SettingProblem("KAFKA_ACKS", "must be one of 0, 1, all (got 'two')") in error.problems
    assert {p.variable for p in error.problems} == {
        "KAFKA_BOOTSTRAP_SERVERS",
        "KAFKA_ACKS",
        "KAFKA_SASL_MECHANISM",
        "KAFKA_SASL_USERNAME",
        "KAFKA_HEARTBEAT_INTERVAL_MS",
    }
    for problem in error.problems:
        assert f"{problem.variable}: {problem.message}" in str(error)
    assert PASSWORD not in str(error)
    assert PASSWORD not in repr(error)


def test_kit_config_ssl_file_problems_name_variable_and_path(tmp_path: Path) -> None:
    missing = tmp_path / "ca.pem"
    with pytest.raises(KafkaSettingsError) as info:
        KafkaSettings.from_env(
            {
                "KAFKA_BOOTSTRAP_SERVERS": "a:9093",
                "KAFKA_SECURITY_PROTOCOL": "SSL",
                "KAFKA_SSL_CAFILE": str(missing),
            }
        )
    (problem,) = info.value.problems
    assert problem.variable == "KAFKA_SSL_CAFILE"
    assert str(missing) in problem.message


def test_kit_config_no_secret_leaks(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    settings = KafkaSettings.from_env(SASL_ENV)
    logging.getLogger("kit").info("kafka settings: %s %r", settings, settings)
    for text in (
        str(settings),
        repr(settings),
        settings.describe(),
        settings.model_dump_json(),
        caplog.text,
    ):
        assert PASSWORD not in text
    assert "username=svc-reminders" in settings.describe()
    assert "protocol=SASL_SSL" in settings.describe()


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_kit_config_sasl_kwargs(mechanism: str) -> None:
    settings = KafkaSettings.from_env({**SASL_ENV, "KAFKA_SASL_MECHANISM": mechanism})
    for kwargs in (
        settings.producer_kwargs(),
        settings.consumer_kwargs("g"),
        settings.admin_kwargs(),
    ):
        assert kwargs["security_protocol"] == "SASL_SSL"
        assert kwargs["sasl_mechanism"] == mechanism
        assert kwargs["sasl_plain_username"] == "svc-reminders"
        assert kwargs["sasl_plain_password"] == PASSWORD
        assert isinstance(kwargs["ssl_context"], ssl.SSLContext)
        assert kwargs["bootstrap_servers"] == ["broker-1:9092", "broker-2:9092"]


async def test_kit_config_kwargs_fit_aiokafka() -> None:
    settings = KafkaSettings.from_env(SASL_ENV)
    assert set(settings.producer_kwargs()) <= _keyword_args(AIOKafkaProducer)
    assert set(settings.consumer_kwargs("g")) <= _keyword_args(AIOKafkaConsumer)
    assert set(settings.admin_kwargs()) <= _keyword_args(AIOKafkaAdminClient)
    assert settings.consumer_kwargs("g")["enable_auto_commit"] is False
    producer = AIOKafkaProducer(**settings.producer_kwargs())
    consumer = AIOKafkaConsumer(**settings.consumer_kwargs("g"))
    await producer.stop()
    await consumer.stop()


def test_kit_config_with_overrides() -> None:
    base = KafkaSettings.from_env({"KAFKA_BOOTSTRAP_SERVERS": "a:1"})
    fast = base.with_overrides(session_timeout_ms=6000, heartbeat_interval_ms=500)
    assert fast.consumer_kwargs("g")["session_timeout_ms"] == 6000
    with pytest.raises(KafkaSettingsError) as info:
        base.with_overrides(heartbeat_interval_ms=60_000)
    assert [p.variable for p in info.value.problems] == ["KAFKA_HEARTBEAT_INTERVAL_MS"]


async def test_kit_config_check_connection(kafka_settings: KafkaSettings) -> None:
    await check_connection(kafka_settings, timeout=10)
    nowhere = kafka_settings.with_overrides(bootstrap_servers=f"127.0.0.1:{free_port()}")
    with pytest.raises(KafkaConnectionError) as info:
        await check_connection(nowhere, timeout=5)
    assert "nothing listens at" in str(info.value)
    assert "KAFKA_BOOTSTRAP_SERVERS" in str(info.value)
