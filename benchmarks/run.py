"""`hatch run bench`: start one broker, run every bench module, print one table.

Each `benchmarks/bench_<area>.py` exposes `async def run(ctx: BenchContext) -> list[BenchRow]`.
Every row is the median of at least three rounds with its spread; ratios are against baselines
measured in the same run, never asserted in tests.

    hatch run bench                   # full run on the embedded broker, table
    hatch run bench --broker apache   # the same table on Apache Kafka (acks=all, idempotence on)
    hatch run bench --quick           # fewer messages, one round (smoke)
    hatch run bench --json            # machine-readable rows
    hatch run bench --only kafka      # one module (bench_kafka.py)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import json
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from types import ModuleType

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _common import BenchContext, BenchRow  # noqa: E402

from coffeebuddy.infra.kafka.config import KafkaSettings  # noqa: E402
from coffeebuddy.infra.kafka.testing import (  # noqa: E402
    TEST_CLIENT_DEFAULTS,
    ApacheKafka,
    EmbeddedBroker,
)


def _load(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load bench module {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _fmt(value: float | None, spread: float | None = None) -> str:
    if value is None:
        return "-"
    text = f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"
    return text if spread is None else f"{text} ±{spread * 100:.0f}%"


def render_table(rows: list[BenchRow]) -> str:
    """Plain-text table: one line per measurement, ratio against its same-run baseline."""
    header = (
        "group",
        "measurement",
        "median ±spread",
        "unit",
        "rounds",
        "baseline (median ±spread)",
        "ratio",
        "target",
        "met",
    )
    lines = [
        (
            r.group,
            r.name,
            _fmt(r.value, r.spread),
            r.unit,
            str(r.rounds),
            f"{r.baseline} {_fmt(r.baseline_value, r.baseline_spread)}" if r.baseline else "-",
            f"{r.ratio:.2f}x" if r.ratio is not None else "-",
            r.target or "-",
            {True: "yes", False: "NO", None: "-"}[r.met],
        )
        for r in rows
    ]
    widths = [max(len(str(c)) for c in col) for col in zip(header, *lines, strict=False)]
    out = [" | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    out.append("-|-".join("-" * w for w in widths))
    out += [
        " | ".join(str(c).ljust(w) for c, w in zip(line, widths, strict=True)) for line in lines
    ]
    return "\n".join(out)


async def _main(args: argparse.Namespace) -> int:
    modules = sorted(HERE.glob("bench_*.py"))
    if args.only:
        modules = [m for m in modules if m.stem.removeprefix("bench_") in args.only]
    if not modules:
        print("no bench module matched", file=sys.stderr)
        return 1
    rows: list[BenchRow] = []
    failures: list[str] = []
    async with _broker(args.broker) as (bootstrap, env):
        settings = KafkaSettings.from_env(env)
        ctx = BenchContext(
            bootstrap_servers=bootstrap,
            settings=settings,
            quick=args.quick,
            broker=args.broker,
            env=env,
        )
        for path in modules:
            started = time.monotonic()
            print(f"running {path.stem} ...", file=sys.stderr, flush=True)
            try:
                rows += await _load(path).run(ctx)
            except Exception as exc:  # one broken module must not hide the others' numbers
                failures.append(f"{path.stem}: {type(exc).__name__}: {exc}")
            print(f"  {path.stem} took {time.monotonic() - started:.1f}s", file=sys.stderr)
    if args.json:
        print(json.dumps([r.as_dict() for r in rows], indent=2))
    else:
        print(f"broker: {args.broker}" + (" (quick: one round)" if args.quick else ""))
        print(render_table(rows))
    for failure in failures:
        print(f"FAILED {failure}", file=sys.stderr)
    return 1 if failures else 0


@contextlib.asynccontextmanager
async def _broker(kind: str) -> AsyncIterator[tuple[str, dict[str, str]]]:
    """The broker the whole run uses: ``(bootstrap servers, KAFKA_* variables)``."""
    if kind == "apache":
        async with ApacheKafka(name="apache-kafka-bench", heap="1g", quick_jit=False) as cluster:
            yield cluster.bootstrap_servers, cluster.env()  # production defaults: acks=all, idem.
        return
    async with EmbeddedBroker() as broker:
        yield (
            broker.bootstrap_servers,
            {
                **TEST_CLIENT_DEFAULTS,
                "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers,
                # The embedded broker cannot start an idempotent producer (no InitProducerId).
                "KAFKA_ENABLE_IDEMPOTENCE": "false",
            },
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer messages, for a smoke run")
    parser.add_argument(
        "--broker",
        choices=("embedded", "apache"),
        default="embedded",
        help="the embedded Tansu broker (default) or Apache Kafka from its Maven artifacts",
    )
    parser.add_argument("--json", action="store_true", help="print rows as JSON")
    parser.add_argument("--only", nargs="*", help="module suffixes to run (kafka, models, ...)")
    return asyncio.run(_main(parser.parse_args()))


if __name__ == "__main__":
    raise SystemExit(main())
