"""Reading the worker's changelog and history for the operator commands.

Through the dlq tools' `KafkaTopicReader`: a group-less consumer that assigns partitions, reads
them from their start and commits nothing, so reading changes nothing on the cluster and needs
no group ACL. Kafka's refusals become `RemindersError`s naming the permission, the resource
and the principal.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, Collection, Iterator

from aiokafka.errors import (
    ClusterAuthorizationFailedError,
    GroupAuthorizationFailedError,
    TopicAuthorizationFailedError,
)

from coffeebuddy.infra.kafka.config import KafkaSettings
from coffeebuddy.infra.kafka.provision.dlq._errors import TopicMissingError
from coffeebuddy.infra.kafka.provision.dlq._reader import KafkaTopicReader, StoredRecord
from coffeebuddy.infra.kafka.provision.reminders._errors import RemindersError
from coffeebuddy.infra.kafka.provision.reminders._topics import OperatorTopics, partition_of
from coffeebuddy.infra.kafka.topics import REMINDER_OPERATOR_PRINCIPAL, TopicConfig

__all__ = ["OperatorReader", "principal_of", "refusals"]

CHANGELOG = "state changelog"
HISTORY = "reminder history topic"


def _grants() -> str:
    """`READ a, b and WRITE c (...)`: what the catalog grants the operator principal."""
    by_operation: dict[str, list[str]] = {}
    for binding in REMINDER_OPERATOR_PRINCIPAL.acl_bindings():
        if binding.resource_type == "TOPIC" and binding.operation in {"READ", "WRITE"}:
            by_operation.setdefault(binding.operation, []).append(binding.resource_name)
    said = " and ".join(
        f"{op} {', '.join(sorted(names))}" for op, names in sorted(by_operation.items())
    )
    return f"{said} (infra/kafka/<env>/acls.yaml; coffeebuddy-kafka plan/apply)"


_GRANTS = _grants()


def principal_of(settings: KafkaSettings) -> str:
    """The principal the broker sees for `settings` (SASL users are `User:<name>`)."""
    if settings.sasl_username:
        return f"User:{settings.sasl_username}"
    return "this client's principal (no SASL user: its TLS certificate's, or ANONYMOUS)"


@contextlib.contextmanager
def refusals(settings: KafkaSettings, operation: str, what: str, topic: str) -> Iterator[None]:
    """Turn Kafka's refusal of `operation` (READ, WRITE) on `topic` into an error naming the
    permission, the resource and the principal, and what grants it."""
    who = principal_of(settings)
    grant = f"the catalog's {REMINDER_OPERATOR_PRINCIPAL.name} may {_GRANTS}"
    try:
        yield
    except TopicMissingError as exc:
        raise RemindersError(
            f"{what} {topic!r} is not in the cluster's metadata: it does not exist "
            f"(coffeebuddy-kafka apply creates the catalog's topics), or {who} may not DESCRIBE "
            f"it ({grant})"
        ) from exc
    except TopicAuthorizationFailedError as exc:
        raise RemindersError(
            f"not authorized: {who} may not {operation} {what} {topic!r} "
            f"(TopicAuthorizationFailedError); {grant}"
        ) from exc
    except (GroupAuthorizationFailedError, ClusterAuthorizationFailedError) as exc:
        raise RemindersError(
            f"not authorized: {who} was refused {type(exc).__name__} while trying to "
            f"{operation} {what} {topic!r}: {exc}"
        ) from exc


class OperatorReader:
    """The changelog and history reads of `list`, `show` and `cancel` (and `list --watch`)."""

    def __init__(
        self, settings: KafkaSettings, topics: OperatorTopics, *, timeout: float = 30.0
    ) -> None:
        self.settings = settings
        self.topics = topics
        self._reader = KafkaTopicReader(settings, timeout=timeout)

    async def count(self, topic: TopicConfig, what: str) -> int:
        with refusals(self.settings, "DESCRIBE", what, topic.name):
            return await self._reader.partition_count(topic.name, what=what)

    async def read(
        self, topic: TopicConfig, what: str, partitions: Collection[int] | None = None
    ) -> list[StoredRecord]:
        with refusals(self.settings, "READ", what, topic.name):
            return await self._reader.read(topic.name, what=what, partitions=partitions)

    async def history_of(self, reminder_id: str) -> tuple[int, int, list[StoredRecord]]:
        """(partition, partition count, records of `reminder_id`): the one history partition the
        id maps to (the worker keys history records by reminder id), read to its end."""
        topic = self.topics.history
        count = await self.count(topic, HISTORY)
        partition = partition_of(reminder_id, count)
        key = reminder_id.encode()
        records = await self.read(topic, HISTORY, [partition])
        return partition, count, [r for r in records if r.key == key]

    async def follow_changelog(
        self, partitions: Collection[int] | None = None
    ) -> AsyncGenerator[list[StoredRecord] | None, None]:
        """The changelog from its start in batches; None once caught up, then new records (see
        `KafkaTopicReader.follow`)."""
        topic = self.topics.changelog
        with refusals(self.settings, "READ", CHANGELOG, topic.name):
            async with contextlib.aclosing(
                self._reader.follow(topic.name, what=CHANGELOG, partitions=partitions)
            ) as records:
                async for batch in records:
                    yield batch
