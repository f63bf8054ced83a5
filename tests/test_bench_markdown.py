"""`hatch run bench --markdown`: this run's tables replace the generated part of
benchmarks/RESULTS.md, the part they replace joins the dated history, the rest is kept."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parent.parent


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_run", REPO / "benchmarks" / "run.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


run = _load()


def _rows(value: float) -> list[object]:
    row = run.BenchRow.of(
        "reminders",
        "memory per pending reminder (100,000 pending)",
        [value, value + 4, value - 2],
        "bytes",
        target="<= 1024 bytes",
        meets=lambda v, _b: v <= 1024,
    )
    base = run.BenchRow.of(
        "kafka", "producer publish_many", [10.0], "msg/s", baseline="raw | aiokafka",
        baseline_samples=[5.0],
    )  # fmt: skip
    return [row, base]


def test_markdown_tables_are_dated_grouped_and_escaped() -> None:
    text = run.render_markdown(
        _rows(832.0), broker="embedded", quick=False, when=datetime(2026, 12, 7, 9, 30, tzinfo=UTC),
        machine="2 CPUs",
    )  # fmt: skip
    assert text.startswith(
        "## Current run: 2026-12-07 (embedded broker, medians of rounds, 2 CPUs)"
    )
    assert "### reminders" in text
    assert "### kafka" in text
    assert "| memory per pending reminder (100,000 pending) | 832 ±0% | bytes | 3 | - | - |" in text
    assert "| <= 1024 bytes | yes |" in text
    assert "| raw \\| aiokafka 5 | 2.00x |" in text
    assert "Load average" not in text
    noted = run.render_markdown(
        _rows(832.0), broker="apache", quick=True, when=datetime(2026, 12, 7, tzinfo=UTC),
        machine="2 CPUs", load=(2.31, 5.3), note="shared with a soak test",
    )  # fmt: skip
    assert "(apache broker, quick: one round, fewer messages, 2 CPUs)" in noted
    assert "`hatch run bench --broker apache --markdown`" in noted
    assert "Load average (1 min) 2.3 at the start, 5.3 at the end." in noted
    assert "\nNote: shared with a soak test\n" in noted


def test_a_new_run_replaces_the_generated_part_and_moves_it_into_the_history() -> None:
    first = run.render_markdown(
        _rows(830.0), broker="embedded", quick=False, when=datetime(2026, 12, 7, tzinfo=UTC),
        machine="2 CPUs",
    )  # fmt: skip
    second = run.render_markdown(
        _rows(832.0), broker="embedded", quick=False, when=datetime(2026, 12, 9, tzinfo=UTC),
        machine="2 CPUs",
    )  # fmt: skip
    existing = (
        f"# Benchmark results\n\nIntro.\n\n{run.BEGIN}\n{run.END}\n\n{run.HISTORY}\n\n"
        "### 2026-12-02: by hand\n\nkept as it is\n"
    )
    once = run.merge_results(existing, first)
    assert once.index("Intro.") < once.index("## Current run: 2026-12-07") < once.index(run.END)
    twice = run.merge_results(once, second)
    current = twice[twice.index(run.BEGIN) : twice.index(run.END)]
    assert "## Current run: 2026-12-09" in current
    assert "2026-12-07" not in current
    history = twice[twice.index(run.HISTORY) :]
    assert history.index("### Run of 2026-12-07") < history.index("### 2026-12-02: by hand")
    assert "#### reminders" in history
    assert "| 830 ±" in history
    assert history.rstrip().endswith("kept as it is")
    assert run.merge_results(None, first).count(run.BEGIN) == 1


def test_the_repos_results_file_has_its_markers_and_history() -> None:
    text = (REPO / "benchmarks" / "RESULTS.md").read_text()
    assert text.index(run.BEGIN) < text.index(run.END) < text.index(run.HISTORY)
    generated = text[text.index(run.BEGIN) : text.index(run.END)]
    assert "## Current run: " in generated, "regenerate with `hatch run bench --markdown`"
    assert "### 20" in text[text.index(run.HISTORY) :]  # dated history entries


def test_markdown_refuses_a_partial_run_over_the_recorded_results() -> None:
    done = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "run.py"), "--markdown", "--quick"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "--markdown replaces the recorded results" in done.stderr
