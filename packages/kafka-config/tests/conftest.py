"""Fixtures for the config tests: a generated PKI and small real TCP/TLS servers on loopback."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

KEY_PASSWORD = "key-pass-Zq8"


@dataclass(frozen=True)
class Pki:
    """Files of a throwaway CA, a server certificate for 127.0.0.1/localhost and more."""

    ca_file: Path
    other_ca_file: Path
    server_cert: Path  # SAN: localhost, 127.0.0.1
    server_key: Path
    localhost_only_cert: Path  # SAN: localhost only (wrong for 127.0.0.1)
    localhost_only_key: Path
    self_signed_cert: Path  # its own issuer, SAN 127.0.0.1
    self_signed_key: Path
    client_cert: Path
    client_key: Path
    client_key_encrypted: Path  # encrypted with KEY_PASSWORD
    not_pem: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey, password: str | None = None) -> Path:
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password.encode())
        if password
        else serialization.NoEncryption()
    )
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
    )
    return path


def _write_cert(path: Path, cert: x509.Certificate) -> Path:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


def _ca(common_name: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _leaf(
    common_name: str,
    sans: list[x509.GeneralName],
    issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None,
    *,
    server: bool = True,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    issuer_name = issuer[0].subject if issuer else _name(common_name)
    signing_key = issuer[1] if issuer else key
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
    )
    if issuer:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer[1].public_key()),
            critical=False,
        )
    return builder.sign(signing_key, hashes.SHA256()), key


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A generated CA with server and client certificates (no network, no openssl CLI)."""
    root = tmp_path_factory.mktemp("pki")
    ca = _ca("coffeebuddy test CA")
    other_ca = _ca("some other CA")
    loopback: list[x509.GeneralName] = [
        x509.DNSName("localhost"),
        x509.IPAddress(ipaddress.IPv4Address("127.0.0.1")),
    ]
    server = _leaf("broker", loopback, ca)
    localhost_only = _leaf("localhost", [x509.DNSName("localhost")], ca)
    self_signed = _leaf("self-signed", loopback, None)
    client = _leaf("client", [x509.DNSName("client")], ca, server=False)
    not_pem = root / "not-a-cert.pem"
    not_pem.write_text("this is not a certificate\n")
    return Pki(
        ca_file=_write_cert(root / "ca.pem", ca[0]),
        other_ca_file=_write_cert(root / "other-ca.pem", other_ca[0]),
        server_cert=_write_cert(root / "server.pem", server[0]),
        server_key=_write_key(root / "server.key", server[1]),
        localhost_only_cert=_write_cert(root / "localhost.pem", localhost_only[0]),
        localhost_only_key=_write_key(root / "localhost.key", localhost_only[1]),
        self_signed_cert=_write_cert(root / "self-signed.pem", self_signed[0]),
        self_signed_key=_write_key(root / "self-signed.key", self_signed[1]),
        client_cert=_write_cert(root / "client.pem", client[0]),
        client_key=_write_key(root / "client.key", client[1]),
        client_key_encrypted=_write_key(root / "client-enc.key", client[1], KEY_PASSWORD),
        not_pem=not_pem,
    )


ConnectionHandler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
ServerFactory = Callable[..., Awaitable[str]]


@pytest.fixture
async def tcp_server() -> AsyncIterator[ServerFactory]:
    """Start real loopback servers (optionally TLS); returns ``host:port`` of each."""
    servers: list[asyncio.Server] = []
    writers: list[asyncio.StreamWriter] = []

    async def start(
        handler: ConnectionHandler | None = None,
        *,
        certfile: Path | None = None,
        keyfile: Path | None = None,
        require_client_ca: Path | None = None,
    ) -> str:
        context: ssl.SSLContext | None = None
        if certfile is not None:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(certfile, keyfile)
            if require_client_ca is not None:
                context.load_verify_locations(cafile=require_client_ca)
                context.verify_mode = ssl.CERT_REQUIRED

        async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writers.append(writer)
            if handler is not None:
                await handler(reader, writer)
            else:  # hold the connection open and silent until the client leaves
                await reader.read()

        server = await asyncio.start_server(on_connect, "127.0.0.1", 0, ssl=context)
        servers.append(server)
        port = server.sockets[0].getsockname()[1]
        return f"127.0.0.1:{port}"

    yield start
    for writer in writers:
        writer.close()
    for server in servers:
        server.close()
        await server.wait_closed()


@pytest.fixture
def closed_address() -> str:
    """A loopback address where nothing listens (the port was bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"127.0.0.1:{port}"
