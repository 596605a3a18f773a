"""The web addon's hooks, driven with mitmproxy's own test helpers (taddons, tflow): verdict enforcement,
block pages, fail-closed behaviour, websocket messages and TLS passthrough accounting."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from mitmproxy import http, websocket
from mitmproxy.proxy import layer, layers
from mitmproxy.test import taddons, tflow
from mitmproxy.test.tflow import tclient_conn
from prometheus_client import REGISTRY

from dlp.channels.web_addon import DlpWebAddon
from dlp.channels.web_blockpage import JSON_ERROR, BlockPages, BlockReason
from dlp.channels.web_message import destination, raw_request
from dlp.config import ProxySettings, Settings, load_settings
from dlp.inspect import InspectionPool
from dlp.model import Action, Message, Verdict
from dlp.pipeline import Pipeline

CARD = "4111 1111 1111 1111"
SSN = "536-22-8174"


class Incidents:
    def __init__(self) -> None:
        self.records: list[tuple[Message, Verdict, bytes | None]] = []

    def record(self, message: Message, verdict: Verdict, original: bytes | None) -> None:
        self.records.append((message, verdict, original))


def _settings(data_dir: Path, policy: str = "", **proxy: object) -> Settings:
    values: dict[str, object] = {"data_dir": str(data_dir), "inspection.workers": -1}
    if policy:
        path = data_dir / f"policy-{abs(hash(policy))}.yaml"
        path.write_text(policy)
        values["inspection.policy_file"] = str(path)
    values.update({f"proxy.{k}": v for k, v in proxy.items()})
    return load_settings(None, values, environ={})


@pytest.fixture(scope="module")
def pools(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, InspectionPool]]]:
    """Inspectors compile their detectors once per policy for the whole module."""
    cache: dict[str, InspectionPool] = {}
    yield tmp_path_factory.mktemp("web-addon"), cache
    for pool in cache.values():
        pool.close()


@pytest.fixture
def make_addon(pools: tuple[Path, dict[str, InspectionPool]]):
    data_dir, cache = pools

    def factory(policy: str = "", fault: str = "", **proxy: object) -> tuple[DlpWebAddon, Incidents]:
        settings = _settings(data_dir, policy, **proxy)
        if policy not in cache:
            cache[policy] = InspectionPool(settings)
        incidents = Incidents()
        return DlpWebAddon(settings.proxy, Pipeline(cache[policy], incidents), fault=fault), incidents

    return factory


def post(body: bytes, *, headers: dict[str, str] | None = None, path: str = "/upload") -> http.HTTPFlow:
    flow = tflow.tflow()
    flow.request.method = "POST"
    flow.request.path = path
    for k, v in (headers or {}).items():
        flow.request.headers[k] = v
    flow.request.raw_content = body
    return flow


def run(addon: DlpWebAddon, hook: str, flow: http.HTTPFlow) -> None:
    with taddons.context(addon):
        asyncio.run(getattr(addon, hook)(flow))


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


# ------------------------------------------------------------------------------------ enforcement


def test_clean_request_passes_untouched(make_addon) -> None:
    addon, incidents = make_addon()
    flow = post(b"name=Jane&note=call back tomorrow")
    run(addon, "request", flow)
    assert flow.response is None
    assert flow.request.raw_content == b"name=Jane&note=call back tomorrow"
    assert incidents.records == []


def test_card_in_body_is_blocked_with_an_incident_and_no_raw_value(make_addon) -> None:
    addon, incidents = make_addon()
    before = sample("dlp_web_blocked_total", reason="policy")
    flow = post(f"card={CARD}".encode(), headers={"accept": "text/html"})
    run(addon, "request", flow)
    assert flow.response is not None and flow.response.status_code == 403
    [(message, verdict, original)] = incidents.records
    assert verdict.action is Action.BLOCK and "CREDIT_CARD" in verdict.entities
    page = flow.response.get_text()
    assert verdict.incident_id in page
    assert flow.response.headers["x-dlp-incident"] == verdict.incident_id
    assert "4111" not in page and "1111 1111" not in page
    assert original == message.raw  # a block keeps the encrypted evidence
    assert sample("dlp_web_blocked_total", reason="policy") == before + 1


def test_api_clients_get_json(make_addon) -> None:
    addon, _ = make_addon()
    flow = post(json.dumps({"pan": CARD}).encode(), headers={"content-type": "application/json"})
    run(addon, "request", flow)
    assert flow.response is not None and flow.response.status_code == 403
    body = json.loads(flow.response.get_text())
    assert body["error"] == JSON_ERROR and body["incident"].startswith("INC-")
    assert flow.response.headers["content-type"] == "application/json"


@pytest.mark.parametrize(("where", "flow_factory"), [
    ("query string", lambda: post(b"", path=f"/search?q={CARD.replace(' ', '')}")),
    ("cookie", lambda: post(b"x=1", headers={"cookie": f"last_card={CARD.replace(' ', '')}"})),
    ("custom header", lambda: post(b"x=1", headers={"x-customer-ssn": SSN})),
    ("urlencoded form", lambda: post(b"ssn=" + SSN.encode(),
                                     headers={"content-type": "application/x-www-form-urlencoded"})),
    ("json escapes", lambda: post(b'{"n": "\\u0034\\u0031\\u0031\\u0031 1111 1111 1111"}',
                                  headers={"content-type": "application/json"})),
])
def test_content_outside_the_body_text_is_inspected(make_addon, where, flow_factory) -> None:
    addon, incidents = make_addon()
    flow = flow_factory()
    run(addon, "request", flow)
    assert flow.response is not None and flow.response.status_code == 403, where
    assert incidents.records[0][1].action is Action.BLOCK


def test_quarantine_refuses_and_keeps_the_original(make_addon) -> None:
    policy = "rules:\n  - name: sensitive-data-leaving\n    classes: [payment_card]\n    action: {web: quarantine}\n"
    addon, incidents = make_addon(policy)
    flow = post(f"card={CARD}".encode())
    run(addon, "request", flow)
    assert flow.response is not None and flow.response.status_code == 403
    assert flow.response.headers["x-dlp-blocked"] == str(BlockReason.QUARANTINE)
    [(message, verdict, original)] = incidents.records
    assert verdict.action is Action.QUARANTINE and original == message.raw


def test_alert_passes_and_records_an_incident(make_addon) -> None:
    policy = "rules:\n  - name: sensitive-data-leaving\n    classes: [payment_card]\n    action: {web: alert}\n"
    addon, incidents = make_addon(policy)
    flow = post(f"card={CARD}".encode())
    run(addon, "request", flow)
    assert flow.response is None
    [(_, verdict, original)] = incidents.records
    assert verdict.action is Action.ALERT and verdict.incident_id and original is None


def test_allow_listed_destination_passes(make_addon) -> None:
    policy = "destinations:\n  client_systems:\n    domains: ['*.example.com', 'address']\n"
    addon, incidents = make_addon(policy)
    flow = post(f"card={CARD}".encode())  # tflow's host is "address"
    run(addon, "request", flow)
    assert flow.response is None and incidents.records == []


# ------------------------------------------------------------------------------------ failures


def test_inspection_error_blocks_by_default(make_addon) -> None:
    addon, incidents = make_addon(fault="inspect")
    before = sample("dlp_fail_mode_applied_total", channel="web", mode="block")
    flow = post(b"harmless")
    run(addon, "request", flow)
    assert flow.response is not None and flow.response.status_code == 403
    assert flow.response.headers["x-dlp-blocked"] == str(BlockReason.INSPECTION_UNAVAILABLE)
    assert sample("dlp_fail_mode_applied_total", channel="web", mode="block") == before + 1
    assert incidents.records == []


def test_incident_write_failure_blocks_even_an_alert(make_addon) -> None:
    policy = "rules:\n  - name: sensitive-data-leaving\n    classes: [payment_card]\n    action: {web: alert}\n"
    addon, _ = make_addon(policy, fault="record")
    flow = post(f"card={CARD}".encode())
    run(addon, "request", flow)
    assert flow.response is not None and flow.response.status_code == 403


def test_fail_open_passes_and_counts_uninspected(make_addon) -> None:
    addon, _ = make_addon(fault="inspect", fail_mode="open")
    before = sample("dlp_uninspected_total", channel="web", reason="inspection_error")
    flow = post(f"card={CARD}".encode())
    run(addon, "request", flow)
    assert flow.response is None
    assert flow.request.raw_content == f"card={CARD}".encode()  # nothing stamped upstream
    assert sample("dlp_uninspected_total", channel="web", reason="inspection_error") == before + 1


def test_body_over_the_cap_is_refused_413(make_addon) -> None:
    addon, _ = make_addon(max_body_bytes=1000)
    flow = post(b"a" * 1001)
    run(addon, "request", flow)
    assert flow.response is not None and flow.response.status_code == 413


def test_requests_are_never_streamed(make_addon) -> None:
    addon, _ = make_addon()
    flow = post(b"x")
    flow.request.stream = True
    with taddons.context(addon):
        addon.requestheaders(flow)
    assert flow.request.stream is False


def test_flows_answered_earlier_are_left_alone(make_addon) -> None:
    addon, incidents = make_addon()
    flow = post(f"card={CARD}".encode())
    flow.response = http.Response.make(407, b"proxy auth required")
    run(addon, "request", flow)
    assert flow.response.status_code == 407 and incidents.records == []


# ------------------------------------------------------------------------------------ websockets


def _ws_flow(content: bytes, from_client: bool = True, text: bool = True) -> http.HTTPFlow:
    flow = tflow.twebsocketflow(messages=False)
    assert flow.websocket is not None
    opcode = websocket.Opcode.TEXT if text else websocket.Opcode.BINARY
    flow.websocket.messages.append(websocket.WebSocketMessage(opcode, from_client, content))
    return flow


def test_websocket_message_with_pii_is_dropped_and_the_flow_killed(make_addon) -> None:
    addon, incidents = make_addon()
    flow = _ws_flow(f"my ssn is {SSN}".encode())
    run(addon, "websocket_message", flow)
    assert flow.websocket is not None and flow.websocket.messages[-1].dropped
    assert flow.error is not None  # killed
    assert incidents.records[0][1].action is Action.BLOCK


def test_clean_websocket_message_and_server_messages_pass(make_addon) -> None:
    addon, incidents = make_addon()
    flow = _ws_flow(b"hello")
    run(addon, "websocket_message", flow)
    assert not flow.websocket.messages[-1].dropped and flow.error is None
    flow = _ws_flow(f"server says {SSN}".encode(), from_client=False)
    run(addon, "websocket_message", flow)
    assert not flow.websocket.messages[-1].dropped and incidents.records == []


def test_websocket_history_does_not_grow(make_addon) -> None:
    addon, _ = make_addon()
    flow = _ws_flow(b"one")
    for text in (b"two", b"three"):
        flow.websocket.messages.append(websocket.WebSocketMessage(websocket.Opcode.TEXT, True, text))
        run(addon, "websocket_message", flow)
    assert len(flow.websocket.messages) == 1


def test_websocket_inspection_error_kills_the_flow(make_addon) -> None:
    addon, _ = make_addon(fault="inspect")
    flow = _ws_flow(b"hello")
    run(addon, "websocket_message", flow)
    assert flow.websocket.messages[-1].dropped and flow.error is not None


# ------------------------------------------------------------------------------------ TLS accounting


def test_passthrough_connection_is_counted_as_uninspected(make_addon) -> None:
    addon, _ = make_addon()
    context = layer.Context(tclient_conn(), None)  # type: ignore[arg-type]
    from mitmproxy.options import Options
    context.options = Options()
    nextlayer = layer.NextLayer(context)
    nextlayer.layer = layers.TCPLayer(context, ignore=True)
    before = sample("dlp_uninspected_total", channel="web", reason="tls_passthrough")
    with taddons.context(addon):
        addon.next_layer(nextlayer)
    assert sample("dlp_uninspected_total", channel="web", reason="tls_passthrough") == before + 1


# ------------------------------------------------------------------------------------ pieces


def test_raw_request_keeps_the_encoded_body_and_drops_framing() -> None:
    flow = post(b"\x1f\x8bcompressed", headers={"content-encoding": "gzip", "transfer-encoding": "chunked"})
    raw = raw_request(flow.request)
    head, _, body = raw.partition(b"\r\n\r\n")
    assert body == b"\x1f\x8bcompressed"
    assert b"transfer-encoding" not in head.lower()
    assert b"Content-Length: 12" in head and b"content-encoding: gzip" in head
    assert head.startswith(b"POST /upload HTTP/1.1\r\n")


def test_destination_has_no_query_string() -> None:
    flow = post(b"", path=f"/a/b?card={CARD}#frag")
    assert destination(flow) == "http://address:22/a/b"


def test_destination_is_where_the_connection_goes_not_the_host_header() -> None:
    """A Host header naming an allow-listed system must not stand in for the server the data reaches."""
    flow = post(b"", headers={"host": "crm.client.test"})
    assert flow.request.pretty_host == "crm.client.test"
    assert destination(flow) == "http://address:22/upload"
    flow.request.scheme = "https"
    flow.client_conn.sni = "crm.client.test"  # sent upstream: the certificate must be valid for it
    flow.server_conn.sni = None  # not connected yet (connection_strategy lazy)
    assert destination(flow) == "https://crm.client.test:22/upload"


def test_operator_template_is_used_and_escaped(tmp_path: Path) -> None:
    template = tmp_path / "page.html"
    template.write_text("<p>{{ title }} [{{ incident }}] <b>{{ reason }}</b></p>")
    pages = BlockPages(str(template))
    html = pages.render_html(BlockReason.POLICY, "INC-1<script>", "m-1")
    assert "INC-1&lt;script&gt;" in html and "<b>policy</b>" in html


def test_broken_operator_template_fails_at_start(tmp_path: Path) -> None:
    template = tmp_path / "page.html"
    template.write_text("{{ no_such_variable }}")
    with pytest.raises(Exception, match="no_such_variable"):
        BlockPages(str(template))


def test_proxy_settings_defaults_fail_closed() -> None:
    assert ProxySettings().fail_mode == "block"
