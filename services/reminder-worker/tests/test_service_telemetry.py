"""Trace export from the standard OTEL_* variables: off unless asked, OTLP/HTTP to a receiver."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiohttp import web

from coffeebuddy.services.reminder_worker._telemetry import DEFAULT_SERVICE_NAME, configure_tracing


@pytest.mark.parametrize(
    "environ",
    [
        {},
        {"OTEL_TRACES_EXPORTER": "none"},
        {"OTEL_TRACES_EXPORTER": "console", "OTEL_SDK_DISABLED": "true"},
    ],
)
def test_tracing_stays_off_unless_asked(
    environ: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_SDK_DISABLED"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    assert configure_tracing(set_global=False) is None


def test_unknown_exporter_is_named_and_skipped(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "zipkin-x")
    assert configure_tracing(set_global=False) is None
    assert "OTEL_TRACES_EXPORTER=zipkin-x" in caplog.text


def test_console_exporter_with_service_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "rw-test")
    provider = configure_tracing(set_global=False)
    assert provider is not None
    assert provider.resource.attributes["service.name"] == "rw-test"
    assert provider.resource.attributes["service.version"]
    # (the console exporter binds sys.stdout when the SDK is imported: its output is not
    # checked here; the OTLP test below checks a real export)
    provider.shutdown()


async def test_otlp_http_export_to_the_configured_endpoint(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OTEL_TRACES_EXPORTER", raising=False)
    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    received: list[tuple[str, str, bytes]] = []

    async def traces(request: web.Request) -> web.Response:
        received.append((request.path, request.content_type, await request.read()))
        return web.Response(status=200)

    app = web.Application()
    app.router.add_post("/v1/traces", traces)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{port}")
        provider: Any = configure_tracing(set_global=False)
        assert provider is not None
        with provider.get_tracer("t").start_as_current_span("reminder.send"):
            pass
        await asyncio.to_thread(provider.shutdown)  # flushes the batch over HTTP
    finally:
        await runner.cleanup()
    [(path, content_type, body)] = received
    assert (path, content_type) == ("/v1/traces", "application/x-protobuf")
    assert b"reminder.send" in body
    assert DEFAULT_SERVICE_NAME.encode() in body
