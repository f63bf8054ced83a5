"""What the fake Slack keeps: the calls it answered and the DMs it stored, plus its identity."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "BOT_ID",
    "BOT_USER_ID",
    "DEFAULT_SCOPES",
    "DEFAULT_TOKEN",
    "METHODS",
    "TEAM_ID",
    "SlackCall",
    "SlackMessage",
]

DEFAULT_TOKEN = "xoxb-fake-slack-test-token"  # noqa: S105 - a test double's token, not a secret
DEFAULT_SCOPES = ("chat:write", "im:write", "im:history")
"""Granted scopes sent as `x-oauth-scopes` on every answer, as real Slack does."""
BOT_USER_ID = "U0COFFEEBOT"
BOT_ID = "B0COFFEEBOT"
TEAM_ID = "T0COFFEE"
METHODS = ("auth.test", "conversations.open", "chat.postMessage", "conversations.history")


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
        """The message as conversations.history and chat.postMessage return it."""
        return {
            "type": "message",
            "user": BOT_USER_ID,
            "bot_id": BOT_ID,
            "ts": self.ts,
            "text": self.text,
            "blocks": [dict(b) for b in self.blocks],
        }
