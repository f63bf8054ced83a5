"""Alert and recording rules: promtool validates and unit-tests them.

Every alert is tested firing and quiet, and documented in the reminder worker's runbook.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
PROM = REPO / "infra" / "prometheus"
RULE_FILES = sorted((PROM / "rules").glob("*.yml"))
TEST_FILES = sorted((PROM / "tests").glob("*.yml"))
RUNBOOK = REPO / "services" / "reminder-worker" / "RUNBOOK.md"
SEVERITIES = {"critical", "warning", "info"}

needs_promtool = pytest.mark.skipif(
    shutil.which("promtool") is None, reason="promtool (Debian prometheus) is not installed"
)


def _alerts() -> list[dict[str, Any]]:
    alerts = []
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            alerts += [rule for rule in group["rules"] if "alert" in rule]
    return alerts


def _github_anchor(heading: str) -> str:
    """GitHub's heading slug: lower-case, punctuation dropped, spaces to dashes."""
    slug = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return slug.replace(" ", "-")


def _runbook_anchors() -> set[str]:
    headings = re.findall(r"^#{1,6} (.+)$", RUNBOOK.read_text(), flags=re.MULTILINE)
    return {_github_anchor(h) for h in headings}


def test_rule_and_test_files_exist() -> None:
    assert RULE_FILES, f"no rule files in {PROM / 'rules'}"
    assert TEST_FILES, f"no promtool test files in {PROM / 'tests'}"
    assert len(_alerts()) >= 8


@needs_promtool
def test_promtool_check_rules() -> None:
    result = subprocess.run(
        ["promtool", "check", "rules", *map(str, RULE_FILES)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_promtool_unit_tests_pass() -> None:
    result = subprocess.run(
        ["promtool", "test", "rules", *map(str, TEST_FILES)],
        capture_output=True,
        text=True,
        check=False,
        cwd=PROM / "tests",
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_unit_tests_load_every_rule_file() -> None:
    loaded: set[Path] = set()
    for path in TEST_FILES:
        for name in yaml.safe_load(path.read_text())["rule_files"]:
            target = (path.parent / name).resolve()
            assert target.is_file(), f"{path.name}: rule file {name} does not exist"
            loaded.add(target)
    assert loaded == {p.resolve() for p in RULE_FILES}


def test_every_alert_has_a_firing_and_a_quiet_case() -> None:
    firing: set[str] = set()
    quiet: set[str] = set()
    for path in TEST_FILES:
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                (firing if check.get("exp_alerts") else quiet).add(check["alertname"])
    names = {a["alert"] for a in _alerts()}
    assert not names - firing, f"alerts without a promtool case where they fire: {names - firing}"
    assert not names - quiet, (
        f"alerts without a promtool case where they stay quiet: {names - quiet}"
    )
    assert not (firing | quiet) - names, f"tests name unknown alerts: {(firing | quiet) - names}"


@pytest.mark.parametrize("alert", _alerts(), ids=lambda a: a["alert"])
def test_alert_is_labelled_and_documented(alert: dict[str, Any]) -> None:
    name = alert["alert"]
    assert alert.get("labels", {}).get("severity") in SEVERITIES, f"{name}: severity label"
    annotations = alert.get("annotations", {})
    for key in ("summary", "description", "runbook_url"):
        assert annotations.get(key, "").strip(), f"{name}: annotation {key} is missing"
    url = annotations["runbook_url"]
    assert url.split("#")[0].endswith("services/reminder-worker/RUNBOOK.md"), url
    anchor = url.split("#", 1)[1]
    assert anchor == _github_anchor(name), f"{name}: runbook anchor should be the alert name"
    assert anchor in _runbook_anchors(), f"{name}: RUNBOOK.md has no '## {name}' section"


def test_runbook_sections_say_meaning_checks_and_fix() -> None:
    text = RUNBOOK.read_text()
    for alert in _alerts():
        section = text.split(f"## {alert['alert']}\n", 1)[1].split("\n## ", 1)[0]
        for part in ("**Meaning.**", "**First checks.**", "**Fix.**"):
            assert part in section, f"RUNBOOK.md section {alert['alert']} lacks {part}"


def test_anchor_slug_rule() -> None:
    assert _github_anchor("KafkaConsumerStuck") == "kafkaconsumerstuck"
    assert _github_anchor("Slack: auth & scopes") == "slack-auth--scopes"


def test_runbook_dlq_commands_parse_with_the_real_cli() -> None:
    """Every `coffeebuddy-kafka dlq ...` command the runbook shows is valid for the CLI."""
    from coffeebuddy.infra.kafka.provision import build_parser

    commands = [
        " ".join(match.split())
        for match in re.findall(r"`(coffeebuddy-kafka dlq [^`]+)`", RUNBOOK.read_text())
    ]
    assert len(commands) >= 4
    parser = build_parser()
    for command in commands:
        args = parser.parse_args(command.split()[1:])
        assert args.dlq_command in {"inspect", "replay"}, command
