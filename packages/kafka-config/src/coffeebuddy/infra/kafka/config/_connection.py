"""check_connection(): say why the brokers in the settings cannot be used, and what to fix.

aiokafka reports every bootstrap failure as "Unable to bootstrap"; this probes each
address step by step (TCP, TLS, Kafka ApiVersions/SASL, advertised brokers) and names
the failing step and the variable to change.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import re
import socket
import ssl
from dataclasses import dataclass, field
from typing import Any

from aiokafka import errors as kafka_errors
from aiokafka.cluster import ClusterMetadata
from aiokafka.conn import AIOKafkaConnection
from aiokafka.protocol.metadata import MetadataRequest

from coffeebuddy.infra.kafka.config._bootstrap import split_address
from coffeebuddy.infra.kafka.config._errors import ConnectionFailure, KafkaConnectionError
from coffeebuddy.infra.kafka.config._rules import TLS_PROTOCOLS
from coffeebuddy.infra.kafka.config._settings import KafkaSettings

logger = logging.getLogger("coffeebuddy.infra.kafka.config")

_HOSTNAME_MISMATCH_CODES = frozenset({62, 64})  # X509_V_ERR_HOSTNAME/IP_ADDRESS_MISMATCH
_EXPIRY_CODES = {9: "is not valid yet", 10: "has expired"}
_NOT_TLS_REASONS = ("WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "PACKET_LENGTH_TOO_LONG")


@dataclass
class _Probe:
    """One address being checked; ``stage`` says how far it got (for timeout messages)."""

    address: str
    host: str
    port: int
    advertised_by: int | None = None
    stage: str = "tcp"
    brokers: list[tuple[int, str, int]] = field(default_factory=list)


async def check_connection(settings: KafkaSettings, timeout: float = 10.0) -> None:  # noqa: ASYNC109
    """Check that the brokers in ``settings`` can be used; raise KafkaConnectionError if not.

    Every bootstrap address is tried at once: TCP connect, TLS handshake with the settings'
    context (SSL/SASL_SSL), a Kafka ApiVersions request (and SASL authentication), then the
    addresses the cluster advertises in its metadata. Passes when at least one bootstrap
    address works and every advertised broker is reachable. ``timeout`` (seconds) bounds
    each phase (bootstrap addresses, then advertised brokers, each probed in parallel), so
    the whole check takes at most twice that.
    """
    if timeout <= 0:
        raise ValueError(f"timeout must be positive (got {timeout!r})")
    probes = [_probe_for(address) for address in settings.bootstrap_servers]
    results = await asyncio.gather(*(_run(settings, p, timeout, kafka=True) for p in probes))
    failures = [f for f in results if f is not None]
    protocol = settings.security_protocol
    if len(failures) == len(probes):
        raise KafkaConnectionError(
            failures,
            f"cannot use any Kafka broker in KAFKA_BOOTSTRAP_SERVERS with "
            f"KAFKA_SECURITY_PROTOCOL={protocol}:",
        )
    for failure in failures:
        logger.warning("Kafka bootstrap address unusable (others work): %s", failure.message)

    advertised: dict[str, _Probe] = {}
    for probe in probes:
        for node_id, host, port in probe.brokers:
            address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
            advertised.setdefault(
                address, _Probe(address=address, host=host, port=port, advertised_by=node_id)
            )
    working = {p.address for p, r in zip(probes, results, strict=True) if r is None}
    to_check = [p for a, p in advertised.items() if a not in working]
    advertised_results = await asyncio.gather(
        *(_run(settings, p, timeout, kafka=False) for p in to_check)
    )
    advertised_failures = [f for f in advertised_results if f is not None]
    if advertised_failures:
        raise KafkaConnectionError(
            advertised_failures,
            "the cluster answered, but brokers it advertises (its advertised listeners) "
            "cannot be used from here:",
        )


def _probe_for(address: str) -> _Probe:
    host, port = split_address(address)
    return _Probe(address=address, host=host, port=port)


async def _run(
    settings: KafkaSettings, probe: _Probe, seconds: float, *, kafka: bool
) -> ConnectionFailure | None:
    try:
        async with asyncio.timeout(seconds):
            await _transport_steps(settings, probe)
            if kafka:
                await _kafka_steps(settings, probe)
    except TimeoutError:
        return ConnectionFailure(probe.address, _timeout_message(settings, probe, seconds))
    except _ProbeError as exc:
        return ConnectionFailure(probe.address, str(exc))
    return None


class _ProbeError(Exception):
    """A step failed; the message is the user-facing explanation."""


async def _transport_steps(settings: KafkaSettings, probe: _Probe) -> None:
    where = _where(probe)
    probe.stage = "tcp"
    try:
        _, writer = await asyncio.open_connection(probe.host, probe.port)
    except socket.gaierror as exc:
        raise _ProbeError(
            f"cannot resolve host {probe.host!r} ({where}): {exc.strerror or exc}"
        ) from None
    except OSError as exc:
        if not _refused(exc):
            raise _ProbeError(
                f"cannot connect to {probe.address} ({where}): {_os_reason(exc)}"
            ) from None
        raise _ProbeError(
            f"nothing listens at {probe.address} ({where}); check the host and port and "
            "that the broker is running"
        ) from None
    raw_transport = writer.transport
    handshake_done = False
    try:
        context = settings.ssl_context()
        if context is None:
            handshake_done = True
            return
        probe.stage = "tls"
        try:
            await writer.start_tls(context, server_hostname=probe.host)
        except ssl.SSLCertVerificationError as exc:
            raise _ProbeError(_verify_message(settings, probe, exc)) from None
        except ssl.SSLError as exc:
            raise _ProbeError(_tls_message(settings, probe, exc)) from None
        except (ConnectionError, OSError) as exc:
            raise _ProbeError(
                f"{probe.address} closed the connection during the TLS handshake "
                f"({_os_reason(exc)}); is it a TLS listener that accepts this client "
                "(TLS version, client certificate)?"
            ) from None
        handshake_done = True
    finally:
        if handshake_done:
            writer.close()
            # A peer that never answers close_notify must not hold the check up.
            with contextlib.suppress(OSError, ssl.SSLError, TimeoutError):
                async with asyncio.timeout(1.0):
                    await writer.wait_closed()
        else:
            # After a failed or cancelled start_tls the stream no longer sees the socket
            # close (wait_closed would hang): drop the socket directly, then let the loop
            # run the scheduled connection_lost that really closes it.
            raw_transport.abort()
            sock = raw_transport.get_extra_info("socket")
            for _ in range(3):
                if sock is None or sock.fileno() == -1:
                    break
                await asyncio.sleep(0)


async def _kafka_steps(settings: KafkaSettings, probe: _Probe) -> None:
    kwargs = settings.admin_kwargs()
    probe.stage = "kafka"
    conn = AIOKafkaConnection(
        probe.host,
        probe.port,
        client_id=kwargs["client_id"],
        request_timeout_ms=kwargs["request_timeout_ms"],
        ssl_context=kwargs.get("ssl_context"),
        security_protocol=kwargs["security_protocol"],
        sasl_mechanism=kwargs.get("sasl_mechanism"),
        sasl_plain_username=kwargs.get("sasl_plain_username"),
        sasl_plain_password=kwargs.get("sasl_plain_password"),
    )
    try:
        await _connect(settings, probe, conn)  # ApiVersions, then SASL
        probe.stage = "metadata"
        try:
            response: Any = await conn.send(MetadataRequest([]))
        except (kafka_errors.KafkaError, OSError) as exc:
            raise _ProbeError(
                f"{probe.address} answered ApiVersions but not a Metadata request "
                f"({_kafka_reason(exc)})"
            ) from None
    finally:
        await _close(conn)
    cluster = ClusterMetadata()
    cluster.update_metadata(response)
    probe.brokers = [(b.nodeId, b.host, b.port) for b in cluster.brokers()]


async def _connect(settings: KafkaSettings, probe: _Probe, conn: Any) -> None:
    try:
        await conn.connect()
    except kafka_errors.UnsupportedSaslMechanismError as exc:
        raise _ProbeError(
            f"the broker at {probe.address} does not enable SASL mechanism "
            f"{settings.sasl_mechanism} ({_kafka_reason(exc)}); set KAFKA_SASL_MECHANISM to "
            "one it enables"
        ) from None
    except (
        kafka_errors.SaslAuthenticationFailed,
        kafka_errors.AuthenticationFailedError,
        kafka_errors.IllegalSaslStateError,
    ) as exc:
        raise _ProbeError(
            f"SASL authentication as {settings.sasl_username!r} with "
            f"{settings.sasl_mechanism} failed at {probe.address} ({_kafka_reason(exc)}); "
            "check KAFKA_SASL_USERNAME, KAFKA_SASL_PASSWORD and KAFKA_SASL_MECHANISM"
        ) from None
    except (kafka_errors.KafkaError, OSError, ssl.SSLError) as exc:
        raise _ProbeError(_not_kafka_message(settings, probe, exc)) from None


async def _close(conn: Any) -> None:
    """Close the connection and wait (briefly) until the socket is really closed.

    A TLS socket closes only after the shutdown exchange; a loop that ends before that
    leaves it to the garbage collector (a ResourceWarning somewhere else).
    """
    closed = conn.close()
    if closed is not None:
        with contextlib.suppress(Exception):
            async with asyncio.timeout(1.0):
                await asyncio.shield(closed)


def _where(probe: _Probe) -> str:
    if probe.advertised_by is None:
        return "KAFKA_BOOTSTRAP_SERVERS"
    return f"advertised by broker {probe.advertised_by} in the cluster metadata"


def _refused(exc: OSError) -> bool:
    """Connection refused, also when a name resolved to several addresses that all refused.

    (asyncio then raises a plain OSError("Multiple exceptions: [Errno 111] ...").)
    """
    if isinstance(exc, ConnectionRefusedError):
        return True
    codes = re.findall(r"\[Errno (\d+)\]", str(exc))
    return bool(codes) and all(int(code) == errno.ECONNREFUSED for code in codes)


def _os_reason(exc: OSError) -> str:
    if exc.errno is not None and exc.strerror:
        return f"{errno.errorcode.get(exc.errno, exc.errno)}: {exc.strerror}"
    return str(exc) or type(exc).__name__


def _kafka_reason(exc: BaseException) -> str:
    text, name = str(exc), type(exc).__name__
    if not text:
        return name
    return text if text.startswith(name) else f"{name}: {text}"


def _timeout_message(settings: KafkaSettings, probe: _Probe, timeout: float) -> str:
    within = f"within {timeout:g}s"
    if probe.stage == "tcp":
        return (
            f"no answer from {probe.address} {within} while connecting ({_where(probe)}); "
            "check the address, firewalls and that the broker is running"
        )
    if probe.stage == "tls":
        return (
            f"the TLS handshake with {probe.address} did not finish {within}; is it a TLS "
            f"listener? (KAFKA_SECURITY_PROTOCOL={settings.security_protocol} expects one)"
        )
    if probe.stage == "kafka":
        return (
            f"{probe.address} accepted the connection but did not answer a Kafka ApiVersions "
            f"request {within}; is it a Kafka broker?{_tls_hint(settings)}"
        )
    return f"{probe.address} did not answer a Kafka Metadata request {within}"


def _tls_hint(settings: KafkaSettings) -> str:
    if settings.security_protocol in TLS_PROTOCOLS:
        return ""
    return (
        f" If its listener uses TLS, set KAFKA_SECURITY_PROTOCOL="
        f"{'SASL_SSL' if settings.security_protocol == 'SASL_PLAINTEXT' else 'SSL'}."
    )


def _not_kafka_message(settings: KafkaSettings, probe: _Probe, exc: BaseException) -> str:
    return (
        f"{probe.address} accepted the connection but the Kafka ApiVersions request failed "
        f"({_kafka_reason(exc)}); is it a Kafka broker?{_tls_hint(settings)}"
    )


def _verify_message(
    settings: KafkaSettings, probe: _Probe, exc: ssl.SSLCertVerificationError
) -> str:
    detail = f"certificate verify failed: {exc.verify_message or exc.reason}"
    code = exc.verify_code
    if code in _HOSTNAME_MISMATCH_CODES:
        return (
            f"TLS certificate of {probe.address} does not match the name {probe.host!r} "
            f"({detail}); connect using a name the certificate lists ({_where(probe)}) or "
            "reissue the certificate for this name (KAFKA_SSL_CHECK_HOSTNAME=false skips the "
            "check; not for production)"
        )
    if code in _EXPIRY_CODES:
        return (
            f"TLS certificate of {probe.address} {_EXPIRY_CODES[code]} ({detail}); renew the "
            "broker certificate or check this machine's clock"
        )
    if settings.ssl_cafile is not None:
        fix = (
            f"KAFKA_SSL_CAFILE={settings.ssl_cafile} does not hold the CA that signed it; "
            "set KAFKA_SSL_CAFILE to the CA that signed the broker certificate"
        )
    else:
        fix = "set KAFKA_SSL_CAFILE to the CA that signed the broker certificate"
    return f"TLS certificate of {probe.address} is not trusted ({detail}); {fix}"


def _tls_message(settings: KafkaSettings, probe: _Probe, exc: ssl.SSLError) -> str:
    reason = str(exc.reason or exc)
    if any(marker in reason for marker in _NOT_TLS_REASONS):
        return (
            f"{probe.address} does not speak TLS ({reason}); it looks like a plaintext "
            "listener: use the broker's TLS port or KAFKA_SECURITY_PROTOCOL="
            f"{'SASL_PLAINTEXT' if settings.security_protocol == 'SASL_SSL' else 'PLAINTEXT'}"
        )
    if "CERTIFICATE_REQUIRED" in reason or "BAD_CERTIFICATE" in reason or "UNKNOWN_CA" in reason:
        if settings.ssl_certfile is None:
            return (
                f"the broker at {probe.address} wants a client certificate ({reason}); set "
                "KAFKA_SSL_CERTFILE and KAFKA_SSL_KEYFILE"
            )
        return (
            f"the broker at {probe.address} rejected the client certificate in "
            f"KAFKA_SSL_CERTFILE={settings.ssl_certfile} ({reason}); is it signed by a CA the "
            "broker trusts?"
        )
    return f"the TLS handshake with {probe.address} failed ({reason})"
