"""The fake workspace: what Slack would answer to the four methods, and what it remembers.

Not thread-safe on its own: `FakeSlackServer` calls it with its lock held.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Mapping
from typing import Any

from coffeebuddy.services.fake_slack._records import (
    BOT_ID,
    BOT_USER_ID,
    TEAM_ID,
    SlackCall,
    SlackMessage,
)

__all__ = ["Workspace", "channel_for"]

_MAX_TEXT = 40_000
_MAX_BLOCKS = 50
_MAX_BLOCK_ID = 255
_MAX_SECTION_TEXT = 3_000


def channel_for(user: str) -> str:
    """The stable DM channel id conversations.open returns for `user`."""
    digest = hashlib.sha1(user.encode(), usedforsecurity=False).hexdigest()[:10].upper()
    return f"D{digest}"


class Workspace:
    """Calls received, DMs per channel (each with a unique, increasing `ts`), DM channel owners."""

    def __init__(self) -> None:
        self.calls: list[SlackCall] = []
        self.messages: dict[str, list[SlackMessage]] = {}
        self._channel_user: dict[str, str] = {}
        self._last_ts = 0.0

    def reset(self) -> None:
        self.calls.clear()
        self.messages.clear()
        self._channel_user.clear()

    def user_of(self, method: str, params: Mapping[str, Any]) -> str | None:
        """The recipient a request is about (what a per-user fault rule matches)."""
        if method == "conversations.open":
            return str(params.get("users", "")) or None
        channel = params.get("channel")
        if isinstance(channel, str):
            return self._channel_user.get(channel, channel if channel.startswith("U") else None)
        return None

    def record(
        self,
        method: str,
        params: Mapping[str, Any],
        token: str | None,
        status: int,
        error: str | None,
    ) -> None:
        self.calls.append(
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

    def answer(self, method: str, params: Mapping[str, Any], token: str | None) -> dict[str, Any]:
        """The normal answer to one of the served methods (recorded)."""
        if method == "auth.test":
            self.record(method, params, token, 200, None)
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
            return self._open(params, token)
        if method == "chat.postMessage":
            return self.post(params, token, record=True)
        return self._history(params, token)

    def _open(self, params: Mapping[str, Any], token: str | None) -> dict[str, Any]:
        users = str(params.get("users", ""))
        if not users or "," in users:
            error = "users_list_not_supplied" if not users else "not_supported"
            self.record("conversations.open", params, token, 200, error)
            return {"ok": False, "error": error}
        channel = channel_for(users)
        self._channel_user[channel] = users
        self.record("conversations.open", params, token, 200, None)
        return {"ok": True, "channel": {"id": channel, "is_im": True, "user": users}}

    def post(self, params: Mapping[str, Any], token: str | None, *, record: bool) -> dict[str, Any]:
        """chat.postMessage: validate like Slack, then store the DM."""
        channel = params.get("channel")
        error = self._post_error(channel, params.get("text"), params.get("blocks"))
        if error is not None:
            if record:
                self.record("chat.postMessage", params, token, 200, error)
            return {"ok": False, "error": error}
        assert isinstance(channel, str)
        if channel.startswith("U"):
            user: str | None = channel
            channel = channel_for(channel)
            self._channel_user[channel] = channel
        else:
            user = self._channel_user.get(channel)
        now = time.time()
        ts_value = max(now, self._last_ts + 0.000001)
        self._last_ts = ts_value
        ts = f"{ts_value:.6f}"
        blocks = params.get("blocks")
        message = SlackMessage(
            channel=channel,
            user=user,
            ts=ts,
            text=str(params.get("text") or ""),
            blocks=[dict(b) for b in blocks] if isinstance(blocks, list) else [],
            posted_at=now,
            monotonic=time.monotonic(),
        )
        self.messages.setdefault(channel, []).append(message)
        if record:
            self.record("chat.postMessage", params, token, 200, None)
        return {"ok": True, "channel": channel, "ts": ts, "message": message.as_api()}

    def _post_error(self, channel: Any, text: Any, blocks: Any) -> str | None:
        if not isinstance(channel, str) or (
            channel not in self._channel_user and not channel.startswith("U")
        ):
            return "channel_not_found"
        if not text and not blocks:
            return "no_text"
        if text is not None and (not isinstance(text, str) or len(text) > _MAX_TEXT):
            return "msg_too_long"
        if blocks is not None and not _valid_blocks(blocks):
            return "invalid_blocks"
        return None

    def _history(self, params: Mapping[str, Any], token: str | None) -> dict[str, Any]:
        channel = params.get("channel")
        if not isinstance(channel, str) or (
            channel not in self.messages and channel not in self._channel_user
        ):
            self.record("conversations.history", params, token, 200, "channel_not_found")
            return {"ok": False, "error": "channel_not_found"}
        oldest = _float(params.get("oldest"), 0.0)
        latest = _float(params.get("latest"), math.inf)
        inclusive = str(params.get("inclusive", "")).lower() in ("1", "true")
        limit = max(1, min(int(_float(params.get("limit"), 100)), 999))
        start = int(_float(params.get("cursor"), 0))

        def within(m: SlackMessage) -> bool:
            ts = float(m.ts)
            return oldest <= ts <= latest if inclusive else oldest < ts < latest

        selected = sorted(
            (m for m in self.messages.get(channel, []) if within(m)),
            key=lambda m: m.ts,
            reverse=True,
        )
        page = selected[start : start + limit]
        has_more = start + limit < len(selected)
        self.record("conversations.history", params, token, 200, None)
        return {
            "ok": True,
            "messages": [m.as_api() for m in page],
            "has_more": has_more,
            "response_metadata": {"next_cursor": str(start + limit) if has_more else ""},
        }


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
        if isinstance(text, dict) and len(str(text.get("text", ""))) > _MAX_SECTION_TEXT:
            return False
    return True
