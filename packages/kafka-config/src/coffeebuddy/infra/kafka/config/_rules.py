"""The rules between settings: what the security protocol needs, and tunings that clash."""

from __future__ import annotations

from typing import TYPE_CHECKING

from coffeebuddy.infra.kafka.config._env import env_var
from coffeebuddy.infra.kafka.config._errors import SettingProblem

if TYPE_CHECKING:
    from coffeebuddy.infra.kafka.config._settings import KafkaSettings

TLS_PROTOCOLS = frozenset({"SSL", "SASL_SSL"})
SASL_PROTOCOLS = frozenset({"SASL_PLAINTEXT", "SASL_SSL"})


def security_problems(settings: KafkaSettings) -> list[SettingProblem]:
    """SASL and TLS settings that the security protocol needs, or that it would ignore."""
    problems: list[SettingProblem] = []
    protocol = settings.security_protocol
    if protocol in SASL_PROTOCOLS:
        for field, present in (
            ("sasl_mechanism", settings.sasl_mechanism is not None),
            ("sasl_username", settings.sasl_username is not None),
            ("sasl_password", settings.sasl_password is not None),
        ):
            if not present:
                problems.append(
                    SettingProblem(
                        env_var(field), f"is required when KAFKA_SECURITY_PROTOCOL={protocol}"
                    )
                )
    else:
        problems.extend(
            SettingProblem(
                env_var(field),
                f"is set but KAFKA_SECURITY_PROTOCOL={protocol} does not use SASL; "
                "use SASL_SSL (or SASL_PLAINTEXT) or unset it",
            )
            for field in ("sasl_mechanism", "sasl_username", "sasl_password")
            if getattr(settings, field) is not None
        )
    if protocol not in TLS_PROTOCOLS:
        problems.extend(
            SettingProblem(
                env_var(field),
                f"is set but KAFKA_SECURITY_PROTOCOL={protocol} does not use TLS; "
                "use SSL or SASL_SSL, or unset it",
            )
            for field in ("ssl_cafile", "ssl_certfile", "ssl_keyfile", "ssl_key_password")
            if getattr(settings, field) is not None
        )
    else:
        if settings.ssl_keyfile is not None and settings.ssl_certfile is None:
            problems.append(
                SettingProblem(
                    "KAFKA_SSL_CERTFILE",
                    "is required when KAFKA_SSL_KEYFILE is set (the client certificate)",
                )
            )
        if settings.ssl_key_password is not None and settings.ssl_certfile is None:
            problems.append(
                SettingProblem(
                    "KAFKA_SSL_KEY_PASSWORD",
                    "is set but there is no KAFKA_SSL_CERTFILE/KAFKA_SSL_KEYFILE to decrypt",
                )
            )
    return problems


def tuning_problems(settings: KafkaSettings) -> list[SettingProblem]:
    """Producer and consumer tunings that contradict each other (or a missing codec)."""
    problems: list[SettingProblem] = []
    if settings.heartbeat_interval_ms >= settings.session_timeout_ms:
        problems.append(
            SettingProblem(
                "KAFKA_HEARTBEAT_INTERVAL_MS",
                f"must be less than KAFKA_SESSION_TIMEOUT_MS ({settings.session_timeout_ms}); "
                f"got {settings.heartbeat_interval_ms} (about a third of it is usual)",
            )
        )
    if settings.enable_idempotence and settings.acks != "all":
        problems.append(
            SettingProblem(
                "KAFKA_ACKS",
                f"must be all while KAFKA_ENABLE_IDEMPOTENCE is true (got {settings.acks!r}); "
                "set KAFKA_ENABLE_IDEMPOTENCE=false to use a weaker acks",
            )
        )
    if settings.max_batch_size > settings.max_request_size:
        problems.append(
            SettingProblem(
                "KAFKA_MAX_BATCH_SIZE",
                f"must not exceed KAFKA_MAX_REQUEST_SIZE ({settings.max_request_size}); "
                f"got {settings.max_batch_size}",
            )
        )
    if settings.fetch_max_wait_ms >= settings.request_timeout_ms:
        problems.append(
            SettingProblem(
                "KAFKA_FETCH_MAX_WAIT_MS",
                f"must be less than KAFKA_REQUEST_TIMEOUT_MS ({settings.request_timeout_ms}); "
                f"got {settings.fetch_max_wait_ms}",
            )
        )
    if settings.compression_type not in ("none", "gzip") and not codec_available(
        settings.compression_type
    ):
        problems.append(
            SettingProblem(
                "KAFKA_COMPRESSION_TYPE",
                f"{settings.compression_type} needs the 'cramjam' package, which is not "
                "installed (pip install cramjam, or use gzip)",
            )
        )
    return problems


def codec_available(codec: str) -> bool:
    from aiokafka import codec as aiokafka_codec

    checks = {
        "snappy": aiokafka_codec.has_snappy,
        "lz4": aiokafka_codec.has_lz4,
        "zstd": aiokafka_codec.has_zstd,
    }
    return bool(checks[codec]())
