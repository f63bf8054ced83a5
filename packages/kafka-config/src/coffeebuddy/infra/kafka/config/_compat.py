"""The one place that touches aiokafka's private attributes, for the versions in ``AIOKAFKA_RANGE``.

Each helper names the aiokafka behaviour it works around. ``tests/test_config_compat.py`` pins the
range and checks every attribute used here on real aiokafka objects, so an upgrade that moves one
fails there, not in production.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from aiokafka.protocol.metadata import MetadataRequest

__all__ = [
    "AIOKAFKA_RANGE",
    "EMBEDDED_CLUSTER_ID",
    "abandon_consumer",
    "abandon_producer",
    "admin_send",
    "cluster_id",
    "leave_group_from_generation_zero",
    "topic_partitions",
]

#: The aiokafka versions these helpers are written and tested for (the packages' requirement).
AIOKAFKA_RANGE = ">=0.14,<0.15"
#: The cluster id the embedded Tansu broker reports (used to scope its workarounds).
EMBEDDED_CLUSTER_ID = "tansu_cluster"


async def cluster_id(client: Any, *, limit: float = 5.0) -> str | None:
    """The cluster id from a Metadata answer through an aiokafka client's connection.

    ``client`` is an ``AIOKafkaConsumer``, ``AIOKafkaProducer`` or ``AIOKafkaAdminClient``;
    ``None`` when no broker answers in time.
    """
    inner = getattr(client, "_client", None) or getattr(client, "client", None)
    if inner is None:
        return None
    try:
        node = inner.get_random_node()
        # No topics asked for (an empty list from v1 on); the version is negotiated.
        response = await asyncio.wait_for(inner.send(node, MetadataRequest([])), limit)
    except Exception:
        return None
    value = getattr(response, "cluster_id", None)
    return str(value) if value is not None else None


def leave_group_from_generation_zero(consumer: Any) -> bool:
    """Let ``consumer.stop()`` send LeaveGroup although the group is in generation 0.

    Only for the embedded Tansu broker (check :func:`cluster_id`): it numbers the first generation
    0, Kafka numbers it 1, and aiokafka sends LeaveGroup only for ``generation > 0``; without
    LeaveGroup the next member waits out this one's session timeout. True when it applied.
    """
    coordinator = getattr(consumer, "_coordinator", None)
    if getattr(coordinator, "generation", None) == 0 and getattr(coordinator, "member_id", ""):
        coordinator.generation = 1  # type: ignore[union-attr]
        return True
    return False


async def abandon_consumer(consumer: Any, *, limit: float = 0.5) -> None:
    """Close the connections of a consumer whose ``stop()`` hangs on a lost coordinator
    (aiokafka#659)."""
    client = getattr(consumer, "_client", None)
    if client is not None:
        with contextlib.suppress(Exception, TimeoutError):
            await asyncio.wait_for(client.close(), timeout=limit)


async def abandon_producer(producer: Any, *, limit: float = 1.0) -> None:
    """Cut the sender and connections of a producer whose ``stop()`` waits for a gone broker.

    aiokafka's ``stop()`` waits for the sender to drain, up to ``request_timeout_ms``.
    """
    sender = getattr(producer, "_sender", None)
    sender_task = getattr(sender, "sender_task", None)
    if isinstance(sender_task, asyncio.Task):
        sender_task.cancel()
    client = getattr(producer, "client", None)
    if client is not None:
        with contextlib.suppress(Exception, TimeoutError):
            await asyncio.wait_for(client.close(), timeout=limit)


async def topic_partitions(client: Any, topic: str) -> set[int]:
    """The partition numbers of ``topic`` from fresh metadata (empty when it does not exist).

    A consumer without a subscription asks Apache Kafka for no topics, so its own
    ``partitions_for_topic`` knows none; Tansu happens to answer with every topic.
    """
    inner = getattr(client, "_client", None) or getattr(client, "client", None)
    if inner is None:
        raise TypeError(f"{type(client).__name__} is not an aiokafka client")
    cluster = await inner.fetch_all_metadata()
    return set(cluster.partitions_for_topic(topic) or ())


async def admin_send(admin: Any, request: Any, *, node_id: int | None = None) -> Any:
    """Send a protocol request aiokafka's admin client has no method for (e.g. CreateAcls)."""
    client = admin._client
    node = client.get_random_node() if node_id is None else node_id
    return await client.send(node, request)
