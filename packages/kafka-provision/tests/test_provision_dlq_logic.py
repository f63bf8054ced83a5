"""The dlq tools' rules without a broker: the dead-letter view, selection, replay once, ledgers.

Dead letters are written with the models' `dead_letter_headers` (what the consumer harness
writes) into an in-memory `FakeCluster` that is the tools' `TopicReader` and `Publisher`.
"""

from __future__ import annotations

import dataclasses
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from coffeebuddy.infra.kafka.models import (
    CONTENT_TYPE,
    DLQ_HEADER_PREFIX,
    DLQ_REPLAYED,
    DLQ_REPLAYED_FROM,
    DeadLetterReplayed,
    RunClosed,
    RunClosedData,
    dead_letter_headers,
    decode_event,
    decode_record,
    encode_event,
    encode_record,
)
from coffeebuddy.infra.kafka.provision.dlq import (
    DeadLetter,
    DeadLetterFilter,
    DlqError,
    FileReplayLedger,
    LedgerTopicMissingError,
    ReplayLedger,
    TopicReplayLedger,
    inspect_dead_letters,
    replay_dead_letters,
)
from coffeebuddy.infra.kafka.provision.dlq._filter import parse_duration
from coffeebuddy.infra.kafka.provision.dlq._inspect import dlq_name
from coffeebuddy.infra.kafka.provision.dlq._ledger import (
    default_operator,
    default_state_file,
    replayed_event,
)
from coffeebuddy.infra.kafka.provision.dlq._publisher import RecordPosition
from coffeebuddy.infra.kafka.topics import CATALOG, DLQ_REPLAYS_TOPIC, TopicConfig

if TYPE_CHECKING:
    from conftest import FakeCluster

