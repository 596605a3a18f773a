"""The mitmproxy addon that inspects outbound HTTP requests and client websocket messages and enforces
the verdict: pass, alert (pass + incident), quarantine (refuse + held copy) or block (refuse).

mitmproxy runs each hook under `safecall`, which logs an exception and lets the flow continue — the
opposite of what a DLP needs. So every hook here catches its own errors and applies the configured
failure mode (block by default); nothing reaches the upstream server before a verdict exists.
"""

from __future__ import annotations

import asyncio
import gc
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from mitmproxy import ctx, http, tcp, tls, udp
from mitmproxy.proxy import layer, layers

from dlp import metrics
from dlp.channels.web_blockpage import BlockPages, BlockReason
from dlp.channels.web_message import request_message, websocket_message
from dlp.config import ProxySettings
from dlp.logs import get_logger
from dlp.model import Action, Channel, Message, Reason, Verdict
from dlp.pipeline import Pipeline

log = get_logger("dlp.web")

CHANNEL = str(Channel.WEB)

# Test-only fault injection, read once when the addon is built: "inspect" makes every inspection raise,
# "record" makes every incident write raise. Documented in docs/web-proxy.md; never set in production.
FAULT_ENV = "DLPTEST_WEB_FAULT"

_METADATA_KEY = "dlp"  # flow.metadata[_METADATA_KEY]: what we decided, for later hooks and tests


class InjectedFault(RuntimeError):
    """Raised by the test-only fault injection."""


def refuse_raw_flow(flow: tcp.TCPFlow | udp.UDPFlow) -> None:
    """Raw TCP/UDP relaying cannot be inspected: with `rawtcp` off it only happens when an operator sets
    mitmproxy's tcp_hosts/udp_hosts, and even then nothing is relayed uninspected."""
    flow.kill()
    metrics.UNINSPECTED.labels(CHANNEL, str(Reason.UNSUPPORTED_PROTOCOL)).inc()
    metrics.WEB_BLOCKED.labels(str(BlockReason.INVALID_REQUEST)).inc()


