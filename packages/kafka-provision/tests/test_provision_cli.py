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
    acl_changes = [c for c in body["changes"] if c["kind"] == "acl"]
    assert acl_changes
    assert all(c["reason"] for c in acl_changes)

    applied = script("apply", "--plan", str(plan_file), "--output", "json", bootstrap=broker)
    assert applied.returncode == 4, applied.stderr  # topics applied, ACLs unsupported here
    report = json.loads(applied.stdout)
    statuses: dict[str, set[str]] = {}
    for row in report["results"]:
        statuses.setdefault(row["kind"], set()).add(row["status"])
    assert statuses == {"topic": {"applied"}, "acl": {"unsupported"}}
    assert report["exit_code"] == 4


def test_console_script_refuses_an_edited_plan_and_validates_offline(tmp_path: Path) -> None:
    valid = script("validate")
    assert valid.returncode == 0, valid.stderr
    assert "prod: catalog valid" in valid.stdout
    edited = tmp_path / "edited.json"
    edited.write_text(json.dumps({"kind": "coffeebuddy-kafka-plan", "schema_version": 1}))
    refused = script("apply", "--plan", str(edited), bootstrap=f"127.0.0.1:{free_port()}")
    assert refused.returncode == 3
    assert "refused" in refused.stderr


def test_human_apply_names_the_missing_acl_api_and_is_idempotent(cli: Cli, broker: str) -> None:
    human = cli("apply", "--yes", "--env", "dev", bootstrap=broker)
    assert human.returncode == 4
    assert "does not support CreateAcls (API key 30)" in human.stdout
    assert "ACL binding(s) NOT applied" in human.stdout
    again = cli("apply", "--yes", "--env", "dev", "--no-acls", bootstrap=broker)
    assert again.returncode == 0, again.stdout
    assert "nothing to do" in again.stdout


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
