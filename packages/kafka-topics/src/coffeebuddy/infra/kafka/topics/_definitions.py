"""The shipped catalog: CoffeeBuddy's run, reminder and DLQ topics, groups and principals.

Entries are only ever added: names, key rules and event types are a contract
checked against a golden file by the tests.
"""

from __future__ import annotations

from datetime import timedelta

import coffeebuddy.infra.kafka.models as models  # the event contract owns the type names
from coffeebuddy.infra.kafka.topics._acl import (
    ConsumerRole,
    LogReaderRole,
    ProducerRole,
    ServicePrincipal,
)
from coffeebuddy.infra.kafka.topics._catalog import (
    DLQ_SUFFIX,
    Catalog,
    ConsumerGroup,
    TopicConfig,
    _ms,
)

RUN_EVENT_TYPES = frozenset(
    {
        models.RUN_CREATED,
        models.RUN_ORDER_ADDED,
        models.RUN_RUNNER_ASSIGNED,
        models.RUN_CLOSED,
        models.RUN_CANCELLED,
    }
)
REMINDER_EVENT_TYPES = frozenset({models.REMINDER_SCHEDULED, models.REMINDER_CANCELLED})

MAX_REMINDER_HORIZON = timedelta(days=7)
"""Longest time between scheduling a reminder and its due time."""
REMINDER_OUTAGE_ALLOWANCE = timedelta(days=3)
"""Longest outage of the reminder worker the retention must survive."""
EVENTS_RETENTION = timedelta(days=14)
DEAD_LETTER_RETENTION = timedelta(days=30)
REMINDER_HISTORY_RETENTION = timedelta(days=14)
"""How long `coffeebuddy-kafka reminders show` can tell a reminder's story after it settled."""

RUN_EVENTS = "coffeebuddy.run.events"
REMINDER_EVENTS = "coffeebuddy.reminder.events"
RUN_EVENTS_DLQ = RUN_EVENTS + DLQ_SUFFIX
REMINDER_EVENTS_DLQ = REMINDER_EVENTS + DLQ_SUFFIX
REMINDER_STATE_CHANGELOG = "coffeebuddy.reminder.state-changelog"
REMINDER_HISTORY = "coffeebuddy.reminder.history"
DLQ_REPLAYS = "coffeebuddy.dlq.replays"

SLACK_APP = "slack-app"
REMINDER_WORKER = "reminder-worker"
DLQ_REPLAYER = "dlq-replayer"
REMINDER_OPERATOR = "reminder-operator"

_PROD_PARTITIONS = 12
_DLQ_PARTITIONS = 3
_REPLICATION = 3
_MIN_INSYNC = "2"

_EVENTS_CONFIGS = {
    "cleanup.policy": "delete",
    "retention.ms": _ms(EVENTS_RETENTION),
    "min.insync.replicas": _MIN_INSYNC,
    "max.message.bytes": "1048576",
}
_DLQ_CONFIGS = {
    "cleanup.policy": "delete",
    "retention.ms": _ms(DEAD_LETTER_RETENTION),
    "min.insync.replicas": _MIN_INSYNC,
    # Dead letters keep the original bytes plus headers; allow some headroom.
    "max.message.bytes": "2097152",
}

RUN_EVENTS_TOPIC = TopicConfig(
    name=RUN_EVENTS,
    partitions=_PROD_PARTITIONS,
    replication_factor=_REPLICATION,
    configs=_EVENTS_CONFIGS,
    key_field="run_id",
    event_types=RUN_EVENT_TYPES,
    owner=SLACK_APP,
    description="Lifecycle of coffee runs; keyed by run_id so one run's events stay in order.",
    dead_letter_topic=RUN_EVENTS_DLQ,
    kind="events",
)

REMINDER_EVENTS_TOPIC = TopicConfig(
    name=REMINDER_EVENTS,
    partitions=_PROD_PARTITIONS,
    replication_factor=_REPLICATION,
    configs=_EVENTS_CONFIGS,
    key_field="run_id",
    event_types=REMINDER_EVENT_TYPES,
    owner=SLACK_APP,
    description=(
        "Reminders to schedule or cancel; keyed by run_id so they stay ordered with the run."
    ),
    dead_letter_topic=REMINDER_EVENTS_DLQ,
    kind="events",
)


