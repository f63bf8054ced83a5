"""A local stand-in for the four Slack Web API methods the reminder worker uses.

`FakeSlackServer` speaks real HTTP (aiohttp) so tests drive the real slack_sdk client against
it: it records every call, keeps DMs per channel with a `ts`, serves them back through
`conversations.history`, and can be scripted to fail (429 with Retry-After, HTTP 5xx,
`ok: false` errors, slow answers, "posted, then timed out"). It runs on the caller's event loop
(`async with FakeSlackServer()`) or on its own thread (`start_in_thread()`) for sync code and
subprocess tests; all state is guarded by one lock so both sides may read and script it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import math
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

import pytest
from aiohttp import web

__all__ = ["FakeSlackServer", "SlackCall", "SlackMessage", "fake_slack"]

DEFAULT_TOKEN = "xoxb-fake-slack-test-token"  # noqa: S105 - a test double's token, not a secret
BOT_USER_ID = "U0COFFEEBOT"
BOT_ID = "B0COFFEEBOT"
TEAM_ID = "T0COFFEE"
METHODS = ("auth.test", "conversations.open", "chat.postMessage", "conversations.history")
_MAX_TEXT = 40_000
_MAX_BLOCKS = 50
_MAX_BLOCK_ID = 255


@dataclass(frozen=True)
class SlackCall:
    """One request the fake received. The token's value is never kept, only whether it was there."""

    method: str
    params: Mapping[str, Any]
    time: float  # wall clock, seconds since the epoch
    monotonic: float
    token_present: bool
    status: int
    error: str | None

    @property
    def ok(self) -> bool:
        return self.status == 200 and self.error is None


@dataclass(frozen=True)
class SlackMessage:
    """A message the fake stored (it was accepted by chat.postMessage)."""

    channel: str
    user: str | None
    ts: str
    text: str
    blocks: Sequence[Mapping[str, Any]]
    posted_at: float  # wall clock
    monotonic: float

    @property
    def block_ids(self) -> list[str]:
        return [str(b["block_id"]) for b in self.blocks if "block_id" in b]

    def as_api(self) -> dict[str, Any]:
        return {
            "type": "message",
            "user": BOT_USER_ID,
            "bot_id": BOT_ID,
            "ts": self.ts,
            "text": self.text,
            "blocks": [dict(b) for b in self.blocks],
        }


@dataclass
class _Rule:
    method: str | None
    remaining: int | None
    until: float | None
    user: str | None
    status: int
    error: str | None
    retry_after: int | None
    delay: float
    post_first: bool
    extra: Mapping[str, Any] = field(default_factory=dict)

    def matches(self, method: str, user: str | None, now: float) -> bool:
        if self.until is not None and now >= self.until:
            return False
        if self.remaining is not None and self.remaining <= 0:
            return False
        if self.method is not None and self.method != method:
            return False
        return self.user is None or self.user == user


