"""Constrained field types of the event data (the patterns end up in the JSON Schema)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AwareDatetime, BeforeValidator, Field, Strict, StringConstraints

SLACK_TEAM_ID_PATTERN = r"^T[A-Z0-9]+$"
SLACK_CHANNEL_ID_PATTERN = r"^[CGD][A-Z0-9]+$"
SLACK_USER_ID_PATTERN = r"^[UW][A-Z0-9]+$"
SLACK_TS_PATTERN = r"^[0-9]+\.[0-9]+$"
RUN_ID_PATTERN = r"^[A-Za-z0-9_-]+$"
NO_WHITESPACE_PATTERN = r"^\S+$"
TOPIC_NAME_PATTERN = r"^[A-Za-z0-9._-]+$"
LEDGER_REF_PATTERN = r"^[A-Za-z0-9._-]+/[0-9]+/[0-9]+@-?[0-9]+$"

MAX_RUN_ID = 64
MAX_REMINDER_ID = 255
MAX_SLACK_ID = 32
MAX_PLACE = 120
MAX_ITEM = 200
MAX_REASON = 500
MAX_ORDERS = 200
MAX_TOPIC = 249
MAX_LEDGER_REF = 320
MAX_OPERATOR = 200

PATTERN_MESSAGES: dict[str, str] = {
    SLACK_TEAM_ID_PATTERN: "must look like a Slack team id (T…)",
    SLACK_CHANNEL_ID_PATTERN: "must look like a Slack channel id (C…, G… or D…)",
    SLACK_USER_ID_PATTERN: "must look like a Slack user id (U… or W…)",
    SLACK_TS_PATTERN: "must look like a Slack message ts (digits.digits)",
    RUN_ID_PATTERN: "must contain only letters, digits, '_' and '-'",
    NO_WHITESPACE_PATTERN: "must be non-empty and contain no whitespace",
    TOPIC_NAME_PATTERN: "must be a Kafka topic name (letters, digits, '.', '_' and '-')",
    LEDGER_REF_PATTERN: "must look like <dlq topic>/<partition>/<offset>@<timestamp ms>",
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
TopicName = Annotated[
    str, StringConstraints(pattern=TOPIC_NAME_PATTERN, min_length=1, max_length=MAX_TOPIC)
]
LedgerRef = Annotated[
    str, StringConstraints(pattern=LEDGER_REF_PATTERN, min_length=1, max_length=MAX_LEDGER_REF)
]
Operator = Annotated[str, StringConstraints(min_length=1, max_length=MAX_OPERATOR)]
Offset = Annotated[int, Strict(), Field(ge=0)]
# Strict: on the wire only an RFC 3339 string is a timestamp (no epoch numbers, no bare dates).
Timestamp = Annotated[AwareDatetime, Strict(), Field(description="RFC 3339 timestamp with offset")]


def json_media_type(value: object) -> object:
    """`application/json`, with or without a UTF-8 charset parameter (as the CloudEvents Java
    SDK writes it), as `application/json`; anything else unchanged, for the Literal to refuse.
    The one media-type rule of both content modes (`datacontenttype` / `content-type`)."""
    if value == "application/json" or not isinstance(value, str):
        return value
    media, _, params = value.partition(";")
    charset = params.strip().lower().replace(" ", "")
    if media.strip().lower() == "application/json" and charset in (
        "",
        "charset=utf-8",
        'charset="utf-8"',
    ):
        return "application/json"
    return value


DataContentType = Annotated[Literal["application/json"], BeforeValidator(json_media_type)]
