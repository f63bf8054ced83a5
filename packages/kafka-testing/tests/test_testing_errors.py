"""One root: every public exception of the testing package is a `KafkaTestingError`."""

from __future__ import annotations

import coffeebuddy.infra.kafka.testing as testing
from coffeebuddy.infra.kafka.testing import (
    ApacheKafkaUnavailableError,
    BrokerStartError,
    KafkaTestingError,
    StunnelNotFoundError,
)


def test_testing_public_exceptions_share_one_root() -> None:
    public = [getattr(testing, name) for name in testing.__all__]
    errors = {e for e in public if isinstance(e, type) and issubclass(e, BaseException)}
    assert errors >= {
        KafkaTestingError,
        BrokerStartError,
        ApacheKafkaUnavailableError,
        StunnelNotFoundError,
    }
    assert [e.__name__ for e in errors if not issubclass(e, KafkaTestingError)] == []
    # the builtin base existing `except` clauses rely on stays
    assert issubclass(BrokerStartError, RuntimeError)
