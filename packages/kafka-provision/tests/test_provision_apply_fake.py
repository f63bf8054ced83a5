"""Apply paths (configs, partitions, ACLs, partial failures) against a recorded fake admin."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from coffeebuddy.infra.kafka.provision import (
    ExitCode,
    PlanRefusedError,
    apply_plan,
    build_plan,
    detect_drift,
    ensure_topics,
)
from coffeebuddy.infra.kafka.provision._admin import TopicShape
from coffeebuddy.infra.kafka.provision._types import AclSpec, ConfigValue
from coffeebuddy.infra.kafka.topics import Catalog

if TYPE_CHECKING:
    from conftest import FakeAdmin


async def test_apply_creates_everything_then_second_run_is_a_no_op(
    fake_admin: FakeAdmin, test_catalog: Catalog, test_prefix: str
) -> None:
    plan = await build_plan(None, test_catalog, "dev", admin=fake_admin)
    assert {c.action for c in plan.changes} == {"create"}
    report = await apply_plan(None, plan, admin=fake_admin)
    assert report.exit_code == ExitCode.CHANGES
    assert len(report.applied) == len(plan.changes)
    assert set(fake_admin.topics) == {f"{test_prefix}.orders", f"{test_prefix}.audit"}
    assert fake_admin.configs[f"{test_prefix}.orders"]["min.insync.replicas"].value == "1"
    assert len(fake_admin.acls) == 5  # producer WRITE+DESCRIBE, consumer READ+DESCRIBE+GROUP READ

    again = await build_plan(None, test_catalog, "dev", admin=fake_admin)
    assert again.changes == ()
    second = await apply_plan(None, again, admin=fake_admin)
    assert second.exit_code == ExitCode.OK


async def test_config_update_keeps_overrides_the_catalog_does_not_set(
    fake_admin: FakeAdmin, test_catalog: Catalog, test_prefix: str
) -> None:
    await apply_plan(
        None, await build_plan(None, test_catalog, "dev", admin=fake_admin), admin=fake_admin
    )
    name = f"{test_prefix}.orders"
    fake_admin.configs[name]["retention.ms"] = ConfigValue("1000", True)
    fake_admin.configs[name]["segment.bytes"] = ConfigValue("5000000", True)  # someone's override
    fake_admin.configs[name]["flush.ms"] = ConfigValue("9", False)  # broker default
    fake_admin.calls.clear()

    plan = await build_plan(None, test_catalog, "dev", admin=fake_admin)
    (change,) = plan.changes
    assert change.action == "update_config"
    report = await apply_plan(None, plan, admin=fake_admin)
    assert report.exit_code == ExitCode.CHANGES
    ((call, (topic, sent)),) = fake_admin.calls
    assert (call, topic) == ("alter_topic_configs", name)
    assert sent["retention.ms"] == "604800000"
    assert sent["segment.bytes"] == "5000000"  # preserved: AlterConfigs replaces the whole set
    assert "flush.ms" not in sent


async def test_out_of_band_partition_change_is_drift_and_growth_is_applied(
    fake_admin: FakeAdmin, test_catalog: Catalog, test_prefix: str
) -> None:
    await apply_plan(
        None, await build_plan(None, test_catalog, "dev", admin=fake_admin), admin=fake_admin
    )
    name = f"{test_prefix}.orders"
    fake_admin.topics[name] = TopicShape(1, 1)
    drift = await detect_drift(None, test_catalog, "dev", admin=fake_admin)
    (change,) = drift.changes
    assert (change.action, change.risk) == ("add_partitions", "disruptive")
    report = await apply_plan(None, drift, admin=fake_admin)
    assert report.exit_code == ExitCode.CHANGES
    assert fake_admin.topics[name].partitions == 3


async def test_broker_without_create_acls_reports_bindings_not_applied(
    fake_admin: FakeAdmin, test_catalog: Catalog
) -> None:
    del fake_admin.apis[30]
    plan = await build_plan(None, test_catalog, "dev", admin=fake_admin)
    report = await apply_plan(None, plan, admin=fake_admin)
    unsupported = report.by_status("unsupported")
    assert len(unsupported) == 5
    assert {r.message for r in unsupported} == {"broker does not support CreateAcls (API key 30)"}
    assert all(r.change.kind == "acl" for r in unsupported)
    assert len(report.applied) == 2  # the two topics
    assert report.exit_code == ExitCode.PARTIAL
    assert not any(call == "create_acls" for call, _ in fake_admin.calls)


async def test_partial_failure_says_exactly_what_was_and_was_not_applied(
    fake_admin: FakeAdmin, test_catalog: Catalog, test_prefix: str
) -> None:
    fake_admin.fail_topics[f"{test_prefix}.audit"] = "PolicyViolation (error code 44): no"
    plan = await build_plan(None, test_catalog, "dev", acls=False, admin=fake_admin)
    report = await apply_plan(None, plan, acls=False, admin=fake_admin)
    assert [(r.change.resource, r.status) for r in report.results] == [
        (f"{test_prefix}.audit", "failed"),
        (f"{test_prefix}.orders", "applied"),
    ]
    assert "PolicyViolation" in report.results[0].message
    assert report.exit_code == ExitCode.PARTIAL
    assert report.to_dict()["results"][0]["status"] == "failed"


async def test_apply_refuses_when_cluster_changed_since_plan(
    fake_admin: FakeAdmin, test_catalog: Catalog, test_prefix: str
) -> None:
    plan = await build_plan(None, test_catalog, "dev", admin=fake_admin)
    fake_admin.topics[f"{test_prefix}.orders"] = TopicShape(12, 1)  # someone else was faster
    with pytest.raises(PlanRefusedError, match="changed since the plan"):
        await apply_plan(None, plan, admin=fake_admin)
    assert fake_admin.calls == []


async def test_acl_deletes_need_allow_delete(
    fake_admin: FakeAdmin, test_catalog: Catalog, test_prefix: str
) -> None:
    await apply_plan(
        None, await build_plan(None, test_catalog, "dev", admin=fake_admin), admin=fake_admin
    )
    stray = AclSpec(f"User:{test_prefix}-api", "TOPIC", f"{test_prefix}.audit", "WRITE")
    other = AclSpec("User:not-ours", "TOPIC", f"{test_prefix}.audit", "WRITE")
    fake_admin.acls += [stray, other]
    plan = await build_plan(None, test_catalog, "dev", admin=fake_admin)
    (change,) = plan.changes
    assert change.action == "delete"
    assert change.blocked
    report = await apply_plan(None, plan, admin=fake_admin)
    assert report.exit_code == ExitCode.OK
    assert report.by_status("skipped")
    plan = await build_plan(None, test_catalog, "dev", allow_delete=True, admin=fake_admin)
    report = await apply_plan(None, plan, admin=fake_admin)
    assert report.exit_code == ExitCode.CHANGES
    assert stray not in fake_admin.acls
    assert other in fake_admin.acls


async def test_ensure_topics_skips_acls_and_never_deletes(
    fake_admin: FakeAdmin, test_catalog: Catalog, test_prefix: str
) -> None:
    fake_admin.topics[f"{test_prefix}.leftover"] = TopicShape(1, 1)
    report = await ensure_topics(None, "dev", catalog=test_catalog, admin=fake_admin)
    assert report.ok
    assert report.exit_code == ExitCode.CHANGES
    assert {r.change.kind for r in report.results} == {"topic"}
    assert f"{test_prefix}.leftover" in fake_admin.topics
    assert fake_admin.acls == []
    only = await ensure_topics(
        None, "dev", topics=[f"{test_prefix}.orders"], catalog=test_catalog, admin=fake_admin
    )
    assert only.exit_code == ExitCode.OK


async def test_apply_returns_once_the_broker_lists_the_new_acls(
    fake_admin: FakeAdmin, test_catalog: Catalog
) -> None:
    """CreateAcls answers before the authorizer has the bindings; apply waits for them."""
    plan = await build_plan(None, test_catalog, "dev", admin=fake_admin)
    visible_after = 3  # DescribeAcls reads until the new bindings show up
    reads = 0
    real_describe = fake_admin.describe_acls

    async def lagging_describe() -> list[AclSpec]:
        nonlocal reads
        reads += 1
        everything = await real_describe()
        created = {a.identity for call, acls in fake_admin.calls if call == "create_acls"
                   for a in acls}  # fmt: skip
        return (
            everything
            if reads > visible_after
            else [a for a in everything if a.identity not in created]
        )

    fake_admin.describe_acls = lagging_describe  # type: ignore[method-assign]
    report = await apply_plan(None, plan, admin=fake_admin)
    assert report.exit_code == ExitCode.CHANGES
    assert reads > visible_after  # it kept reading until all five were listed
