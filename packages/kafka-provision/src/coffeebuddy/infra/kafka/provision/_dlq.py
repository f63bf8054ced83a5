"""`coffeebuddy-kafka dlq inspect|replay`: list dead letters and re-publish them once.

CLI hook (read by `_cli.py`): `register(subparsers: argparse._SubParsersAction) -> None` adds the
`dlq` parser with `inspect` and `replay` leaves; each sets `func=` to a callable taking the parsed
namespace and returning an awaitable exit code (0 ok, 1 error, 2 replayed something).

Python API: `inspect_dead_letters(...)`, `replay_dead_letters(...)`, `DeadLetter`,
`DeadLetterFilter`, `ReplayReport`, `ReplayLedger` (`FileReplayLedger`, `TopicReplayLedger`).

Dead letters are read with a group-less consumer (assign + seek, never a group commit), so
inspecting changes nothing on the cluster. A replayed dead letter goes back to its origin topic
through `KafkaEventProducer.send_raw` with its original key and headers, minus the
`coffeebuddy.dlq.*` headers, plus `coffeebuddy.dlq.replayed_from: <dlq>/<partition>/<offset>`.

Replay ledger: every replayed dead letter is recorded as a `coffeebuddy.dlq.replayed.v1` event
(`DeadLetterReplayed`), keyed by `ref` = DLQ topic, partition, offset and record timestamp (the
timestamp keeps a recreated DLQ topic's reused offsets apart), and a run skips what the ledger
holds, so running the same replay twice sends nothing the second time. Two stores:
`TopicReplayLedger`, the catalog's compacted `coffeebuddy.dlq.replays` topic (one for every
DLQ), shared by every operator and machine: the CLI default (`--ledger-topic NAME` picks
another); `FileReplayLedger`, a locked, fsync'd JSON-lines state file (`--state-file [FILE]`,
explicit opt-in for offline/ad-hoc use), which needs no topic or ACL but only protects replays
run against the same file.
A crash between a send and its ledger entry can resend that one record; the reminder worker's
changelog (sent / claimed states) still keeps the DM to one.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import getpass
import json
import os
import re
import socket
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any, Literal, Protocol, Self, runtime_checkable

from aiokafka import AIOKafkaConsumer, TopicPartition
from rich.console import Console
from rich.table import Table

from coffeebuddy.infra.kafka.config import KafkaSettings, topic_partitions
from coffeebuddy.infra.kafka.models import (
    CE_HEADER_PREFIX,
    DLQ_REPLAYED,
    DeadLetterReplayed,
    DeadLetterReplayedData,
    EventDecodeError,
    content_mode,
    decode_record,
)
from coffeebuddy.infra.kafka.producer import KafkaEventProducer, RecordMetadata
from coffeebuddy.infra.kafka.topics import CATALOG, DLQ_REPLAYS_TOPIC, TopicConfig

__all__ = [
    "DLQ_HEADER_PREFIX",
    "REPLAYED_FROM_HEADER",
    "REPLAY_LEDGER_TOPIC",
    "DeadLetter",
    "DeadLetterFilter",
    "DlqError",
    "FileReplayLedger",
    "LedgerTopicMissingError",
    "ReplayLedger",
    "ReplayReport",
    "TopicReplayLedger",
    "default_operator",
    "default_state_file",
    "inspect_dead_letters",
    "parse_duration",
    "register",
    "replay_dead_letters",
    "replayed_event",
]

DLQ_HEADER_PREFIX = "coffeebuddy.dlq."
REPLAYED_FROM_HEADER = "coffeebuddy.dlq.replayed_from"
_H = DLQ_HEADER_PREFIX
DLQ_SUFFIX = ".dlq"
REPLAY_LEDGER_TOPIC = DLQ_REPLAYS_TOPIC.name
REPLAYED_EVENT_TYPE = DLQ_REPLAYED
STATE_FILE_ENV = "COFFEEBUDDY_DLQ_STATE_FILE"

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_REPLAYED = 2


class DlqError(ValueError):
    """Bad DLQ input (unknown topic, unreadable ledger, unsafe origin): says what and where."""


class TopicMissingError(DlqError):
    """A topic to read does not exist on the cluster."""

    def __init__(self, message: str, topic: str) -> None:
        super().__init__(message)
        self.topic = topic


class LedgerTopicMissingError(TopicMissingError):
    """The replay ledger topic does not exist: nothing can be replayed safely."""


# --------------------------------------------------------------------------- dead letters


@dataclass(frozen=True)
class DeadLetter:
    """One record of a dead-letter topic with its `coffeebuddy.dlq.*` headers decoded."""

    dlq_topic: str
    partition: int
    offset: int
    timestamp: datetime
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...]

    def header(self, name: str) -> str | None:
        """The last value of header `name` as text (None when absent)."""
        found = None
        for key, value in self.headers:
            if key == name:
                found = value.decode("utf-8", errors="replace")
        return found

    @property
    def ref(self) -> str:
        """`<dlq topic>/<partition>/<offset>`: what `replayed_from` carries."""
        return f"{self.dlq_topic}/{self.partition}/{self.offset}"

    @property
    def ledger_key(self) -> str:
        return f"{self.ref}@{int(self.timestamp.timestamp() * 1000)}"

    @property
    def origin_topic(self) -> str | None:
        return self.header(_H + "origin.topic")

    @property
    def origin_partition(self) -> int | None:
        return _int_or_none(self.header(_H + "origin.partition"))

    @property
    def origin_offset(self) -> int | None:
        return _int_or_none(self.header(_H + "origin.offset"))

    @property
    def origin_key(self) -> bytes | None:
        """The original record key: the `origin.key` header, else the dead letter's own key."""
        for key, value in reversed(self.headers):
            if key == _H + "origin.key":
                return value
        return self.key

    @property
    def error_type(self) -> str:
        return self.header(_H + "error.type") or ""

    @property
    def error_message(self) -> str:
        return self.header(_H + "error.message") or ""

    @property
    def reason(self) -> str:
        return self.header(_H + "reason") or ""

    @property
    def attempts(self) -> int | None:
        return _int_or_none(self.header(_H + "attempts"))

    @property
    def first_seen(self) -> datetime | None:
        raw = self.header(_H + "first_seen")
        if not raw:
            return None
        with contextlib.suppress(ValueError):
            return datetime.fromisoformat(raw.replace("Z", "+00:00"))
        return None

    @property
    def event(self) -> Mapping[str, Any] | None:
        """The value as a JSON object (a CloudEvent), or None when it is not JSON."""
        try:
            data = json.loads(self.value)
        except ValueError:
            return None
        return data if isinstance(data, dict) else None

    @property
    def binary(self) -> bool:
        """True for a CloudEvents binary-mode record (attributes in `ce_*` headers, the value
        is the data); dead letters keep the original record's mode."""
        return content_mode(self.headers) == "binary"

    @property
    def run_id(self) -> str | None:
        event = self.event
        data = event if self.binary else (event.get("data") if event else None)
        run_id = data.get("run_id") if isinstance(data, dict) else None
        return str(run_id) if run_id is not None else None

    @property
    def event_type(self) -> str | None:
        if self.binary:  # the type is the ce_type header (names are case-insensitive)
            found = [v for k, v in self.headers if k.lower() == CE_HEADER_PREFIX + "type"]
            return found[-1].decode("utf-8", errors="replace") if found else None
        event = self.event
        kind = event.get("type") if event else None
        return str(kind) if kind is not None else None

    def replay_headers(self) -> list[tuple[str, bytes]]:
        """Original headers without `coffeebuddy.dlq.*`, plus `replayed_from`."""
        kept = [(k, v) for k, v in self.headers if not k.startswith(DLQ_HEADER_PREFIX)]
        return [*kept, (REPLAYED_FROM_HEADER, self.ref.encode())]

    def age(self, now: datetime | None = None) -> timedelta:
        """Time since the record was dead-lettered (its timestamp in the DLQ)."""
        return (now or datetime.now(UTC)) - self.timestamp

    def to_json(self, now: datetime | None = None) -> dict[str, Any]:
        return {
            "dlq_topic": self.dlq_topic,
            "partition": self.partition,
            "offset": self.offset,
            "ref": self.ref,
            "timestamp": self.timestamp.isoformat(),
            "age_seconds": round(self.age(now).total_seconds(), 3),
            "origin_topic": self.origin_topic,
            "origin_partition": self.origin_partition,
            "origin_offset": self.origin_offset,
            "key": _text(self.origin_key),
            "run_id": self.run_id,
            "event_type": self.event_type,
            "error_type": self.error_type,
            "error_message": self.error_message,
            "reason": self.reason,
            "attempts": self.attempts,
            "first_seen": self.first_seen.isoformat() if self.first_seen else None,
            "value_bytes": len(self.value),
        }