ORIGIN = "test.orders"
DLQ = "test.orders.dlq"
NOW = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)  # an hour after the fake cluster's records
LEDGER = DLQ_REPLAYS_TOPIC
TRACEPARENT = ("traceparent", b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")


def _event(run_id: str) -> bytes:
    return json.dumps(
        {
            "specversion": "1.0",
            "type": "coffeebuddy.reminder.scheduled.v1",
            "data": {"run_id": run_id},
        }
    ).encode()


def put_dead_letter(
    cluster: FakeCluster,
    run_id: str,
    *,
    error: BaseException | None = None,
    reason: str = "non_retryable",
    origin: str = ORIGIN,
    dlq: str = DLQ,
    offset: int = 0,
    partition: int = 0,
    value: bytes | None = None,
    extra: list[tuple[str, bytes]] | None = None,
    timestamp_ms: int | None = None,
) -> None:
    headers = dead_letter_headers(
        topic=origin,
        partition=partition,
        offset=offset,
        key=run_id.encode(),
        error=error or ValueError(f"{run_id} is bad"),
        reason=reason,
        attempts=3,
        first_seen=NOW.timestamp() - 7200,
        original_headers=[TRACEPARENT, *(extra or [])],
    )
    cluster.put(
        dlq,
        _event(run_id) if value is None else value,
        key=run_id.encode(),
        headers=headers,
        timestamp_ms=timestamp_ms,
    )


class SlackApiError(Exception):
    pass


@pytest.fixture
def three(cluster: FakeCluster) -> FakeCluster:
    """run-1..3 in the DLQ (two Slack errors, one decode error), each in its origin order."""
    put_dead_letter(cluster, "run-1", error=SlackApiError("invalid_blocks"), offset=10)
    put_dead_letter(
        cluster, "run-2", error=ValueError("bad json"), reason="decode_error", offset=11
    )
    put_dead_letter(
        cluster, "run-3", error=SlackApiError("ratelimited"), reason="retries_exhausted", offset=12
    )
    cluster.create(ORIGIN)
    cluster.create(LEDGER.name)
    return cluster


# --------------------------------------------------------------------------- the view


async def test_a_dead_letter_reads_what_the_harness_wrote(three: FakeCluster) -> None:
    [first, *_] = await inspect_dead_letters(DLQ, reader=three, now=NOW)
    assert (first.origin_topic, first.origin_partition, first.origin_offset) == (ORIGIN, 0, 10)
    assert first.origin_key == b"run-1"
    assert (first.error_type, first.error_message) == ("SlackApiError", "invalid_blocks")
    assert (first.reason, first.attempts) == ("non_retryable", 3)
    assert first.first_seen == NOW - timedelta(hours=2)
    assert (first.run_id, first.event_type) == ("run-1", "coffeebuddy.reminder.scheduled.v1")
    assert not first.binary
    assert first.ref == f"{DLQ}/0/0"
    assert first.ledger_key == f"{DLQ}/0/0@1795770000000"
    assert first.age(NOW) == timedelta(hours=1)
    row = first.to_json(NOW)
    assert row["key"] == "run-1"
    assert row["age_seconds"] == 3600.0
    assert row["first_seen"] == (NOW - timedelta(hours=2)).isoformat()
    assert row["value_bytes"] == len(_event("run-1"))
    headers = first.replay_headers()
    assert not any(k.startswith(DLQ_HEADER_PREFIX) and k != DLQ_REPLAYED_FROM for k, _ in headers)
    assert headers == [TRACEPARENT, (DLQ_REPLAYED_FROM, first.ref.encode())]


def test_a_foreign_record_reads_as_unknown_not_as_an_error() -> None:
    letter = DeadLetter(
        dlq_topic=DLQ,
        partition=0,
        offset=1,
        timestamp=NOW,
        key=b"k",
        value=b"\xff not json",
        headers=((DLQ_HEADER_PREFIX + "attempts", b"many"),),
    )
    assert (letter.origin_topic, letter.attempts, letter.first_seen) == (None, None, None)
    assert letter.origin_key == b"k"  # no origin key header: the record's own key
    assert (letter.event, letter.run_id, letter.event_type) == (None, None, None)
    assert letter.to_json(NOW)["first_seen"] is None
    array = dataclasses.replace(letter, value=b"[1, 2]")
    assert array.event is None


def test_a_binary_mode_dead_letter_reads_its_type_from_the_ce_headers() -> None:
    event = RunClosed.create(data=RunClosedData(run_id="run-bin", closed_at=NOW))
    value, ce_headers = encode_record(event, "binary")
    letter = DeadLetter(DLQ, 0, 0, NOW, b"run-bin", value, tuple(ce_headers))
    assert letter.binary
    assert (letter.event_type, letter.run_id) == (event.type, "run-bin")
    no_type = dataclasses.replace(letter, headers=tuple(h for h in ce_headers if h[0] != "ce_type"))
    assert no_type.event_type is None


# --------------------------------------------------------------------------- selection


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        (DeadLetterFilter(), ["run-1", "run-2", "run-3"]),
        (DeadLetterFilter(reason="decode_error"), ["run-2"]),
        (DeadLetterFilter(error_type="SlackApiError"), ["run-1", "run-3"]),
        (DeadLetterFilter(error_type="Slack"), []),
        (DeadLetterFilter(error_type="SlackApiError", reason="retries_exhausted"), ["run-3"]),
        (DeadLetterFilter(key="run-2"), ["run-2"]),
        (DeadLetterFilter(run_id="run-3"), ["run-3"]),
        (DeadLetterFilter(origin_topic=ORIGIN), ["run-1", "run-2", "run-3"]),
        (DeadLetterFilter(origin_topic="elsewhere"), []),
        (DeadLetterFilter(newer_than=timedelta(minutes=59, seconds=58)), ["run-3"]),
        (DeadLetterFilter(older_than=timedelta(minutes=59, seconds=59)), ["run-1", "run-2"]),
        (DeadLetterFilter(refs=frozenset({(0, 2), (0, 0), (1, 0)})), ["run-1", "run-3"]),
    ],
)
async def test_inspect_filters(
    three: FakeCluster, where: DeadLetterFilter, expected: list[str]
) -> None:
    letters = await inspect_dead_letters(DLQ, reader=three, where=where, now=NOW)
    assert [d.run_id for d in letters] == expected


