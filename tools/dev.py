"""`hatch run dev`: the reminder worker end to end on this machine, narrated.

Starts the embedded Kafka broker, provisions the catalog topics through the provisioning
tool, starts the reminder worker against a local Slack stand-in (or real Slack when
SLACK_BOT_TOKEN is set), publishes a sample coffee run whose reminders fall due a few
seconds later, and prints every DM as it is delivered, with its lateness. Then it keeps
running and narrates whatever you publish (the commands to try are printed), every rejected
reminder and every dead letter, with the reason, until Ctrl-C.

    hatch run dev                     # demo, then keep running until Ctrl-C
    hatch run dev --observe           # and a local Prometheus (the alert rules loaded)
    hatch run dev --exit-after-demo   # stop once the demo's reminders are accounted for
    hatch run dev --verbose           # also show the worker's JSON logs (and every library's)

Environment: SLACK_BOT_TOKEN=xoxb-... sends real DMs; it needs COFFEEBUDDY_DEV_SLACK_USER, the
Slack user id (U...) who receives them (every demo DM goes to that one user), and the bot's
chat:write, im:write and im:history scopes. SLACK_API_BASE_URL overrides Slack's API URL.
Ctrl-C at any moment stops the worker first, then the broker; a second Ctrl-C exits at once.
"""

from __future__ import annotations

import os
import signal
import sys


def _interrupted_early(_signum: int, _frame: object) -> None:
    """Ctrl-C while Python is still loading: nothing has started, so nothing to stop."""
    sys.stdout.write("stop: interrupted before anything started\n")
    sys.stdout.flush()
    os._exit(130)


signal.signal(signal.SIGINT, _interrupted_early)

import argparse  # noqa: E402
import asyncio  # noqa: E402
import contextlib  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from datetime import UTC, datetime, timedelta  # noqa: E402

from dev_demo import publish_demo  # noqa: E402
from dev_narration import Expectation, Narrator, Reporter, quiet_logging  # noqa: E402
from dev_prometheus import (  # noqa: E402
    LATENESS_P99,
    MISSING,
    LocalPrometheus,
    find_prometheus,
)
from prometheus_client import CollectorRegistry  # noqa: E402

from coffeebuddy.infra.kafka.config import KafkaSettings  # noqa: E402
from coffeebuddy.infra.kafka.models import ReminderState  # noqa: E402
from coffeebuddy.infra.kafka.producer import KafkaEventProducer  # noqa: E402
from coffeebuddy.infra.kafka.provision import ensure_topics  # noqa: E402
from coffeebuddy.infra.kafka.provision.events import tail_topic  # noqa: E402
from coffeebuddy.infra.kafka.testing import EmbeddedBroker, free_port, wait_until  # noqa: E402
from coffeebuddy.infra.kafka.topics import (  # noqa: E402
    REMINDER_EVENTS_DLQ_TOPIC,
    REMINDER_EVENTS_TOPIC,
    REMINDER_STATE_CHANGELOG_TOPIC,
    RUN_EVENTS_DLQ_TOPIC,
    TopicConfig,
)
from coffeebuddy.services.fake_slack import FakeSlackServer  # noqa: E402
from coffeebuddy.services.reminder_worker import (  # noqa: E402
    ReminderWorkerService,
    ServiceSettings,
    configure_logging,
)

DEV_USER_ENV = "COFFEEBUDDY_DEV_SLACK_USER"
EXIT_INTERRUPTED = 130


async def _watch(
    settings: KafkaSettings, topic: TopicConfig, handle: Callable[..., None], stop: asyncio.Event
) -> None:
    """Follow `topic` from its start (a fresh broker: all of it is this session's)."""
    async for record in tail_topic(settings, topic, from_beginning=True, stop=stop):
        if topic.kind == "dead_letter":
            handle(record)
        elif isinstance(record.event, ReminderState):
            handle(record.event)


def _next_steps(say: Narrator, bootstrap: str, recipient: str | None) -> None:
    user = f" --user {recipient}" if recipient else ""
    say.more("try it yourself, in another terminal (this one narrates what happens):")
    say.more(f"  export KAFKA_BOOTSTRAP_SERVERS={bootstrap} KAFKA_ENABLE_IDEMPOTENCE=false")
    say.more(f"  hatch run coffeebuddy-kafka events publish reminder.scheduled --due-in 30{user}")
    say.more(f"  hatch run coffeebuddy-kafka events tail {REMINDER_EVENTS_TOPIC.name}")
    say.more(
        '  echo \'{"due_at": "tomorrow"}\' | hatch run coffeebuddy-kafka events publish '
        "reminder.scheduled --no-validate --data -   # a bad event: watch it dead-lettered"
    )
    say.more("Ctrl-C stops everything.")


