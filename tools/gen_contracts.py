"""Regenerate docs/contracts from code: JSON Schema per event type, AsyncAPI 3.0, an index.

    python tools/gen_contracts.py            # write the files
    python tools/gen_contracts.py --check    # exit 1 when the checked-in files drifted
    python tools/gen_contracts.py --update-golden [--allow-breaking]
                                             # refresh the catalog golden file (additions only)

Output is deterministic (sorted keys, fixed order) so reviews show only real changes.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from coffeebuddy.infra.kafka.models import (
    CE_HEADER_PREFIX,
    CONTENT_TYPE,
    DATA_CONTENT_TYPE,
    EVENT_TYPES,
    TRACEPARENT_HEADER,
    TRACESTATE_HEADER,
)
from coffeebuddy.infra.kafka.models import __version__ as models_version
from coffeebuddy.infra.kafka.topics import (
    CATALOG,
    Catalog,
    ConsumerRole,
    LogReaderRole,
    ProducerRole,
    TopicConfig,
    breaking_changes,
    catalog_snapshot,
)

ROOT = Path(__file__).resolve().parents[1]
CONTRACTS = Path("docs/contracts")
SCHEMAS = CONTRACTS / "schemas"
ASYNCAPI = CONTRACTS / "asyncapi.yaml"
INDEX = CONTRACTS / "README.md"
GOLDEN = Path("packages/kafka-topics/tests/golden/catalog_v1.json")

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
KAFKA_BINDING_VERSION = "0.5.0"
DEAD_LETTER_HEADERS = (
    "coffeebuddy.dlq.origin.topic",
    "coffeebuddy.dlq.origin.partition",
    "coffeebuddy.dlq.origin.offset",
    "coffeebuddy.dlq.origin.key",
    "coffeebuddy.dlq.error.type",
    "coffeebuddy.dlq.error.message",
    "coffeebuddy.dlq.reason",
    "coffeebuddy.dlq.attempts",
    "coffeebuddy.dlq.first_seen",
)
# Topic configs the AsyncAPI Kafka binding 0.5.0 knows (others stay in the catalog only).
_BINDING_CONFIGS: dict[str, Callable[[str], Any]] = {
    "cleanup.policy": lambda v: v.split(","),
    "retention.ms": int,
    "retention.bytes": int,
    "delete.retention.ms": int,
    "max.message.bytes": int,
}


def schema_path(event_type: str) -> Path:
    return SCHEMAS / f"{event_type}.schema.json"


def event_schema(event_type: str) -> dict[str, Any]:
    """JSON Schema (2020-12) of one event type's structured-mode CloudEvent."""
    event_class = EVENT_TYPES[event_type]
    schema = event_class.model_json_schema()
    subject_rule = event_class.model_fields["data"].annotation.SUBJECT_RULE  # type: ignore[union-attr]
    return {
        "$schema": JSON_SCHEMA_DIALECT,
        "$id": f"{event_type}.schema.json",
        **schema,
        "x-cloudevents-type": event_type,
        "x-rules": [
            "subject " + subject_rule.replace("must equal", "equals"),
            "every timestamp carries a UTC offset (RFC 3339)",
            "unknown fields are ignored by readers",
        ],
    }


def _camel(text: str) -> str:
    words = [w for w in re.split(r"[^A-Za-z0-9]+", text) if w]
    return words[0].lower() + "".join(w[:1].upper() + w[1:] for w in words[1:]) if words else ""


def channel_id(topic: TopicConfig) -> str:
    return _camel(topic.name.removeprefix("coffeebuddy."))


_BINARY_ATTRIBUTES = ("specversion", "id", "source", "type", "subject", "time")


def _event_headers() -> dict[str, Any]:
    """Headers of an event record in either CloudEvents content mode, plus trace context."""
    properties: dict[str, Any] = {
        "content-type": {
            "type": "string",
            "enum": [CONTENT_TYPE, DATA_CONTENT_TYPE],
            "description": (
                f"structured mode: {CONTENT_TYPE} (the value is the whole event); binary mode: "
                f"{DATA_CONTENT_TYPE}, the media type of the data (the value is data only)"
            ),
        },
        TRACEPARENT_HEADER: {
            "type": "string",
            "description": "W3C Trace Context of the producing span (both modes)",
        },
        TRACESTATE_HEADER: {
            "type": "string",
            "description": "W3C Trace Context vendor state (both modes, when set)",
        },
    }
    for name in _BINARY_ATTRIBUTES:
        properties[CE_HEADER_PREFIX + name] = {
            "type": "string",
            "description": f"binary mode: the `{name}` attribute (UTF-8)",
        }
    return {
        "type": "object",
        "description": (
            "CloudEvents Kafka protocol binding. Structured mode (default): content-type "
            "application/cloudevents+json. Binary mode: one ce_<attribute> header per attribute "
            "and extension (lower-case names, UTF-8 values), content-type = datacontenttype. "
            "Readers accept both, chosen per record from these headers."
        ),
        "properties": properties,
        "required": ["content-type"],
    }


