"""The worker's promise under the failures issue 21 reproduced: each test tries to make it send
twice, early, for a cancelled run, or never (no broker: fake sender, in-memory changelog)."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from typing import TYPE_CHECKING

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coffeebuddy.infra.kafka.models import (
    ReminderCancelled,
    ReminderCancelledData,
    ReminderStatus,
    RunCancelled,
    RunCancelledData,
    RunClosed,
    RunClosedData,
    StateRecordError,
    decode_state,
)
from coffeebuddy.infra.kafka.reminder_worker import ReminderSettings, SendResult
from coffeebuddy.infra.kafka.reminder_worker._state import ReminderState
from coffeebuddy.infra.kafka.testing import wait_until

if TYPE_CHECKING:
    from conftest import Harness, Kit


def _compacted(kit: type[Kit], log: object) -> object:
    """What Kafka's log cleaner leaves of `log`: the last record per key, in log order
    (tombstones kept, as before delete.retention.ms)."""
    fresh = kit.MemoryChangelog()
    for p, records in log.parts.items():  # type: ignore[attr-defined]
        last = {key: i for i, (key, _) in enumerate(records)}
        fresh.parts[p] = [rec for i, rec in enumerate(records) if last[rec[0]] == i]
    return fresh


async def test_a_newer_schedule_after_a_failed_attempt_replaces_the_kept_claim(
    kit: type[Kit], h: Harness
) -> None:
    """Scenario 2: a failed attempt keeps its claim; a newer schedule with a later due time must
    replace it, so the old payload is never posted, nor anything before the new due time."""
    await h.feed(kit.scheduled(due_in=10))
    h.sender.script["rem-1"] = [SendResult.transient("internal_error")]
    h.clock.advance(10)
    await h.run()
    assert h.sender.sent == []
    newer = kit.scheduled(due_in=60, time=kit.T0 + timedelta(seconds=11))
    newer = newer.model_copy(update={"data": newer.data.model_copy(update={"place": "New Cafe"})})
    h.clock.advance(1)
    ctx = await h.feed(newer)
    for _ in range(97):  # up to T0 + 59.5: retries of the old attempt would fire in here
        h.clock.advance(0.5)
        await h.run()
    await wait_until(lambda: ctx.completed, timeout=5, message="the newer schedule completes")
    assert h.sender.sent == []
    h.clock.advance(0.5)
    await h.run()
    assert [rid for rid, _ in h.sender.sent] == ["rem-1"]
    assert h.sender.sent[0][1] == kit.T0 + timedelta(seconds=60)
    places = [json.loads(v)["data"]["reminder"]["place"] for k, v in h.changelog.parts[0] if v]
    assert places[-1] == "New Cafe"


async def test_a_run_cancelled_then_closed_survives_compaction(kit: type[Kit]) -> None:
    """Scenario 3: the run's mark in the changelog must say "cancelled" after compaction keeps
    only its last record ("closed"), or the runner reminders of a cancelled run go out."""
    first = await kit.Harness().start()
    await first.feed(RunCancelled.create(data=RunCancelledData(run_id="run-1")), kit.RUNS)
    await first.feed(
        RunClosed.create(data=RunClosedData(run_id="run-1", closed_at=kit.T0)), kit.RUNS
    )
    h = await kit.Harness(_compacted(kit, first.changelog)).start()  # type: ignore[arg-type]
    ctx = await h.feed(kit.scheduled("runner-1", kind="runner", due_in=5))
    h.clock.advance(10)
    await h.run()
    assert h.sender.sent == []
    assert ctx.completed
    assert h.changelog.statuses("runner-1") == ["dropped"]


async def test_a_poison_changelog_record_is_skipped_and_the_rest_restores(kit: type[Kit]) -> None:
    """Scenario 4: a record that is JSON but not an object (and other garbage) must be skipped,
    counted and named in the health detail; the reminders around it are restored and sent."""
    log = kit.MemoryChangelog()
    log.parts[0].append(("rem-1", kit.claim_record("old-owner", 1, kit.T0.timestamp() - 60)))
    for junk in (b"null", b"[]", b"\xff\xfe", b'{"type": 1}', b'"text"'):
        log.parts[0].append(("junk", junk))
    h = await kit.Harness(log).start()
    await h.feed(kit.scheduled("rem-2", due_in=0))
    await h.run()
    assert sorted(rid for rid, _ in h.sender.sent) == ["rem-1", "rem-2"]
    assert "5 unreadable changelog records skipped" in h.worker.health().detail


async def test_unknown_status_or_a_non_integer_epoch_is_never_pending(kit: type[Kit]) -> None:
    """Suspected: a record with an unknown status was treated as pending, and sent again."""
    log = kit.MemoryChangelog()
    claim = json.loads(kit.claim_record("old", 1, kit.T0.timestamp() - 60))
    for status, epoch in (("bogus", 1), ("claimed", "x"), ("claimed", 1.5)):
        doc = json.loads(json.dumps(claim))
        doc["data"]["status"] = status
        doc["data"]["epoch"] = epoch
        log.parts[0].append(("rem-1", json.dumps(doc).encode()))
    h = await kit.Harness(log).start()
    h.clock.advance(60)
    await h.run()
    assert h.sender.sent == []
    assert h.worker.pending_count == 0
    assert "3 unreadable changelog records skipped" in h.worker.health().detail


async def test_a_zombie_claim_after_a_cancellation_does_not_bring_it_back(kit: type[Kit]) -> None:
    """Suspected: a late claim of an old owner, after the reminder was cancelled, made it
    pending again (and sent after the claim's deadline, since the history holds no post)."""
    h = await kit.Harness().start()
    await h.feed(kit.scheduled(due_in=60))
    await h.feed(
        ReminderCancelled.create(data=ReminderCancelledData(run_id="run-1", reminder_id="rem-1"))
    )
    h.changelog.inject(0, "rem-1", kit.claim_record("zombie", 1, kit.T0.timestamp() + 60))
    h.clock.advance(120)
    await h.run()
    assert h.sender.sent == []
    assert h.worker.pending_count == 0
    # the final state is written again, so that compaction keeps it and not the zombie's claim
    assert h.changelog.statuses("rem-1")[-1] == "cancelled"
    restored = await kit.Harness(_compacted(kit, h.changelog)).start()  # type: ignore[arg-type]
    restored.clock.advance(120)
    await restored.run()
    assert restored.sender.sent == []


async def test_at_max_pending_cancellations_and_due_reminders_still_pass(kit: type[Kit]) -> None:
    """Scenario 6: at max_pending, a far-future schedule must not hold the partition: a
    cancellation behind it is applied, and a reminder due now behind it is sent on time."""
    h = await kit.Harness(max_pending=2).start()
    await h.feed(kit.scheduled("a", due_in=30))
    await h.feed(kit.scheduled("b", due_in=7 * 86400))
    far = await asyncio.wait_for(h.feed(kit.scheduled("c", due_in=8 * 86400)), timeout=2)
    cancel = await asyncio.wait_for(
        h.feed(
            ReminderCancelled.create(data=ReminderCancelledData(run_id="run-1", reminder_id="a"))
        ),
        timeout=2,
    )
    now = await asyncio.wait_for(h.feed(kit.scheduled("now", due_in=1)), timeout=2)
    h.clock.advance(1)
    await h.run()
    assert cancel.completed
    assert now.completed
    assert [rid for rid, _ in h.sender.sent] == ["now"]
    h.clock.advance(40)
    await h.run()
    assert [rid for rid, _ in h.sender.sent] == ["now"]  # "a" was cancelled
    assert not far.completed or "c" in {k for k, _ in h.changelog.parts[0]}


async def test_a_bad_restored_payload_and_a_429_never_stop_delivery_silently(
    kit: type[Kit],
) -> None:
    """Scenario 5: a restored reminder whose payload fails validation, plus a 429, killed the
    scheduler while /readyz stayed 200. Delivery must go on, and readiness must tell the truth."""
    log = kit.MemoryChangelog()
    doc = json.loads(kit.claim_record("old-owner", 1, kit.T0.timestamp() - 60, rid="bad"))
    doc["data"]["reminder"]["recipient_user_id"] = "not a user id"  # fails the models' rules
    doc["data"]["status"] = "scheduled"
    for field in ("owner", "epoch", "claimed_at", "deadline"):
        del doc["data"][field]
    log.parts[0].append(("bad", json.dumps(doc).encode()))
    h = kit.Harness(log)  # not started by the harness: the worker's own tasks run below
    worker, sender = h.worker, h.sender
    sender.script["limited"] = [SendResult.rate_limited(0.01)]
    async with worker:
        await worker.on_assign([kit.TopicPartition(kit.EVENTS, 0)])
        for i, rid in enumerate(("limited", "ok-1", "ok-2")):
            ctx = kit.Context(kit.EVENTS, 0, i)
            await worker.process_event(kit.scheduled(rid, due_in=0), ctx)  # type: ignore[arg-type]

        def all_sent() -> bool:
            h.clock.advance(0.05)  # the injected clock moves on while we wait
            return {"limited", "ok-1", "ok-2"} <= {rid for rid, _ in sender.sent}

        await wait_until(all_sent, timeout=10, message="every valid reminder sent, the bad skipped")
        assert worker.ready
        assert "1 unreadable changelog records skipped" in worker.health().detail
        assert log.statuses("bad")[-1] == "dropped"  # settled: never tried again


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=6)
    ),
    max_leaves=20,
)


