"""TLS settings: files checked up front, SSLContext built from a generated CA and used for real."""

from __future__ import annotations

import asyncio
import os
import ssl
from pathlib import Path
from typing import Any

import pytest

from coffeebuddy.infra.kafka.config import KafkaSettings, KafkaSettingsError

KEY_PASSWORD = "key-pass-Zq8"  # matches conftest


def _tls(**env: str) -> KafkaSettings:
    return KafkaSettings.from_env(
        {"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9093", "KAFKA_SECURITY_PROTOCOL": "SSL", **env}
    )


def _problems(**env: str) -> dict[str, str]:
    with pytest.raises(KafkaSettingsError) as info:
        _tls(**env)
    return {p.variable: p.message for p in info.value.problems}


def test_config_ssl_context_from_generated_ca(pki: Any) -> None:
    settings = _tls(KAFKA_SSL_CAFILE=str(pki.ca_file))
    context = settings.ssl_context()
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname is True
    subjects = [str(c["subject"]) for c in context.get_ca_certs()]
    assert subjects == [str(((("commonName", "coffeebuddy test CA"),),))]  # only our CA
    assert settings.producer_kwargs()["ssl_context"] is context  # built once, shared


def test_config_ssl_hostname_check_can_be_turned_off_but_not_verification(pki: Any) -> None:
    context = _tls(
        KAFKA_SSL_CAFILE=str(pki.ca_file), KAFKA_SSL_CHECK_HOSTNAME="false"
    ).ssl_context()
    assert context is not None
    assert context.check_hostname is False
    assert context.verify_mode == ssl.CERT_REQUIRED


def test_config_ssl_without_cafile_uses_system_trust() -> None:
    context = _tls().ssl_context()
    assert context is not None
    assert context.verify_mode == ssl.CERT_REQUIRED


def test_config_ssl_plaintext_has_no_context() -> None:
    assert KafkaSettings.from_env({"KAFKA_BOOTSTRAP_SERVERS": "a:1"}).ssl_context() is None


async def test_config_ssl_context_completes_a_real_handshake(tcp_server: Any, pki: Any) -> None:
    address = await tcp_server(certfile=pki.server_cert, keyfile=pki.server_key)
    host, port = address.rsplit(":", 1)
    context = _tls(KAFKA_SSL_CAFILE=str(pki.ca_file)).ssl_context()
    reader, writer = await asyncio.open_connection(
        host, int(port), ssl=context, server_hostname=host
    )
    try:
        peer = writer.get_extra_info("peercert")
        assert dict(x[0] for x in peer["subject"]) == {"commonName": "broker"}
    finally:
        writer.close()
        await writer.wait_closed()
    del reader


async def test_config_ssl_client_certificate_is_presented(tcp_server: Any, pki: Any) -> None:
    seen: list[Any] = []

    async def record_peer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(writer.get_extra_info("peercert"))
        writer.close()
        del reader

    address = await tcp_server(
        record_peer,
        certfile=pki.server_cert,
        keyfile=pki.server_key,
        require_client_ca=pki.ca_file,
    )
    host, port = address.rsplit(":", 1)
    context = _tls(
        KAFKA_SSL_CAFILE=str(pki.ca_file),
        KAFKA_SSL_CERTFILE=str(pki.client_cert),
        KAFKA_SSL_KEYFILE=str(pki.client_key_encrypted),
        KAFKA_SSL_KEY_PASSWORD=KEY_PASSWORD,
    ).ssl_context()
    _, writer = await asyncio.open_connection(host, int(port), ssl=context, server_hostname=host)
    await writer.wait_closed()
    assert len(seen) == 1
    assert dict(x[0] for x in seen[0]["subject"]) == {"commonName": "client"}


