"""Settings: embedded defaults, then a TOML config file, then DLP_* environment variables, then flags.

Every default lives here and only here. Sections are frozen dataclasses; an unknown key or a value of
the wrong type is a ConfigError that names the key.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MiB = 1024 * 1024


class ConfigError(Exception):
    """A configuration problem an operator can fix; the message names the file and key."""


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds on the work one message may cause (design invariant 4)."""

    max_message_bytes: int = 64 * MiB  # raw input accepted for inspection
    max_text_chars: int = 32 * 1024 * 1024  # extracted text scanned per message
    max_part_chars: int = 8 * 1024 * 1024  # extracted text scanned per part
    mime_depth: int = 20
    archive_depth: int = 6
    archive_members: int = 10_000
    member_bytes: int = 64 * MiB
    total_extracted_bytes: int = 256 * MiB
    compression_ratio: int = 200
    blob_decode_bytes: int = 4 * MiB  # opportunistic base64/hex/percent decoding per part
    pdf_pages: int = 2000  # pages read per PDF (the rest reported truncated)
    time_budget_seconds: float = 30.0


@dataclass(frozen=True, slots=True)
class InspectionSettings:
    workers: int = 0  # process-pool size; 0 = one per core
    worker_memory_mb: int = 3072  # address-space limit of each inspection process (a bomb fails closed); 0 = none
    policy_file: str = ""  # an operator's override file, merged over the shipped policy
    limits: Limits = field(default_factory=Limits)


@dataclass(frozen=True, slots=True)
class SmtpSettings:
    listen: str = "127.0.0.1:10025"  # HOST:PORT, or "off"
    next_hop: str = ""  # HOST:PORT; empty = the demo outbox folder under the data directory
    hostname: str = "dlp.localhost"
    max_message_bytes: int = 32 * MiB
    max_recipients: int = 100
    max_line_length: int = 998
    max_sessions: int = 200
    max_sessions_per_ip: int = 50
    idle_timeout_seconds: float = 60.0
    forward_timeout_seconds: float = 120.0
    next_hop_connections: int = 20  # open at most (busy + idle), like Postfix's destination concurrency
    next_hop_messages_per_connection: int = 100  # then the connection is closed and a new one opened
    next_hop_idle_seconds: float = 5.0  # an idle connection is closed after this
    fail_mode: str = "tempfail"  # "tempfail" | "open" (forward, stamped X-DLP-Unscanned)
    quarantine_reply: str = "accept"  # "accept" (250) | "reject" (550 with the incident id)
    min_free_bytes: int = 256 * MiB  # below this, 452 at MAIL FROM
    tls_cert: str = ""
    tls_key: str = ""
    require_tls: bool = False
    auth_users_file: str = ""  # optional: "user:argon2hash" lines; empty = no AUTH offered
    auth_required: bool = True  # with a users file: MAIL needs AUTH first
    auth_allow_plaintext: bool = False  # offer AUTH before STARTTLS (only on a trusted loopback hop)
    max_hops: int = 3  # our own X-DLP-Inspected headers a message may carry before it is a loop (554)


@dataclass(frozen=True, slots=True)
class ProxySettings:
    listen: str = "127.0.0.1:8080"  # HOST:PORT, or "off"
    mode: str = "regular"  # "regular" | "transparent"
    max_body_bytes: int = 32 * MiB
    fail_mode: str = "block"  # "block" | "open"
    passthrough_hosts: tuple[str, ...] = ()  # TLS not intercepted (pinned apps); counted as uninspected
    block_page_template: str = ""  # path to an operator's jinja2 template; empty = shipped page
    confdir: str = ""  # mitmproxy CA directory; empty = <data-dir>/mitmproxy
    upstream_trusted_ca: str = ""  # PEM bundle for verifying upstream servers; empty = the system/certifi store


@dataclass(frozen=True, slots=True)
class ConsoleSettings:
    listen: str = "127.0.0.1:8000"  # HOST:PORT, or "off"
    session_minutes: int = 480
    secure_cookies: bool = False  # set true behind TLS
    public_url: str = "http://127.0.0.1:8000"  # used in links sent to agents


@dataclass(frozen=True, slots=True)
class MetricsSettings:
    listen: str = "127.0.0.1:9108"  # HOST:PORT, or "off"
    refresh_seconds: float = 15.0  # how often store-derived gauges (quarantine backlog, precision) refresh


@dataclass(frozen=True, slots=True)
class StoreSettings:
    key_file: str = ""  # empty = <data-dir>/keys/quarantine.key (created 0600 on first run)
    key_env: str = "DLP_QUARANTINE_KEY"  # base64 key in the environment wins over the file
    retention_days: int = 30


@dataclass(frozen=True, slots=True)
class AlertSettings:
    jsonl_file: str = ""  # empty = <data-dir>/alerts.jsonl; "off" disables
    syslog: str = ""  # "udp://host:514" | "tcp://host:601" | "unix:///dev/log"
    webhook_url: str = ""
    webhook_timeout_seconds: float = 5.0
    webhook_max_attempts: int = 5  # 5xx / 429 / network errors are retried with exponential backoff
    webhook_backoff_seconds: float = 0.5  # first retry delay; doubles, capped at 60 s
    syslog_facility: str = "local0"
    queue_size: int = 10_000  # per sink; a full queue drops (dlp_alerts_dropped_total)


