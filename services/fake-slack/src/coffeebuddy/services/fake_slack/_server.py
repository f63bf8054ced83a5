"""`FakeSlackServer`: the fake workspace and its fault script behind real HTTP (aiohttp).

It runs on the caller's event loop (`async with FakeSlackServer()`) or on its own thread
(`with FakeSlackServer()`, `start_in_thread()`) for sync code and subprocess tests; all state is
guarded by one lock so both sides may read and script it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections import Counter
from collections.abc import Iterable
from types import TracebackType
from typing import Any, Self

from aiohttp import web

from coffeebuddy.services.fake_slack._faults import FaultRule, FaultScript
from coffeebuddy.services.fake_slack._records import (
    DEFAULT_SCOPES,
    DEFAULT_TOKEN,
    METHODS,
    SlackCall,
    SlackMessage,
)
from coffeebuddy.services.fake_slack._workspace import Workspace, channel_for

__all__ = ["FakeSlackServer"]

_POLL_S = 0.01

LISTEN_BACKLOG = 1024
"""Pending connections the fake's socket queues (aiohttp's default is 128). A burst of a few hundred
sends opens as many connections at once; with a short queue the kernel drops SYNs and each dropped
client waits out TCP's 1 s retransmit, a delay real Slack's edge does not add."""


class FakeSlackServer(FaultScript):
    """The Slack Web API subset the reminder worker calls, on a free loopback port.

    `base_url` is `http://127.0.0.1:PORT/api/` for `AsyncWebClient(base_url=...)`. Requests must
    carry one of the valid tokens (Bearer header or `token` parameter; `token=None` accepts any),
    else the answer is `not_authed` / `invalid_auth`, as from Slack. Every answer carries
    `x-oauth-scopes` with `scopes` (None: no header, as behind a proxy that strips it).
    """

    def __init__(
        self,
        *,
        token: str | None = DEFAULT_TOKEN,
        host: str = "127.0.0.1",
        scopes: Iterable[str] | None = DEFAULT_SCOPES,
    ) -> None:
        super().__init__(threading.RLock())
        self._host = host
        self._port: int | None = None
        self._valid_tokens: set[str] = {token} if token else set()
        self._accept_any_token = token is None
        self._scopes = None if scopes is None else ",".join(scopes)
        self._workspace = Workspace()
        self._runner: web.AppRunner | None = None
        self._closing: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        port = self._port if self._port is not None else "not started"
        return f"FakeSlackServer(port={port}, calls={len(self._workspace.calls)})"

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
        site = web.TCPSite(self._runner, self._host, 0, backlog=LISTEN_BACKLOG)
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
            except BaseException as exc:  # reported to the caller below
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

    # ------------------------------------------------------------------ configuration
    def set_valid_tokens(self, *tokens: str) -> None:
        """Replace the accepted tokens at runtime (simulates fixing or breaking configuration)."""
        with self._lock:
            self._valid_tokens = set(tokens)
            self._accept_any_token = False

    def set_scopes(self, scopes: Iterable[str] | None) -> None:
        """Replace the granted scopes sent as `x-oauth-scopes` (None: send no header)."""
        with self._lock:
            self._scopes = None if scopes is None else ",".join(scopes)

    # ------------------------------------------------------------------ inspection
    def calls(self, method: str | None = None) -> list[SlackCall]:
        with self._lock:
            return [c for c in self._workspace.calls if method is None or c.method == method]

    @staticmethod
    def channel_for(user: str) -> str:
        """The stable DM channel id conversations.open returns for `user`."""
        return channel_for(user)

    def messages(self) -> list[SlackMessage]:
        with self._lock:
            out = [m for msgs in self._workspace.messages.values() for m in msgs]
        return sorted(out, key=lambda m: m.ts)

    def messages_for(self, user: str) -> list[SlackMessage]:
        with self._lock:
            return list(self._workspace.messages.get(channel_for(user), []))

    def messages_with_block_id(self, block_id: str) -> list[SlackMessage]:
        return [m for m in self.messages() if block_id in m.block_ids]

    def block_id_counts(self) -> Counter[str]:
        """How many stored DMs carry each block id (the worker's block id is the reminder id)."""
        return Counter(block_id for m in self.messages() for block_id in m.block_ids)

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
            got = self._messages_or_timeout(count, deadline, timeout, user)
            if got is not None:
                return got
            await asyncio.sleep(_POLL_S)

    def wait_for_messages_sync(
        self, count: int, *, timeout: float = 10.0, user: str | None = None
    ) -> list[SlackMessage]:
        """`wait_for_messages` for sync tests (the server runs on its own thread)."""
        deadline = time.monotonic() + timeout
        while (got := self._messages_or_timeout(count, deadline, timeout, user)) is None:
            time.sleep(_POLL_S)
        return got

    def _messages_or_timeout(
        self, count: int, deadline: float, timeout: float, user: str | None
    ) -> list[SlackMessage] | None:
        got = self.messages_for(user) if user else self.messages()
        if len(got) >= count:
            return got
        if time.monotonic() >= deadline:
            raise TimeoutError(
                f"fake Slack has {len(got)} messages{f' for {user}' if user else ''},"
                f" expected {count} within {timeout} s"
            )
        return None

    def reset(self) -> None:
        """Forget calls, messages and rules (tokens and scopes stay)."""
        with self._lock:
            self._workspace.reset()
        self.clear_script()

    # ------------------------------------------------------------------ HTTP side
    async def _handle(self, request: web.Request) -> web.StreamResponse:
        method = request.match_info["method"]
        params, token = await _params(request)
        with self._lock:
            headers = {"x-oauth-scopes": self._scopes} if self._scopes is not None else {}
            refused = self._refusal(method, token)
            if refused is not None:
                self._workspace.record(method, params, token, 200, refused)
                return web.json_response({"ok": False, "error": refused})
            rule = self.take(method, self._workspace.user_of(method, params))
            payload: dict[str, Any] | None = None
            if rule is None or rule.answers_normally:
                # the real answer, stored now (a delay-only rule sends it later)
                payload = self._workspace.answer(method, params, token)
            else:
                if rule.post_first and method == "chat.postMessage":
                    self._workspace.post(params, token, record=False)
                self._workspace.record(method, params, token, rule.status, rule.error)
        if rule is not None and rule.delay > 0:
            assert self._closing is not None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), rule.delay)
        if payload is not None:
            return web.json_response(payload, headers=headers)
        assert rule is not None
        return _scripted(rule, headers)

    def _refusal(self, method: str, token: str | None) -> str | None:
        """Slack's answer before any method logic: unknown method, missing or wrong token."""
        if method not in METHODS:
            return "unknown_method"
        if self._accept_any_token:
            return None
        if token is None:
            return "not_authed"
        return None if token in self._valid_tokens else "invalid_auth"


async def _params(request: web.Request) -> tuple[dict[str, Any], str | None]:
    """Query, form or JSON parameters (blocks/metadata decoded) and the request's token."""
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


def _scripted(rule: FaultRule, headers: dict[str, str]) -> web.Response:
    if rule.retry_after is not None:
        headers = {**headers, "Retry-After": str(rule.retry_after)}
    if rule.status >= 500 or (rule.status != 200 and rule.error is None):
        return web.Response(status=rule.status, text="upstream error", headers=headers)
    return web.json_response(
        {"ok": False, "error": rule.error, **rule.extra}, status=rule.status, headers=headers
    )