def test_config_ssl_missing_files_name_variable_and_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope.pem"
    problems = _problems(
        KAFKA_SSL_CAFILE=str(missing),
        KAFKA_SSL_CERTFILE=str(tmp_path),
        KAFKA_SSL_KEYFILE=str(tmp_path / "also-missing.key"),
    )
    assert problems["KAFKA_SSL_CAFILE"].startswith(f"file not found: {missing}")
    assert problems["KAFKA_SSL_CERTFILE"] == f"not a regular file: {tmp_path}"
    assert "also-missing.key" in problems["KAFKA_SSL_KEYFILE"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files regardless of permissions")
def test_config_ssl_unreadable_file(tmp_path: Path, pki: Any) -> None:
    locked = tmp_path / "locked.pem"
    locked.write_bytes(pki.ca_file.read_bytes())
    locked.chmod(0)
    problems = _problems(KAFKA_SSL_CAFILE=str(locked))
    assert problems["KAFKA_SSL_CAFILE"].startswith(f"cannot read {locked}")


def test_config_ssl_not_pem_cafile(pki: Any) -> None:
    problems = _problems(KAFKA_SSL_CAFILE=str(pki.not_pem))
    assert list(problems) == ["KAFKA_SSL_CAFILE"]
    assert problems["KAFKA_SSL_CAFILE"].startswith(
        f"{pki.not_pem} holds no usable PEM CA certificate"
    )


def test_config_ssl_key_not_matching_certificate(pki: Any) -> None:
    problems = _problems(
        KAFKA_SSL_CERTFILE=str(pki.client_cert), KAFKA_SSL_KEYFILE=str(pki.server_key)
    )
    assert list(problems) == ["KAFKA_SSL_KEYFILE"]
    assert "the key must match the certificate" in problems["KAFKA_SSL_KEYFILE"]


def test_config_ssl_encrypted_key_needs_the_right_password(pki: Any) -> None:
    files = {
        "KAFKA_SSL_CERTFILE": str(pki.client_cert),
        "KAFKA_SSL_KEYFILE": str(pki.client_key_encrypted),
    }
    assert _problems(**files) == {
        "KAFKA_SSL_KEY_PASSWORD": (
            f"the private key in {pki.client_key_encrypted} is encrypted; set the password"
        )
    }
    wrong = _problems(**files, KAFKA_SSL_KEY_PASSWORD="not-it")
    assert wrong["KAFKA_SSL_KEY_PASSWORD"].startswith("does not decrypt the private key in")
    assert _tls(**files, KAFKA_SSL_KEY_PASSWORD=KEY_PASSWORD).ssl_context() is not None


def test_config_ssl_keyfile_needs_certfile(pki: Any) -> None:
    problems = _problems(KAFKA_SSL_KEYFILE=str(pki.client_key))
    assert problems == {
        "KAFKA_SSL_CERTFILE": "is required when KAFKA_SSL_KEYFILE is set (the client certificate)"
    }


def test_config_ssl_files_without_tls_protocol_are_refused(pki: Any) -> None:
    with pytest.raises(KafkaSettingsError) as info:
        KafkaSettings.from_env(
            {
                "KAFKA_BOOTSTRAP_SERVERS": "a:1",
                "KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
                "KAFKA_SASL_MECHANISM": "PLAIN",
                "KAFKA_SASL_USERNAME": "u",
                "KAFKA_SASL_PASSWORD": "p",
                "KAFKA_SSL_CAFILE": str(pki.ca_file),
            }
        )
    assert [(p.variable, p.message) for p in info.value.problems] == [
        (
            "KAFKA_SSL_CAFILE",
            "is set but KAFKA_SECURITY_PROTOCOL=SASL_PLAINTEXT does not use TLS; "
            "use SSL or SASL_SSL, or unset it",
        )
    ]


def test_config_ssl_relative_and_home_paths(pki: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(pki.ca_file.parent)
    assert _tls(KAFKA_SSL_CAFILE="ca.pem").ssl_cafile == Path("ca.pem")
    monkeypatch.setenv("HOME", str(pki.ca_file.parent))
    assert _tls(KAFKA_SSL_CAFILE="~/ca.pem").ssl_cafile == pki.ca_file
