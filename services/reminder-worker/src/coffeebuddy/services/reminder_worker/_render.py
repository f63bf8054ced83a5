"""Block Kit + fallback text for the two reminder kinds (pure functions, no I/O)."""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

__all__ = ["block_id_for", "render_reminder", "slack_date"]

_MAX_BLOCK_ID = 255
_MAX_SECTION = 2900  # Slack allows 3,000 characters per section text; keep a margin
_MAX_ORDER_LINES = 40


def block_id_for(reminder_id: str) -> str:
    """The block_id carrying the reminder id (hashed when longer than Slack's 255 characters)."""
    if len(reminder_id) <= _MAX_BLOCK_ID:
        return reminder_id
    return "rid-sha256-" + hashlib.sha256(reminder_id.encode()).hexdigest()


@functools.lru_cache(maxsize=1024)  # a run's reminders share their times; strftime is costly
def slack_date(moment: datetime, token: str = "{time}") -> str:  # noqa: S107 - a date token
    """`<!date^EPOCH^{time}|fallback>`: every reader sees the time in their own zone."""
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    utc = aware.astimezone(UTC)
    fallback = utc.strftime("%H:%M UTC")
    return f"<!date^{int(utc.timestamp())}^{token}|{fallback}>"


def _escape(text: str) -> str:
    """Escape Slack's control characters in user-supplied text."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _order_line(order: tuple[str, str]) -> str:
    user, item = order
    return f"• <@{user}>: {_escape(item)}"


def _orders_text(orders: Sequence[tuple[str, str]]) -> str:
    lines = [_order_line(o) for o in orders[:_MAX_ORDER_LINES]]
    if len(orders) > _MAX_ORDER_LINES:
        lines.append(f"… and {len(orders) - _MAX_ORDER_LINES} more")
    text = "\n".join(lines)
    return text if len(text) <= _MAX_SECTION else text[: _MAX_SECTION - 1] + "…"


def _section(text: str, block_id: str | None = None) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "section", "text": {"type": "mrkdwn", "text": text}}
    if block_id is not None:
        block["block_id"] = block_id
    return block


def render_reminder(
    *,
    reminder_id: str,
    kind: str,
    run_id: str,
    due_at: datetime,
    closes_at: datetime | None = None,
    orders: Iterable[tuple[str, str]] = (),
    order_count: int | None = None,
    place: str | None = None,
) -> tuple[str, list[dict[str, Any]]]:
    """Fallback text and blocks for one reminder; the first block's block_id is the reminder id.

    `orders` are (user_id, item) pairs shown to the runner.
    """
    order_list = list(orders)
    count = order_count if order_count is not None else len(order_list)
    where = f" from {_escape(place)}" if place else ""
    closes = slack_date(closes_at) if closes_at else None
    bid = block_id_for(reminder_id)
    if kind == "last_call":
        when = f"closes at {closes}" if closes else f"closes soon ({slack_date(due_at)})"
        noun = "order" if count == 1 else "orders"
        headline = f":hourglass_flowing_sand: Last call: the coffee run{where} {when}."
        text = f"Last call: the coffee run{where} {when}; it has {count} {noun}."
        blocks = [
            _section(headline, bid),
            _section(f"It has *{count}* {noun} so far. Add yours before it closes."),
        ]
    else:
        noun = "order" if count == 1 else "orders"
        headline = f":coffee: You are the runner{where}: time to fetch *{count}* {noun}."
        text = f"You are the runner{where}: time to fetch {count} {noun}."
        blocks = [_section(headline, bid)]
        if order_list:
            blocks.append(_section(_orders_text(order_list)))
            text += " " + "; ".join(
                _order_line(o).removeprefix("• ") for o in order_list[:_MAX_ORDER_LINES]
            )
    blocks.append(
        {
            "type": "context",
            "elements": [
                {"type": "mrkdwn", "text": f"Run `{_escape(run_id)}` · due {slack_date(due_at)}"}
            ],
        }
    )
    if len(text) > 3000:
        text = text[:2999] + "…"
    return text, blocks
