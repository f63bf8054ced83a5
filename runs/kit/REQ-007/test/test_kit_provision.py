"""Kit check for coffeebuddy.infra.kafka.provision: public API only, against a real broker."""

from __future__ import annotations

from pathlib import Path

from coffeebuddy.infra.kafka.config import KafkaSettings
from coffeebuddy.infra.kafka.models import REMINDER_SCHEDULED, ReminderScheduled
from coffeebuddy.infra.kafka.provision import (
    ExitCode,
    Plan,
    apply_plan,
    build_plan,
    detect_drift,
    ensure_topics,
    render_manifests,
    validate,
)
from coffeebuddy.infra.kafka.provision.events import (
    SampleOptions,
    envelope,
    publish_event,
    resolve_type,
    sample_data,
    tail_topic,
)
from coffeebuddy.infra.kafka.testing import EmbeddedBroker
from coffeebuddy.infra.kafka.topics import REMINDER_EVENTS_TOPIC, RUN_EVENTS_TOPIC


def test_kit_offline_validate_and_render() -> None:
    assert validate(env="prod") == []
    files = render_manifests(envs=["dev"])["dev"]
    assert set(files) == {"topics.yaml", "acls.yaml", "kafka.tf.json", "strimzi.yaml"}
    assert RUN_EVENTS_TOPIC.name in files["topics.yaml"]


async def test_kit_ensure_topics_then_plan_is_empty(tmp_path: Path) -> None:
    async with EmbeddedBroker(name="tansu-kit-provision") as broker:
        settings = KafkaSettings.from_env(
            {
                "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers,
                "KAFKA_ENABLE_IDEMPOTENCE": "false",
            }
        )
        report = await ensure_topics(settings, "dev")
        assert report.ok, report.to_json()
        assert RUN_EVENTS_TOPIC.name in {r.change.resource for r in report.applied}

        plan = await build_plan(settings, None, "dev", acls=False)
        assert plan.changes == ()
        path = tmp_path / "plan.json"
        path.write_text(plan.to_json())
        replayed = await apply_plan(settings, Plan.load(path), acls=False)
        assert replayed.exit_code == ExitCode.OK
        assert (await detect_drift(settings, None, "dev", acls=False)).changes == ()


async def test_kit_events_publish_a_sample_then_tail_it_in_both_content_modes() -> None:
    """`coffeebuddy-kafka events publish|tail` as a library: a checked sample in, decoded out."""
    async with EmbeddedBroker(name="tansu-kit-events") as broker:
        settings = KafkaSettings.from_env(
            {
                "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers,
                "KAFKA_ENABLE_IDEMPOTENCE": "false",
            }
        )
        assert (await ensure_topics(settings, "dev")).ok
        event_type, topic = resolve_type("reminder.scheduled")
        assert (event_type, topic) == (REMINDER_SCHEDULED, REMINDER_EVENTS_TOPIC)
        sent = []
        for mode in ("structured", "binary"):
            body = envelope(event_type, sample_data(event_type, SampleOptions(user="U0KIT")))
            sent.append(await publish_event(settings, topic, body, mode=mode))
        seen = [r async for r in tail_topic(settings, topic, from_beginning=True, exit_at_end=True)]
        assert sorted((r.mode, r.event.id) for r in seen if r.event is not None) == sorted(
            (p.mode, p.event_id) for p in sent
        )
        assert all(isinstance(r.event, ReminderScheduled) for r in seen)
