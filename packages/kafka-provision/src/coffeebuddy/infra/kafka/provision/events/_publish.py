"""`publish_event`: one event to its catalog topic through the producer package.

A checked event goes through `KafkaEventProducer.publish` (catalog topic, allowed type, key
from the topic's key field, the topic's content mode unless one is asked for). An unchecked one
(`validate=False`, to see what a consumer does with a bad event) is encoded here in the asked
content mode and sent with `send_raw`, keyed like a checked one when its data has the key field.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from coffeebuddy.infra.kafka.config import KafkaConnectionError, KafkaSettings
from coffeebuddy.infra.kafka.models import (
    CE_HEADER_PREFIX,
    CONTENT_TYPE,
    CONTENT_TYPE_HEADER,
    DATA_CONTENT_TYPE,
    ContentMode,
)
from coffeebuddy.infra.kafka.producer import KafkaEventProducer
from coffeebuddy.infra.kafka.provision.events._errors import EventsError
from coffeebuddy.infra.kafka.provision.events._samples import validate_envelope
from coffeebuddy.infra.kafka.topics import TopicConfig


@dataclass(frozen=True)
class Published:
    """Where an event landed, and what it was."""

    topic: str
    partition: int
    offset: int
    event_id: str
    event_type: str
    key: str | None
    mode: ContentMode
    validated: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "topic": self.topic,
            "partition": self.partition,
            "offset": self.offset,
            "id": self.event_id,
            "type": self.event_type,
            "key": self.key,
            "mode": self.mode,
            "validated": self.validated,
        }


def raw_record(
    body: Mapping[str, Any], mode: ContentMode, key_field: str
) -> tuple[bytes, list[tuple[str, bytes]], bytes | None]:
    """Value, headers and key of an unchecked envelope, laid out as the binding says."""
    data = body.get("data")
    key_value = data.get(key_field) if isinstance(data, dict) else None
    key = str(key_value).encode() if key_value is not None else None
    if mode == "structured":
        value = json.dumps(body, separators=(",", ":")).encode()
        return value, [(CONTENT_TYPE_HEADER, CONTENT_TYPE.encode())], key
    headers = [(CONTENT_TYPE_HEADER, DATA_CONTENT_TYPE.encode())]
    for name, attr in body.items():
        if name not in ("data", "datacontenttype"):
            text = attr if isinstance(attr, str) else json.dumps(attr)
            headers.append((CE_HEADER_PREFIX + name, text.encode()))
    return json.dumps(data, separators=(",", ":")).encode(), headers, key


async def publish_event(
    settings: KafkaSettings,
    topic: TopicConfig,
    body: Mapping[str, Any],
    *,
    mode: ContentMode | None = None,
    validate: bool = True,
) -> Published:
    """Publish the envelope `body` to `topic`; checked by the models first unless `validate`
    is False (EventDecodeError names what is wrong, and nothing is sent)."""
    chosen: ContentMode = mode or topic.content_mode
    event = validate_envelope(body) if validate else None
    producer = KafkaEventProducer(settings)
    try:
        await producer.start()
    except KafkaConnectionError:
        raise  # unreachable, TLS, ...: its message says why
    except ConnectionError as exc:
        if not settings.enable_idempotence:
            raise
        raise EventsError(
            f"{exc}: the broker answers, but an idempotent producer (KAFKA_ENABLE_IDEMPOTENCE, "
            "on by default) needs InitProducerId, which the embedded broker of `hatch run dev` "
            "does not grant; set KAFKA_ENABLE_IDEMPOTENCE=false for it"
        ) from exc
    async with producer:
        event_id, event_type = str(body.get("id", "")), str(body.get("type", ""))
        if event is not None:
            md = await producer.publish(topic, event, content_mode=chosen)
            key = topic.key_for(event)
        else:
            value, headers, raw_key = raw_record(body, chosen, topic.key_field)
            md = await producer.send_raw(topic, value, key=raw_key, headers=headers)
            key = raw_key
    return Published(
        topic=md.topic,
        partition=md.partition,
        offset=md.offset,
        event_id=event_id,
        event_type=event_type,
        key=key.decode("utf-8", errors="replace") if key is not None else None,
        mode=chosen,
        validated=event is not None,
    )
