"""The shipped Grafana dashboard and provisioning files: valid, importable as shipped, and complete."""

from __future__ import annotations

import json

import yaml
from promql import DASHBOARD, REPO, dashboard_expressions, metric_names

GRAFANA = REPO / "deploy/grafana"


def test_dashboard_is_importable_json() -> None:
    doc = json.loads(DASHBOARD.read_text())
    assert doc["schemaVersion"] >= 39
    assert doc["uid"] == "dlp-overview" and doc["title"]
    assert doc["id"] is None  # an id would clash with the importing Grafana's own
    # The data source is a template variable, so the same file works provisioned and imported by hand.
    assert [i["name"] for i in doc["__inputs"]] == ["DS_PROMETHEUS"]
    variables = {v["name"]: v for v in doc["templating"]["list"]}
    assert variables["DS_PROMETHEUS"]["type"] == "datasource" and variables["DS_PROMETHEUS"]["query"] == "prometheus"
    ids = [p["id"] for p in doc["panels"]]
    assert len(ids) == len(set(ids))
    for panel in doc["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${DS_PROMETHEUS}"
            assert target["refId"]


def test_panels_fit_the_grid_without_overlapping() -> None:
    doc = json.loads(DASHBOARD.read_text())
    cells: dict[tuple[int, int], str] = {}
    for panel in doc["panels"]:
        g = panel["gridPos"]
        assert g["x"] >= 0 and g["x"] + g["w"] <= 24, panel["title"]
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps {cells[(x, y)]}"
                cells[(x, y)] = panel["title"]


def test_dashboard_covers_what_operators_watch() -> None:
    doc = json.loads(DASHBOARD.read_text())
    titles = " | ".join(p["title"].lower() for p in doc["panels"])
    for needed in ("channel and action", "top entities", "p50 / p99", "tempfails", "not inspected",
                   "quarantine backlog", "per-channel health", "shadow", "rule precision"):
        assert needed in titles, needed
    used = set().union(*(metric_names(e) for e in dashboard_expressions()))
    for name in ("dlp_messages_total", "dlp_findings_total", "dlp_inspection_seconds_bucket", "dlp_tempfails_total",
                 "dlp_uninspected_total", "dlp_quarantine_backlog", "dlp_quarantine_oldest_age_seconds",
                 "dlp_service_up", "dlp_shadow_verdicts_total", "dlp_rule_precision"):
        assert name in used, name


def test_provisioning_files() -> None:
    ds = yaml.safe_load((GRAFANA / "provisioning/datasources/dlp-prometheus.yaml").read_text())
    assert ds["apiVersion"] == 1
    [source] = ds["datasources"]
    assert source["type"] == "prometheus" and source["url"].startswith("http")
    boards = yaml.safe_load((GRAFANA / "provisioning/dashboards/dlp.yaml").read_text())
    [provider] = boards["providers"]
    assert provider["type"] == "file" and provider["options"]["path"].startswith("/")
