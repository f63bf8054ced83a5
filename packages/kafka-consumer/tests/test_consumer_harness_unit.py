"""The harness's failure, rebalance, backpressure, commit and cancellation paths, fast: a fake
consumer behind `consumer_factory=` and a fake aiokafka producer under a real
`KafkaEventProducer` (no broker)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from coffeebuddy.infra.kafka.consumer import (
    ErrorClass,
    KafkaConsumerHarness,
    NonRetryableError,
    RecordContext,
    RetryableError,
    TopicPartition,
)
from coffeebuddy.infra.kafka.consumer._context import Completion
from coffeebuddy.infra.kafka.models import DLQ_HEADERS, Event, parse_dead_letter_headers
from coffeebuddy.infra.kafka.testing import wait_until

TRACEPARENT = ("traceparent", b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")


def settled(completions: list[Completion], count: int) -> Any:
    """A `wait_until` predicate: settle every completion so far; true once `count` are."""

    def settle() -> bool:
        for c in list(completions):
            c.done()
        return len(completions) == count and all(c.is_settled for c in completions)

    return settle


async def test_a_retryable_error_is_retried_in_place_then_succeeds(
    fakes: Any, running: Any
) -> None:
    calls: list[tuple[int, int]] = []

    async def handler(event: Event, ctx: RecordContext) -> None:
        calls.append((ctx.offset, ctx.attempt))
        if ctx.offset == 0 and ctx.attempt < 3:
            raise RetryableError("slack 503")

    rig = fakes.rig(handler)
    rig.consumer.add(fakes.event(0))
    rig.consumer.add(fakes.event(1))
    async with running(rig.harness):
        await wait_until(lambda: rig.committed() == 2, timeout=5, message="both committed")
        assert rig.consumer.tp() in set().union(*rig.consumer.pause_history)  # paused to back off
    assert calls == [(0, 1), (0, 2), (0, 3), (1, 1)]  # the later record waited for the retries
    assert rig.dead_letters() == []
    retries = rig.sample(
        "coffeebuddy_kafka_handler_duration_seconds_count",
        topic=fakes.TOPIC.name,
        group="unit-group",
        outcome="retry",
    )
    assert retries == 2


async def test_exhausted_retries_dead_letter_with_the_contract_headers(
    fakes: Any, running: Any
) -> None:
    async def handler(event: Event, ctx: RecordContext) -> None:
        raise RetryableError("still down " + "x" * 3000)

    rig = fakes.rig(handler)
    value = fakes.event(0)
    rig.consumer.add(value, key=b"run-0", headers=[TRACEPARENT])
    async with running(rig.harness):
        await wait_until(lambda: rig.committed() == 1, timeout=5, message="committed past it")
    [dead] = rig.dead_letters()
    assert dead.topic == fakes.TOPIC.dead_letter_topic
    assert (dead.key, dead.value) == (b"run-0", value)  # byte for byte
    assert [name for name, _ in dead.headers[: len(DLQ_HEADERS)]] == list(DLQ_HEADERS)
    parsed = parse_dead_letter_headers(dead.headers)
    assert parsed.reason == "retries_exhausted"
    assert parsed.attempts == 3
    assert (parsed.origin_topic, parsed.origin_partition, parsed.origin_offset) == (
        fakes.TOPIC.name,
        0,
        0,
    )
    assert parsed.origin_key == b"run-0"
    assert parsed.error_type == "RetryableError"
    assert parsed.error_message.startswith("still down")
    assert parsed.error_message.endswith("...")
    assert parsed.first_seen is not None
    assert parsed.original == (TRACEPARENT,)
    assert (
        rig.sample(
            "coffeebuddy_kafka_dead_lettered_total",
            topic=fakes.TOPIC.name,
            group="unit-group",
            reason="retries_exhausted",
        )
        == 1
    )


async def test_non_retryable_and_unclassified_errors_dead_letter_at_once(
    fakes: Any, running: Any
) -> None:
    attempts: list[int] = []

    async def handler(event: Event, ctx: RecordContext) -> None:
        attempts.append(ctx.offset)
        raise NonRetryableError("bad") if ctx.offset == 0 else KeyError("bug")

    rig = fakes.rig(handler)
    rig.consumer.add(fakes.event(0))
    rig.consumer.add(fakes.event(1))
    async with running(rig.harness):
        await wait_until(lambda: rig.committed() == 2, timeout=5, message="both committed")
    assert attempts == [0, 1]
    reasons = [parse_dead_letter_headers(r.headers) for r in rig.dead_letters()]
    assert [(r.reason, r.error_type, r.attempts) for r in reasons] == [
        ("non_retryable", "NonRetryableError", 1),
        ("non_retryable", "KeyError", 1),
    ]


async def test_a_custom_classifier_decides_what_is_retried(fakes: Any, running: Any) -> None:
    attempts: list[int] = []

    async def handler(event: Event, ctx: RecordContext) -> None:
        attempts.append(ctx.attempt)
        if ctx.attempt == 1:
            raise LookupError("eventually consistent read")

    def classify(exc: BaseException) -> ErrorClass:
        return ErrorClass.RETRYABLE if isinstance(exc, LookupError) else ErrorClass.NON_RETRYABLE

    rig = fakes.rig(handler, classify_error=classify)
    rig.consumer.add(fakes.event(0))
    async with running(rig.harness):
        await wait_until(lambda: rig.committed() == 1, timeout=5, message="committed")
    assert attempts == [1, 2]
    assert rig.dead_letters() == []


async def test_a_failing_dead_letter_write_is_retried_and_holds_the_commit(
    fakes: Any, running: Any
) -> None:
    handled: list[int] = []

    async def handler(event: Event, ctx: RecordContext) -> None:
        if ctx.offset == 1:
            raise NonRetryableError("poison")
        handled.append(ctx.offset)

    rig = fakes.rig(handler, fail_sends=3)
    for n in range(3):
        rig.consumer.add(fakes.event(n))
    async with running(rig.harness):
        await wait_until(lambda: rig.committed() == 3, timeout=5, message="all committed")
    assert rig.producer.failed == 3
    assert len(rig.dead_letters()) == 1  # written once, after three failed writes
    assert parse_dead_letter_headers(rig.dead_letters()[0].headers).origin_offset == 1
    assert handled == [0, 2]  # nothing lost; record 2 waited behind the dead letter
    # no commit passed offset 1 before its dead letter was written
    commits = [c[rig.consumer.tp()] for c in rig.consumer.commits]
    assert commits == sorted(commits)
    assert commits[0] == 1
    assert 2 not in commits


async def test_undecodable_records_are_dead_lettered_and_the_partition_goes_on(
    fakes: Any, running: Any
) -> None:
    handled: list[int] = []

    async def handler(event: Event, ctx: RecordContext) -> None:
        handled.append(ctx.offset)

    rig = fakes.rig(handler)
    rig.consumer.add(b"\xff\xfe garbage", headers=[TRACEPARENT])
    rig.consumer.add(fakes.event(1))
    rig.consumer.add(None)  # a tombstone is no event either
    async with running(rig.harness):
        await wait_until(lambda: rig.committed() == 3, timeout=5, message="all committed")
    assert handled == [1]
    dead = [parse_dead_letter_headers(r.headers) for r in rig.dead_letters()]
    assert [(d.origin_offset, d.reason, d.error_type) for d in dead] == [
        (0, "decode_error", "EventDecodeError"),
        (2, "decode_error", "EventDecodeError"),
    ]
    assert dead[0].original == (TRACEPARENT,)
    assert rig.dead_letters()[1].value == b""


async def test_an_injected_decoder_sees_every_record_and_its_errors_dead_letter(
    fakes: Any, running: Any
) -> None:
    from coffeebuddy.infra.kafka.models import decode_record

    seen: list[bytes | None] = []

    def decoder(value: bytes | None, headers: Any) -> Event:
        seen.append(value)
        if len(seen) == 2:
            raise LookupError("refused by the injected decoder")
        return decode_record(value, headers)

    async def handler(event: Event, ctx: RecordContext) -> None:
        pass

    rig = fakes.rig(handler, decoder=decoder)
    for n in range(3):
        rig.consumer.add(fakes.event(n))
    async with running(rig.harness):
        await wait_until(lambda: rig.committed() == 3, timeout=5, message="all committed")
    assert len(seen) == 3
    [dead] = [parse_dead_letter_headers(r.headers) for r in rig.dead_letters()]
    assert (dead.origin_offset, dead.error_type) == (1, "LookupError")


async def test_only_contiguous_completed_offsets_are_committed(fakes: Any, running: Any) -> None:
    completions: dict[int, Completion] = {}

    async def handler(event: Event, ctx: RecordContext) -> None:
        completions[ctx.offset] = ctx.defer()
        assert ctx.defer() is completions[ctx.offset]  # one completion per record

    rig = fakes.rig(handler)
    for n in range(5):
        rig.consumer.add(fakes.event(n))
    async with running(rig.harness):
        await wait_until(lambda: len(completions) == 5, timeout=5, message="all delivered")
        for offset in (1, 2, 4):
            completions[offset].done()
        await wait_until(lambda: rig.committed() == 0, timeout=5, message="held at offset 0")
        completions[0].done()
        await wait_until(lambda: rig.committed() == 3, timeout=5, message="up to 3")
        assert completions[0].is_settled
        assert not completions[3].is_settled
        completions[3].done()
        completions[3].done()  # idempotent
        await wait_until(lambda: rig.committed() == 5, timeout=5, message="all")
    commits = [c[rig.consumer.tp()] for c in rig.consumer.commits]
    assert set(commits) <= {0, 3, 5}


async def test_a_failed_deferral_is_retried_detached_then_dead_lettered(
    fakes: Any, running: Any
) -> None:
    completions: list[Completion] = []
    attempts: list[tuple[int, int]] = []

    async def handler(event: Event, ctx: RecordContext) -> None:
        attempts.append((ctx.offset, ctx.attempt))
        if ctx.attempt == 1:
            completions.append(ctx.defer())
        elif ctx.offset == 1:
            raise RetryableError("still failing")  # offset 1: retries run out

    rig = fakes.rig(handler)
    rig.consumer.add(fakes.event(0))
    rig.consumer.add(fakes.event(1))
    async with running(rig.harness):
        await wait_until(lambda: len(completions) == 2, timeout=5, message="both deferred")
        completions[0].fail(RetryableError("later"))  # retried once, then succeeds
        completions[1].fail(RetryableError("later"))
        completions[1].done()  # settled already: ignored
        await wait_until(lambda: rig.committed() == 2, timeout=5, message="both settled")
    assert sorted(attempts) == [(0, 1), (0, 2), (1, 1), (1, 2), (1, 3)]
    [dead] = [parse_dead_letter_headers(r.headers) for r in rig.dead_letters()]
    assert (dead.origin_offset, dead.reason, dead.attempts) == (1, "retries_exhausted", 3)


async def test_a_completion_after_revoke_is_stale_and_ignored(fakes: Any, running: Any) -> None:
    contexts: list[RecordContext] = []
    revoked: list[list[TopicPartition]] = []

    async def handler(event: Event, ctx: RecordContext) -> None:
        contexts.append(ctx)
        ctx.defer()

    async def on_revoke(tps: list[TopicPartition]) -> None:
        revoked.append(tps)

    rig = fakes.rig(handler, on_revoke=on_revoke)
    rig.consumer.add(fakes.event(0))
    async with running(rig.harness):
        await wait_until(lambda: contexts, timeout=5, message="deferred")
        completion = contexts[0].defer()
        assert not completion.is_stale
        rig.consumer.revoke(0)
        await wait_until(lambda: revoked, timeout=5, message="revoked")
        await wait_until(lambda: not rig.harness.assignment(), timeout=5, message="dropped")
        assert completion.is_stale
        assert contexts[0].is_stale
        completion.done()
        completion.fail(NonRetryableError("too late"))
        assert not completion.is_settled
        kinds = {
            kind: rig.sample("coffeebuddy_kafka_rebalances_total", group="unit-group", kind=kind)
            for kind in ("revoked", "lost")
        }
        assert kinds == {"revoked": 1, "lost": 0}  # nothing to commit is no loss
    assert revoked == [[TopicPartition(fakes.TOPIC.name, 0)]]
    assert rig.committed() == 0  # the record is redelivered to the next owner
    assert rig.dead_letters() == []


async def test_revoke_waits_for_running_handlers_then_commits_them(
    fakes: Any, running: Any
) -> None:
    release = asyncio.Event()
    started: list[int] = []
    order: list[str] = []

    async def handler(event: Event, ctx: RecordContext) -> None:
        started.append(ctx.offset)
        if ctx.offset == 1:
            await release.wait()
            order.append("handler finished")

    async def on_revoke(tps: list[TopicPartition]) -> None:
        order.append("on_revoke")

    rig = fakes.rig(handler, on_revoke=on_revoke, commit_interval=60)
    for n in range(3):
        rig.consumer.add(fakes.event(n))
    async with running(rig.harness):
        await wait_until(lambda: 1 in started, timeout=5, message="blocked in offset 1")
        rig.consumer.revoke(0)
        await wait_until(
            lambda: rig.consumer.rebalancing == "revoke", timeout=5, message="revoking"
        )
        assert order == []
        assert rig.committed() is None
        release.set()
        await wait_until(lambda: rig.committed() == 2, timeout=5, message="revoke committed")
    assert order == ["handler finished", "on_revoke"]
    assert started == [0, 1]  # offset 2 was not started once revoking


async def test_a_revoke_whose_commit_is_refused_counts_the_partitions_lost(
    fakes: Any, running: Any
) -> None:
    from aiokafka.errors import CommitFailedError

    handled: list[int] = []

    async def handler(event: Event, ctx: RecordContext) -> None:
        handled.append(ctx.offset)

    rig = fakes.rig(handler, commit_interval=60)
    rig.consumer.add(fakes.event(0))
    async with running(rig.harness):
        await wait_until(lambda: handled, timeout=5, message="handled")
        rig.consumer.commit_error = CommitFailedError("generation gone")
        rig.consumer.revoke(0)
        await wait_until(
            lambda: (
                rig.sample("coffeebuddy_kafka_rebalances_total", group="unit-group", kind="lost")
                == 1
            ),
            timeout=5,
            message="lost",
        )
        assert rig.harness.assignment() == []
        rig.consumer.commit_error = None
        rig.consumer.assign(0)  # handed back: consumption resumes from the last commit
        await wait_until(lambda: handled == [0, 0], timeout=5, message="redelivered")
    assert rig.sample("coffeebuddy_kafka_commit_failures_total", group="unit-group") == 1


async def test_a_partition_pauses_at_its_incomplete_cap_and_resumes_below(
    fakes: Any, running: Any
) -> None:
    completions: list[Completion] = []

    async def handler(event: Event, ctx: RecordContext) -> None:
        completions.append(ctx.defer())

    rig = fakes.rig(handler, max_incomplete_per_partition=2, max_records=1)
    for n in range(4):
        rig.consumer.add(fakes.event(n))
    tp = rig.consumer.tp()
    async with running(rig.harness):
        # the cap counts fetched records: wait for the handler to have them too
        await wait_until(
            lambda: tp in rig.consumer.paused and len(completions) >= 2,
            timeout=5,
            message="paused at cap with the fetched records handled",
        )
        assert len(completions) <= 3  # at most one fetch beyond the cap
        first = len(completions)
        for c in completions[:first]:
            c.done()
        await wait_until(lambda: len(completions) > first, timeout=5, message="resumed below")
        await wait_until(settled(completions, 4), timeout=5, message="all four settled")
        await wait_until(lambda: rig.committed() == 4, timeout=5, message="all committed")
    history = rig.consumer.pause_history
    assert tp in history[0]
    assert any(tp not in paused for paused in history[1:])


async def test_the_incomplete_total_pauses_every_partition(fakes: Any, running: Any) -> None:
    completions: list[Completion] = []

    async def handler(event: Event, ctx: RecordContext) -> None:
        completions.append(ctx.defer())

    rig = fakes.rig(handler, partitions=2, max_incomplete_total=2, max_records=1)
    for n in range(3):
        rig.consumer.add(fakes.event(n), partition=0)
        rig.consumer.add(fakes.event(n), partition=1)
    both = {rig.consumer.tp(0), rig.consumer.tp(1)}
    async with running(rig.harness):
        await wait_until(lambda: rig.consumer.paused == both, timeout=5, message="all paused")
        gauge = rig.sample("coffeebuddy_kafka_paused_partitions", group="unit-group")
        assert gauge == 2
        await wait_until(settled(completions, 6), timeout=5, message="all six settled")
        await wait_until(lambda: rig.consumer.paused == set(), timeout=5, message="resumed")


async def test_in_flight_records_are_bounded_while_handlers_are_slow(
    fakes: Any, running: Any
) -> None:
    release = asyncio.Event()
    handled: list[int] = []

    async def handler(event: Event, ctx: RecordContext) -> None:
        await release.wait()
        handled.append(ctx.offset)

    rig = fakes.rig(handler, max_in_flight=2)
    for n in range(6):
        rig.consumer.add(fakes.event(n))
    tp = rig.consumer.tp()
    async with running(rig.harness):
        await wait_until(lambda: tp in rig.consumer.paused, timeout=5, message="paused")
        assert rig.consumer.positions[tp] <= 3  # the poll loop stopped fetching at the bound
        release.set()
        await wait_until(lambda: rig.committed() == 6, timeout=5, message="all committed")
    assert handled == list(range(6))


async def test_a_cancelled_caller_of_stop_sees_cancelled_error(fakes: Any) -> None:
    release = asyncio.Event()
    started = asyncio.Event()

    async def handler(event: Event, ctx: RecordContext) -> None:
        started.set()
        await release.wait()

    rig = fakes.rig(handler, stop_timeout=10)
    rig.consumer.add(fakes.event(0))
    run = asyncio.ensure_future(rig.harness.run())
    await asyncio.wait_for(started.wait(), 5)
    stopping = asyncio.ensure_future(rig.harness.stop())  # waits for the draining handler
    await wait_until(lambda: not rig.harness.health().ready, timeout=5, message="stopping")
    stopping.cancel()
    with pytest.raises(asyncio.CancelledError):
        await stopping
    assert not run.done()  # the shutdown goes on without the cancelled caller
    release.set()
    await asyncio.wait_for(run, 5)
    assert rig.committed() == 1
    assert rig.consumer.stopped


async def test_cancelling_run_shuts_down_and_raises_cancelled_error(fakes: Any) -> None:
    handled: list[int] = []

    async def handler(event: Event, ctx: RecordContext) -> None:
        handled.append(ctx.offset)

    rig = fakes.rig(handler, commit_interval=60)
    rig.consumer.add(fakes.event(0))
    run = asyncio.ensure_future(rig.harness.run())
    await wait_until(lambda: handled, timeout=5, message="handled")
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    assert rig.committed() == 1  # the shutdown still committed what finished
    assert rig.consumer.stopped
    assert not rig.harness.health().live
    with pytest.raises(RuntimeError, match="can be called once"):
        await rig.harness.run()


async def test_stop_before_run_and_from_inside_a_handler_return_at_once(
    fakes: Any, running: Any
) -> None:
    stopped: list[int] = []
    rig: Any = None

    async def handler(event: Event, ctx: RecordContext) -> None:
        await rig.harness.stop()  # from the worker task: must not wait for itself
        stopped.append(ctx.offset)

    rig = fakes.rig(handler)
    idle = fakes.rig(handler)
    await idle.harness.stop()  # never ran: nothing to wait for
    rig.consumer.add(fakes.event(0))
    run = asyncio.ensure_future(rig.harness.run())
    await asyncio.wait_for(run, 5)
    assert stopped == [0]
    assert rig.committed() == 1


async def test_a_consumer_whose_stop_hangs_is_abandoned_within_the_deadline(
    fakes: Any,
) -> None:
    async def handler(event: Event, ctx: RecordContext) -> None:
        pass

    rig = fakes.rig(handler, stop_timeout=1.0)
    rig.consumer.stop_blocks = True
    rig.consumer.add(fakes.event(0))
    run = asyncio.ensure_future(rig.harness.run())
    await wait_until(lambda: rig.committed() == 1, timeout=5, message="committed")
    loop = asyncio.get_running_loop()
    begun = loop.time()
    await rig.harness.stop()
    assert run.done()
    assert loop.time() - begun < 2.0
    assert not rig.consumer.stopped


async def test_retriable_poll_errors_are_survived_and_others_end_run(fakes: Any) -> None:
    from aiokafka.errors import RequestTimedOutError

    handled: list[int] = []

    async def handler(event: Event, ctx: RecordContext) -> None:
        handled.append(ctx.offset)

    rig = fakes.rig(handler)
    rig.consumer.poll_errors = [RequestTimedOutError()]
    rig.consumer.add(fakes.event(0))
    run = asyncio.ensure_future(rig.harness.run())
    await wait_until(lambda: rig.committed() == 1, timeout=5, message="polled past the error")
    rig.consumer.poll_errors = [ValueError("broken client")]
    rig.consumer.add(fakes.event(1))
    with pytest.raises(ValueError, match="broken client"):
        await asyncio.wait_for(run, 5)
    assert rig.consumer.stopped


async def test_health_is_ready_when_assigned_and_not_live_without_commit_progress(
    fakes: Any, running: Any
) -> None:
    held: list[Completion] = []

    async def handler(event: Event, ctx: RecordContext) -> None:
        held.append(ctx.defer())

    rig = fakes.rig(handler, stall_timeout=0.2, max_incomplete_per_partition=1, max_records=1)
    rig.consumer.add(fakes.event(0))
    rig.consumer.add(fakes.event(1))
    assert rig.harness.health().detail == "not running (stopped)"
    async with running(rig.harness):
        await wait_until(lambda: rig.harness.health().ready, timeout=5, message="ready")
        status = await wait_until(
            lambda: (s := rig.harness.health()) and not s.live and s, timeout=5, message="stall"
        )
        assert "no commit progress" in status.detail
        assert status.ready
        for c in held:
            c.done()
        await wait_until(lambda: rig.harness.health().live, timeout=5, message="live again")
    assert rig.harness.assignment() == []


async def test_partition_callbacks_get_sorted_partitions_and_their_failures_are_logged(
    fakes: Any, running: Any, caplog: pytest.LogCaptureFixture
) -> None:
    assigned: list[list[TopicPartition]] = []

    async def on_assign(tps: list[TopicPartition]) -> None:
        assigned.append(tps)
        raise RuntimeError("callback bug")

    async def handler(event: Event, ctx: RecordContext) -> None:
        pass

    rig = fakes.rig(handler, partitions=2, on_assign=on_assign)
    async with running(rig.harness):
        await wait_until(lambda: assigned, timeout=5, message="assigned")
        assert rig.harness.assignment() == [
            TopicPartition(fakes.TOPIC.name, 0),
            TopicPartition(fakes.TOPIC.name, 1),
        ]
    assert assigned == [[TopicPartition(fakes.TOPIC.name, 0), TopicPartition(fakes.TOPIC.name, 1)]]
    assert "partition callback" in caplog.text


async def test_the_consumer_factory_gets_the_settings_consumer_kwargs(fakes: Any) -> None:
    async def handler(event: Event, ctx: RecordContext) -> None:
        pass

    rig = fakes.rig(handler)
    run = asyncio.ensure_future(rig.harness.run())
    await wait_until(lambda: rig.harness.health().ready, timeout=5, message="ready")
    await rig.harness.stop()
    await run
    assert rig.consumer.kwargs["group_id"] == "unit-group"
    assert rig.consumer.kwargs["enable_auto_commit"] is False


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max_in_flight": 0}, "max_in_flight must be > 0"),
        ({"stop_timeout": 0}, "stop_timeout must be > 0"),
        ({"max_incomplete_per_partition": 0}, "max_incomplete_per_partition"),
        ({"max_incomplete_total": 0}, "max_incomplete_total"),
    ],
)
def test_bad_options_are_refused_by_name(fakes: Any, options: dict[str, Any], message: str) -> None:
    async def handler(event: Event, ctx: RecordContext) -> None:
        pass

    with pytest.raises(ValueError, match=message):
        fakes.rig(handler, **options)


def test_topics_and_group_are_checked(fakes: Any) -> None:
    from coffeebuddy.infra.kafka.config import KafkaSettings
    from coffeebuddy.infra.kafka.topics import TopicConfig

    async def handler(event: Event, ctx: RecordContext) -> None:
        pass

    settings = KafkaSettings.from_env({"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9"})
    no_dlq = TopicConfig(name="t", partitions=1, replication_factor=1, key_field="run_id")
    with pytest.raises(ValueError, match="non-empty sequence"):
        KafkaConsumerHarness(settings, [], "g", handler)
    with pytest.raises(TypeError, match="TopicConfig objects"):
        KafkaConsumerHarness(settings, ["t"], "g", handler)  # type: ignore[list-item]
    with pytest.raises(ValueError, match="has no dead_letter_topic"):
        KafkaConsumerHarness(settings, [no_dlq], "g", handler)
    with pytest.raises(ValueError, match="non-empty consumer group"):
        KafkaConsumerHarness(settings, [fakes.TOPIC], "", handler)


async def test_stop_from_a_partition_callback_returns_at_once(fakes: Any) -> None:
    revoked: list[list[TopicPartition]] = []
    rig: Any = None

    async def on_revoke(tps: list[TopicPartition]) -> None:
        revoked.append(tps)
        await rig.harness.stop()  # runs in the poll loop: must not wait for the shutdown

    async def handler(event: Event, ctx: RecordContext) -> None:
        pass

    rig = fakes.rig(handler, on_revoke=on_revoke)
    rig.consumer.add(fakes.event(0))
    run = asyncio.ensure_future(rig.harness.run())
    await wait_until(lambda: rig.committed() == 1, timeout=5, message="committed")
    rig.consumer.revoke(0)
    await asyncio.wait_for(run, 5)
    assert revoked == [[TopicPartition(fakes.TOPIC.name, 0)]]
    assert rig.consumer.stopped


async def test_stopping_ends_a_retry_backoff_and_leaves_the_record_uncommitted(
    fakes: Any,
) -> None:
    from coffeebuddy.infra.kafka.consumer import RetryPolicy

    failed = asyncio.Event()

    async def handler(event: Event, ctx: RecordContext) -> None:
        failed.set()
        raise RetryableError("down for a while")

    slow = RetryPolicy(max_attempts=5, initial_backoff=30.0, max_backoff=30.0, jitter=0.0)
    rig = fakes.rig(handler, retry_policy=slow)
    rig.consumer.add(fakes.event(0))
    run = asyncio.ensure_future(rig.harness.run())
    await asyncio.wait_for(failed.wait(), 5)
    await wait_until(lambda: rig.consumer.tp() in rig.consumer.paused, timeout=5, message="paused")
    loop = asyncio.get_running_loop()
    begun = loop.time()
    await rig.harness.stop()
    assert loop.time() - begun < 5  # the 30 s backoff did not hold the stop
    assert run.done()
    assert rig.committed() == 0  # offset 0 stays next: redelivered after a restart
    assert rig.dead_letters() == []


async def test_a_retry_attempt_may_defer_its_record(fakes: Any, running: Any) -> None:
    completions: list[Completion] = []

    async def handler(event: Event, ctx: RecordContext) -> None:
        if ctx.attempt == 1:
            raise RetryableError("once")
        completions.append(ctx.defer())

    rig = fakes.rig(handler)
    rig.consumer.add(fakes.event(0))
    async with running(rig.harness):
        await wait_until(lambda: completions, timeout=5, message="deferred on attempt 2")
        assert rig.committed() in (None, 0)
        completions[0].done()
        await wait_until(lambda: rig.committed() == 1, timeout=5, message="committed")


async def test_a_consumer_stop_ending_in_cancellation_still_closes_its_connections() -> None:
    """aiokafka's stop() can end in CancelledError before it reaches the client's close():
    the coordinator's connection would leak (seen in the revoke-overrun tests)."""
    from coffeebuddy.infra.kafka.consumer._seam import stop_consumer

    class Client:
        closed = False

        async def close(self) -> None:
            self.closed = True

    class Consumer:
        def __init__(self) -> None:
            self._client = Client()

        async def stop(self) -> None:
            raise asyncio.CancelledError

    consumer = Consumer()
    await stop_consumer(consumer, budget=1.0)  # type: ignore[arg-type]
    assert consumer._client.closed
