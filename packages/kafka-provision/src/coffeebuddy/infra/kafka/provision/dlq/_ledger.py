"""Replay ledgers: what was replayed already, so a dead letter is re-published at most once.

Every replayed dead letter is recorded as a `DeadLetterReplayed` event (type `DLQ_REPLAYED`),
keyed by `DeadLetter.ledger_key`. Two stores: `TopicReplayLedger`, the catalog's compacted
`DLQ_REPLAYS_TOPIC` shared by every operator and machine (the default), and `FileReplayLedger`,
a locked, fsync'd JSON-lines file for offline or ad-hoc use that only protects replays run
against the same file. A crash between a send and its ledger entry can resend that one record;
the reminder worker's changelog (sent / claimed states) still keeps the DM to one.
"""

from __future__ import annotations

import fcntl
import getpass
import json
import os
import re
import socket
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Protocol, Self, runtime_checkable

from coffeebuddy.infra.kafka.config import KafkaSettings
from coffeebuddy.infra.kafka.models import (
    DLQ_REPLAYED,
    DeadLetterReplayed,
    DeadLetterReplayedData,
    EventDecodeError,
    decode_record,
    encode_record,
)
from coffeebuddy.infra.kafka.provision.dlq._errors import (
    DlqError,
    LedgerTopicMissingError,
    TopicMissingError,
)
from coffeebuddy.infra.kafka.provision.dlq._letter import DeadLetter, text_of
from coffeebuddy.infra.kafka.provision.dlq._publisher import (
    KafkaPublisher,
    Publisher,
    RecordPosition,
)
from coffeebuddy.infra.kafka.provision.dlq._reader import KafkaTopicReader, TopicReader
from coffeebuddy.infra.kafka.topics import CATALOG, DLQ_REPLAYS_TOPIC, TopicConfig

STATE_FILE_ENV = "COFFEEBUDDY_DLQ_STATE_FILE"
_RUN_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


def default_state_file(environ: Mapping[str, str] | None = None) -> Path:
    """`$COFFEEBUDDY_DLQ_STATE_FILE`, else `$XDG_STATE_HOME/coffeebuddy/dlq-replayed.jsonl`."""
    env = os.environ if environ is None else environ
    if env.get(STATE_FILE_ENV):
        return Path(env[STATE_FILE_ENV])
    base = Path(env.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    return base / "coffeebuddy" / "dlq-replayed.jsonl"


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
        candidates.append(text_of(letter.origin_key))
    return next((c for c in candidates if c is not None and _RUN_ID.fullmatch(c)), None)


def replayed_event(
    letter: DeadLetter, target: RecordPosition, *, replayed_by: str | None = None
) -> DeadLetterReplayed:
    """The ledger entry for `letter`, re-published to `target`."""
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

    async def record(self, letter: DeadLetter, target: RecordPosition) -> None:
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

    async def record(self, letter: DeadLetter, target: RecordPosition) -> None:
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
    """`DeadLetterReplayed` events in a compacted topic, keyed by `data.ref`.

    The default is the catalog's `DLQ_REPLAYS_TOPIC` (created by `coffeebuddy-kafka apply`),
    shared by every operator and machine, unlike a state file. Kafka has no lock: two replays of
    the same dead letters started at the same moment could both send; run one at a time.
    `reader` and `publisher` default to Kafka ones for `settings` (`KafkaSettings.from_env()`).
    """

    def __init__(
        self,
        topic: TopicConfig = DLQ_REPLAYS_TOPIC,
        *,
        settings: KafkaSettings | None = None,
        reader: TopicReader | None = None,
        publisher: Publisher | None = None,
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
        self._reader = reader
        self._publisher = publisher
        self._own: KafkaPublisher | None = None
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
        reader = self._reader or KafkaTopicReader(self._kafka(), timeout=self._timeout)
        try:
            records = await reader.read(name, what="replay ledger topic")
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
                entries.pop(text_of(record.key) or "", None)  # tombstone: forget the entry
                continue
            try:
                event = decode_record(record.value, record.headers)
            except EventDecodeError as exc:
                raise DlqError(
                    f"replay ledger topic {record.where}: not a ledger entry ({exc})"
                ) from exc
            if not isinstance(event, DeadLetterReplayed):
                raise DlqError(
                    f"replay ledger topic {record.where}: a {event.type} event, not {DLQ_REPLAYED}"
                )
            entries[event.data.ref] = event.data
        self._entries = entries

    def __contains__(self, letter: object) -> bool:
        return isinstance(letter, DeadLetter) and letter.ledger_key in self._entries

    async def record(self, letter: DeadLetter, target: RecordPosition) -> None:
        publisher = self._publisher or self._own
        if publisher is None:
            raise DlqError(f"{self!r}: record() outside `async with ledger:`")
        event = replayed_event(letter, target, replayed_by=self.replayed_by)
        value, headers = encode_record(event, self.topic.content_mode)
        await publisher.send(self.topic.name, value, key=event.data.ref.encode(), headers=headers)
        self._entries[event.data.ref] = event.data

    async def __aenter__(self) -> Self:
        await self.load()
        if self._publisher is None:
            self._own = await KafkaPublisher(self._kafka()).__aenter__()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._own is not None:
            own, self._own = self._own, None
            await own.__aexit__(*exc_info)
