"""The `coffeebuddy-kafka` CLI: exit codes, JSON output, plan files.

A few cases run the installed console script in a subprocess (proving the entry point and
the process exit code); the rest call `main(argv)` in-process, which is the same code path
without paying the interpreter start-up for each call.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NamedTuple

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from coffeebuddy.infra.kafka.provision import main
from coffeebuddy.infra.kafka.testing import EmbeddedBroker, free_port

REPO = Path(__file__).resolve().parents[3]


class Result(NamedTuple):
    returncode: int
    stdout: str
    stderr: str


Cli = Callable[..., Result]


def _clean_env(bootstrap: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAFKA_")}
    if bootstrap is not None:
        env["KAFKA_BOOTSTRAP_SERVERS"] = bootstrap
    return env


def script(*args: str, bootstrap: str | None = None) -> Result:
    """Run the installed console script."""
    found = shutil.which("coffeebuddy-kafka") or str(
        Path(sys.executable).parent / "coffeebuddy-kafka"
    )
    assert Path(found).exists(), "console script coffeebuddy-kafka is not installed"
    done = subprocess.run(
        [found, *args],
        capture_output=True,
        text=True,
        env=_clean_env(bootstrap),
        cwd=REPO,
        timeout=120,
        check=False,
    )
    return Result(done.returncode, done.stdout, done.stderr)


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Cli:
    """`cli(*args, bootstrap=...)` -> Result, calling `main(argv)` in this process."""

    def call(*args: str, bootstrap: str | None = None) -> Result:
        for key in [k for k in os.environ if k.startswith("KAFKA_")]:
            monkeypatch.delenv(key)
        if bootstrap is not None:
            monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", bootstrap)
        capsys.readouterr()
        try:
            code = main(list(args))
        except SystemExit as exc:  # argparse --help / usage errors
            code = int(exc.code or 0)
        out, err = capsys.readouterr()
        return Result(code, out, err)

    return call


@pytest.fixture
def broker() -> Iterator[str]:
    """A fresh dedicated broker per test: CLI tests work on the real catalog's names."""
    with EmbeddedBroker(name="tansu-provision-cli") as embedded:
        yield embedded.bootstrap_servers


def _create_topic(bootstrap: str, name: str, partitions: int) -> None:
    async def go() -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            await admin.create_topics([NewTopic(name, partitions, 1)])
        finally:
            await admin.close()

    asyncio.run(go())


def test_console_script_plan_json_then_apply_exactly_that_plan(broker: str, tmp_path: Path) -> None:
    plan_file = tmp_path / "plan.json"
    planned = script("plan", "--output", "json", "--out", str(plan_file), bootstrap=broker)
    assert planned.returncode == 2, planned.stderr
    body = json.loads(planned.stdout)
    assert body == json.loads(plan_file.read_text())
    assert body["plan_hash"].startswith("sha256:")
    assert body["observed_hash"].startswith("sha256:")
    topic_creates = [c for c in body["changes"] if c["kind"] == "topic"]
    assert {c["action"] for c in topic_creates} == {"create"}
    assert "coffeebuddy.run.events" in {c["resource"] for c in topic_creates}
    # the embedded broker has no working ACL API: found out from it, left out, and said so
    assert [c for c in body["changes"] if c["kind"] == "acl"] == []
    assert body["scope"]["include_acls"] is False
    assert body["notes"][0] == (
        "ACLs skipped, as with --no-acls: broker does not support CreateAcls (API key 30)"
    )

    applied = script("apply", "--plan", str(plan_file), "--output", "json", bootstrap=broker)
    assert applied.returncode == 2, applied.stderr
    report = json.loads(applied.stdout)
    assert {(row["kind"], row["status"]) for row in report["results"]} == {("topic", "applied")}
    assert report["exit_code"] == 2


