"""Every Prometheus metric, defined once. Label values come from fixed sets only (invariant 5):
channel, action, entity, detector, reason, rule names from the policy, sink kinds — never users,
addresses, hosts or values.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import Counter, Gauge, Histogram, Info

from dlp import __version__
from dlp.model import Action, Reason

# The fixed label sets that dashboards and alerts rely on (pre-initialised so they show zeros).
CHANNELS = ("smtp", "web", "passive")
ACTIONS = tuple(str(a) for a in Action)
REASONS = tuple(str(r) for r in Reason)
SERVICES = ("metrics", "smtp", "proxy", "console")
ALERT_SINKS = ("jsonl", "syslog", "webhook")
FAIL_MODES = ("tempfail", "block", "open")

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_SIZE_BUCKETS = (1e3, 1e4, 1e5, 1e6, 1e7, 1e8)

BUILD_INFO = Info("dlp_build", "Version of the running dlp")
BUILD_INFO.info({"version": __version__})

# Inspection core
MESSAGES = Counter("dlp_messages_total", "Messages inspected, by channel and verdict action", ["channel", "action"])
SHADOW_VERDICTS = Counter(
    "dlp_shadow_verdicts_total", "Verdicts computed but not enforced (monitor-only)", ["channel", "action"]
)
FINDINGS = Counter("dlp_findings_total", "Findings, by entity and detector", ["entity", "detector"])
RULE_MATCHES = Counter("dlp_rule_matches_total", "Policy rules that matched", ["rule"])
UNINSPECTED = Counter("dlp_uninspected_total", "Content not inspected, by reason", ["channel", "reason"])
INSPECTION_SECONDS = Histogram(
    "dlp_inspection_seconds", "Time to inspect one message", ["channel"], buckets=_LATENCY_BUCKETS
)
MESSAGE_BYTES = Histogram("dlp_message_bytes", "Size of inspected messages", ["channel"], buckets=_SIZE_BUCKETS)
INSPECTED_BYTES = Counter("dlp_inspected_bytes_total", "Raw bytes handed to inspection", ["channel"])
INSPECTION_ERRORS = Counter("dlp_inspection_errors_total", "Inspections that failed", ["channel", "reason"])
FAIL_MODE = Counter(
    "dlp_fail_mode_applied_total", "Failure mode applied after an inspection error", ["channel", "mode"]
)
POOL_QUEUE_DEPTH = Gauge("dlp_pool_queue_depth", "Messages waiting for or in the inspection pool")
INCIDENTS = Counter("dlp_incidents_total", "Incidents recorded", ["channel", "action", "severity"])

# SMTP relay
SMTP_SESSIONS = Gauge("dlp_smtp_sessions", "Open SMTP sessions")
SMTP_REPLIES = Counter("dlp_smtp_replies_total", "Replies to end of DATA, by class", ["code"])
SMTP_FORWARDED = Counter("dlp_forwarded_total", "Messages accepted by the next hop")
SMTP_NEXT_HOP_ERRORS = Counter("dlp_next_hop_errors_total", "Next-hop failures", ["kind"])
SMTP_TEMPFAILS = Counter("dlp_tempfails_total", "4xx replies the relay sent, by reason", ["reason"])
SMTP_REJECTED = Counter("dlp_smtp_rejected_total", "Protocol-level refusals, by reason", ["reason"])
POSSIBLE_DUPLICATES = Counter(
    "dlp_possible_duplicates_total", "Messages whose delivery outcome is unknown (may be duplicated)"
)

# Quarantine and store
QUARANTINE_WRITES = Counter("dlp_quarantine_writes_total", "Originals written to quarantine")
QUARANTINE_WRITE_ERRORS = Counter("dlp_quarantine_write_errors_total", "Quarantine writes that failed")
QUARANTINE_BACKLOG = Gauge("dlp_quarantine_backlog", "Quarantined items awaiting a decision")
QUARANTINE_OLDEST_AGE = Gauge("dlp_quarantine_oldest_age_seconds", "Age of the oldest undecided item")
RELEASES = Counter("dlp_releases_total", "Quarantined messages released to the next hop")

# Alert sinks
ALERTS_SENT = Counter("dlp_alerts_sent_total", "Alerts delivered, by sink kind", ["sink"])
ALERT_SINK_FAILURES = Counter("dlp_alert_sink_failures_total", "Alert deliveries that failed", ["sink"])
ALERTS_DROPPED = Counter("dlp_alerts_dropped_total", "Alerts dropped because a sink queue was full", ["sink"])

# Web proxy
WEB_BLOCKED = Counter("dlp_web_blocked_total", "Requests or websocket messages blocked", ["reason"])

# Passive capture
CAPTURE_PACKETS = Counter("dlp_capture_packets_total", "Packets read from captures and interfaces")
CAPTURE_DROPS = Counter("dlp_capture_drops_total", "Packets dropped by the kernel or capture")
REASSEMBLY_GAPS = Counter("dlp_reassembly_gaps_total", "TCP streams with missing segments")
CAPTURE_ANOMALIES = Counter("dlp_capture_anomalies_total", "Reassembly anomalies", ["kind"])
CAPTURE_EVICTED_BYTES = Counter("dlp_capture_evicted_bytes_total", "Stream bytes evicted uninspected")

# Analyst feedback
RULE_PRECISION = Gauge("dlp_rule_precision", "Confirmed / (confirmed + false positive), per rule", ["rule"])
DETECTOR_PRECISION = Gauge(
    "dlp_detector_precision", "Confirmed / (confirmed + false positive), per detector", ["detector"]
)

# Process health (refreshed by dlp.metrics_server)
SERVICE_UP = Gauge("dlp_service_up", "1 while a service of this process is listening", ["service"])
STORE_WRITABLE = Gauge("dlp_store_writable", "1 when the last health probe could write to the data directory")
REFRESH_ERRORS = Counter(
    "dlp_metrics_refresh_errors_total", "Failed refreshes of store-derived gauges", ["source"]
)


def preinitialise(rules: Iterable[str] = (), detector_entities: Iterable[tuple[str, str]] = ()) -> None:
    """Create every series of the fixed label sets now, so that dashboards and rate() see zeros rather
    than gaps before the first event. `rules` come from the policy; `detector_entities` are the
    (entity, detector) pairs of the registered detectors."""
    for channel in CHANNELS:
        for action in ACTIONS:
            MESSAGES.labels(channel, action)
            SHADOW_VERDICTS.labels(channel, action)
        for reason in REASONS:
            UNINSPECTED.labels(channel, reason)
        for reason in ("timeout", "inspection_error"):
            INSPECTION_ERRORS.labels(channel, reason)
        for mode in FAIL_MODES:
            FAIL_MODE.labels(channel, mode)
        INSPECTION_SECONDS.labels(channel)
        MESSAGE_BYTES.labels(channel)
        INSPECTED_BYTES.labels(channel)
    for sink in ALERT_SINKS:
        ALERTS_SENT.labels(sink)
        ALERT_SINK_FAILURES.labels(sink)
        ALERTS_DROPPED.labels(sink)
    for service in SERVICES:
        SERVICE_UP.labels(service)
    for rule in rules:
        RULE_MATCHES.labels(rule)
    for entity, detector in detector_entities:
        FINDINGS.labels(entity, detector)

# Sender notifications (dlp.notifications). outcome: sent, failed, rate_limited, dropped (queue full).
NOTIFICATION_OUTCOMES = ("sent", "failed", "rate_limited", "dropped")
NOTIFICATIONS = Counter("dlp_notifications_total", "Notifications to senders of held or blocked mail", ["outcome"])
for _outcome in NOTIFICATION_OUTCOMES:
    NOTIFICATIONS.labels(_outcome)
