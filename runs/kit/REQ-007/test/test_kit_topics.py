"""KIT: the topic catalog as a client sees it (public API of the topics package only)."""

from __future__ import annotations

import pytest

from coffeebuddy.infra.kafka.topics import (
    CATALOG,
    REMINDER_EVENTS_TOPIC,
    REMINDER_STATE_CHANGELOG_TOPIC,
    REMINDER_WORKER_GROUP,
    RUN_EVENTS_TOPIC,
    CatalogError,
    ConsumerRole,
    ProducerRole,
    ServicePrincipal,
    TopicConfig,
    check_catalog,
    validate_catalog,
)


@pytest.mark.parametrize("env", ["dev", "staging", "prod"])
def test_kit_shipped_catalog_validates_offline(env: str) -> None:
    assert validate_catalog(CATALOG, env) == []
    rendered = CATALOG.for_environment(env)
    assert rendered.topic("coffeebuddy.run.events").key_field == "run_id"


def test_kit_topics_groups_and_dead_letters() -> None:
    assert CATALOG.dead_letter_for(RUN_EVENTS_TOPIC).name == "coffeebuddy.run.events.dlq"
    assert CATALOG.dead_letter_for(REMINDER_EVENTS_TOPIC).name == "coffeebuddy.reminder.events.dlq"
    assert REMINDER_STATE_CHANGELOG_TOPIC.is_compacted
    assert REMINDER_STATE_CHANGELOG_TOPIC.key_field == "state_key"
    assert REMINDER_WORKER_GROUP.name == "coffeebuddy.reminder-worker"
    assert RUN_EVENTS_TOPIC.allows("coffeebuddy.run.closed.v1")
    assert not RUN_EVENTS_TOPIC.allows("coffeebuddy.reminder.scheduled.v1")


def test_kit_acls_are_least_privilege_and_explained() -> None:
    bindings = [b for b in CATALOG.acl_bindings() if b.principal == "User:slack-app"]
    assert {(b.resource_name, b.operation) for b in bindings} == {
        ("coffeebuddy.run.events", "WRITE"),
        ("coffeebuddy.run.events", "DESCRIBE"),
        ("coffeebuddy.reminder.events", "WRITE"),
        ("coffeebuddy.reminder.events", "DESCRIBE"),
    }
    assert all(b.reason.startswith("slack-app: producer of ") for b in bindings)


def test_kit_extending_the_catalog_is_validated() -> None:
    team_events = TopicConfig(
        name="coffeebuddy.team.events",
        partitions=6,
        replication_factor=3,
        configs={"retention.ms": str(14 * 86_400_000), "min.insync.replicas": "2"},
        key_field="team_id",
        event_types=frozenset({"coffeebuddy.team.created.v1"}),
        owner="slack-app",
        description="Team settings.",
        dead_letter_topic="coffeebuddy.team.events.dlq",
    )
    stats = ServicePrincipal(
        name="User:stats",
        service="stats",
        roles=(ConsumerRole(topic=team_events.name, group="coffeebuddy.stats"),),
    )
    writer = ServicePrincipal(
        name="User:slack-app", service="slack-app", roles=(ProducerRole(topic=team_events.name),)
    )
    extended = CATALOG.extend(topics=[team_events], principals=[writer, stats])
    messages = [str(p) for p in validate_catalog(extended, "prod")]
    assert (
        "topic coffeebuddy.team.events: dead_letter_topic 'coffeebuddy.team.events.dlq' "
        "is not in the catalog [reference]" in messages
    )
    assert (
        "principal User:stats: consumer role on 'coffeebuddy.team.events': "
        "group 'coffeebuddy.stats' is not in the catalog [reference]" in messages
    )
    with pytest.raises(CatalogError, match=r"coffeebuddy\.team\.events"):
        check_catalog(extended, "prod")
