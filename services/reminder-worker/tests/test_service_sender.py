"""SlackDMSender against the local fake Slack over real HTTP (real slack_sdk client)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import CollectorRegistry
from slack_sdk.errors import SlackApiError

from coffeebuddy.infra.kafka.metrics import ReminderMetrics
from coffeebuddy.infra.kafka.models import OrderLine, ReminderScheduledData
from coffeebuddy.infra.kafka.reminder_worker import PreparingSender, ReminderSender, SendOutcome
from coffeebuddy.infra.kafka.testing import wait_until
from coffeebuddy.services.fake_slack import FakeSlackServer
from coffeebuddy.services.reminder_worker import SlackDMSender, block_id_for


def _open() -> bool:
    """The worker's fence, always open: these calls test the sender alone."""
    return True


NOW = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)


def reminder(
    rid: str = "rem-1", kind: str = "runner", user: str = "U0RUNNER", **extra: object
) -> ReminderScheduledData:
    data: dict[str, object] = {
        "reminder_id": rid,
        "kind": kind,
        "run_id": "run-1",
        "team_id": "T0COFFEE",
        "channel_id": "C0COFFEE",
        "recipient_user_id": user,
        "due_at": NOW,
        "place": "Blue <Bottle> & Co",
        "closes_at": NOW + timedelta(minutes=10),
    }
    data.update(extra)
    return ReminderScheduledData.model_validate(data)


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
async def sender(
    fake_slack: FakeSlackServer, registry: CollectorRegistry
) -> AsyncIterator[SlackDMSender]:
    s = SlackDMSender.create(
        fake_slack.token,
        base_url=fake_slack.base_url,
        timeout=10,
        metrics=ReminderMetrics(registry),
    )
    yield s
    await s.close()


@pytest.fixture
def slow_thread_server() -> Iterator[FakeSlackServer]:
    with FakeSlackServer() as server:
        yield server


def test_sender_satisfies_the_worker_protocol(sender: SlackDMSender) -> None:
    assert isinstance(sender, ReminderSender)
    assert "xoxb" not in repr(sender)


async def test_runner_reminder_lists_orders_with_block_id_and_dates(
    sender: SlackDMSender, fake_slack: FakeSlackServer
) -> None:
    orders = [
        OrderLine(user_id="U0ALICE", item="flat white"),
        OrderLine(user_id="U0BOB", item="tea"),
    ]
    result = await sender.send(reminder(orders=orders, order_count=2), claim_time=NOW, fence=_open)
    assert result.outcome is SendOutcome.SENT, result
    (msg,) = fake_slack.messages_for("U0RUNNER")
    assert result.channel == msg.channel
    assert result.ts == msg.ts
    assert msg.block_ids == ["rem-1"]
    rendered = str(msg.blocks)
    assert "<@U0ALICE>: flat white" in rendered
    assert "<@U0BOB>: tea" in rendered
    assert f"<!date^{int(NOW.timestamp())}^{{time}}|09:00 UTC>" in rendered
    assert "&lt;Bottle&gt; &amp; Co" in rendered  # user text escaped
    assert msg.text
    assert "2 orders" in msg.text


async def test_last_call_says_when_it_closes_and_how_many_orders(
    sender: SlackDMSender, fake_slack: FakeSlackServer
) -> None:
    result = await sender.send(
        reminder("rem-lc", kind="last_call", user="U0BOB", order_count=3),
        claim_time=NOW,
        fence=_open,
    )
    assert result.ok
    (msg,) = fake_slack.messages_for("U0BOB")
    closes = int((NOW + timedelta(minutes=10)).timestamp())
    assert f"<!date^{closes}^{{time}}|09:10 UTC>" in msg.text
    assert "3 orders" in msg.text


async def test_channel_is_opened_once_per_user(
    sender: SlackDMSender, fake_slack: FakeSlackServer
) -> None:
    for i in range(3):
        assert (await sender.send(reminder(f"r{i}"), claim_time=NOW, fence=_open)).ok
    assert len(fake_slack.calls("conversations.open")) == 1
    assert len(fake_slack.calls("chat.postMessage")) == 3
    assert {c.method for c in fake_slack.calls()} <= {"conversations.open", "chat.postMessage"}


async def test_prepare_opens_the_dm_channel_ahead_so_the_send_only_posts(
    sender: SlackDMSender, fake_slack: FakeSlackServer
) -> None:
    assert isinstance(sender, PreparingSender)
    await sender.prepare(reminder(user="U0EARLY"))
    assert [c.method for c in fake_slack.calls()] == ["conversations.open"]
    assert fake_slack.messages() == []
    assert (await sender.send(reminder(user="U0EARLY"), claim_time=NOW, fence=_open)).ok
    assert [c.method for c in fake_slack.calls()] == ["conversations.open", "chat.postMessage"]


