"""Error classification and the retry policy's bounds."""

from __future__ import annotations

import pytest
from aiokafka.errors import KafkaConnectionError, TopicAuthorizationFailedError

from coffeebuddy.infra.kafka.consumer import (
    Backoff,
    ConsumerError,
    ErrorClass,
    NonRetryableError,
    RetryableError,
    RetryPolicy,
)
from coffeebuddy.infra.kafka.consumer._errors import default_classifier
from coffeebuddy.infra.kafka.models import decode_record


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (RetryableError("503"), ErrorClass.RETRYABLE),
        (TimeoutError(), ErrorClass.RETRYABLE),
        (ConnectionResetError(), ErrorClass.RETRYABLE),
        (KafkaConnectionError(), ErrorClass.RETRYABLE),
        (NonRetryableError("bad"), ErrorClass.NON_RETRYABLE),
        (TopicAuthorizationFailedError(), ErrorClass.NON_RETRYABLE),
        (KeyError("bug"), ErrorClass.NON_RETRYABLE),
    ],
)
def test_default_classifier(error: BaseException, expected: ErrorClass) -> None:
    assert default_classifier(error) is expected


def test_decode_errors_are_never_retried() -> None:
    with pytest.raises(Exception) as caught:  # noqa: PT011 - whatever the decoder raises
        decode_record(b"{}", [])
    assert default_classifier(caught.value) is ErrorClass.NON_RETRYABLE


def test_backoff_grows_is_capped_and_jitter_stays_within_bounds() -> None:
    policy = RetryPolicy(initial_backoff=1.0, max_backoff=5.0, multiplier=2.0, jitter=0.0)
    assert [policy.backoff(a) for a in (1, 2, 3, 4)] == [1.0, 2.0, 4.0, 5.0]
    jittered = RetryPolicy(initial_backoff=1.0, max_backoff=5.0, jitter=0.5)
    assert all(0.5 <= jittered.backoff(1) <= 1.5 for _ in range(200))
    assert all(jittered.backoff(10) <= 7.5 for _ in range(200))
    assert RetryPolicy(max_attempts=3).should_retry(2)
    assert not RetryPolicy(max_attempts=3).should_retry(3)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max_attempts": 0}, "max_attempts must be >= 1"),
        ({"initial_backoff": -1}, "backoffs must be >= 0"),
        ({"multiplier": 0.5}, "multiplier must be >= 1"),
        ({"jitter": 1.5}, "jitter must be within"),
    ],
)
def test_bad_policies_are_refused_by_name(options: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RetryPolicy(**options)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("attempt", "low", "high"),
    [(1, 0.5, 1.0), (2, 1.0, 2.0), (3, 2.0, 4.0), (10, 15.0, 30.0)],
)
def test_backoff_grows_exponentially_with_equal_jitter_and_cap(
    attempt: int, low: float, high: float
) -> None:
    assert Backoff(1.0, 30.0).delay(attempt, rng=lambda: 1.0) == low
    assert Backoff(1.0, 30.0).delay(attempt, rng=lambda: 0.0) == high


def test_consumer_public_exceptions_share_one_root() -> None:
    import coffeebuddy.infra.kafka.consumer as consumer

    public = [getattr(consumer, name) for name in consumer.__all__]
    errors = {e for e in public if isinstance(e, type) and issubclass(e, BaseException)}
    assert errors >= {ConsumerError, RetryableError, NonRetryableError}
    assert [e.__name__ for e in errors if not issubclass(e, ConsumerError)] == []
