"""Role -> ACL expansion is exact and least-privilege; every binding says why it exists."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from coffeebuddy.infra.kafka.topics import (
    CATALOG,
    REMINDER_OPERATOR_PRINCIPAL,
    REMINDER_WORKER_GROUP,
    REMINDER_WORKER_PRINCIPAL,
    AclBinding,
    ConsumerRole,
    LogReaderRole,
    ProducerRole,
    ServicePrincipal,
    acl_identity,
)
from coffeebuddy.infra.kafka.topics._definitions import (
    REMINDER_EVENTS,
    REMINDER_HISTORY,
    REMINDER_STATE_CHANGELOG,
)


def _triples(bindings: list[AclBinding]) -> set[tuple[str, str, str]]:
    return {(b.resource_type, b.resource_name, b.operation) for b in bindings}


def test_producer_role_expands_to_write_and_describe_only() -> None:
    principal = ServicePrincipal(
        name="User:p", service="p", roles=(ProducerRole(topic="coffeebuddy.a.events"),)
    )
    bindings = principal.acl_bindings()
    assert _triples(bindings) == {
        ("TOPIC", "coffeebuddy.a.events", "WRITE"),
        ("TOPIC", "coffeebuddy.a.events", "DESCRIBE"),
    }
    assert all(b.pattern_type == "LITERAL" and b.permission == "ALLOW" for b in bindings)
    assert all(b.principal == "User:p" and b.host == "*" for b in bindings)
    assert {b.reason for b in bindings} == {"p: producer of coffeebuddy.a.events"}


def test_legacy_broker_and_transactional_producer() -> None:
    principal = ServicePrincipal(
        name="User:p",
        service="p",
        roles=(ProducerRole(topic="coffeebuddy.a.events", transactional_id="p-tx"),),
    )
    assert _triples(principal.acl_bindings(legacy_idempotent_write=True)) == {
        ("TOPIC", "coffeebuddy.a.events", "WRITE"),
        ("TOPIC", "coffeebuddy.a.events", "DESCRIBE"),
        ("CLUSTER", "kafka-cluster", "IDEMPOTENT_WRITE"),
        ("TRANSACTIONAL_ID", "p-tx", "WRITE"),
        ("TRANSACTIONAL_ID", "p-tx", "DESCRIBE"),
    }


def test_consumer_role_reads_topic_and_only_its_named_group() -> None:
    principal = ServicePrincipal(
        name="User:c", service="c", roles=(ConsumerRole(topic="coffeebuddy.a.events", group="g1"),)
    )
    bindings = principal.acl_bindings()
    assert _triples(bindings) == {
        ("TOPIC", "coffeebuddy.a.events", "READ"),
        ("TOPIC", "coffeebuddy.a.events", "DESCRIBE"),
        ("GROUP", "g1", "READ"),
    }
    assert bindings[0].reason == "c: consumer of coffeebuddy.a.events in group g1"


def test_log_reader_role_has_no_group() -> None:
    principal = ServicePrincipal(
        name="User:l", service="l", roles=(LogReaderRole(topic="coffeebuddy.a.log"),)
    )
    assert _triples(principal.acl_bindings()) == {
        ("TOPIC", "coffeebuddy.a.log", "READ"),
        ("TOPIC", "coffeebuddy.a.log", "DESCRIBE"),
    }


def test_shipped_catalog_expands_to_exactly_these_bindings() -> None:
    got = {
        (b.principal, b.resource_type, b.resource_name, b.operation) for b in CATALOG.acl_bindings()
    }
    run, rem = "coffeebuddy.run.events", "coffeebuddy.reminder.events"
    changelog = "coffeebuddy.reminder.state-changelog"
    history = "coffeebuddy.reminder.history"
    expected: set[tuple[str, str, str, str]] = set()

    def topic(principal: str, name: str, *ops: str) -> None:
        expected.update((principal, "TOPIC", name, op) for op in ops)

    topic("User:slack-app", run, "WRITE", "DESCRIBE")
    topic("User:slack-app", rem, "WRITE", "DESCRIBE")
    topic("User:reminder-worker", run, "READ", "DESCRIBE")
    topic("User:reminder-worker", rem, "READ", "DESCRIBE")
    topic("User:reminder-worker", run + ".dlq", "WRITE", "DESCRIBE")
    topic("User:reminder-worker", rem + ".dlq", "WRITE", "DESCRIBE")
    topic("User:reminder-worker", changelog, "WRITE", "READ", "DESCRIBE")
    topic("User:reminder-worker", history, "WRITE", "DESCRIBE")  # appends, never reads
    expected.add(("User:reminder-worker", "GROUP", "coffeebuddy.reminder-worker", "READ"))
    topic("User:dlq-replayer", run + ".dlq", "READ", "DESCRIBE")
    topic("User:dlq-replayer", rem + ".dlq", "READ", "DESCRIBE")
    topic("User:dlq-replayer", run, "WRITE", "DESCRIBE")
    topic("User:dlq-replayer", rem, "WRITE", "DESCRIBE")
    topic("User:dlq-replayer", "coffeebuddy.dlq.replays", "WRITE", "READ", "DESCRIBE")
    # No group for dlq-replayer: inspect/replay read by assignment (proven on Apache Kafka by
    # tests/test_least_privilege.py, which found the GROUP READ granted too widely).
    topic("User:reminder-operator", changelog, "READ", "DESCRIBE")
    topic("User:reminder-operator", history, "READ", "DESCRIBE")
    topic("User:reminder-operator", rem, "WRITE", "DESCRIBE")
    assert got == expected


def test_bindings_are_unique_sorted_literal_and_never_wildcard() -> None:
    bindings = CATALOG.acl_bindings()
    identities = [b.identity for b in bindings]
    assert len(identities) == len(set(identities))
    assert bindings == sorted(bindings, key=AclBinding.sort_key)
    assert all(b.resource_name != "*" and "*" not in b.resource_name for b in bindings)
    assert {b.pattern_type for b in bindings} == {"LITERAL"}
    assert {b.permission for b in bindings} == {"ALLOW"}


def test_shared_binding_keeps_every_reason() -> None:
    describe = next(
        b
        for b in CATALOG.acl_bindings()
        if b.principal == "User:reminder-worker"
        and b.resource_name == "coffeebuddy.reminder.state-changelog"
        and b.operation == "DESCRIBE"
    )
    assert describe.reason == (
        "reminder-worker: producer of coffeebuddy.reminder.state-changelog; "
        "reminder-worker: log reader of coffeebuddy.reminder.state-changelog "
        "(partition assignment, no group)"
    )


def test_reminder_operator_reads_state_and_history_and_writes_only_reminder_events() -> None:
    assert CATALOG.principal("User:reminder-operator") is REMINDER_OPERATOR_PRINCIPAL
    assert REMINDER_OPERATOR_PRINCIPAL.service == "reminder-operator"
    assert REMINDER_OPERATOR_PRINCIPAL.roles == (
        LogReaderRole(topic=REMINDER_STATE_CHANGELOG),
        LogReaderRole(topic=REMINDER_HISTORY),
        ProducerRole(topic=REMINDER_EVENTS),
    )
    bindings = [b for b in CATALOG.acl_bindings() if b.principal == "User:reminder-operator"]
    assert _triples(bindings) == {
        ("TOPIC", "coffeebuddy.reminder.state-changelog", "READ"),
        ("TOPIC", "coffeebuddy.reminder.state-changelog", "DESCRIBE"),
        ("TOPIC", "coffeebuddy.reminder.history", "READ"),
        ("TOPIC", "coffeebuddy.reminder.history", "DESCRIBE"),
        ("TOPIC", "coffeebuddy.reminder.events", "WRITE"),
        ("TOPIC", "coffeebuddy.reminder.events", "DESCRIBE"),
    }
    # `reminders list|show` read by assignment and commit nothing: no group of any name.
    assert not [b for b in bindings if b.resource_type == "GROUP"]
    # It publishes cancellations and nothing else: one topic written in every environment.
    for env in ("dev", "staging", "prod"):
        rendered = CATALOG.for_environment(env).principal("User:reminder-operator")
        written = {b.resource_name for b in rendered.acl_bindings() if b.operation == "WRITE"}
        assert written == {"coffeebuddy.reminder.events"}, env
    assert {b.reason for b in bindings if b.operation == "READ"} == {
        "reminder-operator: log reader of coffeebuddy.reminder.state-changelog "
        "(partition assignment, no group)",
        "reminder-operator: log reader of coffeebuddy.reminder.history "
        "(partition assignment, no group)",
    }


def test_reminder_worker_appends_to_its_history_without_reading_it() -> None:
    assert ProducerRole(topic=REMINDER_HISTORY) in REMINDER_WORKER_PRINCIPAL.roles
    assert LogReaderRole(topic=REMINDER_HISTORY) not in REMINDER_WORKER_PRINCIPAL.roles
    on_history = {
        b.operation
        for b in CATALOG.acl_bindings()
        if b.principal == "User:reminder-worker" and b.resource_name == REMINDER_HISTORY
    }
    assert on_history == {"WRITE", "DESCRIBE"}
    assert [p.name for p in CATALOG.producers_of(REMINDER_HISTORY)] == ["User:reminder-worker"]
    assert [p.name for p in CATALOG.consumers_of(REMINDER_HISTORY)] == ["User:reminder-operator"]


def test_principal_names_are_validated() -> None:
    with pytest.raises(ValidationError, match="name"):
        ServicePrincipal(name="reminder-worker", service="x", roles=())
    with pytest.raises(ValidationError, match="role"):
        ServicePrincipal.model_validate(
            {"name": "User:x", "service": "x", "roles": [{"role": "admin", "topic": "t"}]}
        )


def test_state_changelog_is_co_partitioned_with_the_worker_inputs_in_every_environment() -> None:
    """Input partition N's state goes to changelog partition N: same count everywhere."""
    for env in ("dev", "staging", "prod"):
        cat = CATALOG.for_environment(env)
        changelog = cat.topic(REMINDER_STATE_CHANGELOG)
        assert changelog.is_compacted
        for name in REMINDER_WORKER_GROUP.topics:
            assert cat.topic(name).partitions == changelog.partitions, (env, name)


def test_acl_identity_is_what_kafka_stores_in_protocol_order() -> None:
    binding = AclBinding(
        principal="User:x", resource_type="GROUP", resource_name="g", operation="READ", reason="r"
    )
    assert acl_identity(binding) == binding.identity
    assert binding.identity == ("User:x", "GROUP", "g", "LITERAL", "READ", "ALLOW", "*")
    assert acl_identity(binding.model_copy(update={"reason": "other"})) == binding.identity
