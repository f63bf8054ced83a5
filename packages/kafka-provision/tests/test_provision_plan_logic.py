"""Pure planning rules: risk ratings, ownership, normalised config diffs, plan files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from coffeebuddy.infra.kafka.provision import Plan, PlanFileError
from coffeebuddy.infra.kafka.provision._diff import diff
from coffeebuddy.infra.kafka.provision._normalize import ConfigValueError, normalize_config_value
from coffeebuddy.infra.kafka.provision._types import (
    AclSpec,
    ConfigValue,
    DesiredState,
    DesiredTopic,
    ObservedState,
    ObservedTopic,
)

FULL = {29: (0, 3), 30: (0, 3), 31: (0, 3), 32: (0, 4), 33: (0, 2), 37: (0, 3)}
WRITE = AclSpec("User:api", "TOPIC", "app.orders", "WRITE", reason="api: producer of app.orders")


def desired(*topics: DesiredTopic, acls: tuple[AclSpec, ...] = ()) -> DesiredState:
    return DesiredState("dev", topics, acls, managed_prefixes=("app.",))


def observed(
    *topics: ObservedTopic,
    acls: tuple[AclSpec, ...] | None = (),
    apis: dict[int, tuple[int, int]] | None = None,
    acl_problem: str | None = None,
) -> ObservedState:
    return ObservedState(
        cluster_id="c1",
        topics={t.name: t for t in topics},
        acls=acls,
        api_versions=FULL if apis is None else apis,
        acl_problem=acl_problem,
    )


def orders(
    partitions: int = 3, key: str = "run_id", configs: dict[str, str] | None = None
) -> DesiredTopic:
    return DesiredTopic("app.orders", partitions, 1, configs or {}, key_field=key)


def live(
    name: str = "app.orders", partitions: int = 3, rf: int = 1, **configs: str
) -> ObservedTopic:
    return ObservedTopic(
        name,
        partitions,
        rf,
        {k.replace("_", "."): ConfigValue(v, True) for k, v in configs.items()},
    )


def test_missing_topic_is_a_safe_create() -> None:
    plan = diff(desired(orders()), observed())
    assert [(c.action, c.risk, c.blocked) for c in plan.changes] == [("create", "safe", None)]


def test_normalised_equal_values_and_broker_defaults_make_no_noise() -> None:
    want = orders(configs={"retention.ms": normalize_config_value("retention.ms", "7d")})
    have = ObservedTopic(
        "app.orders",
        3,
        1,
        {
            "retention.ms": ConfigValue("604800000", True),
            "segment.bytes": ConfigValue("1073741824", False),  # broker default, not in catalog
            "cleanup.policy": ConfigValue("delete", False),
        },
    )
    assert diff(desired(want), observed(have)).changes == ()


def test_config_difference_is_an_update_of_only_catalog_keys() -> None:
    plan = diff(
        desired(orders(configs={"max.message.bytes": "2097152"})),
        observed(live(max_message_bytes="1048576", retention_ms="1")),
    )
    (change,) = plan.changes
    assert change.action == "update_config"
    assert change.risk == "safe"
    assert [d["key"] for d in change.details["diff"]] == ["max.message.bytes"]


def test_shorter_retention_is_destructive_and_needs_its_flag() -> None:
    want = desired(orders(configs={"retention.ms": "3600000"}))
    have = observed(live(retention_ms="604800000"))
    (change,) = diff(want, have).changes
    assert change.risk == "destructive"
    assert change.blocked is not None
    assert "--allow-destructive" in change.blocked
    (allowed,) = diff(want, have, allow_destructive=True).changes
    assert allowed.blocked is None


def test_more_partitions_on_a_keyed_topic_is_disruptive_unkeyed_is_safe() -> None:
    (keyed,) = diff(desired(orders(6)), observed(live(partitions=3))).changes
    assert (keyed.action, keyed.risk) == ("add_partitions", "disruptive")
    assert "keys move" in keyed.summary
    (unkeyed,) = diff(desired(orders(6, key="")), observed(live(partitions=3))).changes
    assert unkeyed.risk == "safe"


def test_partition_decrease_and_replication_change_are_impossible() -> None:
    plan = diff(desired(orders(3)), observed(live(partitions=6, rf=3)))
    assert sorted(c.id for c in plan.changes) == [
        "topic/app.orders/partitions",
        "topic/app.orders/replication",
    ]
    assert {c.risk for c in plan.changes} == {"impossible"}
    assert all(c.blocked for c in plan.changes)


def test_missing_broker_apis_block_config_and_partition_changes_with_their_names() -> None:
    plan = diff(
        desired(orders(6, configs={"retention.ms": "1000"})),
        observed(live(partitions=3, retention_ms="2000"), apis={32: (0, 4)}),
        allow_destructive=True,
    )
    blocked = {c.action: c.blocked for c in plan.changes}
    assert blocked["add_partitions"] == "broker does not support CreatePartitions (API key 37)"
    assert blocked["update_config"] == "broker does not support AlterConfigs (API key 33)"


def test_unknown_configs_are_a_note_not_drift() -> None:
    have = ObservedTopic("app.orders", 3, 1, None)
    plan = diff(desired(orders(configs={"retention.ms": "1"})), observed(have))
    assert plan.changes == ()
    assert any("unknown" in note and "DescribeConfigs" in note for note in plan.notes)


def test_only_owned_topics_can_be_deleted_and_only_with_the_flag() -> None:
    extra = [live("app.retired"), live("other.team"), live("__consumer_offsets"), live("_schemas")]
    plan = diff(desired(orders()), observed(live(), *extra))
    assert [(c.resource, c.blocked) for c in plan.changes] == [
        ("app.retired", "not allowed: pass --allow-delete")
    ]
    allowed = diff(desired(orders()), observed(live(), *extra), allow_delete=True)
    assert [(c.resource, c.action, c.risk, c.blocked) for c in allowed.changes] == [
        ("app.retired", "delete", "destructive", None)
    ]


def test_acl_changes_carry_their_reason_and_only_touch_catalog_principals() -> None:
    stale = AclSpec("User:api", "TOPIC", "app.old", "WRITE")
    foreign = AclSpec("User:someone-else", "TOPIC", "app.orders", "READ")
    plan = diff(desired(orders(), acls=(WRITE,)), observed(live(), acls=(stale, foreign)))
    by_action = {c.action: c for c in plan.changes}
    assert set(by_action) == {"create", "delete"}
    assert by_action["create"].reason == "api: producer of app.orders"
    assert by_action["delete"].details["resource_name"] == "app.old"
    assert by_action["delete"].blocked == "not allowed: pass --allow-delete"


def test_unreadable_acls_list_every_binding_as_blocked_create() -> None:
    problem = "broker does not support CreateAcls (API key 30)"
    plan = diff(desired(orders(), acls=(WRITE,)), observed(live(), acls=None, acl_problem=problem))
    (change,) = plan.changes
    assert change.blocked == problem
    assert any(problem in note for note in plan.notes)


def test_plan_json_round_trips_and_detects_edits(tmp_path: Path) -> None:
    plan = diff(desired(orders(6)), observed(live(partitions=3)))
    path = tmp_path / "plan.json"
    path.write_text(plan.to_json())
    assert Plan.load(path) == plan
    assert Plan.load(path).plan_hash == plan.plan_hash
    body = json.loads(path.read_text())
    body["changes"][0]["details"]["desired"] = 60
    path.write_text(json.dumps(body))
    with pytest.raises(PlanFileError, match="plan_hash does not match"):
        Plan.load(path)


def test_plan_is_deterministic() -> None:
    a = diff(desired(orders(6), acls=(WRITE,)), observed(live(partitions=3)))
    b = diff(desired(orders(6), acls=(WRITE,)), observed(live(partitions=3)))
    assert a.to_json() == b.to_json()


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("retention.ms", "7d", "604800000"),
        ("retention.ms", "604800000", "604800000"),
        ("retention.ms", "-1", "-1"),
        ("segment.ms", "1h", "3600000"),
        ("max.message.bytes", "1MiB", "1048576"),
        ("retention.bytes", "1GB", "1000000000"),
        ("cleanup.policy", "Delete, compact", "compact,delete"),
        ("unclean.leader.election.enable", "TRUE", "true"),
        ("min.cleanable.dirty.ratio", "0.50", "0.5"),
    ],
)
def test_config_values_normalise(key: str, value: str, expected: str) -> None:
    assert normalize_config_value(key, value) == expected


def test_bad_config_value_names_key_and_value() -> None:
    with pytest.raises(ConfigValueError, match=r"retention\.ms='7 fortnights'"):
        normalize_config_value("retention.ms", "7 fortnights")


def test_markdown_plan_has_one_row_per_change_and_escapes_pipes() -> None:
    acl = AclSpec("User:x", "TOPIC", "app.orders", "READ", reason="x: consumer | of app.orders")
    plan = diff(desired(orders(6), acls=(acl,)), observed(live(partitions=3)))
    text = plan.to_markdown()
    rows = [line for line in text.splitlines() if line.startswith("| ") and "---" not in line]
    assert len(rows) == 1 + len(plan.changes)  # header + one per change
    assert "x: consumer \\| of app.orders" in text
    assert plan.plan_hash in text