async def test_inspect_sorts_oldest_first_and_limits(cluster: FakeCluster) -> None:
    put_dead_letter(cluster, "late", timestamp_ms=3_000)
    put_dead_letter(cluster, "early", timestamp_ms=1_000)
    letters = await inspect_dead_letters(DLQ, reader=cluster)
    assert [d.run_id for d in letters] == ["early", "late"]
    assert [d.run_id for d in await inspect_dead_letters(DLQ, reader=cluster, limit=1)] == ["early"]


async def test_inspect_of_a_catalog_origin_reads_its_dlq(cluster: FakeCluster) -> None:
    runs = CATALOG.topic("coffeebuddy.run.events")
    assert runs.dead_letter_topic is not None
    cluster.create(runs.dead_letter_topic)
    assert await inspect_dead_letters(runs.name, reader=cluster) == []
    assert await inspect_dead_letters(runs, reader=cluster) == []
    assert cluster.reads == [runs.dead_letter_topic] * 2


def test_dlq_name() -> None:
    runs = CATALOG.topic("coffeebuddy.run.events")
    assert runs.dead_letter_topic is not None
    dlq = CATALOG.topic(runs.dead_letter_topic)
    assert dlq_name(dlq) == dlq_name(dlq.name) == dlq.name
    assert dlq_name("not.in.catalog") == "not.in.catalog"
    assert dlq_name(DLQ_REPLAYS_TOPIC) == DLQ_REPLAYS_TOPIC.name  # no DLQ of its own
    with pytest.raises(DlqError, match="expected a topic name, got ''"):
        dlq_name("")


async def test_inspect_names_a_missing_topic(cluster: FakeCluster) -> None:
    with pytest.raises(DlqError, match=r"dead-letter topic 'no\.such\.dlq' does not exist"):
        await inspect_dead_letters("no.such.dlq", reader=cluster)


def test_parse_duration() -> None:
    assert parse_duration("90s") == timedelta(seconds=90)
    assert parse_duration(" 1H30m ") == timedelta(minutes=90)
    assert parse_duration("2d") == parse_duration("0.5w") - timedelta(days=1.5)
    for bad in ("soon", "5 minutes", "", "10"):
        with pytest.raises(DlqError, match="use a number with s, m, h, d or w"):
            parse_duration(bad)


# --------------------------------------------------------------------------- replay


async def test_dry_run_then_replay_once_then_nothing(three: FakeCluster, tmp_path: Path) -> None:
    ledger = FileReplayLedger(tmp_path / "replayed.jsonl", replayed_by="ops@host")
    where = DeadLetterFilter(error_type="SlackApiError")

    dry = await replay_dead_letters(
        DLQ, ledger=ledger, reader=three, publisher=three, where=where, dry_run=True
    )
    assert [d.run_id for d in dry.to_replay] == ["run-1", "run-3"]
    assert dry.to_json()["would_replay"] == [f"{DLQ}/0/0", f"{DLQ}/0/2"]
    assert (dry.replayed, three.sends) == ([], [])
    assert not ledger.path.exists()

    done = await replay_dead_letters(
        DLQ, ledger=ledger, reader=three, publisher=three, where=where, rate=1000
    )
    assert [(d.run_id, md) for d, md in done.replayed] == [
        ("run-1", RecordPosition(ORIGIN, 0, 0)),
        ("run-3", RecordPosition(ORIGIN, 0, 1)),
    ]
    assert done.to_json()["replayed"][1] == {
        "ref": f"{DLQ}/0/2",
        "topic": ORIGIN,
        "partition": 0,
        "offset": 1,
    }
    for (topic, value, key, headers), run_id, ref in zip(
        three.sends, ["run-1", "run-3"], ["0/0", "0/2"], strict=True
    ):
        assert (topic, value, key) == (ORIGIN, _event(run_id), run_id.encode())
        assert headers == [TRACEPARENT, (DLQ_REPLAYED_FROM, f"{DLQ}/{ref}".encode())]
    lines = [json.loads(line) for line in ledger.path.read_text().splitlines()]
    assert [(e["run_id"], e["replayed_by"], e["target_offset"]) for e in lines] == [
        ("run-1", "ops@host", 0),
        ("run-3", "ops@host", 1),
    ]
    assert all(e["key"] == e["ref"] for e in lines)

    again = await replay_dead_letters(
        DLQ, ledger=ledger, reader=three, publisher=three, where=where
    )
    assert again.replayed == []
    assert [d.run_id for d in again.already_replayed] == ["run-1", "run-3"]
    assert again.to_replay == []
    assert len(three.sends) == 2