def _near_record(kit: type[Kit]) -> st.SearchStrategy[bytes]:
    """Real state records with one field replaced by arbitrary JSON (or removed)."""
    base = json.loads(kit.claim_record("w", 1, kit.T0.timestamp()))
    fields = [*sorted(base["data"]), "type", "data"]

    @st.composite
    def mutate(draw: st.DrawFn) -> bytes:
        doc = json.loads(json.dumps(base))
        name = draw(st.sampled_from(fields))
        target = doc if name in ("type", "data") else doc["data"]
        if draw(st.booleans()):
            target.pop(name, None)
        else:
            target[name] = draw(_JSON)
        return json.dumps(doc).encode()

    return mutate()


@settings(
    max_examples=300,
    deadline=None,
    # `kit` is a class of stateless helpers: nothing to reset between examples
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_fuzz_any_bytes_or_json_never_breaks_the_decoder_or_the_state(
    kit: type[Kit], data: st.DataObject
) -> None:
    """Issue 21.4: whatever a changelog record holds, decoding raises only StateRecordError, and
    the state skips it (counted) or applies a valid record; it never raises."""
    value = data.draw(
        st.one_of(
            st.binary(max_size=200),
            _JSON.map(lambda v: json.dumps(v).encode()),
            _near_record(kit),
        )
    )
    try:
        rec = decode_state(value)
    except StateRecordError:
        rec = None
    state = ReminderState(
        kit.MemoryChangelog(),
        ReminderSettings.defaults(),
        now=lambda: 0.0,
        worker_id="me",
        events_topic="ev",
    )

    async def apply() -> None:
        state.open(0).restored = True
        state.on_record(0, 7, b"rem-1", value, False)

    asyncio.run(apply())
    if rec is None:
        assert state.unreadable == 1
    else:
        assert state.unreadable == 0
        assert rec.status in set(ReminderStatus)
        for entry in state.partitions[0].pending.values():
            assert entry.due == rec.due
            assert isinstance(entry.claim_epoch, int | None)


@pytest.mark.parametrize("read", ["tailed", "restored"])
async def test_a_zombie_claim_after_a_dead_letter_does_not_bring_it_back(
    kit: type[Kit], read: str
) -> None:
    """A late claim after a dead letter, kept by compaction as the key's last record, would
    make the next owner try the rejected reminder again (and dead-letter it a second time)."""
    h = await kit.Harness().start()
    h.sender.script["rem-1"] = [SendResult.permanent("invalid_blocks", dead_letter=True)]
    await h.feed(kit.scheduled(due_in=0))
    await h.run()
    assert h.changelog.statuses("rem-1")[-1] == "dead_lettered"
    assert len(h.producer.dead_letters) == 1
    zombie = kit.claim_record("zombie", 1, kit.T0.timestamp())
    if read == "tailed":
        h.changelog.inject(0, "rem-1", zombie)
        log = h.changelog
    else:
        log = kit.MemoryChangelog()
        log.parts[0] = [*h.changelog.parts[0], ("rem-1", zombie)]
        await kit.Harness(log).start()  # type: ignore[arg-type]
    # the dead letter is written again, so that compaction keeps it and not the zombie's claim
    assert log.statuses("rem-1")[-1] == "dead_lettered"
    # ... whole: where it was parked (to replay it from `reminders list`), why, and its data
    records = [decode_state(v) for k, v in log.parts[0] if k == "rem-1" and v]
    first = next(r for r in records if r.status is ReminderStatus.DEAD_LETTERED)
    last = records[-1]
    assert first is not last
    assert first.dlq_offset is not None
    for name in ("reason", "dlq_topic", "dlq_partition", "dlq_offset", "reminder", "keep_until"):
        assert getattr(last, name) == getattr(first, name), name
    restored = await kit.Harness(_compacted(kit, log)).start()  # type: ignore[arg-type]
    restored.clock.advance(3600)
    await restored.run()
    assert restored.sender.entered == []
    assert restored.producer.dead_letters == []
    assert restored.worker.pending_count == 0
