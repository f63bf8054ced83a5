"""The Grafana dashboard and the Prometheus rules only query metrics the code exports.

Metric names come from `coffeebuddy.infra.kafka.metrics`, so renaming a metric breaks this test
instead of silently emptying a panel or an alert.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from coffeebuddy.infra.kafka import metrics

REPO = Path(__file__).resolve().parent.parent
DASHBOARDS = sorted((REPO / "infra" / "grafana").glob("*.json"))
RULE_FILES = sorted((REPO / "infra" / "prometheus" / "rules").glob("*.yml"))

KEYWORDS = {"and", "or", "unless", "bool", "offset", "inf", "nan", "group_left", "group_right"}
GROUPING = {"by", "without", "on", "ignoring", "group_left", "group_right"}
TOKEN = re.compile(
    r"""(?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)"""
    r"|(?P<matchers>\{[^}]*\})"
    r"|(?P<range>\[[^\]]*\])"
    r"|(?P<number>\d+(?:\.\d+)?(?:[eE][+-]?\d+)?[a-zA-Z]*)"
    r"|(?P<ident>[a-zA-Z_:][a-zA-Z0-9_:]*)"
    r"|(?P<other>.)",
    re.DOTALL,
)
GRAFANA_VARS = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h", "$job": ".*"}


def grafana_to_promql(expr: str) -> str:
    """Replace the Grafana variables the dashboard uses with literal values."""
    for var, value in GRAFANA_VARS.items():
        expr = expr.replace(var, value)
    assert "$" not in expr, f"unknown Grafana variable in {expr!r}"
    return expr


def metric_names(expr: str) -> set[str]:
    """Metric names a PromQL expression selects (functions, keywords, label names excluded)."""
    tokens = [(m.lastgroup, m.group()) for m in TOKEN.finditer(expr)]
    tokens = [(kind, text) for kind, text in tokens if not (kind == "other" and text.isspace())]
    names: set[str] = set()
    i = 0
    while i < len(tokens):
        kind, text = tokens[i]
        following = tokens[i + 1][1] if i + 1 < len(tokens) else ""
        if kind == "ident" and text in GROUPING and following == "(":
            depth, i = 0, i + 1
            while i < len(tokens):  # skip the label list
                depth += {"(": 1, ")": -1}.get(tokens[i][1], 0)
                if depth == 0:
                    break
                i += 1
        elif kind == "ident" and following in {"by", "without"}:
            pass  # an aggregation written `sum by (x) (...)`
        elif kind == "ident" and following != "(" and text not in KEYWORDS | GROUPING:
            names.add(text)
        i += 1
    return names


def exported_series() -> set[str]:
    """Every series name the code's metric bundles expose, with Prometheus's suffixes."""
    registry = CollectorRegistry()
    metrics.KafkaMetrics(registry=registry)
    metrics.ReminderMetrics(registry=registry)
    families = {family.name: family.type for family in registry.collect()}
    series: set[str] = set()
    constants = {
        value
        for name, value in vars(metrics).items()
        if name.isupper() and isinstance(value, str) and value.startswith("coffeebuddy_")
    }
    for constant in constants:
        base = constant.removesuffix("_total")
        kind = families.get(base) or families.get(constant)
        assert kind is not None, f"{constant} is a metric constant no bundle registers"
        if kind == "counter":
            series.add(f"{base}_total")
        elif kind == "histogram":
            series |= {f"{base}_bucket", f"{base}_sum", f"{base}_count"}
        else:
            series.add(constant)
    return series


def dashboard_panels(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in node.get("panels", []):
        yield panel
        yield from dashboard_panels(panel)


def dashboard_queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(where, PromQL) for every panel target and every query variable."""
    queries = [
        (f"panel {panel['title']!r} {target['refId']}", grafana_to_promql(target["expr"]))
        for panel in dashboard_panels(dashboard)
        for target in panel.get("targets", [])
    ]
    for var in dashboard["templating"]["list"]:
        if var["type"] == "query":
            query = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
            inner = re.fullmatch(r"label_values\((.+),\s*\w+\)", query)
            queries.append((f"variable {var['name']}", inner.group(1) if inner else query))
    return queries


