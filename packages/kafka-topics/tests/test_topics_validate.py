"""Offline validation: the shipped catalog passes everywhere, broken ones name each problem."""

from __future__ import annotations

import pytest

from coffeebuddy.infra.kafka.topics import (
    CATALOG,
    REMINDER_EVENTS_TOPIC,
    REMINDER_HISTORY_TOPIC,
    REMINDER_STATE_CHANGELOG_TOPIC,
    RUN_EVENTS_TOPIC,
    SLACK_APP_PRINCIPAL,
    Catalog,
    CatalogError,
    CatalogProblem,
    ConsumerGroup,
    ConsumerRole,
    Environment,
    ProducerRole,
    ServicePrincipal,
    TopicConfig,
    check_catalog,
    validate_catalog,
)
from coffeebuddy.infra.kafka.topics._catalog import ENVIRONMENTS


@pytest.mark.parametrize("env", sorted(ENVIRONMENTS))
def test_shipped_catalog_is_valid_in_every_environment(env: str) -> None:
    assert validate_catalog(CATALOG, env) == []
    assert validate_catalog(CATALOG.for_environment(env), ENVIRONMENTS[env]) == []
    check_catalog(CATALOG, env)


def _problems(catalog: Catalog, env: str = "prod") -> set[tuple[str, str]]:
    return {(p.where, p.rule) for p in validate_catalog(catalog, env)}


def _messages(catalog: Catalog, env: str = "prod") -> str:
    return "\n".join(str(p) for p in validate_catalog(catalog, env))


def _replace_topic(catalog: Catalog, topic_name: str, /, **update: object) -> Catalog:
    topics = tuple(
        t.model_copy(update=update) if t.name == topic_name else t for t in catalog.topics
    )
    return catalog.model_copy(update={"topics": topics})


def test_rendered_for_another_environment_is_reported() -> None:
    problems = validate_catalog(CATALOG.for_environment("dev"), "prod")
    assert (
        CatalogProblem(
            "catalog",
            "environment",
            "catalog was rendered for 'dev' but is validated for 'prod'",
        )
        in problems
    )


def test_naming_convention() -> None:
    bad = _replace_topic(CATALOG, RUN_EVENTS_TOPIC.name, name="CoffeeBuddy.Run.Events")
    problems = validate_catalog(bad, "prod")
    naming = [p for p in problems if p.rule == "naming"]
    assert len(naming) == 1
    assert naming[0].where == "topic CoffeeBuddy.Run.Events"
    assert "lowercase coffeebuddy.<domain>.<name>[.dlq]" in naming[0].message
    # The renamed topic leaves dangling references, each reported where it happens.
    assert ("group coffeebuddy.reminder-worker", "reference") in _problems(bad)
    assert ("principal User:slack-app", "reference") in _problems(bad)


def test_partitions_must_be_positive() -> None:
    # TopicConfig refuses 0 itself; model_construct bypasses it to prove the catalog rule too.
    broken = TopicConfig.model_construct(**{**RUN_EVENTS_TOPIC.__dict__, "partitions": 0})
    catalog = CATALOG.model_copy(update={"topics": (broken, *CATALOG.topics[1:])})
    assert "partitions must be > 0, got 0" in _messages(catalog)


def test_replication_factor_above_broker_count() -> None:
    tiny = Environment(name="tiny", broker_count=2, replication_factor=3, min_insync_replicas=2)
    problems = validate_catalog(CATALOG, tiny)
    assert len(problems) == len(CATALOG.topics)
    assert all(p.rule == "replication_factor" for p in problems)
    assert "replication_factor 3 exceeds the 2 broker(s) of tiny" in problems[0].message


def test_min_insync_replicas_must_leave_one_broker_spare() -> None:
    strict = Environment(name="strict", broker_count=3, replication_factor=3, min_insync_replicas=3)
    problems = validate_catalog(CATALOG, strict)
    assert {p.rule for p in problems} == {"min_insync_replicas"}
    assert "min.insync.replicas 3 must be <= replication_factor - 1 (2)" in problems[0].message


def test_retention_must_exceed_reminder_horizon_and_dlq_outlives_origin() -> None:
    short = _replace_topic(
        CATALOG,
        REMINDER_EVENTS_TOPIC.name,
        configs={**REMINDER_EVENTS_TOPIC.configs, "retention.ms": str(24 * 3600 * 1000)},
    )
    messages = _messages(short)
    assert "topic coffeebuddy.reminder.events: retention.ms 86400000 must exceed" in messages
    long_origin = _replace_topic(
        CATALOG,
        RUN_EVENTS_TOPIC.name,
        configs={**RUN_EVENTS_TOPIC.configs, "retention.ms": str(60 * 24 * 3600 * 1000)},
    )
    assert (
        "topic coffeebuddy.run.events.dlq: dead letters must be kept at least as long as "
        "coffeebuddy.run.events" in _messages(long_origin)
    )
    unset = {k: v for k, v in RUN_EVENTS_TOPIC.configs.items() if k != "retention.ms"}
    assert ("topic coffeebuddy.run.events", "retention") in _problems(
        _replace_topic(CATALOG, RUN_EVENTS_TOPIC.name, configs=unset)
    )


def test_unknown_config_key_is_flagged_as_typo() -> None:
    typo = _replace_topic(
        CATALOG, RUN_EVENTS_TOPIC.name, configs={**RUN_EVENTS_TOPIC.configs, "retention.msx": "1"}
    )
    assert "unknown topic config 'retention.msx' (typo?)" in _messages(typo)


