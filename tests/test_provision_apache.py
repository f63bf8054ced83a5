"""`coffeebuddy-kafka` against an authorizing Apache Kafka: plan, apply, drift, ACLs, deletes.

The CLI runs as a process with the platform admin's SASL_SSL credentials, like the platform
team runs it. Out-of-band changes are made with Kafka's own admin tools (`kafka-configs`,
`kafka-acls`, `kafka-topics`: the Java classes from the same jars as the broker) on the
PLAINTEXT listener. The dev overlay runs on a single node of its own (the tests change it);
the prod overlay (replication 3, min.insync.replicas 2) on the three-node cluster.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from coffeebuddy.infra.kafka.provision import (
    AiokafkaAdmin,
    ExitCode,
    apply_plan,
    build_plan,
)
from coffeebuddy.infra.kafka.testing import (
    SESSION_SASL_USERS,
    ApacheKafka,
    resolve_kafka_runtime,
)
from coffeebuddy.infra.kafka.topics import (
    CATALOG,
    DLQ_REPLAYS_TOPIC,
    REMINDER_EVENTS_TOPIC,
    RUN_EVENTS_TOPIC,
    Catalog,
)

if TYPE_CHECKING:
    from conftest import LeakCheck

pytestmark = [pytest.mark.usefixtures("leak_check")]

FOREIGN_TOPIC = "payments.ledger"
FOREIGN_PRINCIPAL = "User:payments-api"
RETIRED_TOPIC = "coffeebuddy.retired.events"


@pytest.fixture(scope="module")
def dev_kafka(apache_required: None) -> Iterator[ApacheKafka]:
    """A single node of this module's own: nothing provisioned, the tests change it."""
    cluster = ApacheKafka(users=SESSION_SASL_USERS, name="apache-kafka-provision").start()
    try:
        yield cluster
    finally:
        cluster.stop()


