"""The reminder-worker image, run as deploy/deployment.yaml runs it, against Apache Kafka.

Each test starts the image with testcontainers (over podman's Docker API here) as the pod's
user, with a read-only root, all capabilities dropped, no privilege escalation, the `/tmp`
emptyDir, the CA volume, the memory and CPU limits and the ConfigMap's environment (only the
broker and Slack addresses changed), on the host network. The worker authenticates over
SASL_SSL as the catalog's principal with only the catalog's ACLs (`catalog_kafka`), and posts to
the fake Slack over HTTP. The OCI image has no HEALTHCHECK: readiness is what the manifest's
probes check, on the manifest's port and paths, within the startup probe's budget.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import aiohttp
import pytest

from coffeebuddy.infra.kafka.producer import KafkaEventProducer
from coffeebuddy.infra.kafka.testing import ApacheKafka, wait_until
from coffeebuddy.infra.kafka.topics import REMINDER_EVENTS_TOPIC
from coffeebuddy.services.fake_slack import FakeSlackServer

if TYPE_CHECKING:
    from conftest import Deployed, DeployedWorker, LeakCheck, Workers

    from coffeebuddy.infra.kafka.models import ReminderScheduled

pytestmark = [pytest.mark.container, pytest.mark.usefixtures("leak_check")]


async def _publish(cluster: ApacheKafka, events: list[ReminderScheduled]) -> None:
    """As the Slack app publishes them: its own SASL user and ACLs."""
    settings = cluster.settings("SASL_SSL", user="slack-app", mechanism="SCRAM-SHA-512")
    async with KafkaEventProducer(settings) as producer:
        await producer.publish_many(REMINDER_EVENTS_TOPIC, events)


def _due(seconds: float) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=seconds)


def _scan(leak_check: LeakCheck, slack: FakeSlackServer, *workers: DeployedWorker) -> None:
    """The containers' logs join the leak check; the bot token must not be in them either."""
    leak_check.secrets.append(slack.token)
    for worker in workers:
        leak_check.scan(f"container {worker.name} log", worker.logs())


async def test_runs_as_the_pod_and_turns_ready(
    catalog_kafka: ApacheKafka,
    fake_slack: FakeSlackServer,
    deployed: Deployed,
    leak_check: LeakCheck,
    report: list[str],
) -> None:
    pod = deployed.pod
    worker = deployed.start(catalog_kafka, fake_slack)
    seconds = await worker.wait_ready()
    report.append(f"start to /readyz 200 on Apache Kafka (SASL_SSL): {seconds:.1f} s")
    status = worker.exec_python(
        "import os\n"
        "fields = dict(l.split(':\\t') for l in open('/proc/1/status').read().splitlines()"
        " if ':\\t' in l)\n"  # PID 1: the worker itself
        "print(fields['Uid'].split()[0], fields['Gid'].split()[0], os.getuid(), os.getgid())\n"
        "print(fields['CapEff'], fields['CapBnd'], fields['NoNewPrivs'])\n"
        "for path in ('/', '/usr/local/lib', '/tmp'):\n"
        "    try:\n"
        "        open(os.path.join(path, 'probe'), 'w').close()\n"
        "        print(path, 'writable')\n"
        "    except OSError as exc:\n"
        "        print(path, exc.strerror)\n"
    ).splitlines()
    assert status[0] == f"{pod.uid} {pod.gid} {pod.uid} {pod.gid}"  # the worker, an exec
    assert status[1] == "0000000000000000 0000000000000000 1"  # no capability, no escalation
    assert status[2:] == [
        "/ Read-only file system",
        "/usr/local/lib Read-only file system",
        "/tmp writable",
    ]
    limits = worker.wrapped.attrs["HostConfig"]
    assert limits["Memory"] == pod.memory_limit
    assert limits["ReadonlyRootfs"] is True
    for probe in pod.probes.values():
        code, body = await worker.get(probe.path, timeout=probe.timeout_s)
        assert code == 200, (probe.path, body)
    code, metrics = await worker.get(pod.annotations["prometheus.io/path"])
    assert code == 200
    assert "coffeebuddy_reminder_worker_ready 1.0" in metrics
    code, _ = worker.terminate()
    assert code == 0, worker.log_tail()
    _scan(leak_check, fake_slack, worker)


async def test_one_reminder_gives_exactly_one_dm(
    catalog_kafka: ApacheKafka,
    fake_slack: FakeSlackServer,
    deployed: Deployed,
    workers: Workers,
    leak_check: LeakCheck,
) -> None:
    worker = deployed.start(catalog_kafka, fake_slack)
    await worker.wait_ready()
    event = workers.reminder("ctr-one", "U0CTRONE", _due(1))
    await _publish(catalog_kafka, [event])
    await wait_until(
        lambda: workers.delivered(fake_slack)["ctr-one"] >= 1, timeout=30, message="the DM"
    )

    async def settled() -> bool:
        return await worker.metric("coffeebuddy_reminders_pending") == 0

    await wait_until(settled, timeout=30, message="no reminder pending in the container")
    code, _ = worker.terminate()
    assert code == 0, worker.log_tail()
    assert workers.delivered(fake_slack)["ctr-one"] == 1
    (message,) = fake_slack.messages_with_block_id("ctr-one")
    assert message.channel == fake_slack.channel_for("U0CTRONE")
    _scan(leak_check, fake_slack, worker)


