"""The fake Slack server itself, driven through the real slack_sdk client."""

from __future__ import annotations

import select
import socket
import sys
import time
from collections import Counter

import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from coffeebuddy.services.fake_slack import FakeSlackServer
from coffeebuddy.services.fake_slack._records import DEFAULT_SCOPES


@pytest.fixture
async def client(fake_slack: FakeSlackServer) -> AsyncWebClient:
    return AsyncWebClient(
        token=fake_slack.token, base_url=fake_slack.base_url, timeout=10, retry_handlers=[]
    )


async def _post(client: AsyncWebClient, channel: str, bid: str) -> str:
    blocks = [{"type": "section", "block_id": bid, "text": {"type": "mrkdwn", "text": bid}}]
    response = await client.chat_postMessage(channel=channel, text=bid, blocks=blocks)
    return str(response["ts"])


async def test_open_is_stable_and_history_filters_and_pages(
    client: AsyncWebClient, fake_slack: FakeSlackServer
) -> None:
    first = (await client.conversations_open(users="U0ONE"))["channel"]["id"]
    again = (await client.conversations_open(users="U0ONE"))["channel"]["id"]
    other = (await client.conversations_open(users="U0TWO"))["channel"]["id"]
    assert first == again == fake_slack.channel_for("U0ONE")
    assert other != first
    stamps = [await _post(client, first, f"m{i}") for i in range(5)]
    assert stamps == sorted(stamps)
    assert len(set(stamps)) == 5
    newer = await client.conversations_history(channel=first, oldest=stamps[1])
    assert [m["blocks"][0]["block_id"] for m in newer["messages"]] == ["m4", "m3", "m2"]
    window = await client.conversations_history(
        channel=first, oldest=stamps[1], latest=stamps[3], inclusive=True
    )
    assert len(window["messages"]) == 3
    page = await client.conversations_history(channel=first, limit=2)
    assert page["has_more"]
    rest = await client.conversations_history(
        channel=first, limit=10, cursor=page["response_metadata"]["next_cursor"]
    )
    assert len(page["messages"]) + len(rest["messages"]) == 5
    assert [m.text for m in fake_slack.messages_for("U0ONE")] == [f"m{i}" for i in range(5)]
    assert fake_slack.block_id_counts() == Counter(f"m{i}" for i in range(5))
    assert fake_slack.messages_for("U0TWO") == []


async def test_tokens_missing_wrong_and_rotated(fake_slack: FakeSlackServer) -> None:
    anonymous = AsyncWebClient(base_url=fake_slack.base_url, retry_handlers=[])
    with pytest.raises(SlackApiError) as info:
        await anonymous.auth_test()
    assert info.value.response["error"] == "not_authed"
    wrong = AsyncWebClient(token="xoxb-wrong", base_url=fake_slack.base_url, retry_handlers=[])
    with pytest.raises(SlackApiError) as info:
        await wrong.auth_test()
    assert info.value.response["error"] == "invalid_auth"
    fake_slack.set_valid_tokens("xoxb-wrong")
    assert (await wrong.auth_test())["ok"]
    calls = fake_slack.calls("auth.test")
    assert [c.token_present for c in calls] == [False, True, True]
    assert "xoxb-wrong" not in repr(calls)


async def test_rate_limit_for_a_period_then_clear(
    client: AsyncWebClient, fake_slack: FakeSlackServer
) -> None:
    channel = (await client.conversations_open(users="U0RL"))["channel"]["id"]
    fake_slack.rate_limit(None, retry_after=2, duration=30)
    for _ in range(3):
        with pytest.raises(SlackApiError) as info:
            await _post(client, channel, "x")
        assert info.value.response.status_code == 429
        assert info.value.response.headers["Retry-After"] == "2"
    fake_slack.clear_script()
    await _post(client, channel, "ok")
    assert [m.text for m in fake_slack.messages()] == ["ok"]


async def test_slow_answers_and_per_user_errors(
    client: AsyncWebClient, fake_slack: FakeSlackServer
) -> None:
    fake_slack.fail("user_not_found", method="conversations.open", user="U0GONE", count=None)
    with pytest.raises(SlackApiError) as info:
        await client.conversations_open(users="U0GONE")
    assert info.value.response["error"] == "user_not_found"
    assert (await client.conversations_open(users="U0HERE"))["ok"]
    fake_slack.slow(0.3, method="auth.test")
    started = time.monotonic()
    assert (await client.auth_test())["ok"]
    assert time.monotonic() - started >= 0.3


async def test_fatal_error_after_posting_is_visible_in_history(
    client: AsyncWebClient, fake_slack: FakeSlackServer
) -> None:
    channel = (await client.conversations_open(users="U0AMB"))["channel"]["id"]
    fake_slack.fail("fatal_error", post_first=True)
    with pytest.raises(SlackApiError):
        await _post(client, channel, "maybe")
    history = await client.conversations_history(channel=channel)
    assert [m["blocks"][0]["block_id"] for m in history["messages"]] == ["maybe"]
    assert fake_slack.messages_with_block_id("maybe")


