"""The testing package's errors: one root, so a caller can catch everything it raises."""

from __future__ import annotations

__all__ = ["BrokerStartError", "KafkaTestingError"]


class KafkaTestingError(Exception):
    """Root of every error the testing package raises."""


class BrokerStartError(KafkaTestingError, RuntimeError):
    """A broker (or its TLS proxy) did not become ready; the message carries its log tail."""
