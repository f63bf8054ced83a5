"""Slack's error codes, classified into the worker's `SendResult` (the README's error table).

Slack has no idempotency key: whatever may have posted (timeout, reset, 5xx, `fatal_error`) on
chat.postMessage is AMBIGUOUS and checked before a re-send; on read-only methods it is TRANSIENT.
"""

from __future__ import annotations

from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError

from coffeebuddy.infra.kafka.reminder_worker import SendResult

__all__ = [
    "AMBIGUOUS_POST_ERRORS",
    "CONFIGURATION_ERRORS",
    "FORMAT_ERRORS",
    "POST",
    "RECIPIENT_ERRORS",
    "STALE_CHANNEL_ERRORS",
    "classify_slack_error",
    "error_code",
]

POST = "chat.postMessage"

RECIPIENT_ERRORS = frozenset(
    {
        "user_not_found",
        "users_not_found",
        "user_not_visible",
        "user_disabled",
        "cannot_dm_bot",
        "channel_not_found",
        "is_archived",
    }
)
"""This recipient can never get a DM from us: drop the reminder (logged, counted)."""

CONFIGURATION_ERRORS = frozenset(
    {
        "not_authed",
        "invalid_auth",
        "token_revoked",
        "token_expired",
        "account_inactive",
        "missing_scope",
        "no_permission",
        "not_allowed_token_type",
        "access_denied",
        "messages_tab_disabled",
        "ekm_access_denied",
        "team_access_not_granted",
        "org_login_required",
        "enterprise_is_restricted",
    }
)
"""Our setup is broken: stop sending, keep the backlog, alert."""

FORMAT_ERRORS = frozenset(
    {"invalid_blocks", "invalid_blocks_format", "msg_too_long", "no_text", "invalid_arguments"}
)
"""Slack rejected the message itself: dead-letter the reminder record (a code or data bug)."""

STALE_CHANNEL_ERRORS = frozenset({"channel_not_found", "is_archived"})
AMBIGUOUS_POST_ERRORS = frozenset({"fatal_error", "internal_error"})


def error_code(exc: SlackApiError) -> tuple[int, str]:
    """The HTTP status and Slack's `error` code of a failed call ("" when the body has none)."""
    response = exc.response
    status = int(getattr(response, "status_code", 200) or 200)
    data = getattr(response, "data", None)
    return status, str(data.get("error") or "") if isinstance(data, dict) else ""


def classify_slack_error(method: str, exc: BaseException) -> SendResult:
    """Map one failed Web API call to a `SendResult` (the error table in the README); an error
    code no set names is TRANSIENT."""
    posting = method == POST

    def maybe_posted(error: str) -> SendResult:
        return SendResult.ambiguous(error) if posting else SendResult.transient(error)

    if isinstance(exc, SlackApiError):
        status, error = error_code(exc)
        if status == 429 or error == "ratelimited":
            return SendResult.rate_limited(_retry_after(exc.response), error="ratelimited")
        if status >= 500:  # a gateway answer (502/503/504) may come after Slack accepted the post
            return maybe_posted(error or f"http_{status}")
        if error == "missing_scope":
            data = getattr(exc.response, "data", None)
            needed = data.get("needed") if isinstance(data, dict) else None
            return SendResult.configuration(f"missing_scope: {needed}" if needed else error)
        if error in CONFIGURATION_ERRORS:
            return SendResult.configuration(error)
        if error in RECIPIENT_ERRORS:
            return SendResult.permanent(error)
        if error in FORMAT_ERRORS:
            return SendResult.permanent(error, dead_letter=True)
        if error in AMBIGUOUS_POST_ERRORS:
            return maybe_posted(error)
        return SendResult.transient(
            error or (f"http_{status}" if status >= 400 else "unknown_error")
        )
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return SendResult.configuration("tls_certificate_error")
    if isinstance(exc, aiohttp.ClientConnectorError | aiohttp.ConnectionTimeoutError):
        return SendResult.transient("connection_error")  # never connected: nothing was written
    if isinstance(exc, TimeoutError):
        return maybe_posted("timeout")
    if isinstance(exc, aiohttp.ClientError | OSError):
        return maybe_posted("connection_reset")
    return maybe_posted("unexpected_error")


def _retry_after(response: Any) -> float:
    headers = getattr(response, "headers", None) or {}
    raw = next((headers[key] for key in ("Retry-After", "retry-after") if key in headers), None)
    try:
        return max(0.0, float(raw)) if raw is not None else 1.0
    except (TypeError, ValueError):
        return 1.0