def test_console_script_refuses_an_edited_plan_and_validates_offline(tmp_path: Path) -> None:
    valid = script("validate")
    assert valid.returncode == 0, valid.stderr
    assert "prod: catalog valid" in valid.stdout
    edited = tmp_path / "edited.json"
    edited.write_text(json.dumps({"kind": "coffeebuddy-kafka-plan", "schema_version": 1}))
    refused = script("apply", "--plan", str(edited), bootstrap=f"127.0.0.1:{free_port()}")
    assert refused.returncode == 3
    assert "refused" in refused.stderr


def test_plan_and_apply_leave_acls_out_with_one_note_on_a_broker_without_the_acl_api(
    cli: Cli, broker: str
) -> None:
    note = "note: ACLs skipped, as with --no-acls: broker does not support CreateAcls (API key 30)"
    planned = cli("plan", bootstrap=broker)
    assert planned.returncode == 2, planned.stdout + planned.stderr  # the topics to create
    assert note in planned.stdout.splitlines()
    assert "ACL bindings" not in planned.stdout
    assert "NOT" not in planned.stdout
    assert "0 will not be applied" in planned.stdout

    human = cli("apply", "--yes", "--env", "dev", bootstrap=broker)
    assert human.returncode == 2, human.stdout + human.stderr
    assert note in human.stdout.splitlines()
    assert "result: 7 applied (exit 2)" in human.stdout
    again = cli("plan", bootstrap=broker)
    assert again.returncode == 0, again.stdout
    assert "No changes: the cluster matches the catalog." in again.stdout
    assert note in again.stdout.splitlines()
    quiet = cli("apply", "--yes", "--no-acls", bootstrap=broker)
    assert quiet.returncode == 0, quiet.stdout
    assert "nothing to do" in quiet.stdout
    assert "ACLs skipped" not in quiet.stdout  # asked for: nothing to explain