async def test_message_validation_like_slack(
    client: AsyncWebClient, fake_slack: FakeSlackServer
) -> None:
    channel = (await client.conversations_open(users="U0VAL"))["channel"]["id"]
    cases = [
        ({"channel": channel}, "no_text"),
        ({"channel": channel, "text": "x" * 40_001}, "msg_too_long"),
        ({"channel": channel, "text": "t", "blocks": [{"no": "type"}]}, "invalid_blocks"),
        ({"channel": "DNOTOPEN", "text": "t"}, "channel_not_found"),
    ]
    for kwargs, error in cases:
        with pytest.raises(SlackApiError) as info:
            # api_call: chat_postMessage would warn about the missing text before sending
            await client.api_call("chat.postMessage", json=kwargs)
        assert info.value.response["error"] == error
    assert fake_slack.messages() == []


def test_scripting_rejects_rules_that_never_end() -> None:
    server = FakeSlackServer()
    with pytest.raises(ValueError, match="never end"):
        server.fail("internal_error", count=None)
    with pytest.raises(ValueError, match="unknown Slack method"):
        server.fail("internal_error", method="chat.delete")


async def test_every_answer_carries_the_granted_scopes_like_slack(
    client: AsyncWebClient, fake_slack: FakeSlackServer
) -> None:
    response = await client.auth_test()
    assert response.headers["x-oauth-scopes"] == ",".join(DEFAULT_SCOPES)
    fake_slack.set_scopes(["chat:write"])
    assert (await client.auth_test()).headers["x-oauth-scopes"] == "chat:write"
    fake_slack.set_scopes(None)
    assert "x-oauth-scopes" not in (await client.auth_test()).headers


async def test_unknown_methods_and_reset(
    client: AsyncWebClient, fake_slack: FakeSlackServer
) -> None:
    with pytest.raises(SlackApiError) as info:
        await client.api_call("chat.delete", json={"channel": "D1", "ts": "1.0"})
    assert info.value.response["error"] == "unknown_method"
    channel = (await client.conversations_open(users="U0RESET"))["channel"]["id"]
    await _post(client, channel, "before")
    fake_slack.rate_limit(None, duration=30)
    fake_slack.reset()
    assert fake_slack.calls() == []
    assert fake_slack.messages() == []
    with pytest.raises(SlackApiError) as info:  # the DM channel was forgotten too
        await _post(client, channel, "after")
    assert info.value.response["error"] == "channel_not_found"


async def test_waiting_for_messages_names_what_is_missing(fake_slack: FakeSlackServer) -> None:
    with pytest.raises(TimeoutError, match="0 messages for U0NOBODY, expected 1"):
        await fake_slack.wait_for_messages(1, timeout=0.05, user="U0NOBODY")
    with pytest.raises(TimeoutError, match="expected 2"):
        fake_slack.wait_for_messages_sync(2, timeout=0.05)


async def test_any_token_mode_on_the_callers_loop() -> None:
    async with FakeSlackServer(token=None) as server:
        anyone = AsyncWebClient(token="xoxb-anything", base_url=server.base_url, retry_handlers=[])
        assert (await anyone.auth_test())["ok"]
        with pytest.raises(RuntimeError, match="accepts any token"):
            _ = server.token
        assert "xoxb" not in repr(server)
    with pytest.raises(RuntimeError, match="not started"):
        _ = FakeSlackServer().base_url


@pytest.mark.skipif(sys.platform != "linux", reason="needs Linux's SYN drop on a full accept queue")
async def test_a_burst_of_connections_is_queued_not_dropped() -> None:
    # The server's loop cannot accept while this test holds it: the kernel's accept queue alone
    # must hold the burst. A SYN dropped from a full queue would leave its socket unconnected for
    # TCP's 1 s retransmit, a delay the reminder burst bench once measured as Slack's.
    burst = 600  # a worker's send slots and more; aiohttp's default queue holds 128
    async with FakeSlackServer() as slack:
        port = int(slack.base_url.split(":")[2].split("/")[0])
        sockets = [socket.socket() for _ in range(burst)]
        try:
            for sock in sockets:
                sock.setblocking(False)
                sock.connect_ex(("127.0.0.1", port))
            poller = select.poll()
            for sock in sockets:
                poller.register(sock, select.POLLOUT)
            connected: set[int] = set()
            deadline = time.monotonic() + 0.5  # well inside the 1 s SYN retransmit
            while len(connected) < burst and time.monotonic() < deadline:
                for fd, _ in poller.poll(50):
                    connected.add(fd)
                    poller.unregister(fd)
            assert len(connected) == burst, f"{burst - len(connected)} connections not queued"
        finally:
            for sock in sockets:
                sock.close()
