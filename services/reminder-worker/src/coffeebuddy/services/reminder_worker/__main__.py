"""`coffeebuddy-reminder-worker` / `python -m coffeebuddy.services.reminder_worker`."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence

from coffeebuddy.infra.kafka.config import KafkaSettings, KafkaSettingsError
from coffeebuddy.infra.kafka.reminder_worker import tune_gc
from coffeebuddy.services.reminder_worker._app import EXIT_CONFIG, ReminderWorkerService
from coffeebuddy.services.reminder_worker._logging import configure_logging
from coffeebuddy.services.reminder_worker._settings import ServiceSettings, ServiceSettingsError
from coffeebuddy.services.reminder_worker._telemetry import configure_tracing
from coffeebuddy.services.reminder_worker._version import __version__

_DESCRIPTION = """\
CoffeeBuddy reminder worker: consumes coffeebuddy.reminder.events and coffeebuddy.run.events
(group coffeebuddy.reminder-worker) and sends each due reminder once as a Slack DM.

Configuration is read from the environment:
  KAFKA_*                   Kafka connection (KAFKA_BOOTSTRAP_SERVERS is required)
  SLACK_BOT_TOKEN           bot token, xoxb-... (required)
  SLACK_API_BASE_URL        default https://slack.com/api/
  WORKER_HTTP_PORT          /healthz, /readyz, /metrics (default 8080)
  WORKER_DRAIN_TIMEOUT_S    shutdown budget after SIGTERM (default 20)
  LOG_LEVEL                 default INFO (JSON lines on stderr)
  SLACK_TIMEOUT_S           the Slack client's timeout (default 10); the claim deadline follows
  REMINDER_*                the worker's settings (see its README): sends in flight, capacity,
                            DM channels opened ahead, REMINDER_GC_THRESHOLDS, ...
  OTEL_TRACES_EXPORTER      e.g. otlp or console: export traces (needs the [otel] extra);
                            with OTEL_SERVICE_NAME, OTEL_EXPORTER_OTLP_ENDPOINT, ...
SIGTERM/SIGINT drains within the budget; a second signal exits at once.
"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="coffeebuddy-reminder-worker",
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "--check-config",
        action="store_true",
        help="validate the environment and exit (0 when valid, 2 otherwise)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: validate configuration, then run the service until a signal."""
    args = _parser().parse_args(argv)
    problems: list[str] = []
    service_settings: ServiceSettings | None = None
    kafka: KafkaSettings | None = None
    try:
        service_settings = ServiceSettings.from_env()
    except ServiceSettingsError as exc:
        problems.extend(f"{var}: {msg}" for var, msg in exc.problems)
    try:
        kafka = KafkaSettings.from_env()
    except KafkaSettingsError as exc:
        problems.extend(f"{p.variable}: {p.message}" for p in exc.problems)
    secrets = []
    if service_settings and service_settings.slack_bot_token:
        secrets.append(service_settings.slack_bot_token.get_secret_value())
    if kafka is not None and kafka.sasl_password is not None:
        secrets.append(kafka.sasl_password.get_secret_value())
    configure_logging(service_settings.log_level if service_settings else "INFO", secrets=secrets)
    log = logging.getLogger("coffeebuddy.reminder_worker.service")
    if problems or service_settings is None or kafka is None:
        log.error("invalid configuration: %s", "; ".join(problems))
        return EXIT_CONFIG
    if args.check_config:
        log.info("configuration is valid")
        return 0
    log.info("starting coffeebuddy-reminder-worker %s", __version__)
    tune_gc(service_settings.reminder.gc_thresholds)  # a process setting: here, not in the library
    provider = configure_tracing()  # before any client is built: they pick it up
    try:
        return asyncio.run(_serve(service_settings, kafka))
    finally:
        if provider is not None:
            provider.shutdown()  # flush the spans still batched


async def _serve(settings: ServiceSettings, kafka: KafkaSettings) -> int:
    service = ReminderWorkerService(settings, kafka)
    service.install_signal_handlers()
    return await service.run()


if __name__ == "__main__":
    sys.exit(main())
