"""`SlackDMSender.from_app`: a sender built from a real slack-bolt `AsyncApp` (the Slack app)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest
from slack_bolt.async_app import AsyncApp
from slack_sdk.oauth.installation_store import FileInstallationStore, Installation
from slack_sdk.web.async_client import AsyncWebClient

from coffeebuddy.infra.kafka.models import ReminderScheduledData
from coffeebuddy.infra.kafka.reminder_worker import SendOutcome
from coffeebuddy.services.fake_slack import BOT_USER_ID, TEAM_ID, FakeSlackServer
from coffeebuddy.services.reminder_worker import SlackDMSender


def _open() -> bool:
    """The worker's fence, always open: these calls test the sender alone."""
    return True


NOW = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
SIGNING_SECRET = "test-signing-secret"


def reminder(rid: str, *, team: str = TEAM_ID, user: str = "U0RUNNER") -> ReminderScheduledData:
    return ReminderScheduledData.model_validate(
        {
            "reminder_id": rid,
            "kind": "runner",
            "run_id": "run-1",
            "team_id": team,
            "channel_id": "C0COFFEE",
            "recipient_user_id": user,
            "due_at": NOW,
            "place": "Blue Bottle",
        }
    )


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


async def test_single_workspace_app_shares_its_session_and_token(
    fake_slack: FakeSlackServer, session: aiohttp.ClientSession
) -> None:
    app = AsyncApp(
        signing_secret=SIGNING_SECRET,
        client=AsyncWebClient(
            token=fake_slack.token, base_url=fake_slack.base_url, session=session
        ),
    )
    assert app.client.retry_handlers  # bolt's default client would retry a post once
    sender = SlackDMSender.from_app(app)
    assert sender.client.retry_handlers == []
    assert sender.client.session is session
    assert sender.client.token == app.client.token
    assert (await sender.check_auth()).ok
    result = await sender.send(reminder("rem-app"), claim_time=NOW, fence=_open)
    assert result.ok, result
    (message,) = fake_slack.messages_for("U0RUNNER")
    assert message.block_ids == ["rem-app"]
    await sender.close()
    assert not session.closed  # the app's session stays the app's


async def test_app_client_without_retry_handlers_is_used_as_is(
    fake_slack: FakeSlackServer, session: aiohttp.ClientSession
) -> None:
    client = AsyncWebClient(
        token=fake_slack.token, base_url=fake_slack.base_url, session=session, retry_handlers=[]
    )
    app = AsyncApp(signing_secret=SIGNING_SECRET, client=client)
    assert SlackDMSender.from_app(app).client is client


async def _store_with_one_install(tmp_path: Path, token: str) -> FileInstallationStore:
    store = FileInstallationStore(base_dir=str(tmp_path / "installations"))
    await store.async_save(
        Installation(
            app_id="A0COFFEE",
            team_id=TEAM_ID,
            bot_token=token,
            bot_id="B0COFFEEBOT",
            bot_user_id=BOT_USER_ID,
            bot_scopes="chat:write,im:write,im:history",
            user_id="U0INSTALLER",
        )
    )
    return store


async def test_multi_workspace_app_takes_each_teams_token_from_its_installation_store(
    fake_slack: FakeSlackServer, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    store = await _store_with_one_install(tmp_path, fake_slack.token)
    app = AsyncApp(
        signing_secret=SIGNING_SECRET,
        installation_store=store,
        client=AsyncWebClient(base_url=fake_slack.base_url, session=session),
    )
    with pytest.raises(ValueError, match="auth_team_id"):
        SlackDMSender.from_app(app)  # which workspace's token would check_auth probe?
    sender = SlackDMSender.from_app(app, team_id=TEAM_ID)
    assert (await sender.check_auth()).ok
    assert sender.team_id == TEAM_ID
    assert (await sender.send(reminder("rem-store"), claim_time=NOW, fence=_open)).ok
    assert fake_slack.messages_with_block_id("rem-store")
    assert all(c.token_present and c.ok for c in fake_slack.calls())
    calls_before = len(fake_slack.calls())
    elsewhere = await sender.send(
        reminder("rem-elsewhere", team="T0NOTINSTALLED"), claim_time=NOW, fence=_open
    )
    assert elsewhere.outcome is SendOutcome.CONFIGURATION
    assert elsewhere.error == "not_authed"
    assert len(fake_slack.calls()) == calls_before  # no request without a token
    await sender.close()
    assert not session.closed