async def test_prepare_raises_what_conversations_open_raised(
    sender: SlackDMSender, fake_slack: FakeSlackServer
) -> None:
    fake_slack.fail("user_not_found", method="conversations.open", user="U0GONE")
    with pytest.raises(SlackApiError, match="user_not_found"):
        await sender.prepare(reminder(user="U0GONE"))
    assert (
        await sender.send(reminder(user="U0GONE"), claim_time=NOW, fence=_open)
    ).ok  # opened by the send


async def test_concurrent_sends_to_one_user_share_one_conversations_open(
    sender: SlackDMSender, fake_slack: FakeSlackServer
) -> None:
    fake_slack.slow(0.3, method="conversations.open")
    results = await asyncio.gather(
        sender.prepare(reminder("r0", user="U0SAME")),
        *(
            sender.send(reminder(f"r{i}", user="U0SAME"), claim_time=NOW, fence=_open)
            for i in range(1, 6)
        ),
    )
    assert all(r.ok for r in results[1:])
    assert len(fake_slack.calls("conversations.open")) == 1
    assert len(fake_slack.messages_for("U0SAME")) == 5


async def test_a_cancelled_opener_does_not_cancel_the_sends_waiting_on_its_open(
    sender: SlackDMSender, fake_slack: FakeSlackServer
) -> None:
    fake_slack.slow(0.5, method="conversations.open")
    opener = asyncio.create_task(sender.prepare(reminder(user="U0WAIT")))
    await asyncio.sleep(0)  # the opener's call is in flight
    waiter = asyncio.create_task(
        sender.send(reminder("r-wait", user="U0WAIT"), claim_time=NOW, fence=_open)
    )
    await wait_until(lambda: len(fake_slack.calls("conversations.open")) == 1, timeout=5)
    opener.cancel()
    result = await asyncio.wait_for(waiter, 10)
    assert result.ok, result
    assert opener.cancelled()
    assert len(fake_slack.messages_for("U0WAIT")) == 1


async def test_rate_limit_maps_to_retry_after_and_nothing_is_posted(
    sender: SlackDMSender, fake_slack: FakeSlackServer, registry: CollectorRegistry
) -> None:
    fake_slack.rate_limit(1, retry_after=7)
    result = await sender.send(reminder(), claim_time=NOW, fence=_open)
    assert result.outcome is SendOutcome.RATE_LIMITED
    assert result.retry_after == 7
    assert fake_slack.messages() == []
    assert len(fake_slack.calls("chat.postMessage")) == 1  # no hidden retry
    errors = registry.get_sample_value(
        "coffeebuddy_slack_api_errors_total", {"method": "chat.postMessage", "error": "ratelimited"}
    )
    assert errors == 1


@pytest.mark.parametrize(
    ("error", "outcome", "dead_letter"),
    [
        ("user_not_found", SendOutcome.PERMANENT, False),
        ("cannot_dm_bot", SendOutcome.PERMANENT, False),
        ("invalid_blocks", SendOutcome.PERMANENT, True),
        ("msg_too_long", SendOutcome.PERMANENT, True),
        ("missing_scope", SendOutcome.CONFIGURATION, False),
        ("token_revoked", SendOutcome.CONFIGURATION, False),
        ("fatal_error", SendOutcome.AMBIGUOUS, False),
        ("service_unavailable", SendOutcome.TRANSIENT, False),
    ],
)
async def test_slack_error_codes_are_classified(
    sender: SlackDMSender,
    fake_slack: FakeSlackServer,
    error: str,
    outcome: SendOutcome,
    dead_letter: bool,
) -> None:
    fake_slack.fail(error)
    result = await sender.send(reminder(), claim_time=NOW, fence=_open)
    assert result.error is not None
    code = result.error.split(":")[0]  # missing_scope also names the scope Slack wanted
    assert (result.outcome, result.dead_letter, code) == (outcome, dead_letter, error)


async def test_user_not_found_on_open_is_permanent(
    sender: SlackDMSender, fake_slack: FakeSlackServer
) -> None:
    fake_slack.fail("user_not_found", method="conversations.open", user="U0GONE", count=None)
    result = await sender.send(reminder(user="U0GONE"), claim_time=NOW, fence=_open)
    assert result.outcome is SendOutcome.PERMANENT
    assert not result.dead_letter
    assert fake_slack.calls("chat.postMessage") == []


