"""Secrets (SASL password, TLS key password) never appear in errors, reprs, dumps or logs."""

from __future__ import annotations

import logging
import pickle
import traceback
from typing import Any

import pytest

from coffeebuddy.infra.kafka.config import KafkaSettings, KafkaSettingsError

SASL_PASSWORD = "s3cr3t-SASL-pw-91x"
KEY_PASSWORD = "key-pass-Zq8"  # matches conftest's encrypted key

SASL_ENV = {
    "KAFKA_BOOTSTRAP_SERVERS": "a:9092",
    "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
    "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
    "KAFKA_SASL_USERNAME": "svc",
    "KAFKA_SASL_PASSWORD": SASL_PASSWORD,
}


def _assert_hidden(text: str) -> None:
    assert SASL_PASSWORD not in text
    assert KEY_PASSWORD not in text


def _error_texts(exc: BaseException) -> list[str]:
    # format_exception_only: the full traceback would quote this test's own source lines.
    return [str(exc), repr(exc), "".join(traceback.format_exception_only(exc))] + [
        str(p) for p in getattr(exc, "problems", [])
    ]


def test_config_secrets_absent_from_valid_settings(
    pki: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    settings = KafkaSettings.from_env(
        {
            **SASL_ENV,
            "KAFKA_SSL_CAFILE": str(pki.ca_file),
            "KAFKA_SSL_CERTFILE": str(pki.client_cert),
            "KAFKA_SSL_KEYFILE": str(pki.client_key_encrypted),
            "KAFKA_SSL_KEY_PASSWORD": KEY_PASSWORD,
        }
    )
    logging.getLogger("test").info("settings: %s / %r", settings, settings)
    for text in (
        repr(settings),
        str(settings),
        settings.describe(),
        settings.model_dump_json(),
        repr(settings.model_dump()),
        str(settings.model_dump(mode="json")),
        repr(settings.sasl_password),
        repr(settings.ssl_key_password),
        caplog.text,
    ):
        _assert_hidden(text)
    # The one place the password is in clear: the kwargs handed to aiokafka.
    assert settings.producer_kwargs()["sasl_plain_password"] == SASL_PASSWORD


@pytest.mark.parametrize(
    "bad",
    [
        {"KAFKA_ACKS": "two"},  # field error next to a valid password
        {"KAFKA_SECURITY_PROTOCOL": "PLAINTEXT"},  # cross-field: password set without SASL
        {"KAFKA_SASL_MECHANISM": "GSSAPI", "KAFKA_LINGER_MS": "x"},
        {"KAFKA_BOOTSTRAP_SERVERS": SASL_PASSWORD},  # nonsense that *is* shown: not a secret
    ],
)
def test_config_secrets_absent_from_errors(
    bad: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with pytest.raises(KafkaSettingsError) as info:
        KafkaSettings.from_env({**SASL_ENV, **bad})
    texts = _error_texts(info.value)
    if "KAFKA_BOOTSTRAP_SERVERS" in bad:
        # Bootstrap servers are not secret; the check is that no other path leaks.
        assert any(SASL_PASSWORD in t for t in texts)
        return
    for text in [*texts, caplog.text]:
        _assert_hidden(text)
    # pydantic's ValidationError (which carries the raw inputs) is not chained at all.
    assert info.value.__cause__ is None
    assert info.value.__context__ is None


def test_config_secrets_absent_when_the_password_itself_is_wrong_type() -> None:
    settings = KafkaSettings.from_env(SASL_ENV)
    with pytest.raises(KafkaSettingsError) as info:
        settings.with_overrides(sasl_password=12345678, ssl_key_password=["x"])
    variables = {p.variable for p in info.value.problems}
    assert {"KAFKA_SASL_PASSWORD", "KAFKA_SSL_KEY_PASSWORD"} <= variables
    for text in _error_texts(info.value):
        assert "12345678" not in text
    for problem in info.value.problems:
        if problem.variable in ("KAFKA_SASL_PASSWORD", "KAFKA_SSL_KEY_PASSWORD"):
            assert "got" not in problem.message


def test_config_secrets_absent_from_wrong_key_password_error(pki: Any) -> None:
    with pytest.raises(KafkaSettingsError) as info:
        KafkaSettings.from_env(
            {
                "KAFKA_BOOTSTRAP_SERVERS": "a:9092",
                "KAFKA_SECURITY_PROTOCOL": "SSL",
                "KAFKA_SSL_CERTFILE": str(pki.client_cert),
                "KAFKA_SSL_KEYFILE": str(pki.client_key_encrypted),
                "KAFKA_SSL_KEY_PASSWORD": "wrong-" + KEY_PASSWORD,
            }
        )
    assert [p.variable for p in info.value.problems] == ["KAFKA_SSL_KEY_PASSWORD"]
    for text in _error_texts(info.value):
        _assert_hidden(text)


def test_config_secrets_error_pickles_without_secrets() -> None:
    with pytest.raises(KafkaSettingsError) as info:
        KafkaSettings.from_env({**SASL_ENV, "KAFKA_ACKS": "two"})
    data = pickle.dumps(info.value)
    assert SASL_PASSWORD.encode() not in data
    copy = pickle.loads(data)  # noqa: S301 - our own object
    assert copy.problems == info.value.problems


def test_config_secrets_aiokafka_sasl_payload_is_redacted_in_logs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from aiokafka.protocol.admin import SaslAuthenticateRequest_v0

    from coffeebuddy.infra.kafka.config._redact import install_sasl_log_redaction

    install_sasl_log_redaction()  # idempotent: already installed by the import
    conn_logger = logging.getLogger("aiokafka.conn")
    assert len([f for f in conn_logger.filters if type(f).__name__ == "SaslPayloadRedactor"]) == 1
    caplog.set_level(logging.DEBUG, logger="aiokafka.conn")
    payload = SaslAuthenticateRequest_v0(b"svc\x00svc\x00" + SASL_PASSWORD.encode())
    conn_logger.debug("Request to %s:%d %d: %s", "h", 1, 3, payload)
    assert SASL_PASSWORD not in caplog.text
    assert "sasl_auth_bytes=<redacted>" in caplog.text
