"""One root: every public exception of the producer package is a `ProducerError`."""

from __future__ import annotations

import coffeebuddy.infra.kafka.producer as producer
from coffeebuddy.infra.kafka.producer import (
    EventNotAllowedError,
    InvalidTraceparentError,
    ProducerClosedError,
    ProducerError,
    PublishBatchError,
)


def test_producer_public_exceptions_share_one_root() -> None:
    public = [getattr(producer, name) for name in producer.__all__]
    errors = {e for e in public if isinstance(e, type) and issubclass(e, BaseException)}
    assert errors >= {
        ProducerError,
        EventNotAllowedError,
        InvalidTraceparentError,
        ProducerClosedError,
        PublishBatchError,
    }
    assert [e.__name__ for e in errors if not issubclass(e, ProducerError)] == []
    # the builtin bases existing `except` clauses rely on stay
    assert issubclass(EventNotAllowedError, ValueError)
    assert issubclass(InvalidTraceparentError, ValueError)
    assert issubclass(ProducerClosedError, RuntimeError)
    assert issubclass(PublishBatchError, RuntimeError)
