"""Events from the shell: follow a catalog topic (`tail_topic`), publish one event
(`publish_event`) built from a ready sample of its type (`sample_data`, `envelope`).

Also the `coffeebuddy-kafka events tail|publish` sub-commands (`add_events_parser`). Records
are decoded with the models' `decode_record` (both CloudEvents content modes); events are
checked with the models' own decoder before they are sent, and published through the producer
package (catalog topic, allowed type, key from the topic's key field).
"""

from coffeebuddy.infra.kafka.provision.events._cli import (
    DEV_USER_ENV,
    add_events_parser,
    catalog_topic,
)
from coffeebuddy.infra.kafka.provision.events._errors import EventsError
from coffeebuddy.infra.kafka.provision.events._format import (
    describe_event,
    record_json,
    record_line,
)
from coffeebuddy.infra.kafka.provision.events._publish import Published, publish_event, raw_record
from coffeebuddy.infra.kafka.provision.events._samples import (
    CLI_SOURCE,
    DEFAULT_USER,
    SAMPLES,
    SampleOptions,
    envelope,
    merge_data,
    parse_data,
    publishable_types,
    resolve_type,
    sample_data,
    short_name,
    validate_envelope,
)
from coffeebuddy.infra.kafka.provision.events._tail import TailedRecord, read_record, tail_topic

__all__ = [
    "CLI_SOURCE",
    "DEFAULT_USER",
    "DEV_USER_ENV",
    "SAMPLES",
    "EventsError",
    "Published",
    "SampleOptions",
    "TailedRecord",
    "add_events_parser",
    "catalog_topic",
    "describe_event",
    "envelope",
    "merge_data",
    "parse_data",
    "publish_event",
    "publishable_types",
    "raw_record",
    "read_record",
    "record_json",
    "record_line",
    "resolve_type",
    "sample_data",
    "short_name",
    "tail_topic",
    "validate_envelope",
]
