"""The checked-in infra/kafka manifests are exactly what the topics catalog renders."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from coffeebuddy.infra.kafka.provision import ENVIRONMENTS, render_manifests, stale_manifests

REPO = Path(__file__).resolve().parents[1]
MANIFESTS = REPO / "infra" / "kafka"


def test_checked_in_manifests_match_the_catalog() -> None:
    stale = stale_manifests(MANIFESTS)
    assert stale == {}, (
        f"infra/kafka is out of date: {stale}; run `coffeebuddy-kafka render --out infra/kafka`"
    )


def test_rendering_is_deterministic() -> None:
    assert render_manifests() == render_manifests()


def test_manifests_parse_and_agree_across_tools() -> None:
    for env in ENVIRONMENTS:
        folder = MANIFESTS / env
        topics = yaml.safe_load((folder / "topics.yaml").read_text())
        acls = yaml.safe_load((folder / "acls.yaml").read_text())
        terraform = json.loads((folder / "kafka.tf.json").read_text())
        strimzi = list(yaml.safe_load_all((folder / "strimzi.yaml").read_text()))
        assert topics["schema_version"] == 1
        assert topics["content_sha256"].startswith("sha256:")
        names = [t["name"] for t in topics["topics"]]
        assert names == sorted(names)
        tf_topics = terraform["resource"]["kafka_topic"]
        assert sorted(t["name"] for t in tf_topics.values()) == names
        assert len(terraform["resource"]["kafka_acl"]) == len(acls["acls"])
        kafka_topics = [d for d in strimzi if d["kind"] == "KafkaTopic"]
        assert sorted(d["spec"]["topicName"] for d in kafka_topics) == names
        for doc in kafka_topics:
            match = next(t for t in topics["topics"] if t["name"] == doc["spec"]["topicName"])
            assert doc["spec"]["partitions"] == match["partitions"]
            assert doc["spec"]["config"] == match["configs"]
        users = [d for d in strimzi if d["kind"] == "KafkaUser"]
        strimzi_ops = sum(
            len(rule["operations"]) for u in users for rule in u["spec"]["authorization"]["acls"]
        )
        assert strimzi_ops == len(acls["acls"])
        assert all(u["spec"]["authorization"]["type"] == "simple" for u in users)
        assert all(a["reason"] for a in acls["acls"])
