"""SlackDMSender: the `ReminderSender` posting reminders as Slack DMs via slack-bolt's client.

Only four Web API methods are used: auth.test, conversations.open, chat.postMessage and
conversations.history. Every failure is classified into a `SendResult`; nothing raises. Slack has
no idempotency key, so nothing here retries on its own (slack_sdk's default connection-error
handler could post twice): the worker decides, and checks `find_sent` after an ambiguous send.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from datetime import datetime, timedelta
from typing import Any

import aiohttp
from prometheus_client import Histogram
from pydantic import SecretStr
from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from coffeebuddy.infra.kafka.metrics import ReminderMetrics
from coffeebuddy.infra.kafka.models import ReminderScheduledData
from coffeebuddy.infra.kafka.reminder_worker import SendResult
from coffeebuddy.services.reminder_worker._render import block_id_for, render_reminder

__all__ = [
    "CONFIGURATION_ERRORS",
    "FORMAT_ERRORS",
    "RECIPIENT_ERRORS",
    "REQUIRED_SCOPES",
    "SlackDMSender",
    "classify_slack_error",
]

log = logging.getLogger("coffeebuddy.reminder_worker.slack")

DEFAULT_BASE_URL = "https://slack.com/api/"

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

TRANSIENT_ERRORS = frozenset({"service_unavailable", "request_timeout", "ratelimited"})
REQUIRED_SCOPES = ("chat:write", "im:write", "im:history")
"""chat.postMessage, conversations.open, conversations.history (the pre-resend check)."""
_STALE_CHANNEL_ERRORS = frozenset({"channel_not_found", "is_archived"})
AMBIGUOUS_POST_ERRORS = frozenset({"fatal_error", "internal_error"})

_POST = "chat.postMessage"
_SDK_LOGGER = "coffeebuddy.reminder_worker.slack_sdk"
_HISTORY_PAGES = 5
_HISTORY_SKEW = timedelta(seconds=60)


def classify_slack_error(method: str, exc: BaseException) -> SendResult:
    """Map one failed Web API call to a `SendResult` (see the error table in the README).

    For chat.postMessage a timeout, reset, HTTP 500 or `fatal_error`/`internal_error` may have
    posted the message: AMBIGUOUS. For the read-only methods the same failures are TRANSIENT.
    """
    posting = method == _POST
    if isinstance(exc, SlackApiError):
        response = exc.response
        status = int(getattr(response, "status_code", 200) or 200)
        data = getattr(response, "data", None)
        error = str(data.get("error") or "") if isinstance(data, dict) else ""
        if status == 429 or error == "ratelimited":
            return SendResult.rate_limited(_retry_after(response), error="ratelimited")
        if status >= 500:
            # a gateway answer (502/503/504) may come after Slack accepted the post
            label = error or f"http_{status}"
            if posting:
                return SendResult.ambiguous(label)
            return SendResult.transient(label)
        if error == "missing_scope":
            needed = data.get("needed") if isinstance(data, dict) else None
            return SendResult.configuration(f"missing_scope: {needed}" if needed else error)
        if error in CONFIGURATION_ERRORS:
            return SendResult.configuration(error)
        if error in RECIPIENT_ERRORS:
            return SendResult.permanent(error)
        if error in FORMAT_ERRORS:
            return SendResult.permanent(error, dead_letter=True)
        if error in AMBIGUOUS_POST_ERRORS:
            return SendResult.ambiguous(error) if posting else SendResult.transient(error)
        if error in TRANSIENT_ERRORS:
            return SendResult.transient(error)
        if status >= 400:
            return SendResult.transient(error or f"http_{status}")
        return SendResult.transient(error or "unknown_error")
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return SendResult.configuration("tls_certificate_error")
    if isinstance(exc, aiohttp.ClientConnectorError | aiohttp.ConnectionTimeoutError):
        # The connection was never made: the request was not written.
        return SendResult.transient("connection_error")
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return SendResult.ambiguous("timeout") if posting else SendResult.transient("timeout")
    if isinstance(exc, aiohttp.ClientError | OSError):
        name = "connection_reset"
        return SendResult.ambiguous(name) if posting else SendResult.transient(name)
    return (
        SendResult.ambiguous("unexpected_error")
        if posting
        else SendResult.transient("unexpected_error")
    )


def _sdk_logger() -> logging.Logger:
    """slack_sdk's logger, at INFO unless explicitly configured.

    slack_sdk checks `logger.level <= DEBUG` (not the effective level) and then formats every
    request and response into a debug string, blocks included; a logger left at NOTSET pays that
    on every call. Set this logger to DEBUG explicitly to get those lines.
    """
    logger = logging.getLogger(_SDK_LOGGER)
    if logger.level == logging.NOTSET:
        logger.setLevel(max(logger.getEffectiveLevel(), logging.INFO))
    return logger


def _retry_after(response: Any) -> float:
    headers = getattr(response, "headers", None) or {}
    raw = None
    for key in ("Retry-After", "retry-after"):
        if key in headers:
            raw = headers[key]
            break
    try:
        return max(0.0, float(raw)) if raw is not None else 1.0
    except (TypeError, ValueError):
        return 1.0


class SlackDMSender:
    """Posts reminders as DMs (conversations.open, cached, then chat.postMessage).

    Build it with `SlackDMSender.create(token, base_url=...)`; it owns a slack-bolt `AsyncApp`
    whose `.client` is an `AsyncWebClient` without retry handlers.
    """

    def __init__(
        self,
        client: AsyncWebClient,
        *,
        metrics: ReminderMetrics | None = None,
        channel_cache_size: int = 50_000,
    ) -> None:
        if client.retry_handlers:
            raise ValueError(
                "SlackDMSender needs an AsyncWebClient with retry_handlers=[]: slack_sdk's "
                "default connection-error retry can post a DM twice"
            )
        self._client = client
        self._metrics = metrics
        self._channels: OrderedDict[str, str] = OrderedDict()
        self._cache_size = channel_cache_size
        self._durations: dict[tuple[str, str], Histogram] = {}
        self.bot_user_id: str | None = None
        self.team_id: str | None = None
        self.granted_scopes: frozenset[str] | None = None

    @classmethod
    def create(
        cls,
        token: SecretStr | str,
        *,
        base_url: str = DEFAULT_BASE_URL,
        timeout: float = 10.0,
        metrics: ReminderMetrics | None = None,
        max_connections: int = 100,
    ) -> SlackDMSender:
        """A sender on a slack-bolt `AsyncApp` client for `token` against `base_url`.

        Call it inside the running event loop: the client keeps one pooled aiohttp session
        (without one, slack_sdk opens a new connection, TLS handshake included, per call).
        """
        secret = token.get_secret_value() if isinstance(token, SecretStr) else token
        if not secret:
            raise ValueError("SLACK_BOT_TOKEN is empty: set it to the app's xoxb- bot token")
        session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=timeout),
            connector=aiohttp.TCPConnector(limit=max_connections),
        )
        client = AsyncWebClient(
            token=secret,
            base_url=base_url if base_url.endswith("/") else base_url + "/",
            timeout=int(max(1, timeout)),
            session=session,
            retry_handlers=[],
            logger=_sdk_logger(),
        )
        # The app never receives requests (no Events API here), so no signing secret is needed.
        bolt_log = logging.getLogger("coffeebuddy.reminder_worker.slack_bolt")
        bolt_log.setLevel(logging.ERROR)  # bolt warns that SLACK_BOT_TOKEN in env is unused
        app = AsyncApp(
            logger=bolt_log,
            client=client,
            request_verification_enabled=False,
            signing_secret="-",  # noqa: S106 - placeholder, unused without request verification
        )
        return cls(app.client, metrics=metrics)

    def __repr__(self) -> str:
        return f"SlackDMSender(base_url={self._client.base_url!r}, token=<redacted>)"

    @property
    def client(self) -> AsyncWebClient:
        return self._client

    async def close(self) -> None:
        session = self._client.session
        if session is not None and not session.closed:
            await session.close()

    # ------------------------------------------------------------------ ReminderSender
    async def check_auth(self) -> SendResult:
        """auth.test plus its `x-oauth-scopes` header: SENT when the token works and has every
        scope in REQUIRED_SCOPES, CONFIGURATION naming what is missing otherwise."""
        try:
            response = await self._call_response("auth.test")
        except Exception as exc:
            return classify_slack_error("auth.test", exc)
        data = response.data if isinstance(response.data, dict) else {}
        self.bot_user_id = str(data.get("user_id") or "") or None
        self.team_id = str(data.get("team_id") or "") or None
        granted = _header(response.headers, "x-oauth-scopes")
        if granted is None:
            # real Slack always sends it; a proxy or stand-in may not: cannot verify, say so
            log.warning("auth.test carried no x-oauth-scopes header: scopes not verified")
            self.granted_scopes = None
            return SendResult.sent()
        self.granted_scopes = frozenset(s.strip() for s in granted.split(",") if s.strip())
        missing = [s for s in REQUIRED_SCOPES if s not in self.granted_scopes]
        if missing:
            return SendResult.configuration(f"missing_scope: {', '.join(missing)}")
        return SendResult.sent()

    async def send(self, reminder: ReminderScheduledData, *, claim_time: datetime) -> SendResult:
        """Open (or reuse) the DM channel and post the reminder once."""
        user = _recipient(reminder)
        text, blocks = _render(reminder)
        for attempt in (1, 2):
            cached = user in self._channels
            try:
                channel = await self._channel_for(user)
            except Exception as exc:
                return classify_slack_error("conversations.open", exc)
            try:
                data = await self._call(
                    _POST, channel=channel, text=text, blocks=blocks, unfurl_links=False
                )
            except Exception as exc:
                result = classify_slack_error(_POST, exc)
                if result.error in _STALE_CHANNEL_ERRORS:
                    self._channels.pop(user, None)
                    if cached and attempt == 1:
                        # a stale cached DM channel posted nothing: reopen it once and post
                        log.info("cached DM channel %s is stale; reopening", channel)
                        continue
                return result
            return SendResult.sent(str(data.get("channel") or channel), str(data.get("ts") or ""))
        raise AssertionError("unreachable")  # pragma: no cover

    async def find_sent(
        self, reminder: ReminderScheduledData, *, since: datetime
    ) -> SendResult | None:
        """conversations.history of the DM since `since` (minus clock skew), matching block_id."""
        user = _recipient(reminder)
        wanted = block_id_for(str(reminder.reminder_id))
        try:
            channel = await self._channel_for(user)
            oldest = f"{(since - _HISTORY_SKEW).timestamp():.6f}"
            cursor: str | None = None
            for _ in range(_HISTORY_PAGES):
                kwargs: dict[str, Any] = {"channel": channel, "oldest": oldest, "limit": 200}
                if cursor:
                    kwargs["cursor"] = cursor
                data = await self._call("conversations.history", **kwargs)
                for message in data.get("messages") or []:
                    for block in message.get("blocks") or []:
                        if block.get("block_id") == wanted:
                            return SendResult.sent(channel, str(message.get("ts") or ""))
                cursor = (data.get("response_metadata") or {}).get("next_cursor") or None
                if not data.get("has_more") or not cursor:
                    return None
        except Exception as exc:
            return classify_slack_error("conversations.history", exc)
        # More history than we page through since the claim: cannot tell; let the worker retry.
        return SendResult.transient("history_too_long")

    # ------------------------------------------------------------------ internals
    async def _channel_for(self, user: str) -> str:
        channel = self._channels.get(user)
        if channel is not None:
            self._channels.move_to_end(user)
            return channel
        data = await self._call("conversations.open", users=user)
        channel = str((data.get("channel") or {}).get("id") or "")
        if not channel:
            raise ValueError("conversations.open returned no channel id")
        self._channels[user] = channel
        if len(self._channels) > self._cache_size:
            self._channels.popitem(last=False)
        return channel

    async def _call(self, method: str, **kwargs: Any) -> dict[str, Any]:
        data = (await self._call_response(method, **kwargs)).data
        return data if isinstance(data, dict) else {}

    async def _call_response(self, method: str, **kwargs: Any) -> AsyncSlackResponse:
        started = time.perf_counter()
        outcome = "ok"
        try:
            if method == _POST:
                # api_call with the final JSON body: chat_postMessage would only re-scan our plain
                # dict blocks for Block objects and drop None values on every call.
                response = await self._client.api_call(_POST, json=kwargs)
            elif method == "conversations.open":
                response = await self._client.conversations_open(**kwargs)
            elif method == "conversations.history":
                response = await self._client.conversations_history(**kwargs)
            elif method == "auth.test":
                response = await self._client.auth_test()
            else:  # pragma: no cover - programming error
                raise ValueError(f"SlackDMSender does not call {method}")
        except SlackApiError as exc:
            data = getattr(exc.response, "data", None)
            code = data.get("error") if isinstance(data, dict) else None
            status = int(getattr(exc.response, "status_code", 0) or 0)
            outcome = "error"
            self._error(method, code or ("ratelimited" if status == 429 else f"http_{status}"))
            raise
        except BaseException as exc:
            outcome = "error"
            self._error(method, "timeout" if isinstance(exc, TimeoutError) else "connection")
            raise
        finally:
            if self._metrics is not None:
                self._duration(method, outcome).observe(time.perf_counter() - started)
        return response

    def _duration(self, method: str, outcome: str) -> Histogram:
        """The labelled histogram child, looked up once per (method, outcome)."""
        child = self._durations.get((method, outcome))
        if child is None:
            assert self._metrics is not None
            child = self._metrics.slack_api_duration.labels(method, outcome)
            self._durations[method, outcome] = child
        return child

    def _error(self, method: str, code: str) -> None:
        if self._metrics is not None:
            self._metrics.slack_error(method, code)
        log.warning("slack %s failed: %s", method, code, extra={"slack_method": method})


def _header(headers: Any, name: str) -> str | None:
    for key, value in dict(headers or {}).items():
        if str(key).lower() == name:
            return str(value[0] if isinstance(value, list) and value else value)
    return None


def _recipient(reminder: ReminderScheduledData) -> str:
    return str(reminder.recipient_user_id)


def _render(reminder: ReminderScheduledData) -> tuple[str, list[dict[str, Any]]]:
    return render_reminder(
        reminder_id=str(reminder.reminder_id),
        kind=reminder.kind,
        run_id=str(reminder.run_id),
        due_at=reminder.due_at,
        closes_at=reminder.closes_at,
        orders=[(str(o.user_id), str(o.item)) for o in reminder.orders or ()],
        order_count=reminder.order_count,
        place=str(reminder.place) if reminder.place else None,
    )
