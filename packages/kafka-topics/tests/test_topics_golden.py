"""Backward compatibility: the catalog may grow, never lose or change what consumers rely on.

Intended breaking changes, each made with `python tools/gen_contracts.py --update-golden
--allow-breaking` and listed in RETIRED_TOPICS so the name is never reused:
- `coffeebuddy.reminder.deliveries` (type `coffeebuddy.reminder.delivery.v1`) removed with the
  reminder worker's delivery-log upgrade path: a format never released outside the worker.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from coffeebuddy.infra.kafka.topics import (
    CATALOG,
    RUN_EVENTS_TOPIC,
    ConsumerGroup,
    breaking_changes,
    catalog_snapshot,
)

GOLDEN = Path(__file__).parent / "golden" / "catalog_v1.json"
RETIRED_TOPICS = frozenset({"coffeebuddy.reminder.deliveries"})
"""Removed on purpose (see the module doc); a new topic must take another name."""


@pytest.fixture
def golden() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(GOLDEN.read_text(encoding="utf-8"))
    return data


def test_shipped_catalog_is_compatible_with_golden(golden: dict[str, Any]) -> None:
    assert breaking_changes(golden, CATALOG) == []
    # The golden file must describe real entries (an empty golden would pass trivially).
    assert set(golden["topics"]) == {t.name for t in CATALOG.topics}
    assert set(golden["groups"]) == {g.name for g in CATALOG.groups}


def test_retired_topics_are_gone_and_never_reused(golden: dict[str, Any]) -> None:
    assert not RETIRED_TOPICS & set(golden["topics"])
    assert not RETIRED_TOPICS & CATALOG.topic_names
    retired_types = {"coffeebuddy.reminder.delivery.v1"}
    assert not retired_types & CATALOG.event_types


def _swap(**update: object) -> Any:
    topics = tuple(
        t.model_copy(update=update) if t.name == RUN_EVENTS_TOPIC.name else t
        for t in CATALOG.topics
    )
    return CATALOG.model_copy(update={"topics": topics})


def test_removed_topic_breaks(golden: dict[str, Any]) -> None:
    smaller = CATALOG.model_copy(update={"topics": CATALOG.topics[1:]})
    assert breaking_changes(golden, smaller) == ["topic coffeebuddy.run.events: removed or renamed"]


@pytest.mark.parametrize(
    ("update", "expected"),
    [
        ({"key_field": "team_id"}, "key_field changed from 'run_id' to 'team_id'"),
        ({"partitions": 24}, "partitions changed from 12 to 24"),
        ({"kind": "log"}, "kind changed from 'events' to 'log'"),
        ({"configs": {"cleanup.policy": "compact"}}, "cleanup_policy changed"),
        ({"dead_letter_topic": None}, "dead_letter_topic changed"),
        (
            {"event_types": RUN_EVENTS_TOPIC.event_types - {"coffeebuddy.run.closed.v1"}},
            "event types removed: coffeebuddy.run.closed.v1",
        ),
    ],
)
def test_changed_topic_breaks(
    golden: dict[str, Any], update: dict[str, object], expected: str
) -> None:
    problems = breaking_changes(golden, _swap(**update))
    assert len(problems) == 1
    assert problems[0].startswith("topic coffeebuddy.run.events: ")
    assert expected in problems[0]


def test_group_losing_a_topic_breaks(golden: dict[str, Any]) -> None:
    groups = tuple(
        ConsumerGroup(name=g.name, owner=g.owner, topics=g.topics[:1]) for g in CATALOG.groups
    )
    problems = breaking_changes(golden, CATALOG.model_copy(update={"groups": groups}))
    assert problems == [
        "group coffeebuddy.reminder-worker: topics removed: coffeebuddy.reminder.events",
    ]


def test_additions_are_allowed(golden: dict[str, Any]) -> None:
    more_types = _swap(event_types=RUN_EVENTS_TOPIC.event_types | {"coffeebuddy.run.renamed.v1"})
    extra = RUN_EVENTS_TOPIC.model_copy(update={"name": "coffeebuddy.team.events"})
    assert breaking_changes(golden, more_types.extend(topics=[extra])) == []
    snapshot = catalog_snapshot(more_types.extend(topics=[extra]))
    assert "coffeebuddy.team.events" in snapshot["topics"]