def rule_expressions() -> tuple[list[tuple[str, str]], set[str]]:
    exprs, recorded = [], set()
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                name = rule.get("alert") or rule["record"]
                exprs.append((f"{path.name}: {name}", rule["expr"]))
                if "record" in rule:
                    recorded.add(rule["record"])
    return exprs, recorded


def _load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def test_metric_name_extraction() -> None:
    expr = (
        'histogram_quantile(0.99, sum by (kind, le) (rate(foo_bucket{job=~"a|b", le!="1"}[5m])))'
        " > on (kind) group_left (instance) bar offset 5m unless sum without (x) (baz:rec:rate1m)"
        ' or label_replace(up, "dst", "$1", "src", "(.*)") > bool 1e3'
    )
    assert metric_names(expr) == {"foo_bucket", "bar", "baz:rec:rate1m", "up"}


def test_exported_series_follow_prometheus_suffixes() -> None:
    series = exported_series()
    assert metrics.MESSAGES_CONSUMED in series
    assert f"{metrics.REMINDER_LATENESS}_bucket" in series
    assert metrics.REMINDER_LATENESS not in series
    assert metrics.CONSUMER_LAG in series


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_queries_only_exported_metrics(path: Path) -> None:
    known = exported_series() | {"up"} | rule_expressions()[1]
    unknown = {
        where: sorted(metric_names(expr) - known)
        for where, expr in dashboard_queries(_load(path))
        if metric_names(expr) - known
    }
    assert not unknown, f"{path.name} queries metrics the code does not export: {unknown}"


def test_rules_query_only_exported_metrics() -> None:
    exprs, recorded = rule_expressions()
    known = exported_series() | {"up"} | recorded
    unknown = {
        where: sorted(metric_names(e) - known) for where, e in exprs if metric_names(e) - known
    }
    assert not unknown, f"rules query metrics the code does not export: {unknown}"


def test_dashboard_shows_every_exported_metric() -> None:
    shown = set().union(
        *(metric_names(e) for path in DASHBOARDS for _, e in dashboard_queries(_load(path)))
    )
    bases = {re.sub(r"_(bucket|sum|count)$", "", s) for s in shown}
    missing = {s for s in exported_series() if re.sub(r"_(bucket|sum|count)$", "", s) not in bases}
    assert not missing, f"exported metrics no panel shows: {sorted(missing)}"


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_shape(path: Path) -> None:
    dashboard = _load(path)
    assert dashboard["schemaVersion"] >= 36
    assert dashboard["uid"]
    assert dashboard["title"]
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    panels = [p for p in dashboard_panels(dashboard) if p["type"] != "row"]
    ids = [p["id"] for p in dashboard_panels(dashboard)]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in panels:
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["targets"], f"panel {panel['title']!r} has no query"
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]
    cells: set[tuple[int, int]] = set()
    for panel in dashboard_panels(dashboard):
        g = panel["gridPos"]
        assert g["x"] + g["w"] <= 24, f"panel {panel['title']!r} is wider than the grid"
        area = {
            (x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])
        }
        assert not area & cells, f"panel {panel['title']!r} overlaps another"
        cells |= area
    titles = " | ".join(p["title"].lower() for p in panels)
    for topic in (
        "produced",
        "consumed",
        "lag per partition",
        "lateness",
        "pending",
        "dead letters",
        "slack api errors",
        "slack api latency",
        "rebalances",
        "handler duration",
        "ready",
    ):
        assert topic in titles, f"{path.name}: no panel about {topic}"


@pytest.mark.skipif(
    shutil.which("promtool") is None, reason="promtool (Debian prometheus) is not installed"
)
def test_dashboard_queries_parse(tmp_path: Path) -> None:
    """promtool parses every panel query (wrapped as recording rules)."""
    queries = [expr for path in DASHBOARDS for _, expr in dashboard_queries(_load(path))]
    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [{"record": f"dashboard:q{i}", "expr": e} for i, e in enumerate(queries)],
            }
        ]
    }
    rules_file = tmp_path / "dashboard.rules.yml"
    rules_file.write_text(yaml.safe_dump(rules))
    result = subprocess.run(
        ["promtool", "check", "rules", str(rules_file)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
