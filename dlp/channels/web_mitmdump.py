"""The DLP addon for an operator's own mitmproxy (`mitmdump -s dlp/channels/mitmdump_addon.py`): builds
its settings, inspection pool, store and alerts from a dlp config file, forces the mitmproxy options the
DLP depends on, and delegates every hook to DlpWebAddon.

What it builds lives in this (normally imported, hence cached) module and is reused when mitmproxy
reloads the script file: a reload neither registers Prometheus metrics twice nor starts a second pool.
"""

from __future__ import annotations

import atexit
import logging
import os
from dataclasses import dataclass
from typing import Any

from mitmproxy import ctx, http, tcp, tls, udp

from dlp.channels.web_addon import DlpWebAddon, refuse_raw_flow
from dlp.channels.web_blockpage import BlockPages, BlockReason
from dlp.config import Settings, load_settings
from dlp.inspect import InspectionPool
from dlp.pipeline import Pipeline

log = logging.getLogger("dlp.web.mitmdump")

OPTION = "dlp_config"
ENV = "MITMDUMP_DLP_CONFIG"  # not DLP_*: those are dlp's own setting overrides


@dataclass
class _Runtime:
    config: str
    settings: Settings
    pool: InspectionPool
    pipeline: Pipeline
    store: Any
    alerts: Any

    def close(self) -> None:
        self.pool.close()
        for part in (self.alerts, self.store):
            closer = getattr(part, "close", None)
            if closer:
                closer()


_runtime: _Runtime | None = None  # one per process, across script reloads
_metrics_started = False
_runtime_registered = False


def _runtime_for(config: str) -> _Runtime:
    global _runtime, _runtime_registered
    if _runtime is not None and _runtime.config == config:
        return _runtime
    if _runtime is not None:
        _runtime.close()
        _runtime = None
    from dlp.serve import open_alerts, open_store

    settings = load_settings(config or None)
    pool = InspectionPool(settings)
    pool.start()
    store = open_store(settings)
    alerts = open_alerts(settings)
    if not _runtime_registered:
        atexit.register(shutdown)
        _runtime_registered = True
    _runtime = _Runtime(config, settings, pool, Pipeline(pool, store, alerts), store, alerts)
    _start_metrics(settings)
    return _runtime


def _start_metrics(settings: Settings) -> None:
    global _metrics_started
    from dlp.config import parse_listen

    address = parse_listen(settings.metrics.listen, "metrics.listen")
    if _metrics_started or address is None:
        return
    from prometheus_client import start_http_server

    start_http_server(address[1], addr=address[0])
    _metrics_started = True


def shutdown() -> None:
    """Close the pool, store and alerts (mitmproxy is exiting)."""
    global _runtime
    if _runtime is not None:
        _runtime.close()
        _runtime = None


class MitmdumpDlp:
    def __init__(self) -> None:
        self.inner: DlpWebAddon | None = None

    def load(self, loader: Any) -> None:
        loader.add_option(OPTION, str, os.environ.get(ENV, ""),
                          f"dlp config file (TOML) for the DLP addon; default ${ENV} or built-in defaults")

    def configure(self, updated: set[str]) -> None:
        if OPTION in updated or self.inner is None:
            self.inner = None  # until the new configuration works, every request is refused
            runtime = _runtime_for(ctx.options.dlp_config)
            self.inner = DlpWebAddon(runtime.settings.proxy, runtime.pipeline)
            self.inner.master = ctx.master
            self._force_options(runtime.settings)
        elif updated & {"stream_large_bodies", "validate_inbound_headers", "body_size_limit", "rawtcp"}:
            self._force_options(_runtime_for(ctx.options.dlp_config).settings)

    def _force_options(self, settings: Settings) -> None:
        from dlp.channels.web import ignore_pattern

        wanted: dict[str, Any] = {
            "stream_large_bodies": None,
            "body_size_limit": str(settings.proxy.max_body_bytes),
            "validate_inbound_headers": True,
            "rawtcp": False,
        }
        if settings.proxy.passthrough_hosts:
            wanted["ignore_hosts"] = sorted(set(ctx.options.ignore_hosts)
                                            | {ignore_pattern(h) for h in settings.proxy.passthrough_hosts})
        changed = {k: v for k, v in wanted.items() if getattr(ctx.options, k) != v}
        if changed:
            log.warning("dlp: overriding mitmproxy options the DLP depends on: %s", ", ".join(sorted(changed)))
            ctx.options.update(**changed)

    # Every hook delegates; the inner addon catches its own errors and applies the failure mode.
    def requestheaders(self, flow: http.HTTPFlow) -> None:
        flow.request.stream = False
        if self.inner is not None:
            self.inner.requestheaders(flow)

    async def request(self, flow: http.HTTPFlow) -> None:
        if self.inner is None:
            # The configuration failed (mitmproxy logged why): fail closed rather than let safecall pass it.
            if flow.response is None:
                flow.response = BlockPages().response(flow.request, BlockReason.INSPECTION_UNAVAILABLE, None, "-")
            return
        await self.inner.request(flow)

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        if self.inner is not None:
            self.inner.responseheaders(flow)

    def error(self, flow: http.HTTPFlow) -> None:
        if self.inner is not None:
            self.inner.error(flow)

    async def websocket_message(self, flow: http.HTTPFlow) -> None:
        if self.inner is None:
            assert flow.websocket is not None
            flow.websocket.messages[-1].drop()
            return
        await self.inner.websocket_message(flow)

    # No next_layer hook: script addons run before mitmproxy's NextLayer, so a passthrough decision is
    # not visible here; `dlp serve` counts passthrough connections, this shim does not.

    def tls_failed_client(self, data: tls.TlsData) -> None:
        if self.inner is not None:
            self.inner.tls_failed_client(data)

    def tcp_start(self, flow: tcp.TCPFlow) -> None:
        refuse_raw_flow(flow)

    def udp_start(self, flow: udp.UDPFlow) -> None:
        refuse_raw_flow(flow)
