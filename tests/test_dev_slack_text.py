"""tools/slack_text.py: DM text as Slack renders it, for `hatch run dev`'s narration."""

from __future__ import annotations

import importlib.util
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from types import ModuleType

import pytest

from coffeebuddy.services.reminder_worker import render_reminder

TOOLS = Path(__file__).resolve().parent.parent / "tools"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("slack_text", TOOLS / "slack_text.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


slack_text = _load()
NOW = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
BERLIN = timezone(timedelta(hours=1))


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("closes at <!date^1796202000^{time}|09:00 UTC>.", "closes at 10:00."),
        ("<!date^1796202000^{date_num} {time_secs}|x>", "2026-12-02 10:00:00"),
        ("<!date^1796202000^{date}|x>", "December 2nd, 2026"),
        ("<!date^1796202000^{date_short_pretty} at {time}|x>", "today at 10:00"),
        ("<!date^1796288400^{date_long_pretty}|x>", "tomorrow"),
        ("<!date^1796288400^{date_long}|x>", "Thursday, December 3rd, 2026"),
        ("<!date^1796202030^{ago}|x>", "in 30 seconds"),
        ("<!date^1796198400^{ago}|x>", "1 hour ago"),
        ("<!date^1796202000^{nonsense}|09:00 UTC>", "09:00 UTC"),
        ("<!date^1796202000^{time}^https://example.com|09:00 UTC>", "10:00"),
        ("<@U0ALICE>: flat white", "@U0ALICE: flat white"),
        ("<@U0ALICE|alice> and <#C0COFFEE|coffee> <#C0X>", "@alice and #coffee #C0X"),
        ("<!here> <!channel> <!subteam^S0OPS|@ops> <!subteam^S0X>", "@here @channel @ops @S0X"),
        (
            "<https://example.com/a?b=1&amp;c=2|the menu>",
            "the menu (https://example.com/a?b=1&c=2)",
        ),
        ("<https://example.com>", "https://example.com"),
        ("<mailto:ops@example.com|ops@example.com>", "ops@example.com"),
        ("1 &lt; 2 &amp;&amp; 3 &gt; 2", "1 < 2 && 3 > 2"),
    ],
)
def test_tokens_render_as_slack_shows_them(text: str, shown: str) -> None:
    assert slack_text.render_slack_text(text, tz=BERLIN, now=NOW) == shown


def test_the_workers_own_reminder_text_renders_without_raw_tokens() -> None:
    due = NOW + timedelta(minutes=5)
    text, _ = render_reminder(
        reminder_id="r1",
        kind="runner",
        run_id="run-1",
        due_at=due,
        closes_at=due,
        orders=[("U0ALICE", "flat <white> & co")],
        place="Blue Bottle",
    )
    assert "<@U0ALICE>" in text  # the raw text Slack receives
    shown = slack_text.render_slack_text(text, tz=UTC, now=NOW)
    assert "<" not in shown.replace("<white>", "")
    assert "@U0ALICE: flat <white> & co" in shown
