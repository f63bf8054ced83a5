"""Events from the shell: follow a catalog topic (`tail_topic`), publish one event
(`publish_event`) built from a ready sample of its type (`sample_data`, `envelope`).

Also the `coffeebuddy-kafka events tail|publish` sub-commands. Records are decoded with the
models' `decode_record` (both CloudEvents content modes); events are checked with the models'
own decoder before they are sent, and published through the producer package (catalog topic,
allowed type, key from the topic's key field).
"""

from coffeebuddy.infra.kafka.provision.events._errors import EventsError
from coffeebuddy.infra.kafka.provision.events._publish import Published, publish_event
from coffeebuddy.infra.kafka.provision.events._samples import (
    SampleOptions,
    envelope,
    resolve_type,
    sample_data,
)
from coffeebuddy.infra.kafka.provision.events._tail import TailedRecord, tail_topic

__all__ = [
    "EventsError",
    "Published",
    "SampleOptions",
    "TailedRecord",
    "envelope",
    "publish_event",
    "resolve_type",
    "sample_data",
    "tail_topic",
]