async def test_the_limit_counts_new_sends_only(three: FakeCluster, tmp_path: Path) -> None:
    ledger = FileReplayLedger(tmp_path / "l.jsonl")
    first = await replay_dead_letters(DLQ, ledger=ledger, reader=three, publisher=three, limit=1)
    assert [d.run_id for d, _ in first.replayed] == ["run-1"]
    # a fresh ledger object on the same file remembers
    second = await replay_dead_letters(
        DLQ, ledger=FileReplayLedger(ledger.path), reader=three, publisher=three, limit=1
    )
    assert [d.run_id for d in second.already_replayed] == ["run-1"]
    assert [d.run_id for d, _ in second.replayed] == ["run-3"]  # run-2 failed to decode: left
    assert [d.run_id for d in second.selected] == ["run-1", "run-3"]


async def test_replay_leaves_decode_errors_out_unless_asked_for_by_name(
    three: FakeCluster, tmp_path: Path
) -> None:
    """The RUNBOOK: decode errors are not fixable by replay (the same bytes fail again)."""
    ledger = FileReplayLedger(tmp_path / "l.jsonl")
    dry = await replay_dead_letters(DLQ, ledger=ledger, reader=three, publisher=three, dry_run=True)
    assert [d.run_id for d in dry.to_replay] == ["run-1", "run-3"]
    assert [(d.run_id, d.reason) for d in dry.left_out] == [("run-2", "decode_error")]
    [left] = dry.to_json()["left_out"]
    assert left["reason"] == "decode_error"
    assert "fail to decode again" in left["why"]
    # a key alone does not ask for it: the reason must be named
    by_key = await replay_dead_letters(
        DLQ, ledger=ledger, reader=three, publisher=three, where=DeadLetterFilter(key="run-2")
    )
    assert (by_key.replayed, [d.run_id for d in by_key.left_out]) == ([], ["run-2"])
    asked = await replay_dead_letters(
        DLQ,
        ledger=ledger,
        reader=three,
        publisher=three,
        where=DeadLetterFilter(reason="decode_error"),
    )
    assert [d.run_id for d, _ in asked.replayed] == ["run-2"]
    assert asked.left_out == []


async def test_a_bad_origin_anywhere_in_the_selection_sends_nothing(
    three: FakeCluster, tmp_path: Path
) -> None:
    put_dead_letter(three, "run-x", origin="coffeebuddy.run.events")
    ledger = FileReplayLedger(tmp_path / "l.jsonl")
    with pytest.raises(DlqError, match=r"/0/3: origin topic 'coffeebuddy.run.events' is not the"):
        await replay_dead_letters(DLQ, ledger=ledger, reader=three, publisher=three)
    assert three.sends == []
    assert not ledger.path.exists()


