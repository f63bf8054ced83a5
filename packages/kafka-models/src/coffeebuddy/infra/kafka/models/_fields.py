"""Constrained field types of the event data (the patterns end up in the JSON Schema)."""

from __future__ import annotations

from typing import Annotated

from pydantic import AwareDatetime, Field, Strict, StringConstraints

SLACK_TEAM_ID_PATTERN = r"^T[A-Z0-9]+$"
SLACK_CHANNEL_ID_PATTERN = r"^[CGD][A-Z0-9]+$"
SLACK_USER_ID_PATTERN = r"^[UW][A-Z0-9]+$"
SLACK_TS_PATTERN = r"^[0-9]+\.[0-9]+$"
RUN_ID_PATTERN = r"^[A-Za-z0-9_-]+$"
NO_WHITESPACE_PATTERN = r"^\S+$"

MAX_RUN_ID = 64
MAX_REMINDER_ID = 255
MAX_SLACK_ID = 32
MAX_PLACE = 120
MAX_ITEM = 200
MAX_REASON = 500
MAX_ORDERS = 200

PATTERN_MESSAGES: dict[str, str] = {
    SLACK_TEAM_ID_PATTERN: "must look like a Slack team id (T…)",
    SLACK_CHANNEL_ID_PATTERN: "must look like a Slack channel id (C…, G… or D…)",
    SLACK_USER_ID_PATTERN: "must look like a Slack user id (U… or W…)",
    SLACK_TS_PATTERN: "must look like a Slack message ts (digits.digits)",
    RUN_ID_PATTERN: "must contain only letters, digits, '_' and '-'",
    NO_WHITESPACE_PATTERN: "must be non-empty and contain no whitespace",
}
"""Readable error message per pattern (pydantic's own only repeats the regex)."""

TeamId = Annotated[str, StringConstraints(pattern=SLACK_TEAM_ID_PATTERN, max_length=MAX_SLACK_ID)]
ChannelId = Annotated[
    str, StringConstraints(pattern=SLACK_CHANNEL_ID_PATTERN, max_length=MAX_SLACK_ID)
]
UserId = Annotated[str, StringConstraints(pattern=SLACK_USER_ID_PATTERN, max_length=MAX_SLACK_ID)]
SlackTs = Annotated[str, StringConstraints(pattern=SLACK_TS_PATTERN, max_length=32)]
RunId = Annotated[
    str, StringConstraints(pattern=RUN_ID_PATTERN, min_length=1, max_length=MAX_RUN_ID)
]
ReminderId = Annotated[
    str, StringConstraints(pattern=NO_WHITESPACE_PATTERN, min_length=1, max_length=MAX_REMINDER_ID)
]
Place = Annotated[
    str, StringConstraints(strip_whitespace=False, min_length=1, max_length=MAX_PLACE)
]
Item = Annotated[str, StringConstraints(min_length=1, max_length=MAX_ITEM)]
Reason = Annotated[str, StringConstraints(max_length=MAX_REASON)]
# Strict: on the wire only an RFC 3339 string is a timestamp (no epoch numbers, no bare dates).
Timestamp = Annotated[AwareDatetime, Strict(), Field(description="RFC 3339 timestamp with offset")]