def kafka_tool(cluster: ApacheKafka, main: str, *args: str) -> str:
    """Run one of Kafka's admin tools (its Java class) against the PLAINTEXT listener."""
    runtime = resolve_kafka_runtime()
    result = subprocess.run(
        [
            str(runtime.java),
            "-Xmx256m",
            "-XX:+UseSerialGC",
            "-cp",
            runtime.classpath,
            main,
            "--bootstrap-server",
            cluster.bootstrap("PLAINTEXT"),
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"{main} {args}: {result.stdout}\n{result.stderr}"
    return result.stdout


def kafka_configs(cluster: ApacheKafka, *args: str) -> str:
    return kafka_tool(cluster, "kafka.admin.ConfigCommand", *args)


def kafka_acls(cluster: ApacheKafka, *args: str) -> str:
    return kafka_tool(cluster, "org.apache.kafka.tools.AclCommand", *args)


def kafka_topics(cluster: ApacheKafka, *args: str) -> str:
    return kafka_tool(cluster, "org.apache.kafka.tools.TopicCommand", *args)


def cli(
    cluster: ApacheKafka, leak: LeakCheck, *args: str, expect: int | None = None
) -> tuple[int, Any]:
    """`coffeebuddy-kafka ARGS --output json` as the admin over SASL_SSL: (exit code, JSON)."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("KAFKA_")},
        **cluster.env("SASL_SSL", user="admin", mechanism="SCRAM-SHA-512"),
    }
    result = subprocess.run(
        [sys.executable, "-m", "coffeebuddy.infra.kafka.provision", *args, "--output", "json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    leak.scan(f"coffeebuddy-kafka {' '.join(args)}", result.stdout + result.stderr)
    if expect is not None:
        assert result.returncode == expect, f"{args}: {result.stdout}\n{result.stderr}"
    return result.returncode, json.loads(result.stdout) if result.stdout.strip() else None


def changes(body: dict[str, Any]) -> list[tuple[str, str, str]]:
    return sorted((c["kind"], c["action"], c["resource"]) for c in body["changes"])


async def live_acls(cluster: ApacheKafka) -> set[tuple[str, str, str, str]]:
    admin = await AiokafkaAdmin.connect(cluster.settings().admin_kwargs())
    try:
        return {
            (a.principal, a.resource_type, a.resource_name, a.operation)
            for a in await admin.describe_acls()
        }
    finally:
        await admin.close()


async def topic_names(cluster: ApacheKafka) -> set[str]:
    admin = AIOKafkaAdminClient(**cluster.settings().admin_kwargs())
    await admin.start()
    try:
        return set(await admin.list_topics())
    finally:
        await admin.close()


def catalog_acls(env: str) -> set[tuple[str, str, str, str]]:
    rendered = CATALOG.for_environment(env)
    return {
        (b.principal, b.resource_type, b.resource_name, b.operation)
        for p in rendered.principals
        for b in p.acl_bindings(legacy_idempotent_write=rendered.legacy_idempotent_write)
    }


# --------------------------------------------------------------------------------------------


async def test_dev_plan_apply_replan_acls_included_foreign_resources_survive(
    dev_kafka: ApacheKafka, leak_check: LeakCheck, tmp_path: Any
) -> None:
    # Another team's topic and ACL, and a retired topic under our managed prefix.
    kafka_topics(dev_kafka, "--create", "--topic", FOREIGN_TOPIC, "--partitions", "1")
    kafka_topics(dev_kafka, "--create", "--topic", RETIRED_TOPIC, "--partitions", "1")
    kafka_acls(
        dev_kafka, "--add", "--allow-principal", FOREIGN_PRINCIPAL,
        "--operation", "Write", "--topic", FOREIGN_TOPIC,
    )  # fmt: skip

    plan_file = tmp_path / "plan.json"
    _, plan = cli(dev_kafka, leak_check, "plan", "--env", "dev", "--out", str(plan_file),
                  expect=ExitCode.CHANGES)  # fmt: skip
    planned = changes(plan)
    assert {("topic", "create", t.name) for t in CATALOG.topics} <= set(planned)
    acl_creates = [c for c in plan["changes"] if c["kind"] == "acl"]
    assert len(acl_creates) == len(catalog_acls("dev"))
    assert not any(FOREIGN_TOPIC in r for _, _, r in planned)  # not ours: not even read
    wanted = [c for c in plan["changes"] if c["blocked"] is None]
    assert {c["risk"] for c in wanted} == {"safe"}, wanted
    (retired,) = [c for c in plan["changes"] if c["blocked"] is not None]
    assert (retired["action"], retired["resource"]) == ("delete", RETIRED_TOPIC)
    assert "--allow-delete" in retired["blocked"]

    _, report = cli(dev_kafka, leak_check, "apply", "--env", "dev", "--plan", str(plan_file),
                    expect=ExitCode.CHANGES)  # fmt: skip
    statuses = {(r["action"], r["resource"]): r["status"] for r in report["results"]}
    assert statuses.pop(("delete", RETIRED_TOPIC)) == "skipped"
    assert set(statuses.values()) == {"applied"}, report
    _, again = cli(dev_kafka, leak_check, "plan", "--env", "dev")
    assert changes(again) == [("topic", "delete", RETIRED_TOPIC)]  # shown, blocked
    assert catalog_acls("dev") <= await live_acls(dev_kafka)

    # --allow-delete removes what the catalog owns and no longer wants, nothing else.
    _, pruning = cli(dev_kafka, leak_check, "plan", "--env", "dev", "--allow-delete",
                     expect=ExitCode.CHANGES)  # fmt: skip
    assert changes(pruning) == [("topic", "delete", RETIRED_TOPIC)]
    assert pruning["changes"][0]["risk"] == "destructive"
    cli(dev_kafka, leak_check, "apply", "--env", "dev", "--yes", "--allow-delete",
        expect=ExitCode.CHANGES)  # fmt: skip
    names = await topic_names(dev_kafka)
    assert FOREIGN_TOPIC in names
    assert RETIRED_TOPIC not in names
    assert (FOREIGN_PRINCIPAL, "TOPIC", FOREIGN_TOPIC, "WRITE") in await live_acls(dev_kafka)
    _, clean = cli(
        dev_kafka, leak_check, "plan", "--env", "dev", "--allow-delete", expect=ExitCode.OK
    )
    assert clean["changes"] == []


async def test_out_of_band_drift_with_kafka_tools_is_reported_and_repaired(
    dev_kafka: ApacheKafka, leak_check: LeakCheck
) -> None:
    topic = RUN_EVENTS_TOPIC.name
    group = "coffeebuddy.reminder-worker"
    kafka_configs(
        dev_kafka, "--alter", "--entity-type", "topics", "--entity-name", topic,
        "--add-config", "retention.ms=3600000,segment.bytes=10485760",
    )  # fmt: skip
    kafka_acls(
        dev_kafka, "--remove", "--force", "--allow-principal", "User:reminder-worker",
        "--operation", "Read", "--group", group,
    )  # fmt: skip
    kafka_acls(
        dev_kafka, "--add", "--allow-principal", "User:slack-app",
        "--operation", "Read", "--topic", REMINDER_EVENTS_TOPIC.name,
    )  # fmt: skip

    code, drift = cli(dev_kafka, leak_check, "drift", "--env", "dev")
    assert code == ExitCode.CHANGES
    found = {(c["kind"], c["action"], c["resource"]) for c in drift["changes"]}
    assert ("topic", "update_config", topic) in found
    assert ("acl", "create", f"GROUP {group}") in found, found
    assert ("acl", "delete", f"TOPIC {REMINDER_EVENTS_TOPIC.name}") in found, found
    deleted = next(c for c in drift["changes"] if c["action"] == "delete")
    assert "User:slack-app" in json.dumps(deleted), deleted
    retention = next(c for c in drift["changes"] if c["resource"] == topic)
    assert retention["risk"] == "safe"  # 1 h back to 14 days: longer

    _, report = cli(dev_kafka, leak_check, "apply", "--env", "dev", "--yes", "--allow-delete",
                    expect=ExitCode.CHANGES)  # fmt: skip
    assert {r["status"] for r in report["results"]} == {"applied"}, report
    acls = await live_acls(dev_kafka)
    assert ("User:reminder-worker", "GROUP", group, "READ") in acls
    assert ("User:slack-app", "TOPIC", REMINDER_EVENTS_TOPIC.name, "READ") not in acls
    described = kafka_configs(dev_kafka, "--describe", "--entity-type", "topics",
                              "--entity-name", topic)  # fmt: skip
    assert "retention.ms=1209600000" in described
    assert "segment.bytes=10485760" in described  # not ours: kept as it was
    _, after = cli(dev_kafka, leak_check, "drift", "--env", "dev", expect=ExitCode.OK)
    assert after["changes"] == []


async def test_plan_file_refused_when_the_cluster_changed(
    dev_kafka: ApacheKafka, leak_check: LeakCheck, tmp_path: Any
) -> None:
    topic = REMINDER_EVENTS_TOPIC.name
    kafka_configs(dev_kafka, "--alter", "--entity-type", "topics", "--entity-name", topic,
                  "--add-config", "retention.ms=7200000")  # fmt: skip
    plan_file = tmp_path / "plan.json"
    cli(dev_kafka, leak_check, "plan", "--env", "dev", "--out", str(plan_file))
    # Someone changes the same topic after the review.
    kafka_configs(dev_kafka, "--alter", "--entity-type", "topics", "--entity-name", topic,
                  "--add-config", "retention.ms=10800000")  # fmt: skip
    code, refused = cli(dev_kafka, leak_check, "apply", "--env", "dev", "--plan", str(plan_file))
    assert code == ExitCode.REFUSED, refused
    assert "changed" in json.dumps(refused)
    described = kafka_configs(dev_kafka, "--describe", "--entity-type", "topics",
                              "--entity-name", topic)  # fmt: skip
    assert "retention.ms=10800000" in described  # nothing applied
    cli(dev_kafka, leak_check, "apply", "--env", "dev", "--yes")
    described = kafka_configs(dev_kafka, "--describe", "--entity-type", "topics",
                              "--entity-name", topic)  # fmt: skip
    assert "retention.ms=1209600000" in described


def _changed(catalog: Catalog, name: str, **update: Any) -> Catalog:
    topics = tuple(t.model_copy(update=update) if t.name == name else t for t in catalog.topics)
    return catalog.model_copy(update={"topics": topics})


async def test_retention_change_and_partition_increase_planned_applied_in_sync(
    dev_kafka: ApacheKafka, leak_check: LeakCheck
) -> None:
    settings = dev_kafka.settings("SASL_SSL", user="admin")
    assert (await build_plan(settings, None, "dev")).changes == ()  # after the tests above
    longer = {**REMINDER_EVENTS_TOPIC.configs, "retention.ms": str(21 * 86_400_000)}
    grown = _changed(
        _changed(CATALOG, REMINDER_EVENTS_TOPIC.name, configs=longer),
        DLQ_REPLAYS_TOPIC.name,
        partitions=DLQ_REPLAYS_TOPIC.partitions + 1,
    )
    plan = await build_plan(settings, grown, "dev")
    by_resource = {c.resource: c for c in plan.changes}
    assert set(by_resource) == {REMINDER_EVENTS_TOPIC.name, DLQ_REPLAYS_TOPIC.name}
    retention = by_resource[REMINDER_EVENTS_TOPIC.name]
    assert (retention.action, retention.risk) == ("update_config", "safe")
    partitions = by_resource[DLQ_REPLAYS_TOPIC.name]
    assert (partitions.action, partitions.risk) == ("add_partitions", "disruptive")
    assert partitions.details["key_field"] == "ref"  # keys move: that is why it is disruptive
    report = await apply_plan(settings, plan)
    assert report.ok, report.to_json()
    assert (await build_plan(settings, grown, "dev")).changes == ()

    # Going back to 14 days is shorter retention: destructive, only with its opt-in.
    original = _changed(grown, REMINDER_EVENTS_TOPIC.name, configs=REMINDER_EVENTS_TOPIC.configs)
    back = await build_plan(settings, original, "dev")
    (shorter,) = back.changes
    assert (shorter.action, shorter.risk) == ("update_config", "destructive")
    assert shorter.blocked is not None
    restored = await build_plan(settings, original, "dev", allow_destructive=True)
    assert (await apply_plan(settings, restored)).ok
    # The shipped catalog now differs only in the partition it can never take back.
    (left,) = (await build_plan(settings, None, "dev")).changes
    assert (left.resource, left.risk) == (DLQ_REPLAYS_TOPIC.name, "impossible")


async def test_prod_overlay_on_three_brokers_plan_apply_replan(
    apache_required: None, kafka_cluster: ApacheKafka, leak_check: LeakCheck
) -> None:
    _, plan = cli(kafka_cluster, leak_check, "plan", "--env", "prod")
    if plan["changes"]:  # another test of this session may have provisioned prod already
        cli(kafka_cluster, leak_check, "apply", "--env", "prod", "--yes", expect=ExitCode.CHANGES)
    _, again = cli(kafka_cluster, leak_check, "plan", "--env", "prod", expect=ExitCode.OK)
    assert again["changes"] == []
    assert catalog_acls("prod") <= await live_acls(kafka_cluster)
    described = kafka_topics(kafka_cluster, "--describe", "--topic", REMINDER_EVENTS_TOPIC.name)
    assert f"PartitionCount: {REMINDER_EVENTS_TOPIC.partitions}" in described
    assert "ReplicationFactor: 3" in described
    assert "min.insync.replicas=2" in described