def _int_or_none(raw: str | None) -> int | None:
    if raw is None:
        return None
    try:
        return int(raw)
    except ValueError:
        return None


def _text(raw: bytes | None) -> str | None:
    return None if raw is None else raw.decode("utf-8", errors="replace")


@dataclass(frozen=True)
class DeadLetterFilter:
    """Which dead letters to select; every given criterion must match."""

    origin_topic: str | None = None
    error_type: str | None = None
    reason: str | None = None
    key: str | None = None
    run_id: str | None = None
    older_than: timedelta | None = None
    newer_than: timedelta | None = None
    refs: frozenset[tuple[int, int]] | None = None
    """(partition, offset) pairs in the DLQ topic."""

    def matches(self, letter: DeadLetter, now: datetime | None = None) -> bool:
        now = now or datetime.now(UTC)
        age = letter.age(now)
        checks = (
            self.origin_topic is None or letter.origin_topic == self.origin_topic,
            self.error_type is None or _type_matches(letter.error_type, self.error_type),
            self.reason is None or letter.reason == self.reason,
            self.key is None or _text(letter.origin_key) == self.key,
            self.run_id is None or letter.run_id == self.run_id,
            self.older_than is None or age >= self.older_than,
            self.newer_than is None or age <= self.newer_than,
            self.refs is None or (letter.partition, letter.offset) in self.refs,
        )
        return all(checks)