async def test_a_dead_letter_without_origin_is_not_replayed(
    cluster: FakeCluster, tmp_path: Path
) -> None:
    cluster.put(DLQ, _event("run-o"), key=b"run-o", headers=[TRACEPARENT])
    with pytest.raises(DlqError, match=rf"{DLQ}/0/0: no origin topic header"):
        await replay_dead_letters(
            DLQ, ledger=FileReplayLedger(tmp_path / "l"), reader=cluster, publisher=cluster
        )


async def test_origins_by_catalog_or_given_topics_when_the_name_has_no_dlq_suffix(
    cluster: FakeCluster, tmp_path: Path
) -> None:
    odd = TopicConfig(
        name="test.odd", partitions=1, replication_factor=1, key_field="run_id",
        dead_letter_topic="test.odd-dead",
    )  # fmt: skip
    put_dead_letter(cluster, "run-d", origin=odd.name, dlq="test.odd-dead")
    ledger = FileReplayLedger(tmp_path / "l.jsonl")
    with pytest.raises(DlqError, match=r"expected one of \[\]"):
        await replay_dead_letters("test.odd-dead", ledger=ledger, reader=cluster, publisher=cluster)
    done = await replay_dead_letters(
        "test.odd-dead", ledger=ledger, reader=cluster, publisher=cluster, topics=[odd]
    )
    assert [md.topic for _, md in done.replayed] == [odd.name]
    # a catalog DLQ: its origin is the catalog's, whatever the name says
    runs = CATALOG.topic("coffeebuddy.run.events")
    assert runs.dead_letter_topic is not None
    put_dead_letter(cluster, "run-c", origin=runs.name, dlq=runs.dead_letter_topic)
    done = await replay_dead_letters(runs, ledger=ledger, reader=cluster, publisher=cluster)
    assert [md.topic for _, md in done.replayed] == [runs.name]


async def test_a_failed_send_stops_the_run_and_the_ledger_holds_what_was_sent(
    three: FakeCluster, tmp_path: Path
) -> None:
    ledger = FileReplayLedger(tmp_path / "l.jsonl")
    three.fail_sends_after = 1
    with pytest.raises(ConnectionError, match=r"send to test\.orders failed"):
        await replay_dead_letters(DLQ, ledger=ledger, reader=three, publisher=three)
    assert [json.loads(line)["run_id"] for line in ledger.path.read_text().splitlines()] == [
        "run-1"
    ]
    three.fail_sends_after = None
    rest = await replay_dead_letters(DLQ, ledger=ledger, reader=three, publisher=three)
    assert [d.run_id for d, _ in rest.replayed] == ["run-3"]
    assert [d.run_id for d in rest.left_out] == ["run-2"]  # a decode error: not replayed


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"rate": 0}, "rate: must be > 0 messages/s, got 0"), ({"limit": -1}, "limit: must be >= 0")],
)
async def test_replay_rejects_bad_numbers(
    three: FakeCluster, tmp_path: Path, kwargs: dict[str, float], message: str
) -> None:
    with pytest.raises(DlqError, match=message):
        await replay_dead_letters(
            DLQ, ledger=FileReplayLedger(tmp_path / "l"), reader=three, publisher=three, **kwargs
        )
    assert three.reads == []


async def test_a_binary_dead_letter_is_replayed_byte_for_byte(
    cluster: FakeCluster, tmp_path: Path
) -> None:
    event = RunClosed.create(data=RunClosedData(run_id="run-bin", closed_at=NOW))
    value, ce_headers = encode_record(event, "binary")
    put_dead_letter(cluster, "run-bin", value=value, extra=ce_headers)
    done = await replay_dead_letters(
        DLQ, ledger=FileReplayLedger(tmp_path / "l"), reader=cluster, publisher=cluster
    )
    [(letter, _)] = done.replayed
    assert letter.binary
    [(_, sent, _, headers)] = cluster.sends
    assert sent == value
    assert decode_record(sent, headers) == event


