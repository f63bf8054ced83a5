"""Optional trace export from the standard OTEL_* environment variables (opentelemetry-sdk).

With the `[otel]` extra installed and `OTEL_TRACES_EXPORTER` (or an OTLP endpoint variable)
set, the service installs a global SDK tracer provider before it builds its clients; the
producer, harness and worker then trace on their own (`resolve_tracer`). Everything else is the
SDK's: `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_SAMPLER[_ARG]`,
`OTEL_EXPORTER_OTLP_*`, `OTEL_BSP_*`, `OTEL_SDK_DISABLED`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from importlib.metadata import entry_points
from typing import Any

__all__ = ["DEFAULT_SERVICE_NAME", "configure_tracing"]

log = logging.getLogger("coffeebuddy.reminder_worker.service")

DEFAULT_SERVICE_NAME = "coffeebuddy-reminder-worker"
_ENDPOINT_VARS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
_PROTOCOLS = {"grpc": "otlp_proto_grpc", "http/protobuf": "otlp_proto_http"}


def configure_tracing(*, set_global: bool = True) -> Any | None:
    """Build (and by default install globally) an SDK `TracerProvider` exporting where the
    OTEL_* variables of `os.environ` say (the SDK's exporters read them there too); None when
    tracing is not asked for, disabled or not installed. The caller shuts the provider down
    at exit (that flushes the batch processor)."""
    env = os.environ
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    listed = env.get("OTEL_TRACES_EXPORTER", "").split(",")
    names = [n for n in (x.strip().lower() for x in listed) if n]
    if not names and any(env.get(v) for v in _ENDPOINT_VARS):
        names = ["otlp"]
    if not names or names == ["none"]:
        return None
    try:
        from opentelemetry import trace
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        log.warning(
            "OTEL_TRACES_EXPORTER is set but opentelemetry-sdk is not installed "
            "(install coffeebuddy-reminder-worker[otel]); tracing stays off"
        )
        return None
    from coffeebuddy.services.reminder_worker._version import __version__

    exporters = [e for e in (_exporter(name, env) for name in names if name != "none") if e]
    if not exporters:
        return None
    name = env.get("OTEL_SERVICE_NAME") or DEFAULT_SERVICE_NAME
    provider = TracerProvider(
        resource=Resource.create({"service.name": name, "service.version": __version__})
    )
    for exporter in exporters:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    if set_global:
        trace.set_tracer_provider(provider)
    log.info("tracing on: exporting spans with %s", ", ".join(names))
    return provider


def _exporter(name: str, env: Mapping[str, str]) -> Any | None:
    """The span exporter registered under `name` (entry points `opentelemetry_traces_exporter`,
    as the SDK's own auto-configuration resolves them); None with a log line if missing."""
    candidates = [name]
    if name == "otlp":
        protocol = (
            env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
            or env.get("OTEL_EXPORTER_OTLP_PROTOCOL")
            or ""
        ).strip()
        candidates = [_PROTOCOLS[protocol]] if protocol in _PROTOCOLS else list(_PROTOCOLS.values())
        candidates.sort(key=lambda c: c != "otlp_proto_http")  # our [otel] extra ships http
    for candidate in candidates:
        found = list(entry_points(group="opentelemetry_traces_exporter", name=candidate))
        if found:
            return found[0].load()()
    log.error(
        "OTEL_TRACES_EXPORTER=%s: no span exporter package provides it (for otlp install "
        "opentelemetry-exporter-otlp-proto-http); not exporting there",
        name,
    )
    return None