class FakeSlackServer:
    """The Slack Web API subset the reminder worker calls, on a free loopback port.

    `base_url` is `http://127.0.0.1:PORT/api/` for `AsyncWebClient(base_url=...)`.
    Requests must carry one of `valid_tokens` (Bearer header or `token` parameter), else the
    answer is `not_authed` / `invalid_auth`, as from Slack.
    """

    def __init__(self, *, token: str | None = DEFAULT_TOKEN, host: str = "127.0.0.1") -> None:
        self._host = host
        self._port: int | None = None
        self._lock = threading.RLock()
        self._valid_tokens: set[str] = {token} if token else set()
        self._accept_any_token = token is None
        self._calls: list[SlackCall] = []
        self._rules: list[_Rule] = []
        self._messages: dict[str, list[SlackMessage]] = {}
        self._channel_user: dict[str, str] = {}
        self._last_ts = 0.0
        self._runner: web.AppRunner | None = None
        self._closing: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        return f"FakeSlackServer(base_url={self.base_url!r}, calls={len(self._calls)})"

    # ------------------------------------------------------------------ lifecycle
    @property
    def base_url(self) -> str:
        if self._port is None:
            raise RuntimeError("FakeSlackServer is not started: use `async with` or start()")
        return f"http://{self._host}:{self._port}/api/"

    @property
    def token(self) -> str:
        """The (first) token requests must carry."""
        with self._lock:
            if not self._valid_tokens:
                raise RuntimeError("FakeSlackServer accepts any token; none is configured")
            return sorted(self._valid_tokens)[0]

    async def start(self) -> None:
        app = web.Application(client_max_size=8 * 1024 * 1024)
        app.router.add_route("*", "/api/{method}", self._handle)
        self._closing = asyncio.Event()
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, 0)
        await site.start()
        self._port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        if self._closing is not None:
            self._closing.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def start_in_thread(self, timeout: float = 10.0) -> Self:
        """Serve from a daemon thread with its own event loop (for sync tests and subprocesses)."""
        started = threading.Event()
        errors: list[BaseException] = []

        def serve() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(self.start())
            except BaseException as exc:  # pragma: no cover - reported to the caller below
                errors.append(exc)
                started.set()
                loop.close()
                return
            started.set()
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(self.stop())
                loop.close()

        self._thread = threading.Thread(target=serve, name="fake-slack", daemon=True)
        self._thread.start()
        if not started.wait(timeout):
            raise RuntimeError(f"FakeSlackServer did not start within {timeout} s")
        if errors:
            raise RuntimeError("FakeSlackServer failed to start") from errors[0]
        return self

    def stop_thread(self, timeout: float = 10.0) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        if self._closing is not None:
            loop.call_soon_threadsafe(self._closing.set)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)
        self._loop = None
        self._thread = None

    def __enter__(self) -> Self:
        return self.start_in_thread()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop_thread()

    # ------------------------------------------------------------------ tokens
    def set_valid_tokens(self, *tokens: str) -> None:
        """Replace the accepted tokens at runtime (simulates fixing or breaking configuration)."""
        with self._lock:
            self._valid_tokens = set(tokens)
            self._accept_any_token = False

    # ------------------------------------------------------------------ scripting
    def script(
        self,
        method: str | None = "chat.postMessage",
        *,
        count: int | None = 1,
        duration: float | None = None,
        user: str | None = None,
        status: int = 200,
        error: str | None = None,
        retry_after: int | None = None,
        delay: float = 0.0,
        post_first: bool = False,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        """Add a failure rule; the first matching rule answers (count=None: until `duration`).

        `user` limits the rule to one recipient (conversations.open `users`, or the DM channel's
        user for chat.postMessage). `post_first` stores the message before failing/delaying.
        """
        if method is not None and method not in METHODS:
            raise ValueError(f"unknown Slack method {method!r}; the fake serves {METHODS}")
        if count is None and duration is None and user is None:
            raise ValueError("a rule without count, duration or user would never end; pass one")
        until = time.monotonic() + duration if duration is not None else None
        with self._lock:
            self._rules.append(
                _Rule(
                    method=method,
                    remaining=count,
                    until=until,
                    user=user,
                    status=status,
                    error=error,
                    retry_after=retry_after,
                    delay=delay,
                    post_first=post_first,
                    extra=dict(extra or {}),
                )
            )

    def rate_limit(
        self,
        count: int | None = 1,
        *,
        retry_after: int = 1,
        duration: float | None = None,
        method: str | None = "chat.postMessage",
    ) -> None:
        """HTTP 429 `ratelimited` with `Retry-After` for the next `count` calls or `duration` s."""
        self.script(
            method,
            count=count,
            duration=duration,
            status=429,
            error="ratelimited",
            retry_after=retry_after,
        )

    def http_error(
        self, status: int = 500, count: int = 1, *, method: str | None = "chat.postMessage"
    ) -> None:
        """Answer a bare HTTP error (text body, as Slack's load balancers do)."""
        self.script(method, count=count, status=status)

    def fail(
        self,
        error: str,
        count: int | None = 1,
        *,
        method: str | None = "chat.postMessage",
        user: str | None = None,
        post_first: bool = False,
    ) -> None:
        """Answer HTTP 200 `{"ok": false, "error": error}`."""
        extra = {"needed": "chat:write", "provided": "im:write"} if error == "missing_scope" else {}
        self.script(method, count=count, user=user, error=error, post_first=post_first, extra=extra)

    def slow(
        self, delay: float, count: int | None = 1, *, method: str | None = "chat.postMessage"
    ) -> None:
        """Answer normally, but only after `delay` seconds."""
        self.script(method, count=count, delay=delay, duration=None if count else 3600)

    def post_then_timeout(self, count: int = 1, *, delay: float = 30.0) -> None:
        """Store the message, then hold the answer `delay` s so the client times out (ambiguous)."""
        self.script("chat.postMessage", count=count, delay=delay, post_first=True)

    def clear_script(self) -> None:
        with self._lock:
            self._rules.clear()

    # ------------------------------------------------------------------ inspection
    def calls(self, method: str | None = None) -> list[SlackCall]:
        with self._lock:
            return [c for c in self._calls if method is None or c.method == method]

    def channel_for(self, user: str) -> str:
        """The stable DM channel id conversations.open returns for `user`."""
        digest = hashlib.sha1(user.encode(), usedforsecurity=False).hexdigest()[:10].upper()
        return f"D{digest}"

    def messages(self) -> list[SlackMessage]:
        with self._lock:
            out = [m for msgs in self._messages.values() for m in msgs]
        return sorted(out, key=lambda m: m.ts)

    def messages_for(self, user: str) -> list[SlackMessage]:
        with self._lock:
            return list(self._messages.get(self.channel_for(user), []))

    def messages_with_block_id(self, block_id: str) -> list[SlackMessage]:
        return [m for m in self.messages() if block_id in m.block_ids]

    async def wait_for_messages(
        self,
        count: int,
        *,
        timeout: float = 10.0,  # noqa: ASYNC109 - a polling deadline, not a cancel scope
        user: str | None = None,
    ) -> list[SlackMessage]:
        """Wait (polling with a deadline) until at least `count` messages are stored."""
        deadline = time.monotonic() + timeout
        while True:
            got = self.messages_for(user) if user else self.messages()
            if len(got) >= count:
                return got
            if time.monotonic() >= deadline:
                raise TimeoutError(
                    f"fake Slack has {len(got)} messages{f' for {user}' if user else ''},"
                    f" expected {count} within {timeout} s"
                )
            await asyncio.sleep(0.01)

    def wait_for_messages_sync(
        self, count: int, *, timeout: float = 10.0, user: str | None = None
    ) -> list[SlackMessage]:
        deadline = time.monotonic() + timeout
        while True:
            got = self.messages_for(user) if user else self.messages()
            if len(got) >= count:
                return got
            if time.monotonic() >= deadline:
                raise TimeoutError(
                    f"fake Slack has {len(got)} messages, expected {count} within {timeout} s"
                )
            time.sleep(0.01)

    def reset(self) -> None:
        """Forget calls, messages and rules (tokens stay)."""
        with self._lock:
            self._calls.clear()
            self._rules.clear()
            self._messages.clear()
            self._channel_user.clear()

    # ------------------------------------------------------------------ HTTP side
    async def _params(self, request: web.Request) -> tuple[dict[str, Any], str | None]:
        params: dict[str, Any] = dict(request.query)
        if request.method == "POST" and request.can_read_body:
            if request.content_type == "application/json":
                body = await request.json()
                if isinstance(body, dict):
                    params.update(body)
            else:
                form = await request.post()
                params.update({k: v for k, v in form.items() if isinstance(v, str)})
        token: str | None = None
        auth = request.headers.get("Authorization", "")
        if auth.startswith("Bearer "):
            token = auth.removeprefix("Bearer ").strip() or None
        token = params.pop("token", None) or token
        for key in ("blocks", "metadata"):
            value = params.get(key)
            if isinstance(value, str):
                try:
                    params[key] = json.loads(value)
                except ValueError:
                    params[key] = {"__invalid_json__": value}
        return params, token

    def _user_of(self, method: str, params: Mapping[str, Any]) -> str | None:
        if method == "conversations.open":
            return str(params.get("users", "")) or None
        channel = params.get("channel")
        if isinstance(channel, str):
            return self._channel_user.get(channel, channel if channel.startswith("U") else None)
        return None

    def _record(
        self,
        method: str,
        params: Mapping[str, Any],
        token: str | None,
        status: int,
        error: str | None,
    ) -> None:
        self._calls.append(
            SlackCall(
                method=method,
                params=dict(params),
                time=time.time(),
                monotonic=time.monotonic(),
                token_present=token is not None,
                status=status,
                error=error,
            )
        )

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        method = request.match_info["method"]
        params, token = await self._params(request)
        with self._lock:
            if method not in METHODS:
                self._record(method, params, token, 200, "unknown_method")
                return _error("unknown_method")
            if not self._accept_any_token and token is None:
                self._record(method, params, token, 200, "not_authed")
                return _error("not_authed")
            if not self._accept_any_token and token not in self._valid_tokens:
                self._record(method, params, token, 200, "invalid_auth")
                return _error("invalid_auth")
            user = self._user_of(method, params)
            now = time.monotonic()
            rule = next((r for r in self._rules if r.matches(method, user, now)), None)
            if rule is not None and rule.remaining is not None:
                rule.remaining -= 1
            payload: dict[str, Any] | None = None
            if rule is None or (rule.status == 200 and rule.error is None):
                # No rule, or a delay-only rule: the real answer (stored now), sent later.
                payload = self._answer(method, params, token)
            else:
                if rule.post_first and method == "chat.postMessage":
                    self._post(params, token, record=False)
                self._record(method, params, token, rule.status, rule.error)
        if rule is not None and rule.delay > 0:
            assert self._closing is not None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), rule.delay)
        if payload is not None:
            return web.json_response(payload)
        assert rule is not None
        headers = {"Retry-After": str(rule.retry_after)} if rule.retry_after is not None else None
        if rule.status >= 500 or (rule.status != 200 and rule.error is None):
            return web.Response(status=rule.status, text="upstream error", headers=headers)
        return web.json_response(
            {"ok": False, "error": rule.error, **rule.extra}, status=rule.status, headers=headers
        )

    def _answer(self, method: str, params: Mapping[str, Any], token: str | None) -> dict[str, Any]:
        """The normal answer (the lock is held)."""
        if method == "auth.test":
            self._record(method, params, token, 200, None)
            return {
                "ok": True,
                "url": "https://coffeebuddy-test.slack.com/",
                "team": "CoffeeBuddy Test",
                "user": "coffeebuddy",
                "team_id": TEAM_ID,
                "user_id": BOT_USER_ID,
                "bot_id": BOT_ID,
            }
        if method == "conversations.open":
            users = str(params.get("users", ""))
            if not users or "," in users:
                err = "users_list_not_supplied" if not users else "not_supported"
                self._record(method, params, token, 200, err)
                return {"ok": False, "error": err}
            channel = self.channel_for(users)
            self._channel_user[channel] = users
            self._record(method, params, token, 200, None)
            return {"ok": True, "channel": {"id": channel, "is_im": True, "user": users}}
        if method == "chat.postMessage":
            return self._post(params, token, record=True)
        return self._history(params, token)

    def _post(
        self, params: Mapping[str, Any], token: str | None, *, record: bool
    ) -> dict[str, Any]:
        channel = params.get("channel")
        text = params.get("text")
        blocks = params.get("blocks")
        error: str | None = None
        if not isinstance(channel, str) or (
            channel not in self._channel_user and not channel.startswith("U")
        ):
            error = "channel_not_found"
        elif not text and not blocks:
            error = "no_text"
        elif text is not None and (not isinstance(text, str) or len(text) > _MAX_TEXT):
            error = "msg_too_long"
        elif blocks is not None and not _valid_blocks(blocks):
            error = "invalid_blocks"
        if error is not None:
            if record:
                self._record("chat.postMessage", params, token, 200, error)
            return {"ok": False, "error": error}
        assert isinstance(channel, str)
        if channel.startswith("U"):
            user: str | None = channel
            channel = self.channel_for(channel)
            self._channel_user[channel] = channel
        else:
            user = self._channel_user.get(channel)
        now = time.time()
        ts_value = max(now, self._last_ts + 0.000001)
        self._last_ts = ts_value
        ts = f"{ts_value:.6f}"
        message = SlackMessage(
            channel=channel,
            user=user,
            ts=ts,
            text=str(text or ""),
            blocks=[dict(b) for b in blocks] if isinstance(blocks, list) else [],
            posted_at=now,
            monotonic=time.monotonic(),
        )
        self._messages.setdefault(channel, []).append(message)
        if record:
            self._record("chat.postMessage", params, token, 200, None)
        return {"ok": True, "channel": channel, "ts": ts, "message": message.as_api()}

    def _history(self, params: Mapping[str, Any], token: str | None) -> dict[str, Any]:
        channel = params.get("channel")
        if not isinstance(channel, str) or (
            channel not in self._messages and channel not in self._channel_user
        ):
            self._record("conversations.history", params, token, 200, "channel_not_found")
            return {"ok": False, "error": "channel_not_found"}
        oldest = _float(params.get("oldest"), 0.0)
        latest = _float(params.get("latest"), math.inf)
        inclusive = str(params.get("inclusive", "")).lower() in ("1", "true")
        limit = max(1, min(int(_float(params.get("limit"), 100)), 999))
        start = int(_float(params.get("cursor"), 0))

        def within(m: SlackMessage) -> bool:
            ts = float(m.ts)
            if inclusive:
                return oldest <= ts <= latest
            return oldest < ts < latest

        selected = sorted(
            (m for m in self._messages.get(channel, []) if within(m)),
            key=lambda m: m.ts,
            reverse=True,
        )
        page = selected[start : start + limit]
        has_more = start + limit < len(selected)
        self._record("conversations.history", params, token, 200, None)
        return {
            "ok": True,
            "messages": [m.as_api() for m in page],
            "has_more": has_more,
            "response_metadata": {"next_cursor": str(start + limit) if has_more else ""},
        }


def _error(error: str) -> web.Response:
    return web.json_response({"ok": False, "error": error})


def _float(value: Any, default: float) -> float:
    if value in (None, ""):
        return default
    try:
        return float(value)
    except (TypeError, ValueError):
        return default


def _valid_blocks(blocks: Any) -> bool:
    if not isinstance(blocks, list) or not blocks or len(blocks) > _MAX_BLOCKS:
        return False
    for block in blocks:
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            return False
        block_id = block.get("block_id")
        if block_id is not None and (
            not isinstance(block_id, str) or len(block_id) > _MAX_BLOCK_ID
        ):
            return False
        text = block.get("text")
        if isinstance(text, dict) and len(str(text.get("text", ""))) > 3000:
            return False
    return True


@pytest.fixture
def fake_slack() -> Iterator[FakeSlackServer]:
    """A running `FakeSlackServer` for one test (own thread: works in sync and async tests)."""
    server = FakeSlackServer().start_in_thread()
    try:
        yield server
    finally:
        server.stop_thread()
