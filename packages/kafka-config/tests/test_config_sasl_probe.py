"""check_connection's SASL step against a tiny Kafka-protocol server on a real loopback socket.

The embedded broker cannot do SASL (see docs/notes), so this server speaks just enough of
the protocol (ApiVersions, SaslHandshake v1, SaslAuthenticate v0) to refuse a mechanism or
the credentials the way a real broker does.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiokafka.protocol.admin import (
    ApiVersionResponse_v0,
    ApiVersionResponse_v1,
    SaslAuthenticateResponse_v0,
    SaslHandShakeResponse_v1,
)

from coffeebuddy.infra.kafka.config import KafkaConnectionError, KafkaSettings, check_connection

PASSWORD = "probe-pw-Kd93"
_VERSIONS = [(18, 0, 2), (17, 1, 1), (36, 0, 0)]  # ApiVersions, SaslHandshake, SaslAuthenticate
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def fake_sasl_broker(enabled: list[str]) -> Handler:
    """A connection handler: knows ``enabled`` mechanisms and rejects every credential."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                (size,) = struct.unpack(">i", await reader.readexactly(4))
                frame = await reader.readexactly(size)
            except asyncio.IncompleteReadError:
                return
            api_key, api_version, correlation_id = struct.unpack(">hhi", frame[:8])
            response: Any
            if api_key == 18:
                response = (
                    ApiVersionResponse_v0(0, _VERSIONS)
                    if api_version == 0
                    else ApiVersionResponse_v1(0, _VERSIONS, 0)
                )
            elif api_key == 17:
                (length,) = struct.unpack(">h", frame[8:10])
                body = frame[10 + length :]
                (mech_len,) = struct.unpack(">h", body[:2])
                mechanism = body[2 : 2 + mech_len].decode()
                error = 0 if mechanism in enabled else 33  # UNSUPPORTED_SASL_MECHANISM
                response = SaslHandShakeResponse_v1(error, enabled)
            elif api_key == 36:
                response = SaslAuthenticateResponse_v0(
                    58, "Authentication failed: Invalid username or password", b""
                )
            else:
                return
            payload = response.encode()
            writer.write(struct.pack(">ii", len(payload) + 4, correlation_id) + payload)
            await writer.drain()

    return handle


def _settings(address: str, mechanism: str) -> KafkaSettings:
    return KafkaSettings.from_env(
        {
            "KAFKA_BOOTSTRAP_SERVERS": address,
            "KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
            "KAFKA_SASL_MECHANISM": mechanism,
            "KAFKA_SASL_USERNAME": "svc-reminders",
            "KAFKA_SASL_PASSWORD": PASSWORD,
        }
    )


async def test_config_sasl_probe_mechanism_not_enabled(tcp_server: Any) -> None:
    address = await tcp_server(fake_sasl_broker(["PLAIN"]))
    with pytest.raises(KafkaConnectionError) as info:
        await check_connection(_settings(address, "SCRAM-SHA-512"), timeout=5)
    message = str(info.value)
    assert f"the broker at {address} does not enable SASL mechanism SCRAM-SHA-512" in message
    assert "set KAFKA_SASL_MECHANISM to one it enables" in message


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
async def test_config_sasl_probe_bad_credentials(
    tcp_server: Any, mechanism: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    address = await tcp_server(fake_sasl_broker([mechanism]))
    with pytest.raises(KafkaConnectionError) as info:
        await check_connection(_settings(address, mechanism), timeout=5)
    message = str(info.value)
    assert f"SASL authentication as 'svc-reminders' with {mechanism} failed at {address}" in (
        message
    )
    assert "Invalid username or password" in message
    assert "check KAFKA_SASL_USERNAME, KAFKA_SASL_PASSWORD and KAFKA_SASL_MECHANISM" in message
    assert PASSWORD not in message
    assert PASSWORD not in caplog.text  # aiokafka's DEBUG request log included
