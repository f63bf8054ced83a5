"""SlackDMSender: the `ReminderSender` posting reminders as Slack DMs through slack_sdk.

It uses auth.test, conversations.open, chat.postMessage and conversations.history only, and
classifies every failure into a `SendResult`. Slack has no idempotency key, so nothing here
retries: the worker decides, and checks `find_sent` after an ambiguous send."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from datetime import datetime, timedelta
from typing import Any

from prometheus_client import Histogram
from pydantic import SecretStr
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from coffeebuddy.infra.kafka.metrics import ReminderMetrics
from coffeebuddy.infra.kafka.models import ReminderScheduledData
from coffeebuddy.infra.kafka.reminder_worker import Fence, SendResult
from coffeebuddy.services.reminder_worker._bolt import BotTokens, app_bot_tokens
from coffeebuddy.services.reminder_worker._render import block_id_for, render_reminder
from coffeebuddy.services.reminder_worker._slack_client import (
    DEFAULT_BASE_URL,
    new_client,
    without_retries,
)
from coffeebuddy.services.reminder_worker._slack_errors import (
    POST,
    STALE_CHANNEL_ERRORS,
    classify_slack_error,
    error_code,
)

__all__ = ["REQUIRED_SCOPES", "SlackDMSender"]

log = logging.getLogger("coffeebuddy.reminder_worker.slack")

REQUIRED_SCOPES = ("chat:write", "im:write", "im:history")
"""chat.postMessage, conversations.open, conversations.history (the pre-resend check)."""
_HISTORY_PAGES = 5
_HISTORY_SKEW = timedelta(seconds=60)
_READS = {"auth.test": "POST", "conversations.open": "POST", "conversations.history": "GET"}
"""The other methods' HTTP verbs (as slack_sdk's own method wrappers send them)."""


class SlackDMSender:
    """Posts reminders as DMs (conversations.open, cached, then chat.postMessage).

    Build it with `create(token, base_url=...)` (its own client), `from_app(app)` (the CoffeeBuddy
    Slack app's client, installation store and token rotation), or around any `AsyncWebClient`
    without retry handlers.
    """

    def __init__(
        self,
        client: AsyncWebClient,
        *,
        metrics: ReminderMetrics | None = None,
        channel_cache_size: int = 50_000,
        bot_tokens: BotTokens | None = None,
        auth_team_id: str | None = None,
        owns_session: bool = True,
    ) -> None:
        if client.retry_handlers:
            raise ValueError(
                "SlackDMSender needs an AsyncWebClient with retry_handlers=[]: slack_sdk's "
                "default connection-error retry can post a DM twice"
            )
        if bot_tokens is not None and auth_team_id is None:
            raise ValueError(
                "SlackDMSender with per-team bot tokens needs auth_team_id: the workspace whose "
                "token check_auth (the readiness probe) verifies"
            )
        self._client = client
        self._metrics = metrics
        self._bot_tokens = bot_tokens
        self._auth_team_id = auth_team_id
        self._owns_session = owns_session
        self._channels: OrderedDict[tuple[str, str], str] = OrderedDict()
        self._opening: dict[tuple[str, str], asyncio.Future[str]] = {}
        """conversations.open calls in flight: concurrent sends to one user share one call."""
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
        """A sender on its own retry-free client for `token` against `base_url` (call it inside
        the running event loop: the client keeps one pooled aiohttp session)."""
        client = new_client(
            token, base_url=base_url, timeout=timeout, max_connections=max_connections
        )
        return cls(client, metrics=metrics)

    @classmethod
    def from_app(
        cls,
        app: Any,
        *,
        team_id: str | None = None,
        metrics: ReminderMetrics | None = None,
    ) -> SlackDMSender:
        """A sender sharing a slack-bolt `AsyncApp`'s client (session, token, base URL; `close()`
        leaves the session open). An app installed in many workspaces has no token on its client:
        each reminder's bot token comes from the app's installation store for its team (rotated
        by bolt), and `team_id` names the workspace `check_auth` probes. Needs `[bolt]`."""
        client = without_retries(app.client)
        tokens = app_bot_tokens(app, client)
        return cls(
            client,
            metrics=metrics,
            bot_tokens=tokens,
            auth_team_id=team_id if tokens is not None else None,
            owns_session=False,
        )

    def __repr__(self) -> str:
        return f"SlackDMSender(base_url={self._client.base_url!r}, token=<redacted>)"

    @property
    def client(self) -> AsyncWebClient:
        return self._client

    async def close(self) -> None:
        session = self._client.session
        if self._owns_session and session is not None and not session.closed:
            await session.close()

    async def check_auth(self) -> SendResult:
        """auth.test plus its `x-oauth-scopes` header: SENT when the token works and has every
        scope in REQUIRED_SCOPES, CONFIGURATION naming what is missing otherwise."""
        try:
            response = await self._call("auth.test", self._auth_team_id)
        except Exception as exc:
            return classify_slack_error("auth.test", exc)
        data = _data(response)
        self.bot_user_id = str(data.get("user_id") or "") or None
        self.team_id = str(data.get("team_id") or "") or None
        granted = _header(response.headers, "x-oauth-scopes")
        if granted is None:
            # real Slack always sends it; a proxy may strip it: cannot verify, say so
            log.warning("auth.test carried no x-oauth-scopes header: scopes not verified")
            self.granted_scopes = None
            return SendResult.sent()
        self.granted_scopes = frozenset(s.strip() for s in granted.split(",") if s.strip())
        missing = [s for s in REQUIRED_SCOPES if s not in self.granted_scopes]
        if missing:
            return SendResult.configuration(f"missing_scope: {', '.join(missing)}")
        return SendResult.sent()

    async def send(
        self, reminder: ReminderScheduledData, *, claim_time: datetime, fence: Fence
    ) -> SendResult:
        """Open (or reuse) the DM channel and post the reminder once; `fence()` is asked right
        before chat.postMessage (after the open and the token lookup): no, and nothing posts."""
        team, user = str(reminder.team_id), str(reminder.recipient_user_id)
        text, blocks = _render(reminder)
        for attempt in (1, 2):
            cached = (team, user) in self._channels
            try:
                channel = await self._channel_for(team, user)
            except Exception as exc:
                return classify_slack_error("conversations.open", exc)
            try:
                response = await self._call(
                    POST,
                    team,
                    fence=fence,
                    channel=channel,
                    text=text,
                    blocks=blocks,
                    unfurl_links=False,
                )
            except _Fenced:
                return SendResult.fenced()
            except Exception as exc:
                result = classify_slack_error(POST, exc)
                if result.error in STALE_CHANNEL_ERRORS:
                    self._channels.pop((team, user), None)
                    if cached and attempt == 1:
                        # a stale cached DM channel posted nothing: reopen it once and post
                        log.info("cached DM channel %s is stale; reopening", channel)
                        continue
                return result
            data = _data(response)
            return SendResult.sent(str(data.get("channel") or channel), str(data.get("ts") or ""))
        raise AssertionError("unreachable")  # pragma: no cover

    async def prepare(self, reminder: ReminderScheduledData) -> None:
        """Open and cache the recipient's DM channel ahead of the due time (`PreparingSender`):
        at the due time only chat.postMessage is left. Raises what conversations.open raised."""
        await self._channel_for(str(reminder.team_id), str(reminder.recipient_user_id))

    async def find_sent(
        self, reminder: ReminderScheduledData, *, since: datetime
    ) -> SendResult | None:
        """conversations.history of the DM since `since` (minus clock skew), matching block_id."""
        team, user = str(reminder.team_id), str(reminder.recipient_user_id)
        wanted = block_id_for(str(reminder.reminder_id))
        try:
            channel = await self._channel_for(team, user)
            oldest = f"{(since - _HISTORY_SKEW).timestamp():.6f}"
            cursor: str | None = None
            for _ in range(_HISTORY_PAGES):
                kwargs: dict[str, Any] = {"channel": channel, "oldest": oldest, "limit": 200}
                if cursor:
                    kwargs["cursor"] = cursor
                data = _data(await self._call("conversations.history", team, **kwargs))
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

    async def _channel_for(self, team: str, user: str) -> str:
        key = (team, user)
        channel = self._channels.get(key)
        if channel is not None:
            self._channels.move_to_end(key)
            return channel
        opening = self._opening.get(key)
        if opening is not None:
            try:
                return await asyncio.shield(opening)  # the opener's cancellation spares us
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if opening.cancelled() and task is not None and not task.cancelling():
                    return await self._channel_for(team, user)  # the opener was cancelled
                raise
        opening = self._opening[key] = asyncio.get_running_loop().create_future()
        try:
            data = _data(await self._call("conversations.open", team, users=user))
            channel = str((data.get("channel") or {}).get("id") or "")
            if not channel:
                raise ValueError("conversations.open returned no channel id")
        except BaseException as exc:
            if isinstance(exc, asyncio.CancelledError):
                opening.cancel()
            else:
                opening.set_exception(exc)
                opening.exception()  # retrieved: waiters may be none
            raise
        finally:
            del self._opening[key]
        self._channels[key] = channel
        if len(self._channels) > self._cache_size:
            self._channels.popitem(last=False)
        opening.set_result(channel)
        return channel

    async def _call(
        self, method: str, team: str | None, *, fence: Fence | None = None, **kwargs: Any
    ) -> AsyncSlackResponse:
        """One Web API call, timed and counted: the one path for every method. `fence` is asked
        last, after the token lookup. chat.postMessage goes as the final JSON body (slack_sdk's
        chat_postMessage re-scans the blocks for Block objects and drops None values per call)."""
        started = time.perf_counter()
        outcome = "ok"
        try:
            if self._bot_tokens is not None and team is not None:
                kwargs["token"] = await self._team_token(team)
            if fence is not None and not fence():
                outcome = "fenced"
                raise _Fenced
            if method == POST:
                return await self._client.api_call(POST, json=kwargs)
            return await self._client.api_call(method, http_verb=_READS[method], params=kwargs)
        except _Fenced:
            raise
        except SlackApiError as exc:
            outcome = "error"
            status, code = error_code(exc)
            self._error(method, code or ("ratelimited" if status == 429 else f"http_{status}"))
            raise
        except BaseException as exc:
            outcome = "error"
            self._error(method, "timeout" if isinstance(exc, TimeoutError) else "connection")
            raise
        finally:
            if self._metrics is not None:
                self._duration(method, outcome).observe(time.perf_counter() - started)

    async def _team_token(self, team: str) -> str:
        assert self._bot_tokens is not None
        token = await self._bot_tokens(team)
        if not token:
            # the same answer Slack gives a request without a token
            raise SlackApiError(  # type: ignore[no-untyped-call]
                f"no bot token for team {team} in the app's installation store",
                AsyncSlackResponse(
                    client=self._client,
                    http_verb="POST",
                    api_url="",
                    req_args={},
                    data={"ok": False, "error": "not_authed"},
                    headers={},
                    status_code=200,
                ),
            )
        return token

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


class _Fenced(Exception):  # noqa: N818 - a signal inside this module, not an error
    """The fence said no right before a post: nothing was sent."""


def _data(response: AsyncSlackResponse) -> dict[str, Any]:
    return response.data if isinstance(response.data, dict) else {}


def _header(headers: Any, name: str) -> str | None:
    for key, value in dict(headers or {}).items():
        if str(key).lower() == name:
            return str(value[0] if isinstance(value, list) and value else value)
    return None


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
