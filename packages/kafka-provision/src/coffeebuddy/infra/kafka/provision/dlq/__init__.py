"""Dead letters: list them (`inspect_dead_letters`), re-publish them once (`replay_dead_letters`).

Also the `coffeebuddy-kafka dlq inspect|replay` sub-commands. Dead-letter headers are read and
rewritten only through the contract in `coffeebuddy.infra.kafka.models`
(`parse_dead_letter_headers`, `replay_headers`; a replayed record carries `DLQ_REPLAYED_FROM`),
the one the consumer harness writes with. Kafka is reached through two seams, a topic reader and
a publisher (aiokafka implementations in `_reader` and `_publisher`), so the selection, ledger
and replay rules run against fakes in unit tests. `KafkaTopicReader` is public: the reminder
operator commands and the benchmarks read topics with it.
"""

from coffeebuddy.infra.kafka.provision.dlq._errors import (
    DlqError,
    LedgerTopicMissingError,
    TopicMissingError,
)
from coffeebuddy.infra.kafka.provision.dlq._filter import DeadLetterFilter
from coffeebuddy.infra.kafka.provision.dlq._inspect import inspect_dead_letters
from coffeebuddy.infra.kafka.provision.dlq._ledger import (
    FileReplayLedger,
    ReplayLedger,
    TopicReplayLedger,
)
from coffeebuddy.infra.kafka.provision.dlq._letter import DeadLetter
from coffeebuddy.infra.kafka.provision.dlq._reader import KafkaTopicReader
from coffeebuddy.infra.kafka.provision.dlq._replay import ReplayReport, replay_dead_letters

__all__ = [
    "DeadLetter",
    "DeadLetterFilter",
    "DlqError",
    "FileReplayLedger",
    "KafkaTopicReader",
    "LedgerTopicMissingError",
    "ReplayLedger",
    "ReplayReport",
    "TopicMissingError",
    "TopicReplayLedger",
    "inspect_dead_letters",
    "replay_dead_letters",
]
