"""What the broker under test can do, from ApiVersions plus functional probes where it lies."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from aiokafka import AIOKafkaProducer
from aiokafka.protocol.admin import CreateAclsRequest, DescribeAclsRequest

from coffeebuddy.infra.kafka.testing._probe import (
    close_conn,
    connect_kwargs,
    fetch_api_versions,
    quiet_aiokafka,
    split_address,
)

__all__ = [
    "CAPABILITIES",
    "CAPABILITY_SKIP_PREFIX",
    "BrokerCapabilities",
    "CapabilityName",
    "probe_capabilities",
    "require_capability",
]

CapabilityName = Literal[
    "idempotent_producer",
    "transactions",
    "acls",
    "alter_configs",
    "create_partitions",
    "sasl",
    "log_compaction",
]
CAPABILITIES: tuple[CapabilityName, ...] = (
    "idempotent_producer",
    "transactions",
    "acls",
    "alter_configs",
    "create_partitions",
    "sasl",
    "log_compaction",
)

#: How every skip for a missing broker capability starts (CI counts them).
CAPABILITY_SKIP_PREFIX = "needs broker capability"

SASL_HANDSHAKE = 17
INIT_PRODUCER_ID = 22
ADD_PARTITIONS_TO_TXN = 24
END_TXN = 26
DESCRIBE_ACLS = 29
CREATE_ACLS = 30
ALTER_CONFIGS = 33
CREATE_PARTITIONS = 37
INCREMENTAL_ALTER_CONFIGS = 44

_API_NAMES = {
    SASL_HANDSHAKE: "SaslHandshake",
    INIT_PRODUCER_ID: "InitProducerId",
    ADD_PARTITIONS_TO_TXN: "AddPartitionsToTxn",
    END_TXN: "EndTxn",
    DESCRIBE_ACLS: "DescribeAcls",
    CREATE_ACLS: "CreateAcls",
    ALTER_CONFIGS: "AlterConfigs",
    CREATE_PARTITIONS: "CreatePartitions",
    INCREMENTAL_ALTER_CONFIGS: "IncrementalAlterConfigs",
}


@dataclass(frozen=True)
class BrokerCapabilities:
    """Capabilities of one broker. ``missing(name)`` explains why a capability is absent."""

    label: str
    """How reasons name the broker, e.g. ``"embedded Tansu 0.6.0 broker"``."""
    kind: str
    api_versions: Mapping[int, tuple[int, int]] = field(repr=False)
    probe_failures: Mapping[str, str] = field(default_factory=dict)
    """Capability name -> why its functional probe failed although the API is advertised."""

    def supports(self, name: str) -> bool:
        """True when the broker has capability ``name`` (see :data:`CAPABILITIES`)."""
        return self.missing(name) is None

    def missing(self, name: str) -> str | None:
        """``None`` when supported, else the reason (naming the broker) it is not."""
        if name not in CAPABILITIES:
            raise ValueError(
                f"unknown broker capability {name!r}; known: {', '.join(CAPABILITIES)}"
            )
        if name == "log_compaction":
            if self.kind == "embedded":
                return f"{self.label} has no log cleaner: a compacted topic keeps every record"
            return None
        if name == "sasl":
            if self.kind == "embedded":
                return (
                    f"{self.label} cannot exercise SASL (with memory storage no SASL user can "
                    "be created); run against a real cluster via KAFKA_BOOTSTRAP_SERVERS"
                )
            return self._absent(SASL_HANDSHAKE)
        if name == "idempotent_producer":
            return self._absent(INIT_PRODUCER_ID) or self._probe(name)
        if name == "transactions":
            return (
                self._absent(INIT_PRODUCER_ID, ADD_PARTITIONS_TO_TXN, END_TXN)
                or self._probe("idempotent_producer")
                or self._probe(name)
            )
        if name == "acls":
            return self._absent(CREATE_ACLS, DESCRIBE_ACLS) or self._probe(name)
        if name == "alter_configs":
            reason = self._absent(ALTER_CONFIGS)
            if reason and INCREMENTAL_ALTER_CONFIGS in self.api_versions:
                reason += " (it has IncrementalAlterConfigs, which aiokafka cannot send)"
            return reason
        return self._absent(CREATE_PARTITIONS)

    def _absent(self, *keys: int) -> str | None:
        absent = [_API_NAMES[key] for key in keys if key not in self.api_versions]
        if not absent:
            return None
        return f"{self.label} has no {'/'.join(absent)} API"

    def _probe(self, name: str) -> str | None:
        failure = self.probe_failures.get(name)
        return f"{self.label} {failure}" if failure else None

    def summary(self) -> dict[str, str | None]:
        """Every capability name -> ``None`` (supported) or the reason it is missing."""
        return {name: self.missing(name) for name in CAPABILITIES}


class _HasCapabilities(Protocol):
    @property
    def capabilities(self) -> BrokerCapabilities: ...


def require_capability(broker: _HasCapabilities | BrokerCapabilities, name: str) -> None:
    """Skip the calling test (``pytest.skip``) with the reason when ``broker`` lacks ``name``."""
    import pytest

    caps = broker if isinstance(broker, BrokerCapabilities) else broker.capabilities
    reason = caps.missing(name)
    if reason is not None:
        pytest.skip(f"{CAPABILITY_SKIP_PREFIX} {name!r}: {reason}")


async def probe_capabilities(
    bootstrap_servers: str,
    *,
    kind: str,
    label: str,
    client_kwargs: Mapping[str, Any] | None = None,
    probe_timeout: float = 5.0,
) -> BrokerCapabilities:
    """Ask the broker for its API versions, then try the features brokers advertise but lack."""
    kwargs = dict(client_kwargs or {})
    first = bootstrap_servers.split(",")[0].strip()
    conn_kwargs = connect_kwargs(kwargs)
    versions = await fetch_api_versions(first, limit=probe_timeout, metadata=False, **conn_kwargs)
    failures: dict[str, str] = {}
    if INIT_PRODUCER_ID in versions:
        problem = await _probe_producer(bootstrap_servers, kwargs, probe_timeout)
        if problem:
            failures["idempotent_producer"] = (
                f"advertises InitProducerId but an idempotent producer fails to start ({problem})"
            )
        elif ADD_PARTITIONS_TO_TXN in versions and END_TXN in versions:
            problem = await _probe_producer(
                bootstrap_servers, kwargs, probe_timeout, transactional_id="coffeebuddy.probe"
            )
            if problem:
                failures["transactions"] = (
                    f"advertises the transaction APIs but a transactional producer fails to "
                    f"start ({problem})"
                )
    if CREATE_ACLS in versions and DESCRIBE_ACLS in versions:
        problem = await _probe_acls(
            first, conn_kwargs, probe_timeout, may_create=kind == "embedded"
        )
        if problem:
            failures["acls"] = problem
    return BrokerCapabilities(
        label=label, kind=kind, api_versions=versions, probe_failures=failures
    )


async def _probe_producer(
    bootstrap_servers: str,
    kwargs: Mapping[str, Any],
    limit: float,
    *,
    transactional_id: str | None = None,
) -> str | None:
    producer_kwargs = {
        key: value
        for key, value in kwargs.items()
        if key not in ("enable_idempotence", "acks", "request_timeout_ms")
    }
    producer_kwargs.setdefault("bootstrap_servers", bootstrap_servers)
    producer = AIOKafkaProducer(
        **producer_kwargs,
        enable_idempotence=True,
        acks="all",
        request_timeout_ms=int(limit * 1000),
        transactional_id=transactional_id,
    )
    try:
        with quiet_aiokafka():
            await asyncio.wait_for(producer.start(), limit)
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}".strip()
    finally:
        with quiet_aiokafka():
            await producer.stop()
    return None


async def _probe_acls(
    address: str, conn_kwargs: Mapping[str, Any], limit: float, *, may_create: bool
) -> str | None:
    from aiokafka.conn import create_conn

    host, port = split_address(address)
    conn = await create_conn(host, port, request_timeout_ms=int(limit * 1000), **conn_kwargs)
    try:
        with quiet_aiokafka():
            # resource ANY(1), pattern ANY(1), operation ANY(1), permission ANY(1)
            described = await asyncio.wait_for(
                conn.send(DescribeAclsRequest(1, None, 1, None, None, 1, 1)),
                limit,
            )
            if described.error_code != 0:
                return (
                    f"answers DescribeAcls with error {described.error_code} "
                    f"({described.error_message or 'no authorizer configured?'})"
                )
            if not may_create:
                return None
            # Only on a throwaway embedded broker: create one literal ACL to see CreateAcls work.
            created = await asyncio.wait_for(
                conn.send(CreateAclsRequest(2, "coffeebuddy.probe", 3, "User:probe", "*", 3, 3)),
                limit,
            )
            results = getattr(created, "creation_responses", None) or []
            codes = [result[0] for result in results]
            if any(codes):
                return f"answers CreateAcls with error {codes}"
    except Exception as exc:
        return (
            "has no working CreateAcls/DescribeAcls API (it advertises them, but a CreateAcls "
            f"request fails: {exc})"
        )
    finally:
        await close_conn(conn)
    return None
