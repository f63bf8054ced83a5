"""Kit check for coffeebuddy.infra.kafka.provision: public API only, against a real broker."""

from __future__ import annotations

from pathlib import Path

from coffeebuddy.infra.kafka.config import KafkaSettings
from coffeebuddy.infra.kafka.provision import (
    EXIT_OK,
    Plan,
    apply_plan,
    build_plan,
    detect_drift,
    ensure_topics,
    render_manifests,
    validate,
)
from coffeebuddy.infra.kafka.testing import EmbeddedBroker
from coffeebuddy.infra.kafka.topics import RUN_EVENTS_TOPIC


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
        assert replayed.exit_code == EXIT_OK
        assert (await detect_drift(settings, None, "dev", acls=False)).changes == ()