def test_owner_producer_and_consumer_are_required() -> None:
    orphan = TopicConfig(
        name="coffeebuddy.team.events",
        partitions=3,
        replication_factor=3,
        key_field="run_id",
        event_types=frozenset({"coffeebuddy.team.created.v1"}),
        configs={"retention.ms": str(20 * 24 * 3600 * 1000), "min.insync.replicas": "2"},
    )
    problems = _problems(CATALOG.extend(topics=[orphan]))
    where = "topic coffeebuddy.team.events"
    assert {(where, "owner"), (where, "producer"), (where, "consumer")} <= problems
    unknown_owner = orphan.model_copy(update={"owner": "billing"})
    assert "owner 'billing' is not the service of any principal" in _messages(
        CATALOG.extend(topics=[unknown_owner])
    )


def test_log_is_compacted_or_time_retained_and_dead_letter_rules() -> None:
    rule = (
        "a log topic must be compacted (cleanup.policy=compact) or deleted by time "
        "(a finite retention.ms)"
    )
    where = f"topic {REMINDER_STATE_CHANGELOG_TOPIC.name}"
    kept_forever = _replace_topic(
        CATALOG,
        REMINDER_STATE_CHANGELOG_TOPIC.name,
        configs={"cleanup.policy": "delete", "retention.ms": "-1"},
    )
    assert f"{where}: {rule}" in _messages(kept_forever)
    no_retention = _replace_topic(
        CATALOG, REMINDER_STATE_CHANGELOG_TOPIC.name, configs={"cleanup.policy": "delete"}
    )
    assert {(where, "cleanup_policy"), (where, "retention")} <= _problems(no_retention)
    # A time-retained log (the history) is valid: delete with an explicit, finite retention.
    assert REMINDER_HISTORY_TOPIC.kind == "log"
    assert not REMINDER_HISTORY_TOPIC.is_compacted
    time_retained = _replace_topic(
        CATALOG,
        REMINDER_STATE_CHANGELOG_TOPIC.name,
        configs={"cleanup.policy": "delete", "retention.ms": str(20 * 86_400_000)},
    )
    assert validate_catalog(time_retained, "prod") == []
    # ... as long as the retention outlives the reminder horizon plus the outage allowance.
    short = _replace_topic(
        CATALOG,
        REMINDER_HISTORY_TOPIC.name,
        configs={**REMINDER_HISTORY_TOPIC.configs, "retention.ms": str(86_400_000)},
    )
    assert _problems(short) == {(f"topic {REMINDER_HISTORY_TOPIC.name}", "retention")}
    no_dlq = _replace_topic(CATALOG, RUN_EVENTS_TOPIC.name, dead_letter_topic=None)
    messages = _messages(no_dlq)
    assert (
        "coffeebuddy.run.events: a topic consumed by a group needs a dead_letter_topic" in messages
    )
    assert "coffeebuddy.run.events.dlq: no topic names this as its dead_letter_topic" in messages


def test_references_and_duplicates() -> None:
    ghost = ServicePrincipal(
        name="User:ghost",
        service="ghost",
        roles=(
            ConsumerRole(topic="coffeebuddy.ghost.events", group="coffeebuddy.ghost"),
            ConsumerRole(topic=RUN_EVENTS_TOPIC.name, group="coffeebuddy.reminder-worker-2"),
            ProducerRole(topic=RUN_EVENTS_TOPIC.name),
            ProducerRole(topic=RUN_EVENTS_TOPIC.name),
        ),
    )
    stray_group = ConsumerGroup(
        name="coffeebuddy.stray", owner="nobody", topics=("coffeebuddy.missing.events",)
    )
    broken = CATALOG.extend(
        topics=[RUN_EVENTS_TOPIC], groups=[stray_group], principals=[ghost]
    ).model_copy(update={"principals": (*CATALOG.principals, ghost, SLACK_APP_PRINCIPAL)})
    messages = _messages(broken)
    expected = [
        "topic coffeebuddy.run.events: topic 'coffeebuddy.run.events' is defined 2 times",
        "principal User:slack-app: principal 'User:slack-app' is defined 2 times",
        "principal User:ghost: role producer on 'coffeebuddy.run.events' is declared 2 times",
        "principal User:ghost: consumer role on 'coffeebuddy.ghost.events': "
        "topic is not in the catalog",
        "group 'coffeebuddy.ghost' is not in the catalog",
        "group 'coffeebuddy.reminder-worker-2' is not in the catalog",
        "group coffeebuddy.stray: topic 'coffeebuddy.missing.events' is not in the catalog",
        "group coffeebuddy.stray: owner 'nobody' is not the service of any principal",
        "group coffeebuddy.stray: no principal consumes in this group",
    ]
    for text in expected:
        assert text in messages


def test_consumer_role_group_must_list_the_topic() -> None:
    sneaky = ServicePrincipal(
        name="User:sneaky",
        service="slack-app",
        roles=(
            ConsumerRole(
                topic=REMINDER_STATE_CHANGELOG_TOPIC.name, group="coffeebuddy.reminder-worker"
            ),
        ),
    )
    assert "group 'coffeebuddy.reminder-worker' does not list this topic" in _messages(
        CATALOG.extend(principals=[sneaky])
    )


def test_check_catalog_raises_with_every_problem() -> None:
    strict = Environment(name="strict", broker_count=1, replication_factor=3, min_insync_replicas=3)
    with pytest.raises(CatalogError) as info:
        check_catalog(CATALOG, strict)
    error = info.value
    assert len(error.problems) == 2 * len(CATALOG.topics)
    assert str(error).startswith(f"catalog has {len(error.problems)} problem(s):")
    assert "topic coffeebuddy.run.events: replication_factor 3 exceeds" in str(error)
    assert isinstance(error, ValueError)
