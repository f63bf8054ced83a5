"""Topics and models agree, and docs/contracts is exactly what tools/gen_contracts.py makes."""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

import coffeebuddy.infra.kafka.models as models
import coffeebuddy.infra.kafka.topics as topics
from coffeebuddy.infra.kafka.models import EVENT_TYPES, RunClosed, RunClosedData
from coffeebuddy.infra.kafka.topics import CATALOG, RUN_EVENTS_TOPIC

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def gen() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_contracts", ROOT / "tools/gen_contracts.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("gen_contracts", module)
    spec.loader.exec_module(module)
    return module


def test_every_catalog_event_type_has_a_model_and_vice_versa() -> None:
    assert CATALOG.event_types == set(EVENT_TYPES)


def test_each_topic_carries_the_models_type_names() -> None:
    """The type names are the models' (topics no longer re-exports them); the catalog uses them."""
    assert (
        {
            models.RUN_CREATED,
            models.RUN_ORDER_ADDED,
            models.RUN_RUNNER_ASSIGNED,
            models.RUN_CLOSED,
            models.RUN_CANCELLED,
        }
        == topics.RUN_EVENT_TYPES
        == RUN_EVENTS_TOPIC.event_types
    )
    assert (
        {models.REMINDER_SCHEDULED, models.REMINDER_CANCELLED}
        == topics.REMINDER_EVENT_TYPES
        == topics.REMINDER_EVENTS_TOPIC.event_types
    )
    assert topics.REMINDER_STATE_CHANGELOG_TOPIC.event_types == {models.REMINDER_STATE}
    assert topics.REMINDER_HISTORY_TOPIC.event_types == {models.REMINDER_STATE}
    assert topics.DLQ_REPLAYS_TOPIC.event_types == {models.DLQ_REPLAYED}


def test_every_topic_key_field_is_a_field_of_its_events() -> None:
    for topic in CATALOG.topics:
        for event_type in topic.event_types:
            data_model = EVENT_TYPES[event_type].model_fields["data"].annotation
            assert data_model is not None
            assert topic.key_field in data_model.model_fields, (topic.name, event_type)


def test_key_for_real_event() -> None:
    event = RunClosed.create(data=RunClosedData(run_id="run-7", closed_at=datetime.now(UTC)))
    assert RUN_EVENTS_TOPIC.allows(event.type)
    assert RUN_EVENTS_TOPIC.key_for(event) == b"run-7"


def test_checked_in_contracts_match_the_code(gen: Any) -> None:
    assert gen.drift() == [], "run `python tools/gen_contracts.py` and commit docs/contracts"
    assert gen.main(["--check"]) == 0


def test_drift_is_detected(gen: Any, tmp_path: Path) -> None:
    shutil.copytree(ROOT / "docs/contracts", tmp_path / "docs/contracts")
    assert gen.drift(tmp_path) == []
    schema = tmp_path / "docs/contracts/schemas/coffeebuddy.run.closed.v1.schema.json"
    schema.write_text(schema.read_text(encoding="utf-8").replace("closed_at", "closedAt"))
    (tmp_path / "docs/contracts/asyncapi.yaml").unlink()
    (tmp_path / "docs/contracts/schemas/coffeebuddy.run.gone.v1.schema.json").write_text("{}")
    assert gen.drift(tmp_path) == [
        "docs/contracts/asyncapi.yaml: missing",
        "docs/contracts/schemas/coffeebuddy.run.closed.v1.schema.json: differs from the code",
        "docs/contracts/schemas/coffeebuddy.run.gone.v1.schema.json: stale (no such event type)",
    ]
    gen.write(tmp_path)
    assert gen.drift(tmp_path) == []


def test_asyncapi_yaml_parses_to_the_document(gen: Any) -> None:
    text = (ROOT / "docs/contracts/asyncapi.yaml").read_text(encoding="utf-8")
    parsed = yaml.safe_load(text)
    assert parsed == json.loads(json.dumps(gen.asyncapi_document()))
    assert parsed["asyncapi"] == "3.0.0"
    addresses = {c["address"] for c in parsed["channels"].values()}
    assert addresses == {t.name for t in CATALOG.topics}
    messages = parsed["components"]["messages"]
    assert {m["name"] for m in messages.values()} == set(EVENT_TYPES) | {"dead-letter"}


