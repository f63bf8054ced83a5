"""Backward compatibility of the catalog against a checked-in golden snapshot.

Entries may be added; an existing topic or group must keep its name, kind, key rule,
dead-letter topic, cleanup policy and partition count (more partitions move keys),
and may only gain event types.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from coffeebuddy.infra.kafka.topics._catalog import Catalog

SNAPSHOT_VERSION = 1
_FIXED_TOPIC_FIELDS = ("kind", "key_field", "dead_letter_topic", "cleanup_policy", "partitions")


def catalog_snapshot(catalog: Catalog) -> dict[str, Any]:
    """The contract part of `catalog` as JSON-ready data with sorted lists (for the golden file)."""
    return {
        "version": SNAPSHOT_VERSION,
        "topics": {
            t.name: {
                "kind": t.kind,
                "key_field": t.key_field,
                "event_types": sorted(t.event_types),
                "dead_letter_topic": t.dead_letter_topic,
                "cleanup_policy": t.cleanup_policy,
                "partitions": t.partitions,
            }
            for t in sorted(catalog.topics, key=lambda t: t.name)
        },
        "groups": {
            g.name: {"topics": sorted(g.topics)}
            for g in sorted(catalog.groups, key=lambda g: g.name)
        },
    }


def breaking_changes(golden: Mapping[str, Any], catalog: Catalog) -> list[str]:
    """Every way `catalog` breaks the `golden` snapshot (empty: compatible; additions allowed)."""
    current = catalog_snapshot(catalog)
    problems: list[str] = []
    for name, old in sorted(golden.get("topics", {}).items()):
        new = current["topics"].get(name)
        if new is None:
            problems.append(f"topic {name}: removed or renamed")
            continue
        problems.extend(
            f"topic {name}: {field} changed from {old.get(field)!r} to {new.get(field)!r}"
            for field in _FIXED_TOPIC_FIELDS
            if old.get(field) != new.get(field)
        )
        dropped = sorted(set(old.get("event_types", ())) - set(new["event_types"]))
        if dropped:
            problems.append(f"topic {name}: event types removed: {', '.join(dropped)}")
    for name, old in sorted(golden.get("groups", {}).items()):
        new = current["groups"].get(name)
        if new is None:
            problems.append(f"group {name}: removed or renamed")
            continue
        dropped = sorted(set(old.get("topics", ())) - set(new["topics"]))
        if dropped:
            problems.append(f"group {name}: topics removed: {', '.join(dropped)}")
    return problems