class DlpWebAddon:
    """Hooks for one proxy. `pipeline` inspects off the event loop (process pool) and records incidents."""

    def __init__(self, proxy: ProxySettings, pipeline: Pipeline, *, fault: str | None = None) -> None:
        self.proxy = proxy
        self.pipeline = pipeline
        self.pages = BlockPages(proxy.block_page_template)
        self.fail_open = proxy.fail_mode == "open"
        self.fault = fault if fault is not None else os.environ.get(FAULT_ENV, "")
        self.master: Any = None  # set in load(): several proxies may share a process (tests)
        self.in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()

    async def idle(self) -> None:
        """Return when no request or websocket message is being inspected (for a graceful stop)."""
        await self._idle.wait()

    @asynccontextmanager
    async def _tracked(self) -> AsyncIterator[None]:
        self.in_flight += 1
        self._idle.clear()
        try:
            yield
        finally:
            self.in_flight -= 1
            if self.in_flight == 0:
                self._idle.set()

    def load(self, loader: Any) -> None:
        self.master = ctx.master

    def running(self) -> None:
        # Everything imported and built so far (detectors, policy, mitmproxy itself) lives as long as the
        # process. Left in the collector, each full collection walks it: `dlp bench web` measured 40-55 ms
        # pauses a few times a minute, every in-flight request stalled behind them (+20 ms added p99 at
        # 16 clients). Frozen, a full collection only walks what was allocated since.
        gc.freeze()

    # ---------------------------------------------------------------- HTTP requests

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        # A streamed request body would reach the server before we saw it: never stream requests. The
        # body size is bounded by mitmproxy's body_size_limit (set to proxy.max_body_bytes).
        flow.request.stream = False
        if flow.response is None and _has_obs_fold(flow.request):
            # mitmproxy forwards folded header lines verbatim; RFC 9112 says a proxy must reject or
            # unfold them, and an upstream that unfolds differently is a request-smuggling vector.
            flow.response = http.Response.make(400, b"Bad Request: folded header line\n",
                                               {"Content-Type": "text/plain", "Connection": "close"})
            flow.metadata.setdefault(_METADATA_KEY, {})["blocked"] = str(BlockReason.INVALID_REQUEST)
            metrics.WEB_BLOCKED.labels(str(BlockReason.INVALID_REQUEST)).inc()

    async def request(self, flow: http.HTTPFlow) -> None:
        if flow.response is not None or flow.error is not None:
            return  # already answered (proxy authentication, another addon) or dead: nothing goes upstream
        started = time.perf_counter()
        message: Message | None = None
        try:
            if len(flow.request.raw_content or b"") > self.proxy.max_body_bytes:
                self._refuse(flow, BlockReason.TOO_LARGE, None, "")
                metrics.UNINSPECTED.labels(CHANNEL, str(Reason.TRUNCATED)).inc()
                return
            message = request_message(flow)
            async with self._tracked():
                verdict = await self._inspect(message)
                await self._record(message, verdict)
            self._enforce(flow, message, verdict)
        except Exception as exc:
            self._failed(flow, message, exc)
        finally:
            flow.metadata.setdefault(_METADATA_KEY, {})["seconds"] = time.perf_counter() - started

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        # Responses are not inspected (the DLP watches what leaves); stream them instead of holding
        # them in memory. Our own block pages are complete already.
        if flow.response is not None and not flow.metadata.get(_METADATA_KEY, {}).get("blocked"):
            flow.response.stream = True

    def error(self, flow: http.HTTPFlow) -> None:
        """mitmproxy refused the request itself: a body over body_size_limit (413), or a request it will
        not parse (smuggling attempts: CL+TE, duplicate Content-Length, obs-fold -> 400)."""
        if flow.error is None or flow.response is not None or flow.metadata.get(_METADATA_KEY):
            return
        msg = flow.error.msg
        if "body_size_limit" in msg and "Request" in msg:
            metrics.WEB_BLOCKED.labels(str(BlockReason.TOO_LARGE)).inc()
            metrics.UNINSPECTED.labels(CHANNEL, str(Reason.TRUNCATED)).inc()
            log.warning("web_blocked", reason=str(BlockReason.TOO_LARGE), client=_client(flow))
        elif (flow.request is not None and flow.request.timestamp_end is None and not flow.websocket
              and "disconnect" not in msg.lower() and msg != flow.error.KILLED_MESSAGE):
            metrics.WEB_BLOCKED.labels(str(BlockReason.INVALID_REQUEST)).inc()
            log.warning("web_refused_invalid_request", client=_client(flow))

    # ---------------------------------------------------------------- websockets

    async def websocket_message(self, flow: http.HTTPFlow) -> None:
        assert flow.websocket is not None
        ws_message = flow.websocket.messages[-1]
        # mitmproxy keeps every message of a flow; a long-lived socket would grow without bound.
        del flow.websocket.messages[:-1]
        if not ws_message.from_client or ws_message.injected:
            return
        message: Message | None = None
        try:
            if len(ws_message.content) > self.proxy.max_body_bytes:
                _close_websocket(self.master, flow, ws_message)
                metrics.WEB_BLOCKED.labels(str(BlockReason.TOO_LARGE)).inc()
                metrics.UNINSPECTED.labels(CHANNEL, str(Reason.TRUNCATED)).inc()
                return
            message = websocket_message(flow, ws_message.content, ws_message.is_text)
            async with self._tracked():
                verdict = await self._inspect(message)
                await self._record(message, verdict)
            action = verdict.effective_action
            if action.rank >= Action.QUARANTINE.rank:
                _close_websocket(self.master, flow, ws_message)  # the app's state is now unknown: close, don't lose one
                reason = BlockReason.QUARANTINE if action is Action.QUARANTINE else BlockReason.POLICY
                metrics.WEB_BLOCKED.labels(str(reason)).inc()
                log.info("websocket_message_blocked", incident=verdict.incident_id, client=_client(flow))
        except Exception as exc:
            if self.fail_open:
                self._count_failure(message, exc, "open")
                return
            self._count_failure(message, exc, "block")
            _close_websocket(self.master, flow, ws_message)
            metrics.WEB_BLOCKED.labels(str(BlockReason.INSPECTION_UNAVAILABLE)).inc()

    # ---------------------------------------------------------------- TLS

    def next_layer(self, nextlayer: layer.NextLayer) -> None:
        # Runs after mitmproxy's NextLayer addon: an ignored (passthrough) connection shows up as a TCP
        # layer without a flow. It is an operator's explicit choice (proxy.passthrough_hosts), so it is
        # allowed, but what it carries is counted as not inspected.
        chosen = nextlayer.layer
        if isinstance(chosen, layers.TCPLayer) and chosen.flow is None:
            metrics.UNINSPECTED.labels(CHANNEL, str(Reason.TLS_PASSTHROUGH)).inc()

    def tcp_start(self, flow: tcp.TCPFlow) -> None:
        refuse_raw_flow(flow)

    def udp_start(self, flow: udp.UDPFlow) -> None:
        refuse_raw_flow(flow)

    def tls_failed_client(self, data: tls.TlsData) -> None:
        # The client refused our certificate (our CA is not installed, or the app pins its server's
        # key). Nothing was sent; count it so that a missing CA roll-out shows in the dashboards.
        metrics.WEB_BLOCKED.labels(str(BlockReason.TLS_HANDSHAKE_FAILED)).inc()

    # ---------------------------------------------------------------- internals

    async def _inspect(self, message: Message) -> Verdict:
        if self.fault == "inspect":
            raise InjectedFault("injected inspection fault (DLPTEST_WEB_FAULT=inspect)")
        return await self.pipeline.inspect(message)

    async def _record(self, message: Message, verdict: Verdict) -> None:
        if self.fault == "record" and verdict.action is not Action.PASS:
            raise InjectedFault("injected store fault (DLPTEST_WEB_FAULT=record)")
        await self.pipeline.record(message, verdict)

    def _enforce(self, flow: http.HTTPFlow, message: Message, verdict: Verdict) -> None:
        action = verdict.effective_action
        state = flow.metadata.setdefault(_METADATA_KEY, {})
        state.update(action=str(action), incident=verdict.incident_id)
        if action is Action.BLOCK:
            self._refuse(flow, BlockReason.POLICY, verdict.incident_id, message.id, verdict)
        elif action is Action.QUARANTINE:
            self._refuse(flow, BlockReason.QUARANTINE, verdict.incident_id, message.id, verdict)
        if action is not Action.PASS:
            log.info("web_verdict", incident=verdict.incident_id, action=str(verdict.action),
                     enforced=str(action), client=_client(flow), message_id=message.id)

    def _refuse(self, flow: http.HTTPFlow, reason: BlockReason, incident: str | None, reference: str,
                verdict: Verdict | None = None) -> None:
        state = flow.metadata.setdefault(_METADATA_KEY, {})
        state.update(blocked=str(reason), incident=incident)
        flow.response = self.pages.response(flow.request, reason, incident, reference or "-", verdict)
        metrics.WEB_BLOCKED.labels(str(reason)).inc()

    def _failed(self, flow: http.HTTPFlow, message: Message | None, exc: Exception) -> None:
        mode = "open" if self.fail_open else "block"
        self._count_failure(message, exc, mode)
        if self.fail_open:
            flow.metadata.setdefault(_METADATA_KEY, {})["uninspected"] = True
            return
        flow.response = None
        self._refuse(flow, BlockReason.INSPECTION_UNAVAILABLE, None, message.id if message else "")

    def _count_failure(self, message: Message | None, exc: Exception, mode: str) -> None:
        metrics.FAIL_MODE.labels(CHANNEL, mode).inc()
        if mode == "open":
            metrics.UNINSPECTED.labels(CHANNEL, str(Reason.INSPECTION_ERROR)).inc()
        # The exception's text may quote content (a parser error with the bad bytes): log its type only.
        log.error("web_inspection_failed", fail_mode=mode, error=type(exc).__name__,
                  message_id=message.id if message else None)


def _has_obs_fold(request: http.Request) -> bool:
    return any(b"\n" in value for _, value in request.headers.fields)


def _close_websocket(master: Any, flow: http.HTTPFlow, ws_message: Any) -> None:
    """Drop the message and close both sides of the connection. mitmproxy's websocket layer ignores
    flow.kill(), so the connection handler is asked to close the sockets (mitmproxy is pinned to 12.x)."""
    ws_message.drop()
    if flow.killable:
        flow.kill()
    servers = master.addons.get("proxyserver") if master is not None else None
    handler = getattr(servers, "connections", {}).get(flow.client_conn.id) if servers else None
    if handler is None:
        return

    def close() -> None:
        for conn in (flow.server_conn, flow.client_conn):
            if conn in handler.transports:
                handler.close_connection(conn)

    # After the hook returns: the handler is waiting on it and must see the dropped message first.
    asyncio.get_running_loop().call_soon(close)


def _client(flow: Any) -> str:
    peer = getattr(flow.client_conn, "peername", None)
    return str(peer[0]) if peer else ""
