"""Plan/apply/drift against a real broker (a dedicated embedded one, or the session broker)."""

from __future__ import annotations

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from coffeebuddy.infra.kafka.config import KafkaSettings
from coffeebuddy.infra.kafka.provision import (
    ExitCode,
    apply_plan,
    build_plan,
    detect_drift,
    ensure_topics,
)
from coffeebuddy.infra.kafka.testing import BrokerHandle, require_capability
from coffeebuddy.infra.kafka.topics import Catalog, TopicConfig


async def _create_topic(settings: KafkaSettings, name: str, partitions: int) -> None:
    admin = AIOKafkaAdminClient(**settings.admin_kwargs())
    await admin.start()
    try:
        response = await admin.create_topics([NewTopic(name, partitions, 1)])
        assert response.topic_errors[0][1] == 0, response
    finally:
        await admin.close()


async def _topic_names(settings: KafkaSettings) -> set[str]:
    admin = AIOKafkaAdminClient(**settings.admin_kwargs())
    await admin.start()
    try:
        return set(await admin.list_topics())
    finally:
        await admin.close()


async def test_plan_apply_replan_on_a_real_broker(
    provision_settings: KafkaSettings, test_catalog: Catalog, test_prefix: str
) -> None:
    plan = await build_plan(provision_settings, test_catalog, "dev", acls=False)
    assert [(c.action, c.resource) for c in plan.changes] == [
        ("create", f"{test_prefix}.audit"),
        ("create", f"{test_prefix}.orders"),
    ]
    report = await apply_plan(provision_settings, plan, acls=False)
    assert report.exit_code == ExitCode.CHANGES, report.to_json()
    assert {f"{test_prefix}.audit", f"{test_prefix}.orders"} <= await _topic_names(
        provision_settings
    )

    again = await build_plan(provision_settings, test_catalog, "dev", acls=False)
    assert again.changes == (), again.to_json()
    assert (await apply_plan(provision_settings, again, acls=False)).exit_code == ExitCode.OK


async def test_out_of_band_topic_with_other_partitions_is_drift(
    provision_settings: KafkaSettings, test_catalog: Catalog, test_prefix: str
) -> None:
    await _create_topic(provision_settings, f"{test_prefix}.orders", 1)
    await ensure_topics(provision_settings, "dev", catalog=test_catalog)
    drift = await detect_drift(provision_settings, test_catalog, "dev", acls=False)
    (change,) = drift.changes
    assert change.resource == f"{test_prefix}.orders"
    assert (change.action, change.risk) == ("add_partitions", "disruptive")
    assert change.details == {"current": 1, "desired": 3, "key_field": "run_id"}


async def test_unowned_topics_are_never_touched_even_with_allow_delete(
    provision_settings: KafkaSettings, test_catalog: Catalog, test_prefix: str
) -> None:
    foreign = f"other-team-{test_prefix}.payments"
    retired = f"{test_prefix}.retired"
    await _create_topic(provision_settings, foreign, 1)
    await _create_topic(provision_settings, retired, 1)
    plan = await build_plan(provision_settings, test_catalog, "dev", acls=False, allow_delete=True)
    assert foreign not in {c.resource for c in plan.changes}
    deletes = [c for c in plan.changes if c.action == "delete"]
    assert [(c.resource, c.blocked) for c in deletes] == [(retired, None)]
    report = await apply_plan(provision_settings, plan, acls=False)
    assert report.exit_code == ExitCode.CHANGES, report.to_json()
    names = await _topic_names(provision_settings)
    assert foreign in names
    assert retired not in names


async def test_embedded_broker_acls_are_reported_not_applied(
    provision_settings: KafkaSettings, test_catalog: Catalog
) -> None:
    plan = await build_plan(provision_settings, test_catalog, "dev")
    acl_changes = [c for c in plan.changes if c.kind == "acl"]
    assert len(acl_changes) == 5
    if all(c.blocked is None for c in acl_changes):
        pytest.skip("this broker supports CreateAcls; the unsupported path is not reachable")
    report = await apply_plan(provision_settings, plan)
    assert report.exit_code == ExitCode.PARTIAL
    not_applied = [r for r in report.not_applied if r.change.kind == "acl"]
    assert len(not_applied) == 5
    assert all("does not support CreateAcls (API key 30)" in r.message for r in not_applied)
    assert len(report.applied) == 2  # the topics went through


async def test_config_drift_is_seen_and_fixed_where_alter_configs_exists(
    kafka_broker: BrokerHandle,
    kafka_settings: KafkaSettings,
    test_catalog: Catalog,
    test_prefix: str,
) -> None:
    require_capability(kafka_broker, "alter_configs")
    name = f"{test_prefix}.orders"
    admin = AIOKafkaAdminClient(**kafka_settings.admin_kwargs())
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, 3, 1, topic_configs={"retention.ms": "1000"})])
    finally:
        await admin.close()
    plan = await build_plan(kafka_settings, test_catalog, "dev", acls=False, managed_prefixes=())
    (change,) = [c for c in plan.changes if c.resource == name]
    assert change.action == "update_config"
    report = await apply_plan(kafka_settings, plan, acls=False)
    assert report.ok, report.to_json()
    after = await build_plan(kafka_settings, test_catalog, "dev", acls=False, managed_prefixes=())
    assert after.changes == ()


async def test_acls_are_created_where_the_broker_supports_them(
    kafka_broker: BrokerHandle,
    kafka_settings: KafkaSettings,
    test_catalog: Catalog,
) -> None:
    require_capability(kafka_broker, "acls")
    plan = await build_plan(kafka_settings, test_catalog, "dev", managed_prefixes=())
    report = await apply_plan(kafka_settings, plan)
    assert report.ok, report.to_json()
    after = await build_plan(kafka_settings, test_catalog, "dev", managed_prefixes=())
    assert [c for c in after.changes if c.kind == "acl"] == []


async def test_ensure_topics_accepts_topics_outside_the_catalog(
    provision_settings: KafkaSettings, test_prefix: str
) -> None:
    extra = TopicConfig(
        name=f"{test_prefix}.adhoc",
        partitions=2,
        replication_factor=1,
        configs={"retention.ms": "1h"},
        key_field="run_id",
    )
    report = await ensure_topics(provision_settings, "dev", topics=[extra])
    assert [(r.change.resource, r.status) for r in report.results] == [(extra.name, "applied")]
    again = await ensure_topics(provision_settings, "dev", topics=[extra])
    assert again.results == ()
    assert extra.name in await _topic_names(provision_settings)
