"""Declarative topic, consumer-group and ACL catalog for CoffeeBuddy's Kafka slice.

No Kafka client is imported here: the catalog is plain typed data that the
producer, consumer, provisioning CLI and docs generator all read. The CloudEvents type
names belong to the models package (`coffeebuddy.infra.kafka.models.RUN_CREATED`, ...).
"""

from coffeebuddy.infra.kafka.topics._acl import (
    AclBinding,
    AclIdentity,
    ConsumerRole,
    LogReaderRole,
    ProducerRole,
    ServicePrincipal,
    acl_identity,
)
from coffeebuddy.infra.kafka.topics._catalog import (
    Catalog,
    ConsumerGroup,
    Environment,
    TopicConfig,
)
from coffeebuddy.infra.kafka.topics._compat import breaking_changes, catalog_snapshot
from coffeebuddy.infra.kafka.topics._definitions import (
    CATALOG,
    DLQ_REPLAYER_PRINCIPAL,
    DLQ_REPLAYS_TOPIC,
    REMINDER_EVENT_TYPES,
    REMINDER_EVENTS_DLQ_TOPIC,
    REMINDER_EVENTS_TOPIC,
    REMINDER_HISTORY_TOPIC,
    REMINDER_OPERATOR_PRINCIPAL,
    REMINDER_STATE_CHANGELOG_TOPIC,
    REMINDER_WORKER_GROUP,
    REMINDER_WORKER_PRINCIPAL,
    RUN_EVENT_TYPES,
    RUN_EVENTS_DLQ_TOPIC,
    RUN_EVENTS_TOPIC,
    SLACK_APP_PRINCIPAL,
    dead_letter_of,
)
from coffeebuddy.infra.kafka.topics._errors import TopicsError
from coffeebuddy.infra.kafka.topics._validate import (
    CatalogError,
    CatalogProblem,
    check_catalog,
    validate_catalog,
)
from coffeebuddy.infra.kafka.topics._version import __version__

__all__ = [
    "CATALOG",
    "DLQ_REPLAYER_PRINCIPAL",
    "DLQ_REPLAYS_TOPIC",
    "REMINDER_EVENTS_DLQ_TOPIC",
    "REMINDER_EVENTS_TOPIC",
    "REMINDER_EVENT_TYPES",
    "REMINDER_HISTORY_TOPIC",
    "REMINDER_OPERATOR_PRINCIPAL",
    "REMINDER_STATE_CHANGELOG_TOPIC",
    "REMINDER_WORKER_GROUP",
    "REMINDER_WORKER_PRINCIPAL",
    "RUN_EVENTS_DLQ_TOPIC",
    "RUN_EVENTS_TOPIC",
    "RUN_EVENT_TYPES",
    "SLACK_APP_PRINCIPAL",
    "AclBinding",
    "AclIdentity",
    "Catalog",
    "CatalogError",
    "CatalogProblem",
    "ConsumerGroup",
    "ConsumerRole",
    "Environment",
    "LogReaderRole",
    "ProducerRole",
    "ServicePrincipal",
    "TopicConfig",
    "TopicsError",
    "__version__",
    "acl_identity",
    "breaking_changes",
    "catalog_snapshot",
    "check_catalog",
    "dead_letter_of",
    "validate_catalog",
]
