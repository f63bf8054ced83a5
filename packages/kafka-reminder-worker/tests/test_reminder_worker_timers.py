"""Unit tests of the pure scheduling pieces: timer heap, run marks."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from coffeebuddy.infra.kafka.reminder_worker._entry import Pending, RunMark
from coffeebuddy.infra.kafka.reminder_worker._timers import TimerHeap


def entry(rid: str, due: float, run_id: str = "run-1", kind: str = "runner") -> Pending:
    return Pending(rid, run_id, kind, due, due + 60, due + 3600, b"{}", "ev-" + rid, 0.0, 0)


def test_heap_pops_only_due_entries_in_time_order() -> None:
    heap = TimerHeap()
    live: dict[str, Pending] = {}
    for rid, due in (("c", 30.0), ("a", 10.0), ("b", 20.0)):
        live[rid] = e = entry(rid, due)
        heap.push(e, due)

    def is_live(e: Pending) -> bool:
        return live.get(e.reminder_id) is e

    assert heap.pop_due(9.99, is_live, 10) == []
    assert [e.reminder_id for e in heap.pop_due(20.0, is_live, 10)] == ["a", "b"]
    assert heap.next_time(is_live) == 30.0


def test_heap_skips_superseded_and_requeued_items() -> None:
    heap = TimerHeap()
    old = entry("r", 10.0)
    new = entry("r", 50.0)
    live = {"r": new}
    heap.push(old, 10.0)
    heap.push(new, 50.0)
    heap.push(new, 40.0)  # re-queued earlier: the 50.0 item is now dead

    def is_live(e: Pending) -> bool:
        return live.get(e.reminder_id) is e

    assert heap.pop_due(45.0, is_live, 10) == [new]
    assert heap.pop_due(100.0, is_live, 10) == []
    assert heap.next_time(is_live) is None


def test_heap_respects_the_batch_limit() -> None:
    heap = TimerHeap()
    items = [entry(f"r{i}", float(i)) for i in range(5)]
    for e in items:
        heap.push(e, e.due)
    assert heap.pop_due(10.0, lambda e: True, 2) == items[:2]
    assert heap.pop_due(10.0, lambda e: True, 10) == items[2:]


def test_compact_drops_dead_items() -> None:
    heap = TimerHeap()
    a, b = entry("a", 1.0), entry("b", 2.0)
    heap.push(a, 1.0)
    heap.push(b, 2.0)
    heap.compact(lambda e: e is b)
    assert len(heap) == 1


def test_run_mark_blocks_by_reason_and_keeps_runner_reminders_of_closed_runs() -> None:
    mark = RunMark(keep_until=100.0)
    assert mark.blocks("runner") is None
    mark.closed = True
    assert mark.blocks("runner") is None
    assert mark.blocks("last_call") == "run_closed"
    mark.cancelled = True
    assert mark.blocks("runner") == "run_cancelled"
    assert mark.blocks("last_call") == "run_cancelled"


@given(
    st.lists(
        st.tuples(st.integers(0, 9), st.floats(0, 100, allow_nan=False)), min_size=1, max_size=60
    ),
    st.floats(0, 100, allow_nan=False),
)
def test_heap_matches_a_sorted_model_under_reschedules(
    pushes: list[tuple[int, float]], now: float
) -> None:
    """Whatever the push / re-push sequence, pop_due returns each live reminder once, at its
    latest time, in time order, and only when due."""
    heap = TimerHeap()
    live: dict[str, Pending] = {}
    latest: dict[str, float] = {}
    for key, at in pushes:
        rid = f"r{key}"
        e = live.setdefault(rid, entry(rid, at))
        heap.push(e, at)
        latest[rid] = at

    def is_live(e: Pending) -> bool:
        return live.get(e.reminder_id) is e

    popped = heap.pop_due(now, is_live, 1000)
    expected = sorted((at, rid) for rid, at in latest.items() if at <= now)
    assert sorted((e.next_at, e.reminder_id) for e in popped) == expected
    assert [e.next_at for e in popped] == sorted(e.next_at for e in popped)
    rest = heap.next_time(is_live)
    later = [at for at in latest.values() if at > now]
    assert rest == (min(later) if later else None)
