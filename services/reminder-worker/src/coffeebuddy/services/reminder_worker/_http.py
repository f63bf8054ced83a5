"""The pod's HTTP side: /healthz (live), /readyz (ready) and /metrics (Prometheus exposition)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

__all__ = ["Probe", "ProbeServer"]


@dataclass(frozen=True)
class Probe:
    """One health answer: `ok` decides 200 vs 503, `detail` says why (never a secret)."""

    ok: bool
    detail: str
    checks: dict[str, bool]


class ProbeServer:
    """aiohttp server answering the kubelet's probes and the Prometheus scraper."""

    def __init__(
        self,
        *,
        live: Callable[[], Probe],
        ready: Callable[[], Probe],
        registry: CollectorRegistry,
        host: str,
        port: int,
    ) -> None:
        self._live = live
        self._ready = ready
        self._registry = registry
        self._host = host
        self._port = port
        self._runner: web.AppRunner | None = None
        self.bound_port: int | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/metrics", self._metrics)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port)
        await site.start()
        self.bound_port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @staticmethod
    def _answer(probe: Probe) -> web.Response:
        body = {"status": "ok" if probe.ok else "unavailable", "detail": probe.detail}
        body["checks"] = probe.checks  # type: ignore[assignment]
        return web.Response(
            status=200 if probe.ok else 503,
            text=json.dumps(body),
            content_type="application/json",
        )

    async def _healthz(self, _request: web.Request) -> web.Response:
        return self._answer(self._live())

    async def _readyz(self, _request: web.Request) -> web.Response:
        return self._answer(self._ready())

    async def _metrics(self, _request: web.Request) -> web.Response:
        payload = generate_latest(self._registry)
        response = web.Response(body=payload)
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return response
