"""KIT: the deployable reminder worker's public API (Slack sender, settings, rendering)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from coffeebuddy.infra.kafka.models import OrderLine, ReminderScheduledData
from coffeebuddy.infra.kafka.reminder_worker import ReminderSender, SendOutcome
from coffeebuddy.services.fake_slack import FakeSlackServer
from coffeebuddy.services.reminder_worker import (
    REQUIRED_TOPICS,
    ServiceSettings,
    ServiceSettingsError,
    SlackDMSender,
    block_id_for,
    render_reminder,
    slack_date,
)


def _open() -> bool:
    """The worker's fence, always open: these calls test the sender alone."""
    return True


DUE = datetime(2026, 11, 27, 9, 30, tzinfo=UTC)


def _reminder(kind: str = "runner") -> ReminderScheduledData:
    return ReminderScheduledData(
        reminder_id="kit-rem-1",
        kind=kind,  # type: ignore[arg-type]
        run_id="kit-run",
        team_id="T0KIT",
        channel_id="C0KIT",
        recipient_user_id="U0KIT",
        due_at=DUE,
        place="Kit Cafe",
        closes_at=DUE + timedelta(minutes=5),
        orders=[OrderLine(user_id="U0ALICE", item="espresso")],
        order_count=1,
    )


async def test_kit_sender_posts_a_dm_and_finds_it_again(fake_slack: FakeSlackServer) -> None:
    sender = SlackDMSender.create(fake_slack.token, base_url=fake_slack.base_url, timeout=2)
    try:
        assert isinstance(sender, ReminderSender)
        assert (await sender.check_auth()).ok
        claim = datetime.now(UTC)
        result = await sender.send(_reminder(), claim_time=claim, fence=_open)
        assert result.outcome is SendOutcome.SENT
        (message,) = fake_slack.messages_for("U0KIT")
        assert message.block_ids == ["kit-rem-1"]
        assert "espresso" in str(message.blocks)
        found = await sender.find_sent(_reminder(), since=claim)
        assert found is not None
        assert found.ts == message.ts
        fake_slack.rate_limit(1, retry_after=3)
        limited = await sender.send(_reminder(), claim_time=claim, fence=_open)
        assert limited.outcome is SendOutcome.RATE_LIMITED
        assert limited.retry_after == 3
    finally:
        await sender.close()


def test_kit_rendering_uses_slack_dates_and_the_reminder_id() -> None:
    text, blocks = render_reminder(
        reminder_id="r-1", kind="last_call", run_id="run", due_at=DUE, closes_at=DUE, order_count=4
    )
    assert slack_date(DUE) in text
    assert "4 orders" in text
    assert blocks[0]["block_id"] == block_id_for("r-1") == "r-1"


def test_kit_settings_require_a_token_and_never_show_it() -> None:
    with pytest.raises(ServiceSettingsError) as info:
        ServiceSettings.from_env({})
    assert [var for var, _ in info.value.problems] == ["SLACK_BOT_TOKEN"]
    settings = ServiceSettings.from_env({"SLACK_BOT_TOKEN": "xoxb-kit-secret"})
    assert "xoxb-kit-secret" not in repr(settings)
    assert {t.name for t in REQUIRED_TOPICS} >= {
        "coffeebuddy.reminder.events",
        "coffeebuddy.run.events",
        "coffeebuddy.reminder.state-changelog",
        "coffeebuddy.reminder.history",
    }


def test_kit_service_trace_export_only_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    """kit service exports traces only when OTEL_TRACES_EXPORTER asks for it"""
    from coffeebuddy.services.reminder_worker import configure_tracing

    for name in ("OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_SDK_DISABLED"):
        monkeypatch.delenv(name, raising=False)
    assert configure_tracing(set_global=False) is None
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "kit-worker")
    provider = configure_tracing(set_global=False)
    assert provider is not None
    assert provider.resource.attributes["service.name"] == "kit-worker"
    provider.shutdown()