async def test_http_errors_and_connection_refused(fake_slack: FakeSlackServer) -> None:
    sender = SlackDMSender.create(fake_slack.token, base_url=fake_slack.base_url, timeout=10)
    try:
        fake_slack.http_error(503)
        # a gateway 503 may come after Slack accepted the post: ambiguous, checked first
        assert (
            await sender.send(reminder(), claim_time=NOW, fence=_open)
        ).outcome is SendOutcome.AMBIGUOUS
        fake_slack.http_error(500)
        # A 500 from chat.postMessage may follow a post: the worker must check first.
        assert (
            await sender.send(reminder(), claim_time=NOW, fence=_open)
        ).outcome is SendOutcome.AMBIGUOUS
        fake_slack.http_error(500, method="conversations.history")
        assert (await sender.find_sent(reminder(), since=NOW)) is not None
    finally:
        await sender.close()
    from coffeebuddy.infra.kafka.testing import free_port

    dead = SlackDMSender.create("xoxb-x", base_url=f"http://127.0.0.1:{free_port()}/api/")
    try:
        result = await dead.send(reminder(), claim_time=NOW, fence=_open)
        assert result.outcome is SendOutcome.TRANSIENT
        assert result.error == "connection_error"
    finally:
        await dead.close()


async def test_post_then_timeout_is_ambiguous_and_find_sent_sees_it(
    sender: SlackDMSender, fake_slack: FakeSlackServer
) -> None:
    claim = datetime.now(UTC)
    assert await sender.find_sent(reminder("rem-amb"), since=claim) is None
    impatient = SlackDMSender.create(fake_slack.token, base_url=fake_slack.base_url, timeout=1)
    fake_slack.post_then_timeout(delay=30)
    started = time.monotonic()
    try:
        result = await impatient.send(reminder("rem-amb"), claim_time=claim, fence=_open)
    finally:
        await impatient.close()
    assert result.outcome is SendOutcome.AMBIGUOUS
    assert result.error == "timeout"
    assert time.monotonic() - started < 20
    found = await sender.find_sent(reminder("rem-amb"), since=claim)
    assert found is not None
    assert found.ok
    (msg,) = fake_slack.messages_with_block_id("rem-amb")
    assert found.ts == msg.ts
    # another reminder of the same user is not confused with it
    assert await sender.find_sent(reminder("rem-other"), since=claim) is None


async def test_find_sent_ignores_posts_before_the_claim(
    sender: SlackDMSender, fake_slack: FakeSlackServer
) -> None:
    assert (await sender.send(reminder("rem-old"), claim_time=NOW, fence=_open)).ok
    later = datetime.now(UTC) + timedelta(minutes=5)
    assert await sender.find_sent(reminder("rem-old"), since=later) is None


async def test_check_auth_follows_the_token(
    sender: SlackDMSender, fake_slack: FakeSlackServer
) -> None:
    assert (await sender.check_auth()).ok
    assert sender.bot_user_id
    fake_slack.set_valid_tokens("xoxb-rotated")
    broken = await sender.check_auth()
    assert broken.outcome is SendOutcome.CONFIGURATION
    assert broken.error == "invalid_auth"
    sent = await sender.send(reminder(), claim_time=NOW, fence=_open)
    assert sent.outcome is SendOutcome.CONFIGURATION
    assert all(not c.ok for c in fake_slack.calls()[-2:])
    assert all(c.token_present for c in fake_slack.calls())


def test_long_reminder_ids_fit_slack_block_id_limit() -> None:
    assert block_id_for("r" * 255) == "r" * 255
    hashed = block_id_for("r" * 256)
    assert len(hashed) <= 255
    assert hashed == block_id_for("r" * 256)


async def test_many_concurrent_sends_each_post_once(
    sender: SlackDMSender, fake_slack: FakeSlackServer
) -> None:
    results = await asyncio.gather(
        *(
            sender.send(reminder(f"c{i}", user=f"U0USER{i % 7}"), claim_time=NOW, fence=_open)
            for i in range(60)
        )
    )
    assert all(r.ok for r in results)
    assert len(fake_slack.messages()) == 60
    assert len({m.block_ids[0] for m in fake_slack.messages()}) == 60


async def test_sender_keeps_slack_sdk_debug_formatting_off_unless_asked(
    sender: SlackDMSender,
) -> None:
    """slack_sdk formats every request at DEBUG when its logger level is NOTSET: keep it off."""
    sdk_logger = logging.getLogger("coffeebuddy.reminder_worker.slack_sdk")
    assert sdk_logger.level >= logging.INFO
    sdk_logger.setLevel(logging.DEBUG)  # an operator asking for the lines gets them
    try:
        other = SlackDMSender.create("xoxb-test", base_url="http://127.0.0.1:9/api/")
        await other.close()
        assert sdk_logger.level == logging.DEBUG
    finally:
        sdk_logger.setLevel(logging.NOTSET)


