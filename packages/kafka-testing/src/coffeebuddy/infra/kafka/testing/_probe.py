"""Kafka protocol round trips for readiness and capability probes (one connection, no routing)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import Any, TypeVar

from aiokafka.conn import create_conn
from aiokafka.protocol.admin import ApiVersionRequest
from aiokafka.protocol.metadata import MetadataRequest

T = TypeVar("T")

__all__ = [
    "ApiVersions",
    "close_conn",
    "cluster_broker_ids",
    "connect_kwargs",
    "fetch_api_versions",
    "quiet_aiokafka",
    "run_sync",
]

#: API key -> (min version, max version) as the broker reports it.
ApiVersions = dict[int, tuple[int, int]]

_CONN_KEYS = (
    "client_id",
    "ssl_context",
    "security_protocol",
    "sasl_mechanism",
    "sasl_plain_username",
    "sasl_plain_password",
    "sasl_kerberos_service_name",
    "sasl_kerberos_domain_name",
    "sasl_oauth_token_provider",
)


def connect_kwargs(client_kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The subset of aiokafka client keyword arguments a single connection understands."""
    return {key: client_kwargs[key] for key in _CONN_KEYS if key in client_kwargs}


def split_address(address: str) -> tuple[str, int]:
    """``"host:port"`` -> ``(host, port)``; IPv6 hosts may be bracketed."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"bootstrap address {address!r} is not host:port")
    return host.strip("[]"), int(port)


async def fetch_api_versions(
    address: str, *, limit: float, metadata: bool = True, **conn_kwargs: Any
) -> ApiVersions:
    """Connect to one address; ask ApiVersions (and Metadata), ``limit`` seconds each."""
    host, port = split_address(address)
    conn = await asyncio.wait_for(
        create_conn(host, port, request_timeout_ms=int(limit * 1000), **conn_kwargs),
        limit,
    )
    try:
        response = await asyncio.wait_for(conn.send(ApiVersionRequest()), limit)
        if response.error_code != 0:
            raise ConnectionError(f"ApiVersions from {address} failed: error {response.error_code}")
        versions: ApiVersions = {
            int(key): (int(low), int(high)) for key, low, high in response.api_versions
        }
        if metadata:
            await asyncio.wait_for(conn.send(MetadataRequest([])), limit)
        return versions
    finally:
        await close_conn(conn)


async def cluster_broker_ids(address: str, *, limit: float, **conn_kwargs: Any) -> set[int]:
    """The broker ids one node's Metadata answer lists (all registered, live brokers)."""
    host, port = split_address(address)
    conn = await asyncio.wait_for(
        create_conn(host, port, request_timeout_ms=int(limit * 1000), **conn_kwargs),
        limit,
    )
    try:
        response = await asyncio.wait_for(conn.send(MetadataRequest([])), limit)
        return {int(broker[0]) for broker in response.brokers}
    finally:
        await close_conn(conn)


async def close_conn(conn: Any) -> None:
    """Close an aiokafka connection and wait (briefly) until its socket is really closed.

    A TLS transport closes only after the shutdown exchange; a loop that ends first leaves the
    socket to the garbage collector (a ResourceWarning in someone else's test).
    """
    closed = conn.close()
    if closed is not None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.shield(closed), 2.0)


def run_sync(factory: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine to completion on a private event loop in a helper thread.

    Works whether or not the calling thread already runs an event loop (sync fixtures, async
    tests calling a sync helper), and never touches the caller's loop.
    """
    result: list[T] = []
    error: list[BaseException] = []

    async def main() -> None:
        result.append(await factory())

    def target() -> None:
        try:
            asyncio.run(main())
        except BaseException as exc:  # re-raised in the caller's thread
            error.append(exc)

    thread = threading.Thread(target=target, name="coffeebuddy-kafka-sync", daemon=True)
    thread.start()
    thread.join()
    if error:
        raise error[0]
    return result[0]


@contextlib.contextmanager
def quiet_aiokafka() -> Iterator[None]:
    """Silence aiokafka's own error logs while a probe provokes an expected failure."""
    logger = logging.getLogger("aiokafka")
    previous = logger.level
    logger.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        logger.setLevel(previous)