def _resolve(doc: dict[str, Any], ref: str) -> Any:
    node: Any = doc
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return node


def test_asyncapi_references_resolve(gen: Any) -> None:
    doc = gen.asyncapi_document()
    refs: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "$ref":
                    refs.append(value)
                else:
                    walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(doc)
    assert refs
    for ref in refs:
        if ref.startswith("#/"):
            assert _resolve(doc, ref) is not None
        else:
            path, _, fragment = ref.partition("#")
            assert (ROOT / "docs/contracts" / path).is_file(), ref
            if fragment:  # e.g. the binary-mode payload: <schema>#/properties/data
                schema = json.loads((ROOT / "docs/contracts" / path).read_text())
                assert _resolve(schema, "#" + fragment) is not None, ref


def test_operations_follow_the_principals(gen: Any) -> None:
    ops = gen.asyncapi_document()["operations"]
    worker = {
        (op["action"], op["channel"]["$ref"])
        for op in ops.values()
        if op["x-principal"] == "User:reminder-worker"
    }
    assert worker == {
        ("receive", "#/channels/runEvents"),
        ("receive", "#/channels/reminderEvents"),
        ("send", "#/channels/runEventsDlq"),
        ("send", "#/channels/reminderEventsDlq"),
        ("send", "#/channels/reminderStateChangelog"),
        ("receive", "#/channels/reminderStateChangelog"),
        ("send", "#/channels/reminderHistory"),
    }
    operator = {
        (op["action"], op["channel"]["$ref"])
        for op in ops.values()
        if op["x-principal"] == "User:reminder-operator"
    }
    assert operator == {
        ("receive", "#/channels/reminderStateChangelog"),
        ("receive", "#/channels/reminderHistory"),
        ("send", "#/channels/reminderEvents"),
    }
    groups = {
        op["bindings"]["kafka"]["groupId"]["enum"][0] for op in ops.values() if "bindings" in op
    }
    assert groups == {g.name for g in CATALOG.groups}


def test_schemas_describe_the_models(gen: Any) -> None:
    for event_type, cls in EVENT_TYPES.items():
        path = ROOT / "docs/contracts/schemas" / f"{event_type}.schema.json"
        schema = json.loads(path.read_text(encoding="utf-8"))
        assert schema["x-cloudevents-type"] == event_type
        assert schema["properties"]["type"]["const"] == event_type
        assert set(schema["required"]) >= {"id", "source", "subject", "time", "data"}
        assert schema == json.loads(json.dumps(gen.event_schema(event_type)))
        assert schema["title"] == cls.__name__


@pytest.mark.parametrize(
    "value",
    [{"a": {"b": [1, {"c": None}], "d": []}}, {"k": "yes", "t": "true", "n": "12", "e": ""}],
)
def test_yaml_emitter_round_trips(gen: Any, value: dict[str, Any]) -> None:
    tricky = {**value, "q": 'say "hi": #1\nnext', "u": "Café …", "x": {}, "y": [[1, 2], []]}
    assert yaml.safe_load(gen.to_yaml(tricky)) == tricky


def test_update_golden_refuses_breaking_changes(gen: Any, tmp_path: Path) -> None:
    golden = tmp_path / gen.GOLDEN
    golden.parent.mkdir(parents=True)
    old = json.loads((ROOT / gen.GOLDEN).read_text(encoding="utf-8"))
    old["topics"]["coffeebuddy.retired.events"] = dict(old["topics"]["coffeebuddy.run.events"])
    golden.write_text(json.dumps(old), encoding="utf-8")
    assert gen.update_golden(tmp_path) == ["topic coffeebuddy.retired.events: removed or renamed"]
    assert json.loads(golden.read_text(encoding="utf-8")) == old
    assert gen.update_golden(tmp_path, allow_breaking=True) == []
    assert json.loads(golden.read_text(encoding="utf-8")) == json.loads(
        (ROOT / gen.GOLDEN).read_text(encoding="utf-8")
    )