def _dead_letter_topic(source: str) -> TopicConfig:
    """The dead-letter topic of event topic ``source`` (every DLQ is shaped the same)."""
    return TopicConfig(
        name=source + DLQ_SUFFIX,
        partitions=_DLQ_PARTITIONS,
        replication_factor=_REPLICATION,
        configs=_DLQ_CONFIGS,
        key_field="run_id",
        owner=REMINDER_WORKER,
        description=(
            f"Records of {source} a consumer could not process; original key, "
            "value and headers plus coffeebuddy.dlq.* headers. Any payload."
        ),
        kind="dead_letter",
    )


RUN_EVENTS_DLQ_TOPIC = _dead_letter_topic(RUN_EVENTS)
REMINDER_EVENTS_DLQ_TOPIC = _dead_letter_topic(REMINDER_EVENTS)
_DEAD_LETTER_TOPICS = {t.name: t for t in (RUN_EVENTS_DLQ_TOPIC, REMINDER_EVENTS_DLQ_TOPIC)}


def dead_letter_of(topic: TopicConfig) -> TopicConfig:
    """The dead-letter topic of `topic`: the catalog's own for a catalog topic, else one shaped
    as every dead-letter topic of the catalog. KeyError when `topic` has none."""
    name = topic.dead_letter_topic
    if name is None:
        raise KeyError(f"topic {topic.name!r} has no dead-letter topic")
    known = _DEAD_LETTER_TOPICS.get(name)
    return (
        known
        if known is not None
        else _dead_letter_topic(topic.name).model_copy(update={"name": name})
    )


REMINDER_STATE_CHANGELOG_TOPIC = TopicConfig(
    name=REMINDER_STATE_CHANGELOG,
    # co-partitioned with the reminder and run event topics: state from input partition N is
    # written to changelog partition N, and the owner of input partition N restores it from there
    partitions=_PROD_PARTITIONS,
    replication_factor=_REPLICATION,
    configs={
        "cleanup.policy": "compact",
        "min.insync.replicas": _MIN_INSYNC,
        # tombstones of settled reminders must outlive a restore in progress
        "delete.retention.ms": _ms(timedelta(days=1)),
        "min.compaction.lag.ms": _ms(timedelta(minutes=10)),
        "segment.ms": _ms(timedelta(hours=6)),
    },
    key_field="state_key",
    event_types=frozenset({models.REMINDER_STATE}),
    owner=REMINDER_WORKER,
    description=(
        "The reminder worker's schedule state (scheduled / cancelled / claimed / sent / dropped "
        "per reminder_id, closed / cancelled per run), compacted, co-partitioned with "
        "coffeebuddy.reminder.events (state of input partition N in partition N); restored by "
        "the owner of a partition before it processes, so input offsets commit at once."
    ),
    kind="log",
)

REMINDER_HISTORY_TOPIC = TopicConfig(
    name=REMINDER_HISTORY,
    partitions=_PROD_PARTITIONS,
    replication_factor=_REPLICATION,
    configs={
        "cleanup.policy": "delete",
        "retention.ms": _ms(REMINDER_HISTORY_RETENTION),
        "min.insync.replicas": _MIN_INSYNC,
    },
    key_field="state_key",
    event_types=frozenset({models.REMINDER_STATE}),
    owner=REMINDER_WORKER,
    description=(
        "Audit trail of the reminder worker: a copy of every reminder state record (scheduled, "
        "claimed, sent, dropped, cancelled, dead-lettered), keyed by reminder id, kept 14 days "
        "by time: it outlives the changelog's tombstones. Read by `reminders show`."
    ),
    kind="log",
)

DLQ_REPLAYS_TOPIC = TopicConfig(
    name=DLQ_REPLAYS,
    partitions=1,
    replication_factor=_REPLICATION,
    configs={
        # Compacted to one marker per dead letter; deleted with the dead letters themselves.
        "cleanup.policy": "compact,delete",
        "retention.ms": _ms(DEAD_LETTER_RETENTION),
        "min.insync.replicas": _MIN_INSYNC,
    },
    key_field="ref",
    event_types=frozenset({models.DLQ_REPLAYED}),
    owner=DLQ_REPLAYER,
    description=(
        "DLQ replay ledger: one coffeebuddy.dlq.replayed.v1 marker per replayed dead letter "
        "(key <dlq>/<partition>/<offset>@<timestamp ms>), read back so a replay sends it once."
    ),
    kind="log",
)

