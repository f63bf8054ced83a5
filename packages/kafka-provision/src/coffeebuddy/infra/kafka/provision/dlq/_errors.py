"""Errors of the dead-letter tools: each says what was wrong and where."""

from __future__ import annotations

from coffeebuddy.infra.kafka.provision._errors import ProvisionError


class DlqError(ProvisionError, ValueError):
    """Bad DLQ input (unknown topic, unreadable ledger, unsafe origin): says what and where."""


class TopicMissingError(DlqError):
    """A topic to read does not exist on the cluster."""

    def __init__(self, message: str, topic: str) -> None:
        super().__init__(message)
        self.topic = topic


class LedgerTopicMissingError(TopicMissingError):
    """The replay ledger topic does not exist: nothing can be replayed safely."""