@pytest.mark.parametrize(
    ("scopes", "missing"),
    [
        ("chat:write,im:write,im:history,users:read", None),
        ("chat:write,im:write", "im:history"),
        ("im:history", "chat:write, im:write"),
    ],
)
async def test_auth_checks_the_granted_scopes_and_names_the_missing_one(
    fake_slack: FakeSlackServer, sender: SlackDMSender, scopes: str, missing: str | None
) -> None:
    fake_slack.set_scopes(scopes.split(","))
    result = await sender.check_auth()
    if missing is None:
        assert result.outcome is SendOutcome.SENT
        assert sender.granted_scopes is not None
        assert "im:history" in sender.granted_scopes
    else:
        assert result.outcome is SendOutcome.CONFIGURATION
        assert result.error == f"missing_scope: {missing}"


async def test_auth_without_a_scopes_header_passes_but_says_scopes_are_unverified(
    fake_slack: FakeSlackServer, sender: SlackDMSender, caplog: pytest.LogCaptureFixture
) -> None:
    fake_slack.set_scopes(None)  # e.g. a proxy stripping the header
    with caplog.at_level(logging.WARNING, logger="coffeebuddy.reminder_worker.slack"):
        assert (await sender.check_auth()).outcome is SendOutcome.SENT
    assert sender.granted_scopes is None
    assert "scopes not verified" in caplog.text


async def test_missing_scope_on_a_call_is_a_configuration_state_naming_it(
    fake_slack: FakeSlackServer, sender: SlackDMSender
) -> None:
    fake_slack.fail("missing_scope", method="conversations.history")
    result = await sender.find_sent(reminder(), since=NOW)
    assert result is not None
    assert result.outcome is SendOutcome.CONFIGURATION
    assert result.error == "missing_scope: chat:write"  # the fake names `needed`


@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_gateway_errors_on_post_are_ambiguous_on_reads_transient(
    fake_slack: FakeSlackServer, sender: SlackDMSender, status: int
) -> None:
    fake_slack.http_error(status)
    result = await sender.send(reminder(), claim_time=NOW, fence=_open)
    assert result.outcome is SendOutcome.AMBIGUOUS
    fake_slack.http_error(status, method="conversations.history")
    check = await sender.find_sent(reminder(), since=NOW)
    assert check is not None
    assert check.outcome is SendOutcome.TRANSIENT


async def test_stale_cached_dm_channel_is_reopened_once(
    fake_slack: FakeSlackServer, sender: SlackDMSender
) -> None:
    assert (await sender.send(reminder("a"), claim_time=NOW, fence=_open)).ok
    fake_slack.fail("channel_not_found")
    result = await sender.send(reminder("b"), claim_time=NOW, fence=_open)
    assert result.ok
    assert len(fake_slack.calls("conversations.open")) == 2
    assert sorted(m.block_ids[0] for m in fake_slack.messages()) == sorted(
        [block_id_for("a"), block_id_for("b")]
    )
    fake_slack.fail("channel_not_found", count=2)
    again = await sender.send(reminder("c"), claim_time=NOW, fence=_open)
    assert again.outcome is SendOutcome.PERMANENT  # reopened once, then given up
    assert len(fake_slack.calls("conversations.open")) == 3


async def test_the_fence_is_asked_after_the_open_and_right_before_the_post(
    sender: SlackDMSender, fake_slack: FakeSlackServer
) -> None:
    """Issue 21, scenario 1: whatever came first (an open, a token lookup), the fence decides
    immediately before chat.postMessage; a "no" posts nothing and says FENCED."""
    asked: list[list[str]] = []

    def closed() -> bool:
        asked.append([c.method for c in fake_slack.calls()])
        return False

    result = await sender.send(reminder(user="U0FENCED"), claim_time=NOW, fence=closed)
    assert result.outcome is SendOutcome.FENCED
    assert asked == [["conversations.open"]]  # after the open, before any post
    assert fake_slack.calls("chat.postMessage") == []
    assert fake_slack.messages_for("U0FENCED") == []


async def test_the_fence_is_asked_again_before_the_post_to_a_reopened_channel(
    sender: SlackDMSender, fake_slack: FakeSlackServer
) -> None:
    assert (await sender.send(reminder("a", user="U0STALE"), claim_time=NOW, fence=_open)).ok
    fake_slack.fail("channel_not_found", user="U0STALE")  # the cached DM channel went stale
    answers = iter([True, False])
    result = await sender.send(
        reminder("b", user="U0STALE"), claim_time=NOW, fence=lambda: next(answers)
    )
    assert result.outcome is SendOutcome.FENCED  # the reopen took a while: no second post
    assert [c.method for c in fake_slack.calls()][-2:] == ["chat.postMessage", "conversations.open"]
    assert len(fake_slack.messages_for("U0STALE")) == 1
