"""Slack message text as a reader sees it, for `hatch run dev`'s narration (pure, no I/O).

Slack renders `<!date^EPOCH^{time}|fallback>` in the reader's own time zone, `<@U123>` as the
user's name, `<#C123|general>` as `#general`, `<https://x|label>` as a link labelled `label`,
and `&lt;` `&gt;` `&amp;` as the characters. This does the same for a terminal: dates in this
machine's local time zone (`tz=` to choose), mentions by id, links as `label (url)`.
See https://api.slack.com/reference/surfaces/formatting.
"""

from __future__ import annotations

import re
from datetime import datetime, tzinfo

_TOKEN = re.compile(r"<([^<>]*)>")
_DATE_PART = re.compile(r"\{([a-z_]+)\}")


def _ordinal(day: int) -> str:
    suffix = "th" if 11 <= day % 100 <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")
    return f"{day}{suffix}"


def _pretty(moment: datetime, now: datetime, fallback: str) -> str:
    days = (moment.date() - now.date()).days
    return {0: "today", -1: "yesterday", 1: "tomorrow"}.get(days, fallback)


def _ago(moment: datetime, now: datetime) -> str:
    seconds = round((moment - now).total_seconds())
    size = abs(seconds)
    for unit, span in (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1)):
        if size >= span or unit == "second":
            count = size // span
            text = f"{count} {unit}{'' if count == 1 else 's'}"
            return f"in {text}" if seconds > 0 else f"{text} ago"
    return "now"  # pragma: no cover - the loop always returns


def render_date(epoch: int, layout: str, fallback: str, *, tz: tzinfo | None, now: datetime) -> str:
    """One `<!date^...>` token: Slack's `{date_num}`, `{date}`, `{date_short}`, `{date_long}`,
    their `_pretty` forms, `{time}`, `{time_secs}`, `{ago}`; the fallback for an unknown part."""
    moment = datetime.fromtimestamp(epoch, tz).astimezone(tz)
    local_now = now.astimezone(moment.tzinfo)
    date = f"{moment:%B} {_ordinal(moment.day)}, {moment.year}"
    short = f"{moment:%b} {moment.day}, {moment.year}"
    long = f"{moment:%A}, {date}"
    parts = {
        "date_num": f"{moment:%Y-%m-%d}",
        "date": date,
        "date_short": short,
        "date_long": long,
        "date_pretty": _pretty(moment, local_now, date),
        "date_short_pretty": _pretty(moment, local_now, short),
        "date_long_pretty": _pretty(moment, local_now, long),
        "time": f"{moment:%H:%M}",
        "time_secs": f"{moment:%H:%M:%S}",
        "ago": _ago(moment, local_now),
    }
    unknown = [p for p in _DATE_PART.findall(layout) if p not in parts]
    if unknown:
        return fallback
    return _DATE_PART.sub(lambda m: parts[m.group(1)], layout)


def _unescape(text: str) -> str:
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def _token(body: str, *, tz: tzinfo | None, now: datetime) -> str:
    head, _, label = body.partition("|")
    if head.startswith("!date^"):
        fields = head.split("^")
        try:
            epoch = int(fields[1])
        except (IndexError, ValueError):
            return _unescape(label or body)
        layout = fields[2] if len(fields) > 2 else "{date}"
        return render_date(epoch, layout, _unescape(label), tz=tz, now=now)
    if head.startswith("@"):
        return "@" + (label or head[1:])
    if head.startswith("#"):
        return "#" + (label or head[1:])
    if head.startswith("!subteam^"):
        return label or "@" + head.split("^", 1)[1]
    if head.startswith("!"):
        return "@" + head[1:]
    url = _unescape(head)
    if not label:
        return url
    shown = _unescape(label)
    return shown if url in (shown, "mailto:" + shown) else f"{shown} ({url})"


def render_slack_text(text: str, *, tz: tzinfo | None = None, now: datetime | None = None) -> str:
    """`text` as Slack shows it: dates in `tz` (default: local), mentions, channels, links."""
    when = now or datetime.now().astimezone()
    if when.tzinfo is None:
        when = when.astimezone()
    pieces: list[str] = []
    last = 0
    for match in _TOKEN.finditer(text):
        pieces.append(_unescape(text[last : match.start()]))
        pieces.append(_token(match.group(1), tz=tz, now=when))
        last = match.end()
    pieces.append(_unescape(text[last:]))
    return "".join(pieces)