async def test_sigterm_drains_and_exits_zero_within_the_grace_period(
    catalog_kafka: ApacheKafka,
    fake_slack: FakeSlackServer,
    deployed: Deployed,
    workers: Workers,
    leak_check: LeakCheck,
) -> None:
    """SIGTERM while a Slack post is in flight and another reminder waits: the drain finishes
    inside WORKER_DRAIN_TIMEOUT_S, before the kubelet's SIGKILL at the grace period."""
    pod = deployed.pod
    worker = deployed.start(catalog_kafka, fake_slack)
    await worker.wait_ready()
    fake_slack.slow(3.0)  # the next chat.postMessage answers after 3 s
    await _publish(
        catalog_kafka,
        [
            workers.reminder("ctr-inflight", "U0CTRFLY", _due(1)),
            workers.reminder("ctr-later", "U0CTRLATER", _due(600)),
        ],
    )
    await wait_until(
        lambda: len(fake_slack.calls("chat.postMessage")) >= 1,
        timeout=30,
        message="the post in flight",
    )
    # SIGTERM as the kubelet sends it; meanwhile the readiness probe must say "draining" (the
    # endpoints controller takes the pod out of the Service on it)
    readiness = pod.probes["readiness"]
    stopping = asyncio.ensure_future(asyncio.to_thread(worker.terminate))
    seen: list[tuple[int, str]] = []
    while not stopping.done():
        with contextlib.suppress(OSError, aiohttp.ClientError, asyncio.TimeoutError):
            seen.append(await worker.get(readiness.path, timeout=readiness.timeout_s))
        await asyncio.wait({stopping}, timeout=0.1)  # the probe's pace, not a synchronisation
    code, seconds = await stopping
    logs = worker.logs()
    assert code == 0, worker.log_tail()
    assert seconds < float(pod.config["WORKER_DRAIN_TIMEOUT_S"]) < pod.grace_s
    assert any(status == 503 and "draining" in body for status, body in seen), seen
    assert all(status != 200 for status, _ in seen[1:]), seen
    assert "reminder worker stopped (exit code 0)" in logs
    assert workers.delivered(fake_slack) == {"ctr-inflight": 1}
    _scan(leak_check, fake_slack, worker)


async def test_sigkill_and_a_restart_send_nothing_twice(
    catalog_kafka: ApacheKafka,
    fake_slack: FakeSlackServer,
    deployed: Deployed,
    workers: Workers,
    leak_check: LeakCheck,
    report: list[str],
) -> None:
    """SIGKILL (OOM, node loss) with a post in flight and reminders sent before; a new container
    restores the changelog, waits out the dead one's claim, finds its post in the DM history and
    sends only what was never sent: each reminder exactly once."""
    first = deployed.start(catalog_kafka, fake_slack)
    await first.wait_ready()
    before = [workers.reminder(f"ctr-before-{i}", f"U0CTRB{i}", _due(1)) for i in range(3)]
    await _publish(catalog_kafka, before)
    await wait_until(
        lambda: {e.data.reminder_id for e in before} <= set(workers.delivered(fake_slack)),
        timeout=30,
        message="the first three DMs",
    )
    fake_slack.slow(60.0)  # stored by Slack at once, answered long after the kill
    await _publish(catalog_kafka, [workers.reminder("ctr-killed", "U0CTRKILL", _due(1))])
    await wait_until(
        lambda: workers.delivered(fake_slack)["ctr-killed"] == 1,
        timeout=30,
        message="the post in flight at the kill",
    )
    assert first.kill() == 137
    after = [workers.reminder(f"ctr-after-{i}", f"U0CTRA{i}", _due(2)) for i in range(3)]
    await _publish(catalog_kafka, after)  # due while no worker runs

    second = deployed.start(catalog_kafka, fake_slack)
    seconds = await second.wait_ready()
    report.append(
        f"start to /readyz 200 after a SIGKILLed member (Apache Kafka): {seconds:.1f} s "
        "(the dead member's session timeout)"
    )
    ids = {e.data.reminder_id for e in [*before, *after]} | {"ctr-killed"}

    def history_checked() -> bool:
        """The new owner's fence: it waited out the dead one's claim, then found the post."""
        return any(
            record.get("reminder_id") == "ctr-killed"
            and str(record.get("message", "")).startswith("earlier post found")
            for record in second.records()
        )

    await wait_until(history_checked, timeout=60, message="ctr-killed found in the DM history")
    await wait_until(
        lambda: ids <= set(workers.delivered(fake_slack)),
        timeout=30,
        message="every reminder delivered after the restart",
    )
    code, _ = second.terminate()
    assert code == 0, second.log_tail()
    assert {k: v for k, v in workers.delivered(fake_slack).items() if k in ids} == dict.fromkeys(
        ids, 1
    )
    _scan(leak_check, fake_slack, first, second)