def _message_id(event_type: str) -> str:
    return EVENT_TYPES[event_type].__name__


def _topic_binding(topic: TopicConfig) -> dict[str, Any]:
    configuration = {
        key: convert(topic.configs[key])
        for key, convert in _BINDING_CONFIGS.items()
        if key in topic.configs
    }
    return {
        "kafka": {
            "topic": topic.name,
            "partitions": topic.partitions,
            "replicas": topic.replication_factor,
            "topicConfiguration": configuration,
            "bindingVersion": KAFKA_BINDING_VERSION,
        }
    }


def asyncapi_document(catalog: Catalog = CATALOG) -> dict[str, Any]:
    """AsyncAPI 3.0: channels = topics, messages = event types, operations per principal role."""
    prod = catalog.for_environment("prod")
    channels: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for event_type in sorted(EVENT_TYPES):
        homes = catalog.topics_for_event_type(event_type)
        key_field = homes[0].key_field if homes else "run_id"
        cls = EVENT_TYPES[event_type]
        messages[_message_id(event_type)] = {
            "name": event_type,
            "title": cls.__name__,
            "summary": (cls.__doc__ or "").strip().splitlines()[0],
            "contentType": CONTENT_TYPE,
            "headers": {"$ref": "#/components/schemas/CloudEventHeaders"},
            "payload": {"$ref": f"./schemas/{event_type}.schema.json"},
            "x-binary-mode-payload": {
                "$ref": f"./schemas/{event_type}.schema.json#/properties/data"
            },
            "bindings": {
                "kafka": {
                    "key": {"type": "string", "description": f"data.{key_field} (UTF-8)"},
                    "bindingVersion": KAFKA_BINDING_VERSION,
                }
            },
        }
    messages["DeadLetter"] = {
        "name": "dead-letter",
        "title": "DeadLetter",
        "summary": "A record a consumer could not process: original key, value and headers.",
        "headers": {
            "type": "object",
            "properties": {name: {"type": "string"} for name in DEAD_LETTER_HEADERS},
            "required": ["coffeebuddy.dlq.origin.topic", "coffeebuddy.dlq.reason"],
        },
        "payload": {"description": "The original record value, byte for byte (any payload)."},
        "bindings": {
            "kafka": {
                "key": {"type": "string", "description": "the original record key"},
                "bindingVersion": KAFKA_BINDING_VERSION,
            }
        },
    }
    for topic in sorted(prod.topics, key=lambda t: t.name):
        cid = channel_id(topic)
        key = f"data.{topic.key_field}"
        if topic.kind == "dead_letter":
            names = ["DeadLetter"]
            key = "the original record's key"
        else:
            names = [_message_id(e) for e in sorted(topic.event_types) if e in EVENT_TYPES]
        channels[cid] = {
            "address": topic.name,
            "title": topic.name,
            "description": (
                f"{topic.description} Kind: {topic.kind}. Record key: {key}. Owner: {topic.owner}."
                + (f" Dead letters: {topic.dead_letter_topic}." if topic.dead_letter_topic else "")
                + (
                    f" Producers write CloudEvents {topic.content_mode} mode."
                    if topic.kind != "dead_letter"
                    else " Dead letters keep the original record's content mode and headers."
                )
            ),
            "messages": {n: {"$ref": f"#/components/messages/{n}"} for n in names},
            "bindings": _topic_binding(topic),
            "x-acl": catalog.acl_notes(topic),
        }
    operations: dict[str, Any] = {}
    for principal in sorted(catalog.principals, key=lambda p: p.name):
        for role in principal.roles:
            topic = prod.topic(role.topic)
            cid = channel_id(topic)
            action = "send" if isinstance(role, ProducerRole) else "receive"
            op: dict[str, Any] = {
                "action": action,
                "channel": {"$ref": f"#/channels/{cid}"},
                "messages": [
                    {"$ref": f"#/channels/{cid}/messages/{n}"} for n in channels[cid]["messages"]
                ],
                "x-principal": principal.name,
            }
            if isinstance(role, ConsumerRole):
                op["summary"] = f"{principal.service} consumes {topic.name} in group {role.group}"
                op["bindings"] = {
                    "kafka": {
                        "groupId": {"type": "string", "enum": [role.group]},
                        "bindingVersion": KAFKA_BINDING_VERSION,
                    }
                }
                suffix = "Receive"
            elif isinstance(role, LogReaderRole):
                op["summary"] = f"{principal.service} reads {topic.name} by partition assignment"
                suffix = "Read"
            else:
                op["summary"] = f"{principal.service} produces to {topic.name}"
                suffix = "Send"
            op_id = f"{_camel(principal.service)}{suffix}{cid[:1].upper()}{cid[1:]}"
            operations[op_id] = op
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "CoffeeBuddy Kafka contracts",
            "version": models_version,
            "description": (
                "Generated by tools/gen_contracts.py from coffeebuddy.infra.kafka.topics "
                "(CATALOG, prod sizing) and coffeebuddy.infra.kafka.models; do not edit by hand. "
                "Events are CloudEvents 1.0 (JSON, UTF-8) in structured mode by default or binary "
                "mode where a topic says so; readers accept both (CloudEvents Kafka protocol "
                "binding). Trace context travels in W3C traceparent/tracestate headers."
            ),
        },
        "defaultContentType": CONTENT_TYPE,
        "channels": channels,
        "operations": operations,
        "components": {
            "messages": messages,
            "schemas": {"CloudEventHeaders": _event_headers()},
        },
    }