def _type_matches(actual: str, wanted: str) -> bool:
    """`SlackError` matches `SlackError` and `pkg.mod.SlackError`."""
    return actual == wanted or actual.rsplit(".", 1)[-1] == wanted


# --------------------------------------------------------------------------- reading


def _dlq_name(topic: str | TopicConfig) -> str:
    """A DLQ topic name from a DLQ name, a DLQ/origin `TopicConfig` or a catalog origin name."""
    if isinstance(topic, TopicConfig):
        if topic.kind == "dead_letter" or topic.dead_letter_topic is None:
            return topic.name
        return topic.dead_letter_topic
    if not topic or not isinstance(topic, str):
        raise DlqError(f"dead-letter topic: expected a topic name, got {topic!r}")
    if topic in CATALOG.topic_names:
        config = CATALOG.topic(topic)
        if config.kind != "dead_letter" and config.dead_letter_topic:
            return config.dead_letter_topic
    return topic


async def _read_topic(
    settings: KafkaSettings,
    topic: str,
    timeout: float,  # noqa: ASYNC109
    what: str = "dead-letter topic",
) -> list[Any]:
    """Every record of `topic` from its start to the end offsets seen now (assign + seek)."""
    consumer = AIOKafkaConsumer(**settings.consumer_kwargs(None))
    try:
        await consumer.start()
    except Exception:
        await _explain_connection(settings)
        raise
    try:
        topics = await consumer.topics()
        if topic not in topics:
            raise TopicMissingError(f"{what} {topic!r} does not exist on the cluster", topic)
        partitions = sorted(await topic_partitions(consumer, topic))
        tps = [TopicPartition(topic, p) for p in partitions]
        if not tps:
            raise DlqError(f"{what} {topic!r} has no partitions in the cluster metadata")
        consumer.assign(tps)
        ends: dict[Any, int] = await consumer.end_offsets(tps)
        starts: dict[Any, int] = await consumer.beginning_offsets(tps)
        for tp in tps:
            consumer.seek(tp, starts[tp])
        out: list[Any] = []
        pending = {tp for tp in tps if starts[tp] < ends[tp]}
        deadline = time.monotonic() + timeout
        while pending:
            if time.monotonic() > deadline:
                left = {f"{tp.topic}[{tp.partition}]": ends[tp] for tp in pending}
                raise DlqError(f"timed out after {timeout}s reading {topic!r} up to {left}")
            batches = await consumer.getmany(*pending, timeout_ms=500)
            for tp, records in batches.items():
                out.extend(r for r in records if r.offset < ends[tp])
            for tp in list(pending):
                if await consumer.position(tp) >= ends[tp]:
                    pending.discard(tp)
        return out
    finally:
        await consumer.stop()


async def _read_dead_letters(
    settings: KafkaSettings,
    dlq: str,
    timeout: float,  # noqa: ASYNC109
) -> list[DeadLetter]:
    letters = [_to_dead_letter(r) for r in await _read_topic(settings, dlq, timeout)]
    letters.sort(key=lambda d: (d.timestamp, d.partition, d.offset))
    return letters


def _to_dead_letter(record: Any) -> DeadLetter:
    return DeadLetter(
        dlq_topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        timestamp=datetime.fromtimestamp(record.timestamp / 1000, UTC),
        key=record.key,
        value=record.value or b"",
        headers=tuple((k, bytes(v or b"")) for k, v in (record.headers or ())),
    )