# --------------------------------------------------------------------------- ledgers


def test_replayed_event_takes_the_run_id_from_the_data_or_a_run_keyed_origin() -> None:
    letter = DeadLetter(
        dlq_topic="coffeebuddy.run.events.dlq",
        partition=1,
        offset=5,
        timestamp=datetime(2026, 11, 27, 9, 0, tzinfo=UTC),
        key=b"run-k",
        value=b"\xff not json",
        headers=(),
    )
    letter = dataclasses.replace(
        letter, headers=tuple(dead_letter_headers(
            topic="coffeebuddy.run.events", partition=0, offset=4, key=b"run-k",
            error=ValueError("x"), reason="decode_error", attempts=1, first_seen=0.0,
            original_headers=None,
        ))
    )  # fmt: skip
    target = RecordPosition(topic="coffeebuddy.run.events", partition=3, offset=77)
    event = replayed_event(letter, target, replayed_by="ops@host")
    assert event.data.run_id == event.subject == "run-k"  # run.events is keyed by run_id
    assert event.data.ref == "coffeebuddy.run.events.dlq/1/5@1795770000000" == letter.ledger_key
    assert (event.data.origin_partition, event.data.origin_offset) == (0, 4)
    assert (event.data.target_partition, event.data.target_offset) == (3, 77)
    assert decode_event(encode_event(event)) == event
    elsewhere = dataclasses.replace(letter, dlq_topic="test.x.dlq", headers=())
    no_run = replayed_event(elsewhere, target)
    assert no_run.data.run_id is None
    assert no_run.subject == no_run.data.ref
    bad_key = dataclasses.replace(letter, key=b"not a run id!")
    assert replayed_event(dataclasses.replace(bad_key, headers=()), target).data.run_id is None


async def test_topic_ledger_records_entries_a_fresh_ledger_reads_back(
    three: FakeCluster,
) -> None:
    first = await replay_dead_letters(
        DLQ,
        ledger=TopicReplayLedger(reader=three, publisher=three, replayed_by="a@host"),
        reader=three,
        publisher=three,
        where=DeadLetterFilter(key="run-2", reason="decode_error"),
    )
    assert [d.run_id for d, _ in first.replayed] == ["run-2"]
    [marker] = three.topics[LEDGER.name]
    assert marker.key is not None
    assert dict(marker.headers)["content-type"] == CONTENT_TYPE.encode()
    event = decode_event(marker.value or b"")
    assert isinstance(event, DeadLetterReplayed)
    assert marker.key.decode() == event.data.ref == first.replayed[0][0].ledger_key
    assert (event.data.replayed_by, event.data.origin_topic) == ("a@host", ORIGIN)

    # another operator, another process
    fresh = TopicReplayLedger(reader=three, publisher=three)
    second = await replay_dead_letters(DLQ, ledger=fresh, reader=three, publisher=three)
    assert [d.run_id for d in second.already_replayed] == ["run-2"]
    assert [d.run_id for d, _ in second.replayed] == ["run-1", "run-3"]
    assert sorted(e.run_id or "" for e in fresh.entries.values()) == ["run-1", "run-2", "run-3"]


async def test_topic_ledger_forgets_a_tombstoned_entry(three: FakeCluster) -> None:
    ledger = TopicReplayLedger(reader=three, publisher=three)
    await replay_dead_letters(DLQ, ledger=ledger, reader=three, publisher=three, limit=1)
    [entry] = ledger.entries
    three.put(LEDGER.name, None, key=entry.encode())
    await ledger.load()
    assert ledger.entries == {}


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (b"not json", r"\[0\]@0: not a ledger entry"),
        (encode_event(RunClosed.create(data=RunClosedData(run_id="r", closed_at=NOW))), "not "),
    ],
)
async def test_topic_ledger_rejects_records_that_are_not_ledger_entries(
    cluster: FakeCluster, value: bytes, message: str
) -> None:
    cluster.put(LEDGER.name, value, key=b"x", headers=[("content-type", CONTENT_TYPE.encode())])
    with pytest.raises(DlqError, match=rf"replay ledger topic {LEDGER.name}.*{message}"):
        await TopicReplayLedger(reader=cluster, publisher=cluster).load()


