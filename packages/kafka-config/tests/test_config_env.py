"""KafkaSettings.from_env: parsing, defaults and the every-problem-at-once error."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from coffeebuddy.infra.kafka.config import KafkaSettings, KafkaSettingsError, SettingProblem
from coffeebuddy.infra.kafka.config._env import env_var

BOOT = {"KAFKA_BOOTSTRAP_SERVERS": "broker1:9092"}


def _problems(environ: dict[str, str]) -> dict[str, str]:
    with pytest.raises(KafkaSettingsError) as info:
        KafkaSettings.from_env(environ)
    by_variable: dict[str, str] = {}
    for problem in info.value.problems:
        assert problem.variable not in by_variable, f"{problem.variable} reported twice"
        by_variable[problem.variable] = problem.message
    return by_variable


def test_config_env_defaults_are_production_safe() -> None:
    settings = KafkaSettings.from_env({"KAFKA_BOOTSTRAP_SERVERS": "a:9092, b:9093"})
    assert settings.bootstrap_servers == ["a:9092", "b:9093"]
    assert settings.acks == "all"
    assert settings.enable_idempotence is True
    assert settings.client_id == "coffeebuddy"
    assert settings.security_protocol == "PLAINTEXT"
    assert settings.auto_offset_reset == "earliest"
    assert settings.ssl_check_hostname is True
    assert settings.compression_type == "none"
    assert settings.heartbeat_interval_ms < settings.session_timeout_ms


def test_config_env_reads_every_variable() -> None:
    environ = {
        "KAFKA_BOOTSTRAP_SERVERS": "a:9092,[::1]:9093,10.0.0.1:9094",
        "KAFKA_CLIENT_ID": "reminder-worker",
        "KAFKA_CLIENT_RACK": "eu-west-1a",
        "KAFKA_ACKS": "1",
        "KAFKA_ENABLE_IDEMPOTENCE": "false",
        "KAFKA_LINGER_MS": "20",
        "KAFKA_COMPRESSION_TYPE": "GZIP",
        "KAFKA_MAX_BATCH_SIZE": "32768",
        "KAFKA_MAX_REQUEST_SIZE": "2097152",
        "KAFKA_SESSION_TIMEOUT_MS": "6000",
        "KAFKA_HEARTBEAT_INTERVAL_MS": "500",
        "KAFKA_MAX_POLL_INTERVAL_MS": "60000",
        "KAFKA_AUTO_OFFSET_RESET": "latest",
        "KAFKA_FETCH_MAX_BYTES": "1000000",
        "KAFKA_MAX_PARTITION_FETCH_BYTES": "500000",
        "KAFKA_FETCH_MAX_WAIT_MS": "100",
        "KAFKA_MAX_POLL_RECORDS": "50",
        "KAFKA_ISOLATION_LEVEL": "read_committed",
        "KAFKA_REQUEST_TIMEOUT_MS": "15000",
        "KAFKA_METADATA_MAX_AGE_MS": "60000",
        "KAFKA_RETRY_BACKOFF_MS": "250",
        "KAFKA_CONNECTIONS_MAX_IDLE_MS": "120000",
    }
    s = KafkaSettings.from_env(environ)
    assert s.bootstrap_servers == ["a:9092", "[::1]:9093", "10.0.0.1:9094"]
    assert (s.client_id, s.client_rack) == ("reminder-worker", "eu-west-1a")
    assert (s.acks, s.enable_idempotence, s.linger_ms) == (1, False, 20)
    assert (s.compression_type, s.max_batch_size, s.max_request_size) == ("gzip", 32768, 2097152)
    assert (s.session_timeout_ms, s.heartbeat_interval_ms, s.max_poll_interval_ms) == (
        6000,
        500,
        60000,
    )
    assert (s.auto_offset_reset, s.isolation_level, s.max_poll_records) == (
        "latest",
        "read_committed",
        50,
    )
    assert (s.fetch_max_bytes, s.max_partition_fetch_bytes, s.fetch_max_wait_ms) == (
        1000000,
        500000,
        100,
    )
    assert (
        s.request_timeout_ms,
        s.metadata_max_age_ms,
        s.retry_backoff_ms,
        s.connections_max_idle_ms,
    ) == (15000, 60000, 250, 120000)


def test_config_env_every_field_has_a_documented_variable() -> None:
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    for name in KafkaSettings.model_fields:
        assert f"`{env_var(name)}`" in readme, f"{env_var(name)} missing from README table"


@pytest.mark.parametrize(
    ("raw", "expected"), [("0", 0), ("1", 1), ("all", "all"), ("ALL", "all"), ("-1", "all")]
)
def test_config_env_acks_forms(raw: str, expected: Any) -> None:
    settings = KafkaSettings.from_env({**BOOT, "KAFKA_ACKS": raw, "KAFKA_ENABLE_IDEMPOTENCE": "0"})
    assert settings.acks == expected


def test_config_env_reads_os_environ_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "from-os-environ:9092")
    monkeypatch.setenv("KAFKA_LINGER_MS", "7")
    settings = KafkaSettings.from_env()
    assert settings.bootstrap_servers == ["from-os-environ:9092"]
    assert settings.linger_ms == 7


def test_config_env_mapping_ignores_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_LINGER_MS", "not-a-number")
    assert KafkaSettings.from_env(BOOT).linger_ms == 5


def test_config_env_empty_values_mean_unset() -> None:
    settings = KafkaSettings.from_env({**BOOT, "KAFKA_SASL_USERNAME": "", "KAFKA_CLIENT_ID": ""})
    assert settings.sasl_username is None
    assert settings.client_id == "coffeebuddy"


def test_config_env_lowercase_names_are_accepted() -> None:
    settings = KafkaSettings.from_env({"kafka_bootstrap_servers": "a:1", "kafka_linger_ms": "3"})
    assert (settings.bootstrap_servers, settings.linger_ms) == (["a:1"], 3)


def test_config_env_missing_bootstrap() -> None:
    assert _problems({}) == {
        "KAFKA_BOOTSTRAP_SERVERS": "is required (e.g. broker1:9092,broker2:9092)"
    }
    assert "KAFKA_BOOTSTRAP_SERVERS" in _problems({"KAFKA_BOOTSTRAP_SERVERS": " , "})


def test_config_env_reports_every_problem_at_once() -> None:
    problems = _problems(
        {
            "KAFKA_BOOTSTRAP_SERVERS": "broker1,b:99999,PLAINTEXT://c:9092,ok:9092",
            "KAFKA_ACKS": "two",
            "KAFKA_LINGER_MS": "soon",
            "KAFKA_ENABLE_IDEMPOTENCE": "maybe",
            "KAFKA_SECURITY_PROTOCOL": "TLS",
            "KAFKA_SASL_MECHANISM": "GSSAPI",
            "KAFKA_COMPRESSION_TYPE": "brotli",
            "KAFKA_AUTO_OFFSET_RESET": "beginning",
            "KAFKA_ISOLATION_LEVEL": "serializable",
            "KAFKA_MAX_POLL_RECORDS": "0",
            "KAFKA_RETRY_BACKOFF_MS": "-5",
            "KAFKA_CLIENT_ID": "has spaces",
            "KAFKA_SSL_CHECK_HOSTNAME": "perhaps",
        }
    )
    assert problems["KAFKA_ACKS"] == "must be one of 0, 1, all (got 'two')"
    assert problems["KAFKA_LINGER_MS"] == "must be a whole number (got 'soon')"
    assert problems["KAFKA_ENABLE_IDEMPOTENCE"] == "must be true or false (got 'maybe')"
    assert problems["KAFKA_SSL_CHECK_HOSTNAME"] == "must be true or false (got 'perhaps')"
    assert problems["KAFKA_SECURITY_PROTOCOL"] == (
        "must be one of PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL (got 'TLS')"
    )
    assert problems["KAFKA_SASL_MECHANISM"] == (
        "must be one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 (got 'GSSAPI')"
    )
    assert problems["KAFKA_COMPRESSION_TYPE"] == (
        "must be one of none, gzip, snappy, lz4, zstd (got 'brotli')"
    )
    assert problems["KAFKA_AUTO_OFFSET_RESET"] == (
        "must be one of earliest, latest, none (got 'beginning')"
    )
    assert problems["KAFKA_ISOLATION_LEVEL"].startswith("must be one of read_uncommitted")
    assert problems["KAFKA_MAX_POLL_RECORDS"] == "must be greater than 0 (got '0')"
    assert problems["KAFKA_RETRY_BACKOFF_MS"] == "must be at least 0 (got '-5')"
    assert "'has spaces'" in problems["KAFKA_CLIENT_ID"]
    bootstrap = problems["KAFKA_BOOTSTRAP_SERVERS"]
    assert "'broker1' has no port" in bootstrap
    assert "'b:99999' has port 99999" in bootstrap
    assert "drop 'PLAINTEXT://'" in bootstrap
    assert "ok:9092" not in bootstrap
    assert len(problems) == 13


def test_config_env_message_lists_each_problem_on_its_own_line() -> None:
    with pytest.raises(KafkaSettingsError) as info:
        KafkaSettings.from_env({**BOOT, "KAFKA_ACKS": "two", "KAFKA_LINGER_MS": "x"})
    lines = str(info.value).splitlines()
    assert lines[0] == "invalid Kafka configuration (2 problems):"
    assert "  - KAFKA_ACKS: must be one of 0, 1, all (got 'two')" in lines
    assert "  - KAFKA_LINGER_MS: must be a whole number (got 'x')" in lines
    assert isinstance(info.value, ValueError)


def test_config_env_cross_field_rules_all_reported() -> None:
    problems = _problems(
        {
            **BOOT,
            "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "KAFKA_ACKS": "1",
            "KAFKA_SESSION_TIMEOUT_MS": "6000",
            "KAFKA_HEARTBEAT_INTERVAL_MS": "6000",
            "KAFKA_MAX_BATCH_SIZE": "2000000",
            "KAFKA_FETCH_MAX_WAIT_MS": "50000",
        }
    )
    assert problems == {
        "KAFKA_SASL_MECHANISM": "is required when KAFKA_SECURITY_PROTOCOL=SASL_SSL",
        "KAFKA_SASL_USERNAME": "is required when KAFKA_SECURITY_PROTOCOL=SASL_SSL",
        "KAFKA_SASL_PASSWORD": "is required when KAFKA_SECURITY_PROTOCOL=SASL_SSL",
        "KAFKA_HEARTBEAT_INTERVAL_MS": (
            "must be less than KAFKA_SESSION_TIMEOUT_MS (6000); got 6000 "
            "(about a third of it is usual)"
        ),
        "KAFKA_ACKS": (
            "must be all while KAFKA_ENABLE_IDEMPOTENCE is true (got 1); "
            "set KAFKA_ENABLE_IDEMPOTENCE=false to use a weaker acks"
        ),
        "KAFKA_MAX_BATCH_SIZE": ("must not exceed KAFKA_MAX_REQUEST_SIZE (1048576); got 2000000"),
        "KAFKA_FETCH_MAX_WAIT_MS": (
            "must be less than KAFKA_REQUEST_TIMEOUT_MS (40000); got 50000"
        ),
    }


def test_config_env_cross_field_rules_run_alongside_field_errors() -> None:
    # A field error elsewhere must not hide the SASL rule...
    problems = _problems(
        {**BOOT, "KAFKA_LINGER_MS": "x", "KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT"}
    )
    assert set(problems) == {
        "KAFKA_LINGER_MS",
        "KAFKA_SASL_MECHANISM",
        "KAFKA_SASL_USERNAME",
        "KAFKA_SASL_PASSWORD",
    }
    # ...while a rule about a field that is itself invalid is not reported twice.
    problems = _problems({**BOOT, "KAFKA_SESSION_TIMEOUT_MS": "abc"})
    assert set(problems) == {"KAFKA_SESSION_TIMEOUT_MS"}


def test_config_env_sasl_settings_without_sasl_protocol_are_refused() -> None:
    problems = _problems({**BOOT, "KAFKA_SASL_MECHANISM": "PLAIN", "KAFKA_SASL_USERNAME": "svc"})
    assert set(problems) == {"KAFKA_SASL_MECHANISM", "KAFKA_SASL_USERNAME"}
    assert "KAFKA_SECURITY_PROTOCOL=PLAINTEXT does not use SASL" in problems["KAFKA_SASL_USERNAME"]


def test_config_env_idempotence_off_allows_weaker_acks() -> None:
    settings = KafkaSettings.from_env(
        {**BOOT, "KAFKA_ACKS": "0", "KAFKA_ENABLE_IDEMPOTENCE": "false"}
    )
    assert (settings.acks, settings.enable_idempotence) == (0, False)


def test_config_env_with_overrides_validates_and_copies() -> None:
    base = KafkaSettings.from_env(BOOT)
    fast = base.with_overrides(session_timeout_ms=6000, heartbeat_interval_ms=500)
    assert (fast.session_timeout_ms, fast.heartbeat_interval_ms) == (6000, 500)
    assert base.session_timeout_ms == 45000  # the original is untouched
    with pytest.raises(KafkaSettingsError) as info:
        base.with_overrides(heartbeat_interval_ms=50000, acks="two", bogus=1)
    variables = [p.variable for p in info.value.problems]
    assert sorted(variables) == ["KAFKA_ACKS", "KAFKA_BOGUS", "KAFKA_HEARTBEAT_INTERVAL_MS"]
    assert SettingProblem("KAFKA_BOGUS", "is not a Kafka setting ('bogus' is unknown)") in (
        info.value.problems
    )


def test_config_env_with_overrides_accepts_env_style_strings() -> None:
    settings = KafkaSettings.from_env(BOOT).with_overrides(
        bootstrap_servers="x:1,y:2", enable_idempotence="false", acks="1"
    )
    assert settings.bootstrap_servers == ["x:1", "y:2"]
    assert (settings.acks, settings.enable_idempotence) == (1, False)


def test_config_env_settings_are_frozen() -> None:
    settings = KafkaSettings.from_env(BOOT)
    with pytest.raises(Exception, match="frozen"):
        settings.linger_ms = 10


def test_config_env_direct_construction_uses_the_same_errors() -> None:
    with pytest.raises(KafkaSettingsError) as info:
        KafkaSettings(bootstrap_servers="a:1", acks="two")
    assert [p.variable for p in info.value.problems] == ["KAFKA_ACKS"]


def test_config_env_describe_is_one_safe_line() -> None:
    settings = KafkaSettings.from_env(
        {
            "KAFKA_BOOTSTRAP_SERVERS": "a:1,b:2",
            "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
            "KAFKA_SASL_USERNAME": "svc-reminders",
            "KAFKA_SASL_PASSWORD": "pw-xyz",
        }
    )
    assert settings.describe() == (
        "bootstrap=a:1,b:2 protocol=SASL_SSL mechanism=SCRAM-SHA-512 "
        "username=svc-reminders client_id=coffeebuddy"
    )
    assert repr(settings) == f"KafkaSettings({settings.describe()})"
    assert str(settings) == settings.describe()


def test_config_env_problem_is_a_variable_message_pair() -> None:
    problem = SettingProblem("KAFKA_ACKS", "bad")
    variable, message = problem
    assert (variable, message) == ("KAFKA_ACKS", "bad")
    assert str(problem) == "KAFKA_ACKS: bad"


def test_config_env_typo_of_a_variable_is_pointed_out(caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(KafkaSettingsError) as info:
        KafkaSettings.from_env({"KAFKA_BOOTSTRAP_SERVER": "a:1", "KAFKA_LINGER_M": "3"})
    (problem,) = info.value.problems
    assert problem.variable == "KAFKA_BOOTSTRAP_SERVERS"
    assert problem.message.endswith("(KAFKA_BOOTSTRAP_SERVER is set: a typo?)")
    assert "KAFKA_LINGER_M is not a Kafka setting; did you mean KAFKA_LINGER_MS?" in caplog.text
    assert "'3'" not in caplog.text  # values are never logged


def test_config_env_unrelated_kafka_variables_are_left_alone(
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = KafkaSettings.from_env(
        {**BOOT, "KAFKA_TOPIC_PREFIX": "dev.", "KAFKA_HEAP_OPTS": "x"}
    )
    assert settings.bootstrap_servers == ["broker1:9092"]
    assert caplog.text == ""


def test_config_env_copies_and_equality() -> None:
    import copy
    import pickle

    env = {**BOOT, "KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SASL_USERNAME": ""}
    settings = KafkaSettings.from_env(env)
    assert settings == KafkaSettings.from_env(env)  # each has its own SSLContext
    assert settings != settings.with_overrides(linger_ms=9)
    for copied in (
        copy.deepcopy(settings),
        copy.copy(settings),
        settings.model_copy(deep=True),
        pickle.loads(pickle.dumps(settings)),  # noqa: S301 - our own object
    ):
        assert copied == settings
        assert copied.ssl_context() is not None


@pytest.mark.parametrize("codec", ["snappy", "lz4", "zstd"])
def test_config_env_compression_needs_its_codec_exactly_when_aiokafka_does(codec: str) -> None:
    from aiokafka import codec as aiokafka_codec

    available = bool(getattr(aiokafka_codec, f"has_{codec}")())
    env = {"KAFKA_BOOTSTRAP_SERVERS": "a:1", "KAFKA_COMPRESSION_TYPE": codec}
    if available:
        assert KafkaSettings.from_env(env).producer_kwargs()["compression_type"] == codec
    else:
        assert "needs the 'cramjam' package" in _problems(env)["KAFKA_COMPRESSION_TYPE"]


def test_config_env_key_password_without_a_certificate_is_named() -> None:
    problems = _problems(
        {
            "KAFKA_BOOTSTRAP_SERVERS": "a:1",
            "KAFKA_SECURITY_PROTOCOL": "SSL",
            "KAFKA_SSL_KEY_PASSWORD": "hunter2",
        }
    )
    assert (
        "no KAFKA_SSL_CERTFILE/KAFKA_SSL_KEYFILE to decrypt" in problems["KAFKA_SSL_KEY_PASSWORD"]
    )
    assert "hunter2" not in str(problems)
