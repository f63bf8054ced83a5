"""Dead letters: list them (`inspect_dead_letters`), re-publish them once (`replay_dead_letters`).

Also the `coffeebuddy-kafka dlq inspect|replay` sub-commands (`add_dlq_parser`). Dead-letter
headers are read and rewritten only through the contract in `coffeebuddy.infra.kafka.models`
(`parse_dead_letter_headers`, `replay_headers`), the one the consumer harness writes with.
Kafka is reached through two seams, `TopicReader` and `Publisher` (aiokafka implementations
`KafkaTopicReader`, `KafkaPublisher`), so the selection, ledger and replay rules run against
fakes in unit tests.
"""

from coffeebuddy.infra.kafka.models import DLQ_REPLAYED_FROM
from coffeebuddy.infra.kafka.provision.dlq._cli import DlqClients, add_dlq_parser, select_ledger
from coffeebuddy.infra.kafka.provision.dlq._errors import (
    DlqError,
    LedgerTopicMissingError,
    TopicMissingError,
)
from coffeebuddy.infra.kafka.provision.dlq._filter import DeadLetterFilter, parse_duration
from coffeebuddy.infra.kafka.provision.dlq._inspect import dlq_name, inspect_dead_letters
from coffeebuddy.infra.kafka.provision.dlq._ledger import (
    STATE_FILE_ENV,
    FileReplayLedger,
    ReplayLedger,
    TopicReplayLedger,
    default_operator,
    default_state_file,
    replayed_event,
)
from coffeebuddy.infra.kafka.provision.dlq._letter import DeadLetter
from coffeebuddy.infra.kafka.provision.dlq._publisher import (
    KafkaPublisher,
    Publisher,
    RecordPosition,
)
from coffeebuddy.infra.kafka.provision.dlq._reader import (
    KafkaTopicReader,
    StoredRecord,
    TopicReader,
)
from coffeebuddy.infra.kafka.provision.dlq._replay import (
    NOT_FIXED_BY_REPLAY,
    ReplayReport,
    replay_dead_letters,
)

REPLAYED_FROM_HEADER = DLQ_REPLAYED_FROM
"""The header a replayed record carries (the models' `DLQ_REPLAYED_FROM`; kept for callers)."""

__all__ = [
    "NOT_FIXED_BY_REPLAY",
    "REPLAYED_FROM_HEADER",
    "STATE_FILE_ENV",
    "DeadLetter",
    "DeadLetterFilter",
    "DlqClients",
    "DlqError",
    "FileReplayLedger",
    "KafkaPublisher",
    "KafkaTopicReader",
    "LedgerTopicMissingError",
    "Publisher",
    "RecordPosition",
    "ReplayLedger",
    "ReplayReport",
    "StoredRecord",
    "TopicMissingError",
    "TopicReader",
    "TopicReplayLedger",
    "add_dlq_parser",
    "default_operator",
    "default_state_file",
    "dlq_name",
    "inspect_dead_letters",
    "parse_duration",
    "replay_dead_letters",
    "replayed_event",
    "select_ledger",
]
