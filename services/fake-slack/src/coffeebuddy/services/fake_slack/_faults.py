"""Scripted failures for the fake Slack: 429 with Retry-After, HTTP 5xx, `ok: false` errors,
slow answers and "posted, then timed out". The first matching rule answers a request."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from coffeebuddy.services.fake_slack._records import METHODS

__all__ = ["FaultRule", "FaultScript"]


@dataclass
class FaultRule:
    """One scripted answer; `remaining` counts down, `until` is a monotonic deadline."""

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

    @property
    def answers_normally(self) -> bool:
        """A delay-only rule: the real answer, only later."""
        return self.status == 200 and self.error is None

    def matches(self, method: str, user: str | None, now: float) -> bool:
        if self.until is not None and now >= self.until:
            return False
        if self.remaining is not None and self.remaining <= 0:
            return False
        if self.method is not None and self.method != method:
            return False
        return self.user is None or self.user == user


class FaultScript:
    """The scripting half of `FakeSlackServer` (its rules share the server's lock)."""

    def __init__(self, lock: threading.RLock) -> None:
        self._lock = lock
        self._rules: list[FaultRule] = []

    def take(self, method: str, user: str | None) -> FaultRule | None:
        """The first rule matching this request, counted as used (call with the lock held)."""
        now = time.monotonic()
        rule = next((r for r in self._rules if r.matches(method, user, now)), None)
        if rule is not None and rule.remaining is not None:
            rule.remaining -= 1
        return rule

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
        rule = FaultRule(
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
        with self._lock:
            self._rules.append(rule)

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
