"""check_connection against real loopback TCP/TLS servers (no mocks)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from coffeebuddy.infra.kafka.config import KafkaConnectionError, KafkaSettings, check_connection

PASSWORD = "sasl-pw-4Ug2"  # a test value that must never show up anywhere


def _settings(bootstrap: str, **env: str) -> KafkaSettings:
    return KafkaSettings.from_env({"KAFKA_BOOTSTRAP_SERVERS": bootstrap, **env})


async def _hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    del reader
    writer.close()


async def _answer_http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.read(1)
    writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
    await writer.drain()
    writer.close()


async def test_config_connection_refused_names_address_and_variable(closed_address: str) -> None:
    with pytest.raises(KafkaConnectionError) as info:
        await check_connection(_settings(closed_address), timeout=5)
    message = str(info.value)
    assert f"nothing listens at {closed_address} (KAFKA_BOOTSTRAP_SERVERS)" in message
    assert [f.address for f in info.value.failures] == [closed_address]
    assert isinstance(info.value, ConnectionError)


async def test_config_connection_untrusted_certificate_names_cafile(
    tcp_server: Any, pki: Any
) -> None:
    address = await tcp_server(certfile=pki.self_signed_cert, keyfile=pki.self_signed_key)
    with pytest.raises(KafkaConnectionError) as info:
        await check_connection(_settings(address, KAFKA_SECURITY_PROTOCOL="SSL"), timeout=5)
    message = str(info.value)
    assert f"TLS certificate of {address} is not trusted" in message
    assert "certificate verify failed: self-signed certificate" in message
    assert "set KAFKA_SSL_CAFILE to the CA that signed the broker certificate" in message


async def test_config_connection_wrong_cafile_is_named_with_its_path(
    tcp_server: Any, pki: Any
) -> None:
    address = await tcp_server(certfile=pki.server_cert, keyfile=pki.server_key)
    settings = _settings(
        address, KAFKA_SECURITY_PROTOCOL="SSL", KAFKA_SSL_CAFILE=str(pki.other_ca_file)
    )
    with pytest.raises(KafkaConnectionError) as info:
        await check_connection(settings, timeout=5)
    message = str(info.value)
    assert "is not trusted" in message
    assert f"KAFKA_SSL_CAFILE={pki.other_ca_file} does not hold the CA" in message


async def test_config_connection_hostname_mismatch(tcp_server: Any, pki: Any) -> None:
    address = await tcp_server(certfile=pki.localhost_only_cert, keyfile=pki.localhost_only_key)
    settings = _settings(address, KAFKA_SECURITY_PROTOCOL="SSL", KAFKA_SSL_CAFILE=str(pki.ca_file))
    with pytest.raises(KafkaConnectionError) as info:
        await check_connection(settings, timeout=5)
    message = str(info.value)
    assert f"TLS certificate of {address} does not match the name '127.0.0.1'" in message
    assert "KAFKA_SSL_CHECK_HOSTNAME=false" in message


async def test_config_connection_hostname_check_off_passes_tls_then_needs_kafka(
    tcp_server: Any, pki: Any
) -> None:
    # With the hostname check off the same certificate is accepted: the failure moves on to
    # the Kafka step (this server hangs up instead of answering ApiVersions).
    address = await tcp_server(
        _hang_up, certfile=pki.localhost_only_cert, keyfile=pki.localhost_only_key
    )
    settings = _settings(
        address,
        KAFKA_SECURITY_PROTOCOL="SSL",
        KAFKA_SSL_CAFILE=str(pki.ca_file),
        KAFKA_SSL_CHECK_HOSTNAME="false",
    )
    with pytest.raises(KafkaConnectionError) as info:
        await check_connection(settings, timeout=5)
    message = str(info.value)
    assert "TLS certificate" not in message
    assert f"{address} accepted the connection but the Kafka ApiVersions request failed" in (
        message
    )


async def test_config_connection_trusted_tls_reaches_the_kafka_step(
    tcp_server: Any, pki: Any
) -> None:
    address = await tcp_server(_hang_up, certfile=pki.server_cert, keyfile=pki.server_key)
    settings = _settings(address, KAFKA_SECURITY_PROTOCOL="SSL", KAFKA_SSL_CAFILE=str(pki.ca_file))
    with pytest.raises(KafkaConnectionError) as info:
        await check_connection(settings, timeout=5)
    message = str(info.value)
    assert "is it a Kafka broker?" in message
    assert "TLS certificate" not in message
    assert "set KAFKA_SECURITY_PROTOCOL" not in message  # already TLS: no TLS hint


async def test_config_connection_tls_client_on_silent_plain_port_times_out_in_handshake(
    tcp_server: Any, pki: Any
) -> None:
    address = await tcp_server()
    settings = _settings(address, KAFKA_SECURITY_PROTOCOL="SSL", KAFKA_SSL_CAFILE=str(pki.ca_file))
    with pytest.raises(KafkaConnectionError) as info:
        await check_connection(settings, timeout=0.5)
    assert f"the TLS handshake with {address} did not finish within 0.5s" in str(info.value)


async def test_config_connection_tls_client_on_plaintext_listener(
    tcp_server: Any, pki: Any
) -> None:
    address = await tcp_server(_answer_http)
    settings = _settings(address, KAFKA_SECURITY_PROTOCOL="SSL", KAFKA_SSL_CAFILE=str(pki.ca_file))
    with pytest.raises(KafkaConnectionError) as info:
        await check_connection(settings, timeout=5)
    message = str(info.value)
    assert f"{address} does not speak TLS" in message
    assert "KAFKA_SECURITY_PROTOCOL=PLAINTEXT" in message


async def test_config_connection_plaintext_client_on_silent_server_times_out_at_apiversions(
    tcp_server: Any,
) -> None:
    address = await tcp_server()
    with pytest.raises(KafkaConnectionError) as info:
        await check_connection(_settings(address), timeout=0.5)
    message = str(info.value)
    assert f"{address} accepted the connection but did not answer a Kafka ApiVersions" in message
    assert "within 0.5s" in message
    assert "If its listener uses TLS, set KAFKA_SECURITY_PROTOCOL=SSL" in message


async def test_config_connection_plaintext_client_on_tls_listener(
    tcp_server: Any, pki: Any
) -> None:
    address = await tcp_server(certfile=pki.server_cert, keyfile=pki.server_key)
    with pytest.raises(KafkaConnectionError) as info:
        await check_connection(_settings(address), timeout=5)
    message = str(info.value)
    assert "ApiVersions" in message
    assert "If its listener uses TLS, set KAFKA_SECURITY_PROTOCOL=SSL" in message


async def test_config_connection_client_certificate_required(tcp_server: Any, pki: Any) -> None:
    address = await tcp_server(
        _hang_up,
        certfile=pki.server_cert,
        keyfile=pki.server_key,
        require_client_ca=pki.ca_file,
    )
    without_cert = _settings(
        address, KAFKA_SECURITY_PROTOCOL="SSL", KAFKA_SSL_CAFILE=str(pki.ca_file)
    )
    with pytest.raises(KafkaConnectionError) as info:
        await check_connection(without_cert, timeout=5)
    # TLS 1.3 reports a missing client certificate after the handshake, TLS 1.2 during it.
    message = str(info.value)
    assert "client certificate" in message or "ApiVersions request failed" in message

    with_cert = without_cert.with_overrides(
        ssl_certfile=pki.client_cert, ssl_keyfile=pki.client_key
    )
    with pytest.raises(KafkaConnectionError) as info:
        await check_connection(with_cert, timeout=5)
    assert "client certificate" not in str(info.value)  # now only the Kafka step fails
    assert "ApiVersions request failed" in str(info.value)


async def test_config_connection_lists_every_bootstrap_failure(
    tcp_server: Any, pki: Any, closed_address: str
) -> None:
    tls = await tcp_server(certfile=pki.self_signed_cert, keyfile=pki.self_signed_key)
    settings = _settings(f"{closed_address},{tls}", KAFKA_SECURITY_PROTOCOL="SSL")
    with pytest.raises(KafkaConnectionError) as info:
        await check_connection(settings, timeout=5)
    assert [f.address for f in info.value.failures] == [closed_address, tls]
    assert "cannot use any Kafka broker in KAFKA_BOOTSTRAP_SERVERS" in str(info.value)


async def test_config_connection_never_shows_the_sasl_password(
    tcp_server: Any, caplog: pytest.LogCaptureFixture
) -> None:
    address = await tcp_server(_hang_up)
    settings = _settings(
        address,
        KAFKA_SECURITY_PROTOCOL="SASL_PLAINTEXT",
        KAFKA_SASL_MECHANISM="SCRAM-SHA-256",
        KAFKA_SASL_USERNAME="svc",
        KAFKA_SASL_PASSWORD=PASSWORD,
    )
    caplog.set_level(logging.DEBUG)
    with pytest.raises(KafkaConnectionError) as info:
        await check_connection(settings, timeout=5)
    assert PASSWORD not in str(info.value)
    assert PASSWORD not in repr(info.value)
    assert PASSWORD not in caplog.text


async def test_config_connection_rejects_non_positive_timeout(closed_address: str) -> None:
    with pytest.raises(ValueError, match="timeout must be positive"):
        await check_connection(_settings(closed_address), timeout=0)


def test_config_connection_error_pickles() -> None:
    import pickle

    from coffeebuddy.infra.kafka.config._errors import ConnectionFailure

    error = KafkaConnectionError([ConnectionFailure("a:1", "boom")], "summary:")
    copy = pickle.loads(pickle.dumps(error))  # noqa: S301 - our own object
    assert str(copy) == str(error)
    assert copy.failures == error.failures


def test_config_connection_refused_on_every_resolved_address_counts_as_refused() -> None:
    # asyncio raises a plain OSError when a name resolves to several addresses (::1 and
    # 127.0.0.1 for localhost on many machines) and each refuses; pure parsing, no socket.
    from coffeebuddy.infra.kafka.config._connection import _refused

    every = OSError(
        "Multiple exceptions: [Errno 111] Connect call failed ('::1', 9092, 0, 0), "
        "[Errno 111] Connect call failed ('127.0.0.1', 9092)"
    )
    mixed = OSError(
        "Multiple exceptions: [Errno 111] Connect call failed ('::1', 9092, 0, 0), "
        "[Errno 113] Connect call failed ('10.0.0.1', 9092)"
    )
    assert _refused(every)
    assert not _refused(mixed)
    assert not _refused(OSError("no errno here"))


async def test_config_connection_unresolvable_host() -> None:
    # RFC 6761: names under .invalid never resolve.
    with pytest.raises(KafkaConnectionError) as info:
        await check_connection(_settings("broker.invalid:9092"), timeout=5)
    assert "cannot resolve host 'broker.invalid' (KAFKA_BOOTSTRAP_SERVERS)" in str(info.value)