def index_markdown(catalog: Catalog = CATALOG) -> str:
    """docs/contracts/README.md: what is here and how to regenerate it."""
    lines = [
        "# Kafka contracts (generated)",
        "",
        "Generated by `python tools/gen_contracts.py` from the code; do not edit by hand.",
        "`python tools/gen_contracts.py --check` fails when these files drift from the code.",
        "",
        "- [asyncapi.yaml](asyncapi.yaml): AsyncAPI 3.0; channels = topics, operations per role",
        "- [schemas/](schemas/): JSON Schema (2020-12) of every event type",
        "",
        "## Content modes and headers",
        "",
        "Records follow the CloudEvents Kafka protocol binding; readers accept both modes,",
        "chosen per record from its headers. Record key: the topic's key field in both modes",
        "(a `partitionkey` extension, if any, travels as an attribute).",
        "",
        "| mode | value | headers |",
        "| --- | --- | --- |",
        f"| structured (default) | the whole event as JSON | `content-type: {CONTENT_TYPE}` |",
        f"| binary | the `data` JSON only | `content-type: {DATA_CONTENT_TYPE}`, "
        + ", ".join(f"`{CE_HEADER_PREFIX}{a}`" for a in _BINARY_ATTRIBUTES)
        + ", `ce_<extension>` |",
        "",
        f"Both modes: `{TRACEPARENT_HEADER}` / `{TRACESTATE_HEADER}` (W3C Trace Context) when the",
        "producer traces. Dead letters keep the original value and headers (and so the mode).",
        "",
        "On a live cluster (`KAFKA_*` settings, e.g. the broker `hatch run dev` prints):",
        "`coffeebuddy-kafka events tail <topic>` prints a topic's records decoded in either mode,",
        "`coffeebuddy-kafka events publish <type>` publishes a ready sample of an event type of",
        "the event topics, checked against these models first",
        "([packages/kafka-provision](../../packages/kafka-provision/README.md)).",
        "",
        "## Event types",
        "",
        "| type | class | topic | key | schema |",
        "| --- | --- | --- | --- | --- |",
    ]
    for event_type in sorted(EVENT_TYPES):
        homes = catalog.topics_for_event_type(event_type)
        where = ", ".join(f"`{t.name}`" for t in homes)
        key = ", ".join(sorted({f"`data.{t.key_field}`" for t in homes}))
        lines.append(
            f"| `{event_type}` | `{EVENT_TYPES[event_type].__name__}` | {where} | {key} "
            f"| [schema](schemas/{event_type}.schema.json) |"
        )
    lines += [
        "",
        "## Topics (prod sizing)",
        "",
        "| topic | kind | key | partitions | RF | cleanup | retention.ms | dead letters | mode |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for topic in catalog.for_environment("prod").topics:
        dlq = f"`{topic.dead_letter_topic}`" if topic.dead_letter_topic else "-"
        key = "original key" if topic.kind == "dead_letter" else f"`data.{topic.key_field}`"
        lines.append(
            f"| `{topic.name}` | {topic.kind} | {key} | {topic.partitions} "
            f"| {topic.replication_factor} | {topic.cleanup_policy} "
            f"| {topic.configs.get('retention.ms', '-')} | {dlq} "
            f"| {'as received' if topic.kind == 'dead_letter' else topic.content_mode} |"
        )
    return "\n".join(lines) + "\n"


def to_yaml(value: Any, indent: int = 0) -> str:
    """Block-style YAML for JSON-like data; strings JSON-quoted unless trivially plain."""
    return "\n".join(_yaml_lines(value, indent)) + "\n"


_PLAIN = re.compile(r"^[A-Za-z_$/][A-Za-z0-9_$./-]*$")
_RESERVED = {"y", "n", "yes", "no", "on", "off", "true", "false", "null", "~"}


def _scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return json.dumps(value)
    text = str(value)
    if _PLAIN.match(text) and text.lower() not in _RESERVED:
        return text
    return json.dumps(text, ensure_ascii=False)


def _yaml_lines(value: Any, indent: int) -> list[str]:
    pad = " " * indent
    if isinstance(value, Mapping):
        if not value:
            return [pad + "{}"]
        lines: list[str] = []
        for key, item in value.items():
            head = f"{pad}{_scalar(str(key))}:"
            if isinstance(item, Mapping | list | tuple) and item:
                lines.append(head)
                lines.extend(_yaml_lines(item, indent + 2))
            else:
                lines.append(f"{head} {_inline(item)}")
        return lines
    if isinstance(value, list | tuple):
        if not value:
            return [pad + "[]"]
        lines = []
        for item in value:
            if isinstance(item, Mapping | list | tuple) and item:
                nested = _yaml_lines(item, indent + 2)
                lines.append(f"{pad}- {nested[0].lstrip()}")
                lines.extend(nested[1:])
            else:
                lines.append(f"{pad}- {_inline(item)}")
        return lines
    return [pad + _scalar(value)]


def _inline(value: Any) -> str:
    if isinstance(value, Mapping):
        return "{}"
    if isinstance(value, list | tuple):
        return "[]"
    return _scalar(value)


def _json(data: Any) -> str:
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def render(catalog: Catalog = CATALOG) -> dict[Path, str]:
    """Every generated file (path relative to the repo root) and its exact content."""
    files = {schema_path(t): _json(event_schema(t)) for t in sorted(EVENT_TYPES)}
    files[ASYNCAPI] = to_yaml(asyncapi_document(catalog))
    files[INDEX] = index_markdown(catalog)
    return files


def drift(root: Path = ROOT, catalog: Catalog = CATALOG) -> list[str]:
    """What differs between the checked-in files under `root` and `render()` (empty: in sync)."""
    expected = render(catalog)
    problems = []
    for rel, content in sorted(expected.items()):
        path = root / rel
        if not path.exists():
            problems.append(f"{rel}: missing")
        elif path.read_text(encoding="utf-8") != content:
            problems.append(f"{rel}: differs from the code")
    problems.extend(
        f"{path.relative_to(root)}: stale (no such event type)"
        for path in sorted((root / SCHEMAS).glob("*.schema.json"))
        if path.relative_to(root) not in expected
    )
    return problems


def write(root: Path = ROOT, catalog: Catalog = CATALOG) -> list[Path]:
    """Write every generated file and delete stale schemas; returns the paths changed."""
    changed: list[Path] = []
    expected = render(catalog)
    for rel, content in sorted(expected.items()):
        path = root / rel
        if not path.exists() or path.read_text(encoding="utf-8") != content:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content, encoding="utf-8")
            changed.append(rel)
    for path in sorted((root / SCHEMAS).glob("*.schema.json")):
        if path.relative_to(root) not in expected:
            path.unlink()
            changed.append(path.relative_to(root))
    return changed


