"""OffsetTracker: any completion order commits exactly the lowest incomplete offset."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coffeebuddy.infra.kafka.consumer._tracker import OffsetTracker


@st.composite
def deliveries(draw: st.DrawFn) -> tuple[list[int], list[int]]:
    """Increasing offsets with gaps, and a random order in which some of them complete."""
    start = draw(st.integers(min_value=0, max_value=1000))
    gaps = draw(st.lists(st.integers(min_value=1, max_value=3), min_size=1, max_size=60))
    offsets = []
    offset = start
    for gap in gaps:
        offsets.append(offset)
        offset += gap
    completed = draw(st.permutations(offsets))
    k = draw(st.integers(min_value=0, max_value=len(completed)))
    return offsets, list(completed[:k])


@given(deliveries(), st.integers(min_value=1, max_value=10))
@settings(max_examples=300, deadline=None)
def test_committable_is_lowest_incomplete_offset(
    case: tuple[list[int], list[int]], batch: int
) -> None:
    offsets, completion_order = case
    tracker = OffsetTracker()
    for i in range(0, len(offsets), batch):
        tracker.add_many(offsets[i : i + batch])
    done: set[int] = set()
    for offset in completion_order:
        tracker.complete(offset)
        tracker.complete(offset)  # idempotent
        done.add(offset)
        incomplete = [o for o in offsets if o not in done]
        expected = incomplete[0] if incomplete else offsets[-1] + 1
        assert tracker.committable() == expected
        assert tracker.incomplete == len(incomplete)


def test_to_commit_only_reports_movement() -> None:
    tracker = OffsetTracker()
    assert tracker.committable() is None
    assert tracker.to_commit() is None
    tracker.add_many([5, 6, 9])
    assert tracker.to_commit() == 5
    tracker.mark_committed(5)
    assert tracker.to_commit() is None
    tracker.complete(6)
    assert tracker.to_commit() is None
    tracker.complete(5)
    assert tracker.to_commit() == 9
    tracker.complete(9)
    assert tracker.committable() == 10
    tracker.complete(4)  # already behind: ignored
    assert tracker.committable() == 10


def test_offsets_must_increase() -> None:
    tracker = OffsetTracker()
    tracker.add(3)
    with pytest.raises(ValueError, match="must increase"):
        tracker.add(3)
    with pytest.raises(ValueError, match="must increase"):
        tracker.add_many([2, 4])
    assert tracker.committable() == 3
    assert tracker.incomplete == 1