REMINDER_WORKER_GROUP = ConsumerGroup(
    name="coffeebuddy.reminder-worker",
    owner=REMINDER_WORKER,
    topics=(RUN_EVENTS, REMINDER_EVENTS),
    description="Reminder worker: schedules DMs from reminder events, drops them on run changes.",
)

SLACK_APP_PRINCIPAL = ServicePrincipal(
    name="User:slack-app",
    service=SLACK_APP,
    roles=(ProducerRole(topic=RUN_EVENTS), ProducerRole(topic=REMINDER_EVENTS)),
    description="The Slack app: publishes run lifecycle and reminder events.",
)

REMINDER_WORKER_PRINCIPAL = ServicePrincipal(
    name="User:reminder-worker",
    service=REMINDER_WORKER,
    roles=(
        ConsumerRole(topic=RUN_EVENTS, group=REMINDER_WORKER_GROUP.name),
        ConsumerRole(topic=REMINDER_EVENTS, group=REMINDER_WORKER_GROUP.name),
        ProducerRole(topic=RUN_EVENTS_DLQ),
        ProducerRole(topic=REMINDER_EVENTS_DLQ),
        ProducerRole(topic=REMINDER_STATE_CHANGELOG),
        LogReaderRole(topic=REMINDER_STATE_CHANGELOG),
        ProducerRole(topic=REMINDER_HISTORY),
    ),
    description=(
        "Reminder worker: consumes run and reminder events, writes DLQs, its state changelog "
        "and its history."
    ),
)

REMINDER_OPERATOR_PRINCIPAL = ServicePrincipal(
    name="User:reminder-operator",
    service=REMINDER_OPERATOR,
    roles=(
        # `reminders list|show` read by assignment and commit nothing: no group ACL
        LogReaderRole(topic=REMINDER_STATE_CHANGELOG),
        LogReaderRole(topic=REMINDER_HISTORY),
        # `reminders cancel` publishes the catalog's reminder.cancelled event
        ProducerRole(topic=REMINDER_EVENTS),
    ),
    description=(
        "Operators of the reminder worker (`coffeebuddy-kafka reminders list|show|cancel`): "
        "read its state and history, publish cancellations; nothing else."
    ),
)

DLQ_REPLAYER_PRINCIPAL = ServicePrincipal(
    name="User:dlq-replayer",
    service=DLQ_REPLAYER,
    roles=(
        # `dlq inspect|replay` read dead letters by assignment and commit nothing: no group
        # ACL (found on Apache Kafka: a GROUP READ here let it join a group it never uses).
        LogReaderRole(topic=RUN_EVENTS_DLQ),
        LogReaderRole(topic=REMINDER_EVENTS_DLQ),
        ProducerRole(topic=RUN_EVENTS),
        ProducerRole(topic=REMINDER_EVENTS),
        ProducerRole(topic=DLQ_REPLAYS),
        LogReaderRole(topic=DLQ_REPLAYS),
    ),
    description=(
        "Operator DLQ replay: reads dead letters, re-publishes them to the origin topic, "
        "records each in the replay ledger."
    ),
)

CATALOG = Catalog(
    topics=(
        RUN_EVENTS_TOPIC,
        REMINDER_EVENTS_TOPIC,
        RUN_EVENTS_DLQ_TOPIC,
        REMINDER_EVENTS_DLQ_TOPIC,
        DLQ_REPLAYS_TOPIC,
        REMINDER_STATE_CHANGELOG_TOPIC,
        REMINDER_HISTORY_TOPIC,
    ),
    groups=(REMINDER_WORKER_GROUP,),
    principals=(
        SLACK_APP_PRINCIPAL,
        REMINDER_WORKER_PRINCIPAL,
        DLQ_REPLAYER_PRINCIPAL,
        REMINDER_OPERATOR_PRINCIPAL,
    ),
)
"""The catalog definition (prod sizing); `CATALOG.for_environment(env)` renders dev/staging/prod."""
