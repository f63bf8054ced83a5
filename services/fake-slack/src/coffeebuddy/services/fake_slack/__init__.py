"""A local stand-in for the Slack Web API the reminder worker calls (pytest-free).

`FakeSlackServer` speaks real HTTP so tests and the service's dev mode drive the real slack_sdk
client against it: it records every call, keeps DMs per channel with a `ts`, serves them back
through `conversations.history`, sends `x-oauth-scopes`, and can be scripted to fail. The
`fake_slack` pytest fixture lives in `coffeebuddy.services.fake_slack.plugin`
(registered through the `pytest11` entry point).
"""

from coffeebuddy.services.fake_slack._records import (
    BOT_USER_ID,
    TEAM_ID,
)
from coffeebuddy.services.fake_slack._server import FakeSlackServer

__all__ = [
    "BOT_USER_ID",
    "TEAM_ID",
    "FakeSlackServer",
]