def test_no_library_log_line_reaches_the_terminal_unless_verbose() -> None:
    """aiokafka logs "Unable connect to ..." when a broker is down; the CLI's own error says
    it better, so without --verbose nothing but that error may reach stderr."""
    down = f"127.0.0.1:{free_port()}"
    commands = [
        ("plan",),
        ("events", "tail", "coffeebuddy.reminder.events"),
        ("events", "publish", "reminder.scheduled"),
        ("dlq", "inspect", "coffeebuddy.reminder.events"),
        ("plan", "--verbose"),
    ]
    found = shutil.which("coffeebuddy-kafka") or str(
        Path(sys.executable).parent / "coffeebuddy-kafka"
    )
    running = [
        subprocess.Popen(
            [found, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_clean_env(down),
            cwd=REPO,
        )
        for args in commands
    ]
    results = [
        (args, *p.communicate(timeout=120), p.returncode)
        for args, p in zip(commands, running, strict=True)
    ]
    for args, out, err, code in results[:-1]:
        lines = [line for line in err.splitlines() if line.strip()]
        assert code == 1, (args, out, err)
        own = [i for i, line in enumerate(lines) if line.startswith("error: ")]
        assert own, (args, err)
        before = [line for line in lines[: own[0]] if not line.startswith("tailing ")]
        assert before == [], f"{args}: lines before the CLI's own error: {before}"
        assert "Unable connect" not in err, (args, err)
        assert "aiokafka" not in err, (args, err)
        assert "nothing listens at" in err, (args, err)
    verbose_err = results[-1][2]
    assert "Unable connect to" in verbose_err, verbose_err  # the lines exist; --verbose shows them
    assert "nothing listens at" in verbose_err


def test_version_and_verbose_anywhere(cli: Cli) -> None:
    from coffeebuddy.infra.kafka.provision import __version__

    shown = cli("--version")
    assert shown.returncode == 0
    assert shown.stdout.strip() == f"coffeebuddy-kafka {__version__}"
    for args in (("--verbose", "validate"), ("validate", "-v"), ("dlq", "inspect", "--help")):
        result = cli(*args)
        assert result.returncode == 0, (args, result.stderr)
    assert "--verbose" in cli("dlq", "inspect", "--help").stdout


def test_apply_refuses_a_plan_when_the_cluster_moved(cli: Cli, broker: str, tmp_path: Path) -> None:
    plan_file = tmp_path / "plan.json"
    assert cli("plan", "--no-acls", "--out", str(plan_file), bootstrap=broker).returncode == 2
    body = json.loads(plan_file.read_text())
    body["changes"] = body["changes"][:1]
    edited = tmp_path / "edited.json"
    edited.write_text(json.dumps(body))
    tampered = cli("apply", "--plan", str(edited), bootstrap=broker)
    assert tampered.returncode == 3
    assert "plan_hash does not match" in tampered.stderr

    _create_topic(broker, "coffeebuddy.run.events", 1)  # the cluster moves after the review
    stale = cli("apply", "--plan", str(plan_file), "--output", "json", bootstrap=broker)
    assert stale.returncode == 3
    assert "changed since the plan" in stale.stderr
    assert json.loads(stale.stdout)["exit_code"] == 3
    wrong_env = cli("apply", "--plan", str(plan_file), "--env", "prod", bootstrap=broker)
    assert wrong_env.returncode == 3


def test_drift_exit_codes_and_json(cli: Cli, broker: str) -> None:
    assert cli("apply", "--yes", "--no-acls", bootstrap=broker).returncode == 2
    clean = cli("drift", "--no-acls", bootstrap=broker)
    assert clean.returncode == 0, clean.stdout
    review = cli("plan", "--no-acls", "--output", "markdown", bootstrap=broker)
    assert review.returncode == 0
    assert review.stdout.startswith("### coffeebuddy-kafka plan: dev")
    assert "No changes" in review.stdout
    _create_topic(broker, "coffeebuddy.forgotten", 1)
    _create_topic(broker, "someone-else.topic", 1)
    drifted = cli("drift", "--no-acls", "--output", "json", bootstrap=broker)
    assert drifted.returncode == 2
    body = json.loads(drifted.stdout)
    assert body["drift"] is True
    assert [(c["action"], c["resource"]) for c in body["changes"]] == [
        ("delete", "coffeebuddy.forgotten")
    ]
    plain = cli("apply", "--yes", "--no-acls", "--output", "json", bootstrap=broker)
    assert plain.returncode == 0  # the delete is skipped without --allow-delete
    assert json.loads(plain.stdout)["results"][0]["status"] == "skipped"


def test_render_check_detects_stale_files(cli: Cli, tmp_path: Path) -> None:
    assert cli("render", "--out", str(tmp_path)).returncode == 0
    assert sorted(p.name for p in (tmp_path / "prod").iterdir()) == [
        "acls.yaml",
        "kafka.tf.json",
        "strimzi.yaml",
        "topics.yaml",
    ]
    assert cli("render", "--check", "--out", str(tmp_path)).returncode == 0
    (tmp_path / "staging" / "topics.yaml").write_text("edited by hand\n")
    stale = cli("render", "--check", "--out", str(tmp_path))
    assert stale.returncode == 2
    assert "staging" in stale.stdout
    assert "topics.yaml" in stale.stdout


def test_usage_and_connection_errors_exit_1(cli: Cli) -> None:
    bad = cli("plan", "--env", "qa")
    assert bad.returncode == 1
    assert "invalid choice" in bad.stderr
    no_plan = cli("apply", bootstrap="127.0.0.1:1")
    assert no_plan.returncode == 1
    assert "--plan FILE" in no_plan.stderr
    no_settings = cli("plan")
    assert no_settings.returncode == 1
    assert "KAFKA_BOOTSTRAP_SERVERS" in no_settings.stderr
    down = cli("plan", bootstrap=f"127.0.0.1:{free_port()}")
    assert down.returncode == 1
    assert "nothing listens" in down.stderr