async def _explain_connection(settings: KafkaSettings) -> None:
    """Replace aiokafka's bare start failure with `check_connection`'s explanation."""
    from coffeebuddy.infra.kafka.config import check_connection

    await check_connection(settings, timeout=10.0)


async def inspect_dead_letters(
    topic: str | TopicConfig,
    *,
    settings: KafkaSettings | None = None,
    where: DeadLetterFilter | None = None,
    limit: int | None = None,
    now: datetime | None = None,
    timeout: float = 30.0,  # noqa: ASYNC109
) -> list[DeadLetter]:
    """Dead letters of `topic` (a DLQ name, or an origin topic of the catalog), oldest first.

    Reads every partition from its start to the end offsets seen at call time; commits nothing.
    """
    settings = settings or KafkaSettings.from_env()
    where = where or DeadLetterFilter()
    now = now or datetime.now(UTC)
    letters = await _read_dead_letters(settings, _dlq_name(topic), timeout)
    selected = [d for d in letters if where.matches(d, now)]
    return selected[:limit] if limit is not None else selected


# --------------------------------------------------------------------------- ledger


def default_state_file(environ: Mapping[str, str] | None = None) -> Path:
    """`$COFFEEBUDDY_DLQ_STATE_FILE`, else `$XDG_STATE_HOME/coffeebuddy/dlq-replayed.jsonl`."""
    env = os.environ if environ is None else environ
    if env.get(STATE_FILE_ENV):
        return Path(env[STATE_FILE_ENV])
    base = Path(env.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    return base / "coffeebuddy" / "dlq-replayed.jsonl"


_RUN_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


def default_operator() -> str:
    """`user@host` of this process, recorded as `replayed_by` (bounded to 200 characters)."""
    try:
        user = getpass.getuser()
    except (OSError, KeyError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"[:200]


def _run_id_of(letter: DeadLetter) -> str | None:
    """A dead letter's run: its event's `data.run_id`, else its key when runs key its origin."""
    candidates = [letter.run_id]
    origin = letter.origin_topic
    if origin and origin in CATALOG.topic_names and CATALOG.topic(origin).key_field == "run_id":
        candidates.append(_text(letter.origin_key))
    return next((c for c in candidates if c is not None and _RUN_ID.fullmatch(c)), None)


def replayed_event(
    letter: DeadLetter, target: RecordMetadata, *, replayed_by: str | None = None
) -> DeadLetterReplayed:
    """The ledger entry for `letter`, re-published to `target` (a `coffeebuddy.dlq.replayed.v1`)."""
    return DeadLetterReplayed.create(
        data=DeadLetterReplayedData(
            ref=letter.ledger_key,
            dlq_topic=letter.dlq_topic,
            dlq_partition=letter.partition,
            dlq_offset=letter.offset,
            origin_topic=target.topic,
            origin_partition=letter.origin_partition,
            origin_offset=letter.origin_offset,
            target_partition=target.partition,
            target_offset=target.offset,
            replayed_at=datetime.now(UTC),
            replayed_by=replayed_by,
            run_id=_run_id_of(letter),
        )
    )


@runtime_checkable
class ReplayLedger(Protocol):
    """Remembers replayed dead letters. `async with ledger:` gives a fresh view for one run."""

    async def __aenter__(self) -> Self: ...

    async def __aexit__(self, *exc_info: object) -> None: ...

    async def load(self) -> None:
        """Re-read what was replayed (also usable outside `async with`, read-only)."""
        ...

    def __contains__(self, letter: object) -> bool: ...

    async def record(self, letter: DeadLetter, target: RecordMetadata) -> None:
        """Durably note that `letter` now sits at `target`; returns once it is stored."""
        ...


class FileReplayLedger:
    """A JSON-lines state file (fsync per entry); a run holds an exclusive `<file>.lock`.

    Each line is a `DeadLetterReplayedData` as JSON plus `key` (= `ref`). Only replays run
    against the same file see each other: the shared default is `TopicReplayLedger`.
    """

    def __init__(self, path: str | os.PathLike[str], *, replayed_by: str | None = None) -> None:
        self.path = Path(path)
        self.replayed_by = replayed_by if replayed_by is not None else default_operator()
        self._entries: dict[str, dict[str, Any]] = {}
        self._lock: IO[str] | None = None

    def __repr__(self) -> str:
        return f"FileReplayLedger({str(self.path)!r})"

    def load_sync(self) -> None:
        self._entries = {}
        if not self.path.exists():
            return
        for number, line in enumerate(self.path.read_text().splitlines(), start=1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
                self._entries[str(entry["key"] if "key" in entry else entry["ref"])] = entry
            except (ValueError, KeyError, TypeError) as exc:
                raise DlqError(f"replay ledger {self.path}:{number}: not a ledger entry") from exc

    async def load(self) -> None:
        self.load_sync()

    def __contains__(self, letter: object) -> bool:
        return isinstance(letter, DeadLetter) and letter.ledger_key in self._entries

    async def record(self, letter: DeadLetter, target: RecordMetadata) -> None:
        data = replayed_event(letter, target, replayed_by=self.replayed_by).data
        entry = {"key": data.ref, **data.model_dump(mode="json", exclude_none=True)}
        with self.path.open("a", encoding="utf-8") as out:
            out.write(json.dumps(entry, sort_keys=True) + "\n")
            out.flush()
            os.fsync(out.fileno())
        self._entries[letter.ledger_key] = entry

    async def __aenter__(self) -> Self:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock_path = self.path.with_name(self.path.name + ".lock")
        lock = lock_path.open("a", encoding="utf-8")
        try:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            lock.close()
            raise DlqError(f"another replay holds {lock_path}; wait for it to finish") from exc
        self._lock = lock
        try:
            self.load_sync()
        except BaseException:
            await self.__aexit__()
            raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._lock is not None:
            fcntl.flock(self._lock.fileno(), fcntl.LOCK_UN)
            self._lock.close()
            self._lock = None


class TopicReplayLedger:
    """`coffeebuddy.dlq.replayed.v1` events in a compacted topic, keyed by `data.ref`.

    The default is the catalog's `coffeebuddy.dlq.replays` (created by `coffeebuddy-kafka
    apply`); shared by every operator and machine, unlike a state file. Entries are published
    with `KafkaEventProducer.publish` and read back with `decode_record`. Kafka has no lock: two
    replays of the same dead letters started at the same moment could both send; run one at a
    time.
    """

    def __init__(
        self,
        topic: TopicConfig = DLQ_REPLAYS_TOPIC,
        *,
        settings: KafkaSettings | None = None,
        producer: KafkaEventProducer | None = None,
        timeout: float = 30.0,
        replayed_by: str | None = None,
    ) -> None:
        if not topic.allows(DLQ_REPLAYED) or topic.key_field != "ref":
            raise DlqError(
                f"replay ledger topic {topic.name!r}: must allow event type {DLQ_REPLAYED!r} and "
                f"be keyed by 'ref' (has {sorted(topic.event_types)}, key {topic.key_field!r})"
            )
        self.topic = topic
        self.replayed_by = replayed_by if replayed_by is not None else default_operator()
        self._settings = settings
        self._producer = producer
        self._own: KafkaEventProducer | None = None
        self._timeout = timeout
        self._entries: dict[str, DeadLetterReplayedData] = {}

    def __repr__(self) -> str:
        return f"TopicReplayLedger({self.topic.name!r})"

    def _kafka(self) -> KafkaSettings:
        if self._settings is None:
            self._settings = KafkaSettings.from_env()
        return self._settings

    @property
    def entries(self) -> Mapping[str, DeadLetterReplayedData]:
        """What the last `load` read (plus what this run recorded), by `ref`."""
        return dict(self._entries)

    async def load(self) -> None:
        name = self.topic.name
        try:
            records = await _read_topic(
                self._kafka(), name, self._timeout, what="replay ledger topic"
            )
        except TopicMissingError as exc:
            hint = (
                "create it with `coffeebuddy-kafka apply` (it is in the topics catalog)"
                if name in CATALOG.topic_names
                else "create it (compacted, key data.ref) or pick another with --ledger-topic"
            )
            raise LedgerTopicMissingError(
                f"replay ledger topic {name!r} does not exist on the cluster: {hint}; "
                "without it nothing is replayed (for an offline, single-machine ledger pass "
                "--state-file [FILE])",
                name,
            ) from exc
        entries: dict[str, DeadLetterReplayedData] = {}
        for record in records:
            if record.value is None:
                entries.pop(_text(record.key) or "", None)  # tombstone: forget the entry
                continue
            where = f"{record.topic}[{record.partition}]@{record.offset}"
            try:
                event = decode_record(record.value, record.headers)
            except EventDecodeError as exc:
                raise DlqError(f"replay ledger topic {where}: not a ledger entry ({exc})") from exc
            if not isinstance(event, DeadLetterReplayed):
                raise DlqError(
                    f"replay ledger topic {where}: a {event.type} event, not {DLQ_REPLAYED}"
                )
            entries[event.data.ref] = event.data
        self._entries = entries

    def __contains__(self, letter: object) -> bool:
        return isinstance(letter, DeadLetter) and letter.ledger_key in self._entries

    async def record(self, letter: DeadLetter, target: RecordMetadata) -> None:
        producer = self._producer or self._own
        if producer is None:
            raise DlqError(f"{self!r}: record() outside `async with ledger:`")
        event = replayed_event(letter, target, replayed_by=self.replayed_by)
        await producer.publish(self.topic, event)
        self._entries[event.data.ref] = event.data

    async def __aenter__(self) -> Self:
        await self.load()
        if self._producer is None:
            self._own = KafkaEventProducer(self._kafka())
            await self._own.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._own is not None:
            own, self._own = self._own, None
            await own.close()


# --------------------------------------------------------------------------- replay


@dataclass
class ReplayReport:
    """What a replay selected, sent (with where it landed) and skipped as already replayed."""

    dlq_topic: str
    dry_run: bool
    selected: list[DeadLetter] = field(default_factory=list)
    replayed: list[tuple[DeadLetter, RecordMetadata]] = field(default_factory=list)
    already_replayed: list[DeadLetter] = field(default_factory=list)

    @property
    def to_replay(self) -> list[DeadLetter]:
        """Selected and not yet in the ledger (what a dry run would send)."""
        done = {d.ledger_key for d in self.already_replayed}
        return [d for d in self.selected if d.ledger_key not in done]

    def to_json(self) -> dict[str, Any]:
        return {
            "dlq_topic": self.dlq_topic,
            "dry_run": self.dry_run,
            "selected": len(self.selected),
            "already_replayed": [d.ref for d in self.already_replayed],
            "would_replay": [d.ref for d in self.to_replay] if self.dry_run else [],
            "replayed": [
                {"ref": d.ref, "topic": md.topic, "partition": md.partition, "offset": md.offset}
                for d, md in self.replayed
            ],
        }


def _origin_config(letter: DeadLetter, topics: Mapping[str, TopicConfig]) -> TopicConfig:
    origin = letter.origin_topic
    if not origin:
        raise DlqError(f"{letter.ref}: no {_H}origin.topic header, cannot tell where it came from")
    expected = (
        {letter.dlq_topic.removesuffix(DLQ_SUFFIX)}
        if letter.dlq_topic.endswith(DLQ_SUFFIX)
        else set()
    )
    expected |= {t.name for t in topics.values() if t.dead_letter_topic == letter.dlq_topic}
    if CATALOG.topic_names and letter.dlq_topic in CATALOG.topic_names:
        catalog_origin = CATALOG.origin_of(letter.dlq_topic)
        if catalog_origin is not None:
            expected.add(catalog_origin.name)
    if origin not in expected:
        raise DlqError(
            f"{letter.ref}: origin topic {origin!r} is not the origin of {letter.dlq_topic!r} "
            f"(expected one of {sorted(expected)}); refusing to publish there"
        )
    if origin in topics:
        return topics[origin]
    if origin in CATALOG.topic_names:
        return CATALOG.topic(origin)
    # Named by the `<origin>.dlq` convention but not catalogued (e.g. a test topic): send_raw
    # only needs the name.
    return TopicConfig(
        name=origin, partitions=1, replication_factor=1, key_field="run_id", kind="events"
    )


async def replay_dead_letters(
    topic: str | TopicConfig,
    *,
    ledger: ReplayLedger,
    settings: KafkaSettings | None = None,
    where: DeadLetterFilter | None = None,
    dry_run: bool = False,
    rate: float | None = None,
    limit: int | None = None,
    topics: Iterable[TopicConfig] = (),
    producer: KafkaEventProducer | None = None,
    timeout: float = 30.0,  # noqa: ASYNC109
) -> ReplayReport:
    """Re-publish selected dead letters of `topic` to their origin topic, each at most once.

    `rate` caps messages per second; `limit` caps how many are sent (oldest first). With
    `dry_run` nothing is published or recorded. Every origin is checked before the first send,
    so a bad selection sends nothing.
    """
    if rate is not None and rate <= 0:
        raise DlqError(f"rate: must be > 0 messages/s, got {rate}")
    settings = settings or KafkaSettings.from_env()
    dlq = _dlq_name(topic)
    known = {t.name: t for t in topics}
    report = ReplayReport(dlq_topic=dlq, dry_run=dry_run)
    async with ledger:
        matching = await inspect_dead_letters(dlq, settings=settings, where=where, timeout=timeout)
        report.already_replayed = [d for d in matching if d in ledger]
        fresh = [d for d in matching if d not in ledger]
        fresh = fresh[:limit] if limit is not None else fresh  # the limit counts new sends only
        chosen = {d.ledger_key for d in report.already_replayed} | {d.ledger_key for d in fresh}
        report.selected = [d for d in matching if d.ledger_key in chosen]
        plan = [(d, _origin_config(d, known)) for d in report.to_replay]
        if dry_run or not plan:
            return report
        own = producer is None
        sender = producer or KafkaEventProducer(settings)
        if own:
            await sender.start()
        try:
            interval = 1.0 / rate if rate else 0.0
            started = time.monotonic()
            for index, (letter, origin) in enumerate(plan):
                if interval:
                    delay = started + index * interval - time.monotonic()
                    if delay > 0:
                        await asyncio.sleep(delay)  # rate limit, not synchronisation
                metadata = await sender.send_raw(
                    origin, letter.value, key=letter.origin_key, headers=letter.replay_headers()
                )
                await ledger.record(letter, metadata)
                report.replayed.append((letter, metadata))
        finally:
            if own:
                await sender.close()
    return report


# --------------------------------------------------------------------------- CLI

_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> timedelta:
    """`90s`, `15m`, `2h`, `1d`, `1h30m` -> timedelta; DlqError naming the value otherwise."""
    cleaned = text.strip().lower()
    parts = _DURATION.findall(cleaned)
    if not parts or "".join(n + u for n, u in parts) != cleaned:
        raise DlqError(f"duration {text!r}: use a number with s, m, h, d or w, e.g. 30m or 1h30m")
    return timedelta(seconds=sum(float(n) * _UNITS[u] for n, u in parts))


def _ref(text: str) -> tuple[int, int]:
    match = re.fullmatch(r"(\d+):(\d+)", text.strip())
    if not match:
        raise argparse.ArgumentTypeError(f"--ref {text!r}: expected PARTITION:OFFSET, e.g. 0:42")
    return int(match.group(1)), int(match.group(2))


def _duration_arg(text: str) -> timedelta:
    try:
        return parse_duration(text)
    except DlqError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _filter_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("topic", help="dead-letter topic, or a catalog topic to use its .dlq")
    parser.add_argument("--origin-topic", help="only dead letters from this origin topic")
    parser.add_argument("--error-type", help="only this error type (class name or dotted path)")
    parser.add_argument("--reason", help="only this reason (decode_error, non_retryable, ...)")
    parser.add_argument("--key", help="only this original record key")
    parser.add_argument("--run-id", help="only events whose data.run_id is this")
    parser.add_argument("--older-than", type=_duration_arg, metavar="AGE", help="e.g. 30m")
    parser.add_argument("--newer-than", type=_duration_arg, metavar="AGE", help="e.g. 2h")
    parser.add_argument(
        "--ref", type=_ref, action="append", metavar="P:O", help="only DLQ partition:offset"
    )
    parser.add_argument("--limit", type=int, help="at most this many (oldest first)")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds to read the topic")
    ledger = parser.add_mutually_exclusive_group()
    ledger.add_argument(
        "--ledger-topic",
        metavar="TOPIC",
        help=f"replay ledger topic (default: the catalog's {REPLAY_LEDGER_TOPIC}, shared)",
    )
    ledger.add_argument(
        "--state-file",
        nargs="?",
        const="",
        metavar="FILE",
        help=(
            "use a local replay ledger file instead of the topic (offline/ad-hoc; only protects "
            f"replays using the same file); FILE defaults to ${STATE_FILE_ENV} or XDG state"
        ),
    )
    parser.add_argument("--output", choices=("table", "json"), default="table")


def _where(args: argparse.Namespace) -> DeadLetterFilter:
    return DeadLetterFilter(
        origin_topic=args.origin_topic,
        error_type=args.error_type,
        reason=args.reason,
        key=args.key,
        run_id=args.run_id,
        older_than=args.older_than,
        newer_than=args.newer_than,
        refs=frozenset(args.ref) if args.ref else None,
    )


def _ledger(args: argparse.Namespace, settings: KafkaSettings) -> ReplayLedger:
    """`--state-file [FILE]` when given, else `--ledger-topic`, else the catalog's ledger topic."""
    if args.state_file is not None:
        return FileReplayLedger(args.state_file or default_state_file())
    name = args.ledger_topic or REPLAY_LEDGER_TOPIC
    config = (
        CATALOG.topic(name)
        if name in CATALOG.topic_names
        else TopicConfig(
            name=name,
            partitions=1,
            replication_factor=1,
            key_field="ref",
            event_types=frozenset({DLQ_REPLAYED}),
            kind="log",
        )
    )
    return TopicReplayLedger(config, settings=settings, timeout=args.timeout)


def _short(value: str | None, width: int = 60) -> str:
    text = (value or "").replace("\n", " ")
    return text if len(text) <= width else text[: width - 1] + "…"


def _age(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _print_letters(
    letters: Sequence[DeadLetter], ledger: ReplayLedger | None, output: Literal["table", "json"]
) -> None:
    """`replayed` is unknown (null, `?`) when the ledger could not be read."""
    now = datetime.now(UTC)
    if output == "json":
        rows = [
            {**d.to_json(now), "replayed": None if ledger is None else d in ledger} for d in letters
        ]
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return
    table = Table(title=f"{len(letters)} dead letters", show_lines=False)
    for column in (
        "dlq p:o",
        "age",
        "origin",
        "key",
        "reason",
        "error",
        "message",
        "tries",
        "replayed",
    ):
        table.add_column(column, overflow="fold")
    for d in letters:
        table.add_row(
            f"{d.partition}:{d.offset}",
            _age(d.age(now)),
            f"{d.origin_topic}[{d.origin_partition}]@{d.origin_offset}",
            _short(_text(d.origin_key), 24),
            d.reason,
            d.error_type.rsplit(".", 1)[-1],
            _short(d.error_message),
            "" if d.attempts is None else str(d.attempts),
            "?" if ledger is None else "yes" if d in ledger else "",
        )
    Console(width=200).print(table)


async def _cmd_inspect(args: argparse.Namespace) -> int:
    settings = KafkaSettings.from_env()
    ledger = _ledger(args, settings)
    shown: ReplayLedger | None = ledger
    try:
        await ledger.load()
    except LedgerTopicMissingError as exc:
        # Inspecting stays read-only and useful without the ledger; replay refuses instead.
        sys.stderr.write(f"warning: {exc}; the replayed column is unknown\n")
        shown = None
    letters = await inspect_dead_letters(
        args.topic, settings=settings, where=_where(args), limit=args.limit, timeout=args.timeout
    )
    _print_letters(letters, shown, args.output)
    return EXIT_OK


async def _cmd_replay(args: argparse.Namespace) -> int:
    where = _where(args)
    if where == DeadLetterFilter() and args.limit is None and not (args.all or args.dry_run):
        raise DlqError(
            "dlq replay: select what to replay (--reason, --error-type, --key, --run-id, "
            "--origin-topic, --older-than, --newer-than, --ref, --limit) or pass --all; "
            "see it first with --dry-run"
        )
    settings = KafkaSettings.from_env()
    report = await replay_dead_letters(
        args.topic,
        ledger=_ledger(args, settings),
        settings=settings,
        where=where,
        dry_run=args.dry_run,
        rate=args.rate,
        limit=args.limit,
        timeout=args.timeout,
    )
    if args.output == "json":
        sys.stdout.write(json.dumps(report.to_json(), indent=2) + "\n")
    else:
        console = Console(width=200)
        for letter in report.already_replayed:
            console.print(f"skip {letter.ref}: already replayed")
        if report.dry_run:
            for letter in report.to_replay:
                key = _text(letter.origin_key)
                console.print(f"would replay {letter.ref} -> {letter.origin_topic} key={key}")
            console.print(
                f"dry run: {len(report.to_replay)} of {len(report.selected)} would be sent"
            )
        else:
            for letter, md in report.replayed:
                console.print(f"replayed {letter.ref} -> {md.topic}[{md.partition}]@{md.offset}")
            console.print(f"replayed {len(report.replayed)} of {len(report.selected)} selected")
    return EXIT_REPLAYED if report.replayed else EXIT_OK


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add `dlq inspect` and `dlq replay` to the `coffeebuddy-kafka` parser."""
    dlq = subparsers.add_parser("dlq", help="inspect and replay dead letters")
    leaves = dlq.add_subparsers(dest="dlq_command", required=True)
    inspect = leaves.add_parser("inspect", help="list dead letters (read-only, no group)")
    _filter_options(inspect)
    inspect.set_defaults(func=_cmd_inspect)
    replay = leaves.add_parser("replay", help="re-publish dead letters to their origin, once")
    _filter_options(replay)
    replay.add_argument("--dry-run", action="store_true", help="show what would be sent")
    replay.add_argument(
        "--all", action="store_true", help="replay every dead letter not yet replayed (no filter)"
    )
    replay.add_argument(
        "--rate", type=float, metavar="MSG_PER_S", help="at most this many per second"
    )
    replay.set_defaults(func=_cmd_replay)