@dataclass(frozen=True, slots=True)
class PassiveSettings:
    """The passive monitor (`dlp pcap`, `dlp sniff`): TCP reassembly bounds and capture behaviour."""

    flow_memcap_bytes: int = 16 * MiB  # buffered bytes one TCP flow may hold (out-of-order + transaction)
    global_memcap_bytes: int = 512 * MiB  # buffered bytes all flows together may hold; LRU eviction beyond
    max_flows: int = 100_000  # tracked TCP flows; the least recently active is evicted beyond
    flow_idle_seconds: float = 300.0  # capture time after which a silent flow is closed
    fragment_timeout_seconds: float = 30.0  # IPv4/IPv6 fragments older than this are dropped
    checksums: str = "auto"  # "auto" (verify unless a sender offloads) | "verify" | "ignore"
    smtp_ports: tuple[str, ...] = ("25", "587", "2525")  # ports read as SMTP when the content is unclear
    http_ports: tuple[str, ...] = ("80", "8080", "8000", "3128")
    # `dlp pcap`: a capture at least this big has its content inspected in forked worker processes
    # (inspection.workers of them; a negative count keeps inspection in the capture's process).
    offload_min_bytes: int = 1 * MiB


@dataclass(frozen=True, slots=True)
class Settings:
    data_dir: str = ".dlp-data"  # deployments set /var/lib/dlp in their config
    log_level: str = "info"
    inspection: InspectionSettings = field(default_factory=InspectionSettings)
    smtp: SmtpSettings = field(default_factory=SmtpSettings)
    proxy: ProxySettings = field(default_factory=ProxySettings)
    console: ConsoleSettings = field(default_factory=ConsoleSettings)
    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    store: StoreSettings = field(default_factory=StoreSettings)
    alerts: AlertSettings = field(default_factory=AlertSettings)
    passive: PassiveSettings = field(default_factory=PassiveSettings)

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir)


def load_settings(
    config_file: str | os.PathLike[str] | None = None,
    overrides: dict[str, Any] | None = None,
    environ: typing.Mapping[str, str] | None = None,
) -> Settings:
    """Defaults <- config file <- DLP_SECTION_KEY environment variables <- `overrides` ("smtp.listen": v)."""
    tree: dict[str, Any] = {}
    source = "defaults"
    if config_file:
        path = Path(config_file)
        source = str(path)
        try:
            tree = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise ConfigError(f"{path}: no such config file") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: {exc}") from exc
    for key, value in _environment_overrides(environ if environ is not None else os.environ).items():
        _set_dotted(tree, key, value)
    for key, value in (overrides or {}).items():
        if value is not None:
            _set_dotted(tree, key, value)
    return _build(Settings, tree, source, "")


def _environment_overrides(environ: typing.Mapping[str, str]) -> dict[str, str]:
    """DLP_DATA_DIR -> data_dir; DLP_SMTP_NEXT_HOP -> smtp.next_hop."""
    sections = {f.name for f in dataclasses.fields(Settings) if dataclasses.is_dataclass(f.default_factory)}  # type: ignore[arg-type]
    out: dict[str, str] = {}
    for name, value in environ.items():
        if not name.startswith("DLP_") or name == "DLP_QUARANTINE_KEY":
            continue
        key = name[4:].lower()
        section, _, rest = key.partition("_")
        out[f"{section}.{rest}" if section in sections and rest else key] = value
    return out


def _set_dotted(tree: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    node = tree
    for p in parents:
        node = node.setdefault(p, {})
    node[leaf] = value


def _build(cls: type, values: Any, source: str, prefix: str) -> Any:
    if not isinstance(values, dict):
        raise ConfigError(f"{source}: [{prefix.rstrip('.')}] must be a table")
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ConfigError(f"{source}: unknown setting {prefix}{unknown[0]}")
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for name, value in values.items():
        kwargs[name] = _coerce(hints[name], value, source, prefix + name)
    return cls(**kwargs)


def _coerce(hint: Any, value: Any, source: str, key: str) -> Any:
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, source, key + ".")  # type: ignore[arg-type]
    origin = typing.get_origin(hint)
    try:
        if hint is bool:
            if isinstance(value, str):
                if value.lower() in {"1", "true", "yes", "on"}:
                    return True
                if value.lower() in {"0", "false", "no", "off"}:
                    return False
                raise ValueError(value)
            if not isinstance(value, bool):
                raise ValueError(value)
            return value
        if hint is int:
            if isinstance(value, bool):
                raise ValueError(value)
            return int(value)
        if hint is float:
            return float(value)
        if hint is str:
            if not isinstance(value, str | int):
                raise ValueError(value)
            return str(value)
        if origin is tuple:
            items = value.split(",") if isinstance(value, str) else value
            if not isinstance(items, list | tuple):
                raise ValueError(value)
            return tuple(str(i).strip() for i in items if str(i).strip())
        if origin in (types.UnionType, typing.Union):
            return value
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{source}: {key} has the wrong type ({type(value).__name__})") from exc
    return value


def parse_listen(value: str, what: str) -> tuple[str, int] | None:
    """'HOST:PORT' or '[::1]:PORT' -> (host, port); 'off' or '' -> None."""
    if value.strip().lower() in {"", "off", "none"}:
        return None
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ConfigError(f"{what}: expected HOST:PORT or 'off', got {value!r}")
    return host.strip("[]") or "127.0.0.1", int(port)
