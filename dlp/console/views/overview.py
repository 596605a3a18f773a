"""The overview: incidents over time by action, channel and entity; backlog; oldest open incidents; top
senders; per-rule and per-detector precision from the analysts' verdicts."""

from __future__ import annotations

import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from dlp.console import charts
from dlp.console.users import Role
from dlp.console.views.common import blocking, console_of, error_page, render, require

# period -> (length, bucket, bucket format)
PERIODS = {"24h": (timedelta(hours=24), "hour", "%Y-%m-%dT%H:00"),
           "14d": (timedelta(days=14), "day", "%Y-%m-%d"),
           "90d": (timedelta(days=90), "day", "%Y-%m-%d")}
ACTION_ORDER = ("alert", "quarantine", "block", "pass")


def _buckets(now: datetime, length: timedelta, bucket: str, fmt: str) -> list[str]:
    step = timedelta(hours=1) if bucket == "hour" else timedelta(days=1)
    start = now - length + step
    out, t = [], start
    while t <= now:
        out.append(t.strftime(fmt))
        t += step
    return out


def _by_key(series: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = defaultdict(dict)
    for row in series:
        out[str(row["key"])][row["bucket"]] = int(row["count"])
    return out


def _precision(counts: dict[str, tuple[int, int]]) -> list[dict[str, Any]]:
    rows = []
    for name, (confirmed, false_positive) in counts.items():
        decided = confirmed + false_positive
        rows.append({"name": name, "confirmed": confirmed, "false_positive": false_positive,
                     "precision": confirmed / decided if decided else None})
    return sorted(rows, key=lambda r: (r["precision"] if r["precision"] is not None else 2, r["name"]))


@require(Role.VIEWER)
async def overview(request: Request) -> Response:
    c = console_of(request)
    period = request.query_params.get("period", "14d")
    if period not in PERIODS:
        return error_page(request, 400, "Bad period", "Choose 24h, 14d or 90d.")
    length, bucket, fmt = PERIODS[period]
    now = datetime.now(UTC)
    since = now - length

    def load() -> dict[str, Any]:
        return {"overview": c.store.overview(since=since, until=None, bucket=bucket),
                "precision": c.store.precision(), "backlog": c.store.backlog()}

    data = await blocking(load)
    ov = data["overview"]
    buckets = _buckets(now, length, bucket, fmt)
    by_action = _by_key(ov["by_action"])
    by_channel = _by_key(ov["by_channel"])
    by_entity = _by_key(ov["by_entity"])
    actions = [a for a in ACTION_ORDER if a in by_action] + sorted(set(by_action) - set(ACTION_ORDER))
    short = 5  # the axis shows "07-14" (days) or "13:00" (hours)
    return render(request, "overview.html", {
        "period": period, "periods": list(PERIODS), "total": ov["total"],
        "action_chart": charts.stacked_bars(buckets, by_action, actions, "Incidents by action", short),
        "action_legend": charts.legend(actions),
        "channel_chart": charts.stacked_bars(buckets, by_channel, sorted(by_channel), "Incidents by channel", short),
        "channel_legend": charts.legend(sorted(by_channel)),
        "action_totals": sorted(((k, sum(v.values())) for k, v in by_action.items()), key=lambda kv: -kv[1]),
        "channel_totals": sorted(((k, sum(v.values())) for k, v in by_channel.items()), key=lambda kv: -kv[1]),
        "entity_totals": sorted(((k, sum(v.values())) for k, v in by_entity.items()), key=lambda kv: -kv[1]),
        "by_status": ov["by_status"], "oldest_open": ov["oldest_open"], "top_senders": ov["top_senders"],
        "rule_precision": _precision(data["precision"]["rules"]),
        "detector_precision": _precision(data["precision"]["detectors"]),
        "backlog": data["backlog"], "now": time.time(),
    })