@dataclass
class Outcome:
    """How the session ended: the demo's verdict, and whether Ctrl-C cut it short."""

    demo_ok: bool | None = None
    worker_code: int | None = None


class Session:
    """Everything `hatch run dev` starts, stopped in reverse order (worker before broker)."""

    def __init__(self, args: argparse.Namespace, say: Narrator, stop: asyncio.Event) -> None:
        self.args = args
        self.say = say
        self.stop = stop
        self.outcome = Outcome()
        self.prometheus: LocalPrometheus | None = None

    async def run(self, token: str, recipient: str | None) -> None:
        async with contextlib.AsyncExitStack() as stack:
            await self._run(stack, token, recipient)

    async def _start_broker(self, stack: contextlib.AsyncExitStack) -> EmbeddedBroker:
        broker = EmbeddedBroker()
        starting = asyncio.ensure_future(broker.astart())

        async def stop_broker() -> None:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await starting  # a start cut short by Ctrl-C finishes, then stops
            await broker.astop(grace=2.0)  # in-memory: nothing to flush
            self.say.say("stop", "broker stopped")

        stack.push_async_callback(stop_broker)
        await asyncio.shield(starting)
        return broker

    async def _run(
        self, stack: contextlib.AsyncExitStack, token: str, recipient: str | None
    ) -> None:
        say = self.say
        broker = await self._start_broker(stack)
        kafka = KafkaSettings.from_env(
            {
                "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers,
                "KAFKA_CLIENT_ID": "coffeebuddy-dev",
                # The embedded broker has no InitProducerId: idempotence off, explicitly.
                "KAFKA_ENABLE_IDEMPOTENCE": "false",
                "KAFKA_SESSION_TIMEOUT_MS": "6000",
                "KAFKA_HEARTBEAT_INTERVAL_MS": "500",
            }
        )
        say.say("broker", f"embedded Kafka broker on {broker.bootstrap_servers}")

        report = await ensure_topics(kafka, "dev")
        say.say("topics", f"provisioned from the catalog (env dev): {report.summary()}")
        for result in report.applied:
            say.more(f"created {result.change.resource}")

        slack: FakeSlackServer | None = None
        if token:
            base_url = os.environ.get("SLACK_API_BASE_URL", "https://slack.com/api/")
            say.say("slack", f"real Slack at {base_url}; DMs go to {recipient}")
        else:
            slack = await stack.enter_async_context(FakeSlackServer())
            token, base_url = slack.token, slack.base_url
            say.say("slack", f"Slack stand-in at {base_url} (set SLACK_BOT_TOKEN for real Slack)")

        http_port = free_port()
        if self.args.observe:
            await self._start_prometheus(stack, http_port)

        service = ReminderWorkerService(
            ServiceSettings.from_env(
                {
                    "SLACK_BOT_TOKEN": token,
                    "SLACK_API_BASE_URL": base_url,
                    "WORKER_HTTP_HOST": "127.0.0.1",
                    "WORKER_HTTP_PORT": str(http_port),
                    "WORKER_DRAIN_TIMEOUT_S": "10",
                }
            ),
            kafka,
            registry=CollectorRegistry(),
        )
        service_task = asyncio.create_task(service.run(), name="reminder-worker")

        async def stop_worker() -> None:
            say.say("stop", "stopping the worker (drains, then leaves its group)")
            if not service_task.done():
                service.request_stop()
            code = await asyncio.shield(service_task)
            self.outcome.worker_code = code
            say.say("stop", f"worker stopped (exit code {code})")

        stack.push_async_callback(stop_worker)
        await wait_until(
            lambda: service.ready().ok or service_task.done(),
            timeout=60,
            message="reminder worker ready (/readyz)",
        )
        if service_task.done():
            say.say("worker", f"failed to start (exit code {service_task.result()})")
            self.outcome.demo_ok = False
            return
        say.say(
            "worker", f"reminder worker ready; probes and metrics on http://127.0.0.1:{http_port}"
        )
        say.more("/healthz /readyz /metrics")

        expect = Expectation()
        reporter = Reporter(say, expect, slack)
        producer = await stack.enter_async_context(KafkaEventProducer(kafka))
        watching = asyncio.Event()
        watchers = [
            asyncio.create_task(
                _watch(kafka, REMINDER_STATE_CHANGELOG_TOPIC, reporter.state, watching)
            ),
            *(
                asyncio.create_task(_watch(kafka, dlq, reporter.dead_letter, watching))
                for dlq in (REMINDER_EVENTS_DLQ_TOPIC, RUN_EVENTS_DLQ_TOPIC)
            ),
        ]

        async def stop_watchers() -> None:
            watching.set()
            for task in watchers:
                task.cancel()
            await asyncio.gather(*watchers, return_exceptions=True)

        stack.push_async_callback(stop_watchers)
        await publish_demo(producer, say, recipient, expect)
        await self._await_demo(expect, slack)
        if self.args.exit_after_demo:
            return
        _next_steps(say, broker.bootstrap_servers, recipient)
        stopped = asyncio.create_task(self.stop.wait())
        await asyncio.wait([stopped, service_task], return_when=asyncio.FIRST_COMPLETED)
        stopped.cancel()

    async def _start_prometheus(self, stack: contextlib.AsyncExitStack, http_port: int) -> None:
        binary = find_prometheus()
        assert binary is not None  # checked before anything started
        prom = LocalPrometheus(binary, port=free_port(), target=f"127.0.0.1:{http_port}")
        self.prometheus = prom

        async def stop_prometheus() -> None:
            await prom.stop()
            self.say.say("stop", "prometheus stopped")

        stack.push_async_callback(stop_prometheus)
        prom.start()
        await prom.ready()
        alerts = sum(p.read_text().count("- alert:") for p in prom.rules)
        self.say.say(
            "observe",
            f"Prometheus on {prom.url} (scrapes the worker every {prom.scrape_interval}; "
            f"{alerts} alert rules from infra/prometheus/rules loaded)",
        )
        self.say.more(f"alerts:       {prom.url}/alerts")
        self.say.more(f"lateness p99: {prom.graph_url(LATENESS_P99)}")

    async def _await_demo(self, expect: Expectation, slack: FakeSlackServer | None) -> None:
        say = self.say
        with contextlib.suppress(TimeoutError):
            await wait_until(lambda: not expect.outstanding, timeout=40, message="demo DMs")
        # A cancelled reminder is proven absent only after its due time has passed.
        latest_due = max(d.due_at for d in expect.due.values())
        await wait_until(
            lambda: datetime.now(UTC) > latest_due + timedelta(seconds=1),
            timeout=40,
            message="last due time passed",
        )
        wanted = len(expect.due) - len(expect.cancelled)
        late = max(expect.delivered.values(), default=0.0)
        leaked = expect.cancelled & set(expect.delivered)
        dm_count = len(slack.messages()) if slack is not None else len(expect.delivered)
        self.outcome.demo_ok = not expect.outstanding and not leaked and dm_count == wanted
        say.say(
            "summary",
            f"{len(expect.delivered)} of {wanted} expected DMs delivered "
            f"(worst lateness {late * 1000:.0f} ms); {dm_count} DM(s) in Slack; "
            f"cancelled reminder {'SENT (bug!)' if leaked else 'not sent'}.",
        )