def update_golden(root: Path = ROOT, *, allow_breaking: bool = False) -> list[str]:
    """Rewrite the catalog golden file; refuses breaking changes unless allowed."""
    path = root / GOLDEN
    if path.exists() and not allow_breaking:
        problems = breaking_changes(json.loads(path.read_text(encoding="utf-8")), CATALOG)
        if problems:
            return problems
    path.write_text(_json(catalog_snapshot(CATALOG)), encoding="utf-8")
    return []


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="fail on drift, write nothing")
    parser.add_argument("--update-golden", action="store_true", help="refresh the catalog golden")
    parser.add_argument("--allow-breaking", action="store_true", help="with --update-golden")
    args = parser.parse_args(argv)
    if args.update_golden:
        problems = update_golden(allow_breaking=args.allow_breaking)
        for problem in problems:
            print(f"breaking: {problem}", file=sys.stderr)
        if problems:
            print("refusing to update the golden file (pass --allow-breaking)", file=sys.stderr)
            return 1
        print(f"updated {GOLDEN}")
        return 0
    if args.check:
        problems = drift()
        for problem in problems:
            print(f"drift: {problem}", file=sys.stderr)
        if problems:
            print("run `python tools/gen_contracts.py` and commit the result", file=sys.stderr)
            return 1
        print("docs/contracts is up to date")
        return 0
    for rel in write():
        print(f"wrote {rel}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
