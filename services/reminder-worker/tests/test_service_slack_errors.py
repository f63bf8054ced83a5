"""`classify_slack_error` for what an HTTP fake cannot easily produce (fast, no server)."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from coffeebuddy.infra.kafka.reminder_worker import SendOutcome
from coffeebuddy.services.reminder_worker._slack_errors import classify_slack_error

POST = "chat.postMessage"
READ = "conversations.history"


def api_error(status: int, data: Any, headers: dict[str, str] | None = None) -> SlackApiError:
    response = AsyncSlackResponse(
        client=AsyncWebClient(),
        http_verb="POST",
        api_url="http://127.0.0.1/api/x",
        req_args={},
        data=data,
        headers=headers or {},
        status_code=status,
    )
    return SlackApiError("failed", response)  # type: ignore[no-untyped-call]


@pytest.mark.parametrize(
    ("exc", "on_post", "on_read"),
    [
        (TimeoutError(), (SendOutcome.AMBIGUOUS, "timeout"), (SendOutcome.TRANSIENT, "timeout")),
        (
            aiohttp.ServerDisconnectedError(),
            (SendOutcome.AMBIGUOUS, "connection_reset"),
            (SendOutcome.TRANSIENT, "connection_reset"),
        ),
        (
            ConnectionResetError(),
            (SendOutcome.AMBIGUOUS, "connection_reset"),
            (SendOutcome.TRANSIENT, "connection_reset"),
        ),
        (
            aiohttp.ConnectionTimeoutError(),
            (SendOutcome.TRANSIENT, "connection_error"),
            (SendOutcome.TRANSIENT, "connection_error"),
        ),
        (
            RuntimeError("bug"),
            (SendOutcome.AMBIGUOUS, "unexpected_error"),
            (SendOutcome.TRANSIENT, "unexpected_error"),
        ),
        (
            api_error(200, {"ok": False, "error": "internal_error"}),
            (SendOutcome.AMBIGUOUS, "internal_error"),
            (SendOutcome.TRANSIENT, "internal_error"),
        ),
        (
            api_error(404, "not json"),
            (SendOutcome.TRANSIENT, "http_404"),
            (SendOutcome.TRANSIENT, "http_404"),
        ),
        (
            api_error(200, {"ok": False, "error": "brand_new_error"}),
            (SendOutcome.TRANSIENT, "brand_new_error"),
            (SendOutcome.TRANSIENT, "brand_new_error"),
        ),
        (
            api_error(200, {"ok": False}),
            (SendOutcome.TRANSIENT, "unknown_error"),
            (SendOutcome.TRANSIENT, "unknown_error"),
        ),
    ],
)
def test_what_may_have_posted_is_ambiguous_on_post_and_transient_on_reads(
    exc: BaseException, on_post: tuple[SendOutcome, str], on_read: tuple[SendOutcome, str]
) -> None:
    post, read = classify_slack_error(POST, exc), classify_slack_error(READ, exc)
    assert (post.outcome, post.error) == on_post
    assert (read.outcome, read.error) == on_read


@pytest.mark.parametrize(
    ("headers", "retry_after"),
    [({"Retry-After": "7"}, 7.0), ({"retry-after": "-3"}, 0.0), ({"Retry-After": "soon"}, 1.0)],
)
def test_rate_limits_take_retry_after_or_one_second(
    headers: dict[str, str], retry_after: float
) -> None:
    result = classify_slack_error(POST, api_error(429, {"ok": False}, headers))
    assert result.outcome is SendOutcome.RATE_LIMITED
    assert result.retry_after == retry_after