async def test_topic_ledger_refuses_to_replay_without_its_topic(cluster: FakeCluster) -> None:
    put_dead_letter(cluster, "run-1")
    with pytest.raises(LedgerTopicMissingError, match="`coffeebuddy-kafka apply`") as info:
        await replay_dead_letters(
            DLQ, ledger=TopicReplayLedger(reader=cluster), reader=cluster, publisher=cluster
        )
    assert info.value.topic == LEDGER.name
    assert "--state-file" in str(info.value)
    other = LEDGER.model_copy(update={"name": "ops.x"})
    with pytest.raises(LedgerTopicMissingError, match="pick another with --ledger-topic"):
        await TopicReplayLedger(other, reader=cluster).load()
    assert cluster.sends == []


async def test_topic_ledger_records_only_inside_async_with(cluster: FakeCluster) -> None:
    letter = DeadLetter(DLQ, 0, 0, NOW, None, b"", ())
    ledger = TopicReplayLedger(reader=cluster)
    with pytest.raises(DlqError, match=re.escape(f"TopicReplayLedger({LEDGER.name!r}): record")):
        await ledger.record(letter, RecordPosition(ORIGIN, 0, 0))


def test_topic_ledger_needs_a_ledger_shaped_topic() -> None:
    with pytest.raises(DlqError, match=re.escape(f"must allow event type {DLQ_REPLAYED!r}")):
        TopicReplayLedger(CATALOG.topic("coffeebuddy.run.events"))
    assert TopicReplayLedger().topic == DLQ_REPLAYS_TOPIC
    assert TopicReplayLedger().replayed_by == default_operator()


async def test_file_ledger_names_a_corrupt_line(tmp_path: Path) -> None:
    path = tmp_path / "l.jsonl"
    path.write_text('{"key": "a"}\n\n{"ref": "b"}\nnot json\n')
    with pytest.raises(DlqError, match=r"l.jsonl:4: not a ledger entry"):
        await FileReplayLedger(path).load()
    path.write_text('{"key": "a"}\n\n{"ref": "b"}\n')
    ledger = FileReplayLedger(path)
    await ledger.load()
    assert repr(ledger) == f"FileReplayLedger({str(path)!r})"
    assert DeadLetter("x", 0, 0, NOW, None, b"", ()) not in ledger
    assert "a" not in ledger  # only dead letters are looked up


async def test_file_ledger_refuses_a_concurrent_replay(tmp_path: Path) -> None:
    path = tmp_path / "deeper" / "l.jsonl"
    async with FileReplayLedger(path):
        with pytest.raises(DlqError, match="another replay holds"):
            async with FileReplayLedger(path):
                pass
    async with FileReplayLedger(path) as ledger:  # released again
        assert isinstance(ledger, ReplayLedger)


async def test_file_ledger_releases_its_lock_when_the_file_is_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "l.jsonl"
    path.write_text("[]\n")
    for _ in range(2):  # the second attempt would say "another replay holds" if it leaked
        with pytest.raises(DlqError, match="not a ledger entry"):
            async with FileReplayLedger(path):
                pass


def test_default_state_file() -> None:
    assert default_state_file({"COFFEEBUDDY_DLQ_STATE_FILE": "/x/l.jsonl"}) == Path("/x/l.jsonl")
    assert default_state_file({"XDG_STATE_HOME": "/s"}) == Path("/s/coffeebuddy/dlq-replayed.jsonl")
    assert default_state_file({}) == Path.home() / ".local/state/coffeebuddy/dlq-replayed.jsonl"
    assert "@" in default_operator()
