"""Offline catalog validation: every rule a cluster or reviewer would otherwise catch late."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from coffeebuddy.infra.kafka.topics._acl import ConsumerRole
from coffeebuddy.infra.kafka.topics._catalog import (
    DLQ_SUFFIX,
    Catalog,
    Environment,
    TopicConfig,
    get_environment,
)
from coffeebuddy.infra.kafka.topics._definitions import (
    MAX_REMINDER_HORIZON,
    REMINDER_OUTAGE_ALLOWANCE,
)
from coffeebuddy.infra.kafka.topics._errors import TopicsError

_Report = Callable[[str, str, str], None]

TOPIC_NAME_PATTERN = re.compile(r"^coffeebuddy\.[a-z][a-z0-9-]*\.[a-z][a-z0-9_-]*(\.dlq)?$")
GROUP_NAME_PATTERN = re.compile(r"^coffeebuddy\.[a-z][a-z0-9-]*$")

KNOWN_TOPIC_CONFIGS = frozenset(
    {
        "cleanup.policy",
        "compression.type",
        "delete.retention.ms",
        "file.delete.delay.ms",
        "flush.messages",
        "flush.ms",
        "index.interval.bytes",
        "max.compaction.lag.ms",
        "max.message.bytes",
        "message.timestamp.type",
        "min.cleanable.dirty.ratio",
        "min.compaction.lag.ms",
        "min.insync.replicas",
        "retention.bytes",
        "retention.ms",
        "segment.bytes",
        "segment.index.bytes",
        "segment.jitter.ms",
        "segment.ms",
        "unclean.leader.election.enable",
    }
)
"""Topic-level configs the catalog may set; anything else is most likely a typo."""


@dataclass(frozen=True)
class CatalogProblem:
    """One broken rule: where (topic/group/principal), which rule, and what is wrong."""

    where: str
    rule: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message} [{self.rule}]"


class CatalogError(TopicsError, ValueError):
    """Raised by `check_catalog` with every problem found, not just the first."""

    def __init__(self, problems: list[CatalogProblem]) -> None:
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"catalog has {len(self.problems)} problem(s):\n{lines}")


def check_catalog(catalog: Catalog, environment: Environment | str) -> None:
    """Raise `CatalogError` when `validate_catalog` finds anything."""
    problems = validate_catalog(catalog, environment)
    if problems:
        raise CatalogError(problems)


def validate_catalog(catalog: Catalog, environment: Environment | str) -> list[CatalogProblem]:
    """All problems of `catalog` as deployed to `environment` (empty list: valid).

    A definition (`catalog.environment is None`) is rendered for the environment first.
    """
    env = get_environment(environment) if isinstance(environment, str) else environment
    problems: list[CatalogProblem] = []

    def report(where: str, rule: str, message: str) -> None:
        problems.append(CatalogProblem(where=where, rule=rule, message=message))

    if catalog.environment is None:
        catalog = catalog.for_environment(env)
    elif catalog.environment != env.name:
        report(
            "catalog",
            "environment",
            f"catalog was rendered for {catalog.environment!r} but is validated for {env.name!r}",
        )

    _check_duplicates(catalog, report)
    services = {p.service for p in catalog.principals}
    topics = {t.name: t for t in catalog.topics}
    for topic in catalog.topics:
        _check_topic(topic, catalog, env, topics, services, report)
    _check_groups(catalog, topics, services, report)
    _check_principals(catalog, topics, report)
    return problems


def _check_duplicates(catalog: Catalog, report: _Report) -> None:
    for kind, names in (
        ("topic", [t.name for t in catalog.topics]),
        ("group", [g.name for g in catalog.groups]),
        ("principal", [p.name for p in catalog.principals]),
    ):
        for name, count in sorted(Counter(names).items()):
            if count > 1:
                report(f"{kind} {name}", "duplicate", f"{kind} {name!r} is defined {count} times")
    for principal in catalog.principals:
        for role, count in Counter(principal.roles).items():
            if count > 1:
                report(
                    f"principal {principal.name}",
                    "duplicate",
                    f"role {role.role} on {role.topic!r} is declared {count} times",
                )


def _check_topic(
    topic: TopicConfig,
    catalog: Catalog,
    env: Environment,
    topics: dict[str, TopicConfig],
    services: set[str],
    report: _Report,
) -> None:
    where = f"topic {topic.name}"
    if not TOPIC_NAME_PATTERN.match(topic.name):
        report(
            where,
            "naming",
            "name must be lowercase coffeebuddy.<domain>.<name>[.dlq] "
            f"(pattern {TOPIC_NAME_PATTERN.pattern})",
        )
    if topic.partitions <= 0:
        report(where, "partitions", f"partitions must be > 0, got {topic.partitions}")
    rf = topic.replication_factor
    if rf > env.broker_count:
        report(
            where,
            "replication_factor",
            f"replication_factor {rf} exceeds the {env.broker_count} broker(s) of {env.name}",
        )
    _check_min_insync(topic, where, report)
    for key in sorted(topic.configs):
        if key not in KNOWN_TOPIC_CONFIGS:
            report(where, "config_key", f"unknown topic config {key!r} (typo?)")
    if not topic.owner.strip():
        report(where, "owner", "topic has no owner")
    elif topic.owner not in services:
        report(where, "owner", f"owner {topic.owner!r} is not the service of any principal")
    if not catalog.producers_of(topic):
        report(where, "producer", "no principal has a producer role on this topic")
    if not catalog.consumers_of(topic):
        report(where, "consumer", "no principal has a consumer or log-reader role on this topic")
    _check_kind(topic, catalog, topics, where, report)
    _check_retention(topic, catalog, where, report)


def _check_min_insync(topic: TopicConfig, where: str, report: _Report) -> None:
    raw = topic.configs.get("min.insync.replicas")
    if raw is None:
        return
    try:
        min_isr = int(raw)
    except ValueError:
        report(where, "min_insync_replicas", f"min.insync.replicas must be an integer, got {raw!r}")
        return
    rf = topic.replication_factor
    if min_isr < 1:
        report(where, "min_insync_replicas", f"min.insync.replicas must be >= 1, got {min_isr}")
    elif rf > 1 and min_isr > rf - 1:
        report(
            where,
            "min_insync_replicas",
            f"min.insync.replicas {min_isr} must be <= replication_factor - 1 ({rf - 1}) "
            "so one broker can be down without blocking producers",
        )
    elif rf == 1 and min_isr != 1:
        report(where, "min_insync_replicas", "min.insync.replicas must be 1 when RF is 1")


def _check_kind(
    topic: TopicConfig,
    catalog: Catalog,
    topics: dict[str, TopicConfig],
    where: str,
    report: _Report,
) -> None:
    is_dlq_name = topic.name.endswith(DLQ_SUFFIX)
    if topic.kind == "dead_letter":
        if not is_dlq_name:
            report(where, "dead_letter", f"dead-letter topic names end in {DLQ_SUFFIX!r}")
        if topic.dead_letter_topic is not None:
            report(where, "dead_letter", "a dead-letter topic has no dead-letter topic itself")
        if catalog.origin_of(topic) is None:
            report(where, "dead_letter", "no topic names this as its dead_letter_topic")
        return
    if is_dlq_name:
        report(where, "dead_letter", f"only dead-letter topics may end in {DLQ_SUFFIX!r}")
    if not topic.event_types:
        report(where, "event_types", "an events or log topic must allow at least one event type")
    if topic.kind == "log" and not topic.is_compacted and not _time_retained(topic):
        report(
            where,
            "cleanup_policy",
            "a log topic must be compacted (cleanup.policy=compact) or deleted by time "
            "(a finite retention.ms)",
        )
    grouped = any(
        isinstance(r, ConsumerRole) and r.topic == topic.name
        for p in catalog.principals
        for r in p.roles
    )
    dlq = topic.dead_letter_topic
    if dlq is None:
        if grouped:
            report(where, "dead_letter", "a topic consumed by a group needs a dead_letter_topic")
        return
    if dlq != topic.name + DLQ_SUFFIX:
        report(where, "dead_letter", f"dead_letter_topic must be {topic.name + DLQ_SUFFIX!r}")
    target = topics.get(dlq)
    if target is None:
        report(where, "reference", f"dead_letter_topic {dlq!r} is not in the catalog")
    elif target.kind != "dead_letter":
        report(where, "dead_letter", f"dead_letter_topic {dlq!r} is not of kind 'dead_letter'")


def _time_retained(topic: TopicConfig) -> bool:
    """Whether `topic` sets an explicit, finite `retention.ms` (a log that is not compacted
    must end its records by time; the retention rule checks how long)."""
    raw = topic.configs.get("retention.ms")
    return raw is not None and raw.strip() != "-1"


def _check_retention(topic: TopicConfig, catalog: Catalog, where: str, report: _Report) -> None:
    if topic.is_compacted:
        return
    needed = MAX_REMINDER_HORIZON + REMINDER_OUTAGE_ALLOWANCE
    raw = topic.configs.get("retention.ms")
    if raw is None:
        report(where, "retention", "retention.ms must be set explicitly on a delete topic")
        return
    try:
        retention_ms = int(raw)
    except ValueError:
        report(where, "retention", f"retention.ms must be an integer, got {raw!r}")
        return
    if retention_ms == -1:
        return
    if retention_ms <= needed.total_seconds() * 1000:
        report(
            where,
            "retention",
            f"retention.ms {retention_ms} must exceed the longest reminder horizon plus outage "
            f"allowance ({int(needed.total_seconds() * 1000)} ms = {needed.days} days)",
        )
    origin = catalog.origin_of(topic) if topic.kind == "dead_letter" else None
    origin_retention = None if origin is None else origin.retention
    if origin is not None and origin_retention is not None:
        origin_ms = int(origin_retention.total_seconds() * 1000)
        if retention_ms < origin_ms:
            report(
                where,
                "retention",
                f"dead letters must be kept at least as long as {origin.name} ({origin_ms} ms)",
            )


def _check_groups(
    catalog: Catalog, topics: dict[str, TopicConfig], services: set[str], report: _Report
) -> None:
    for group in catalog.groups:
        where = f"group {group.name}"
        if not GROUP_NAME_PATTERN.match(group.name):
            report(
                where,
                "naming",
                f"group name must be lowercase coffeebuddy.<service> "
                f"({GROUP_NAME_PATTERN.pattern})",
            )
        if group.owner not in services:
            report(where, "owner", f"owner {group.owner!r} is not the service of any principal")
        if not group.topics:
            report(where, "reference", "group subscribes to no topic")
        for name in group.topics:
            if name not in topics:
                report(where, "reference", f"topic {name!r} is not in the catalog")
        members = [
            p
            for p in catalog.principals
            if any(isinstance(r, ConsumerRole) and r.group == group.name for r in p.roles)
        ]
        if not members:
            report(where, "consumer", "no principal consumes in this group")


def _check_principals(catalog: Catalog, topics: dict[str, TopicConfig], report: _Report) -> None:
    groups = {g.name: g for g in catalog.groups}
    for principal in catalog.principals:
        where = f"principal {principal.name}"
        if not principal.roles:
            report(where, "roles", "principal has no role")
        for role in principal.roles:
            label = f"{role.role} role on {role.topic!r}"
            if role.topic not in topics:
                report(where, "reference", f"{label}: topic is not in the catalog")
            if isinstance(role, ConsumerRole):
                group = groups.get(role.group)
                if group is None:
                    report(
                        where, "reference", f"{label}: group {role.group!r} is not in the catalog"
                    )
                elif role.topic not in group.topics:
                    report(
                        where,
                        "reference",
                        f"{label}: group {role.group!r} does not list this topic",
                    )