async def _main(args: argparse.Namespace, say: Narrator) -> int:
    token = os.environ.get("SLACK_BOT_TOKEN", "").strip()
    recipient = os.environ.get(DEV_USER_ENV, "").strip() or None
    if token and not recipient:
        print(
            f"SLACK_BOT_TOKEN is set: also set {DEV_USER_ENV} to the Slack user id (U...) who "
            "should receive the demo DMs.",
            file=sys.stderr,
        )
        return 2
    if args.observe and find_prometheus() is None:
        print(MISSING, file=sys.stderr)
        return 2
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    session = Session(args, say, stop)
    running = asyncio.create_task(session.run(token, recipient))
    signals: list[int] = []

    def on_signal() -> None:
        signals.append(1)
        if len(signals) > 1:
            say.say("stop", "second Ctrl-C: exiting at once")
            if session.prometheus is not None:
                session.prometheus.kill()
            os._exit(EXIT_INTERRUPTED)  # the broker dies with this process (parent-death signal)
        say.say("stop", "Ctrl-C: stopping (the worker first, then the broker)")
        stop.set()
        if session.outcome.demo_ok is None:
            running.cancel()  # cut the start-up or the demo short; what started is stopped

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)
    print("CoffeeBuddy reminder worker: local demo (Ctrl-C stops it)\n", flush=True)
    try:
        await running
    except asyncio.CancelledError:
        say.say("stop", "stopped during start-up or the demo")
        return EXIT_INTERRUPTED
    outcome = session.outcome
    code = 0 if outcome.demo_ok and outcome.worker_code == 0 else 1
    say.say("stop", f"everything stopped (exit code {code})")
    return code


def _parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n", 1)[0],
        epilog=__doc__.split("\n\n", 2)[2],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--exit-after-demo", action="store_true", help="stop after the demo")
    parser.add_argument(
        "--observe",
        action="store_true",
        help="also run a local Prometheus that scrapes the worker with infra/prometheus's rules",
    )
    parser.add_argument(
        "--verbose", action="store_true", help="show the worker's JSON logs and library logs"
    )
    return parser.parse_args(argv)


def main() -> int:
    args = _parse()
    say = Narrator()
    if args.verbose:
        configure_logging("INFO")
    else:
        quiet_logging(say)
    try:
        return asyncio.run(_main(args, say))
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    raise SystemExit(main())
