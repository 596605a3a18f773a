"""Metric names used by the shipped dashboard and alert rules, and their PromQL expressions."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
DASHBOARD = REPO / "deploy/grafana/dashboards/dlp.json"
RULES = REPO / "deploy/prometheus/rules/dlp.rules.yml"

# Series Prometheus makes itself, not the exporter.
PROMETHEUS_SERIES = {"up"}
_KEYWORDS = {
    "sum", "avg", "min", "max", "count", "topk", "bottomk", "rate", "irate", "increase", "histogram_quantile",
    "by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "absent", "changes",
    "clamp_min", "clamp_max", "offset", "bool", "label_values", "le", "delta", "deriv", "abs", "time",
}


def dashboard_expressions() -> list[str]:
    doc = json.loads(DASHBOARD.read_text())
    exprs = []
    for panel in doc["panels"]:
        for target in panel.get("targets", []):
            exprs.append(target["expr"])
    return exprs


def rule_expressions() -> dict[str, str]:
    doc = yaml.safe_load(RULES.read_text())
    return {rule["alert"]: rule["expr"] for group in doc["groups"] for rule in group["rules"]}


def metric_names(expr: str) -> set[str]:
    """Metric names in a PromQL expression (label names inside {...} and `by (...)` are skipped)."""
    stripped = re.sub(r"\{[^}]*\}", "{}", expr)  # selectors' label matchers
    stripped = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", stripped)
    stripped = re.sub(r"\[[^\]]*\]", "[]", stripped)  # ranges like [5m] and [$__rate_interval]
    stripped = re.sub(r"\"[^\"]*\"", "", stripped)
    names = set(re.findall(r"(?<![\w$.])[a-zA-Z_:][a-zA-Z0-9_:]*", stripped))
    return {n for n in names if n not in _KEYWORDS and not n.isdigit() and not n.startswith("__")}


def used_metric_names() -> dict[str, set[str]]:
    """metric name -> where it is used ("dashboard" / alert names)."""
    used: dict[str, set[str]] = {}
    for expr in dashboard_expressions():
        for name in metric_names(expr):
            used.setdefault(name, set()).add("dashboard")
    for alert, expr in rule_expressions().items():
        for name in metric_names(expr):
            used.setdefault(name, set()).add(alert)
    return used
