"""TLS brokers: native SSL on Apache Kafka or stunnel in front of Tansu; per-session certs."""

from __future__ import annotations

import socket
import ssl
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError as AIOKafkaConnectionError
from cryptography import x509

from coffeebuddy.infra.kafka.testing import (
    BrokerHandle,
    CertificateAuthority,
    StunnelNotFoundError,
    TlsBroker,
)
from coffeebuddy.infra.kafka.testing._apache import TlsEndpoint
from coffeebuddy.infra.kafka.testing._tls import STUNNEL_BIN_ENV, find_stunnel


def test_tls_broker_serves_tls_with_a_cert_for_loopback(kafka_tls_broker: TlsBroker) -> None:
    host, port = kafka_tls_broker.bootstrap_servers.rsplit(":", 1)
    context = ssl.create_default_context(cafile=str(kafka_tls_broker.ca_file))
    with (
        socket.create_connection((host, int(port)), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    sans = x509.load_der_x509_certificate(der).extensions.get_extension_for_class(
        x509.SubjectAlternativeName
    )
    assert "localhost" in sans.value.get_values_for_type(x509.DNSName)
    assert [str(ip) for ip in sans.value.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]


def test_tls_settings_name_the_ca(
    kafka_tls_broker: TlsBroker | TlsEndpoint, kafka_broker: BrokerHandle
) -> None:
    settings = kafka_tls_broker.settings
    assert settings.security_protocol == "SSL"
    assert settings.ssl_cafile == kafka_tls_broker.ca_file
    assert settings.bootstrap_servers == kafka_tls_broker.bootstrap_servers.split(",")
    # Production default (on) wherever the broker behind the TLS port can do it.
    expected = kafka_broker.apache is not None
    assert settings.enable_idempotence is expected


async def test_plaintext_client_cannot_use_the_tls_port(kafka_tls_broker: TlsBroker) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=kafka_tls_broker.bootstrap_servers,
        request_timeout_ms=3000,
        enable_idempotence=False,
    )
    with pytest.raises(AIOKafkaConnectionError):
        await producer.start()
    await producer.stop()


def test_certificate_authority_issues_verifiable_server_certs(tmp_path: Path) -> None:
    ca = CertificateAuthority("unit CA")
    cert_pem, key_pem = ca.issue_server_cert(("127.0.0.1", "localhost"))
    cert = x509.load_pem_x509_certificate(cert_pem)
    cert.verify_directly_issued_by(ca.certificate)
    assert b"PRIVATE KEY" in key_pem
    path = ca.write_cert(tmp_path / "ca.pem")
    assert x509.load_pem_x509_certificate(path.read_bytes()).subject == ca.certificate.subject


def test_missing_stunnel_is_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(STUNNEL_BIN_ENV, raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(StunnelNotFoundError, match=r"stunnel \(Debian stunnel4\) is not installed"):
        find_stunnel()
    monkeypatch.setenv(STUNNEL_BIN_ENV, str(tmp_path / "missing"))
    with pytest.raises(StunnelNotFoundError, match="COFFEEBUDDY_STUNNEL_BIN="):
        find_stunnel()
