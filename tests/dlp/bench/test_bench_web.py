"""`dlp bench web` on a small load, and its raw keep-alive load client against a real local server."""

from __future__ import annotations

import argparse
import asyncio

from dlp.bench import web


def test_small_run_alternates_rounds_and_reports_spread() -> None:
    args = argparse.Namespace(web_clients=4, web_requests=60, web_body_kb=10, web_rounds=2, web_workers=1,
                              web_probe_requests=20, seed=7)
    result = web.run(args)
    for side in ("dlp", "mitmdump_noop"):
        summary = result[side]
        assert summary["errors"] == 0 and summary["rps"] > 0
        assert summary["p99_ms_min"] <= summary["p99_ms"] <= summary["p99_ms_max"]
        assert result["single_client"][side]["errors"] == 0
    assert len(result["added_p99_ms_per_round"]) == 2
    text = web.format_text(result)
    assert "p99 range" in text and "one client at a time" in text and "per round" in text


def test_client_counts_refusals_and_reconnects_after_connection_close() -> None:
    """A non-200 answer is not a success, and `Connection: close` makes the next request reconnect."""

    async def scenario() -> tuple[list[bool], int, list[bytes]]:
        connections = 0
        bodies: list[bytes] = []

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            nonlocal connections
            connections += 1
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
            bodies.append(await reader.readexactly(length))
            if connections == 1:
                writer.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 7\r\nConnection: close\r\n\r\nblocked")
            else:
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        client = web._HttpClient(port, 9)
        outcomes = [await client.post(b"first"), await client.post(b"second")]
        await client.close()
        server.close()
        await server.wait_closed()
        return outcomes, connections, bodies

    outcomes, connections, bodies = asyncio.run(scenario())
    assert outcomes == [False, True]
    assert connections == 2 and bodies == [b"first", b"second"]


def test_proxy_freezes_its_startup_heap_once_running() -> None:
    """The fix the bench found: long-lived startup objects leave the collector when the proxy runs."""
    import gc

    from dlp.channels.web_addon import DlpWebAddon
    from dlp.config import Settings
    from dlp.inspect import InspectionPool
    from dlp.pipeline import Pipeline

    settings = Settings()
    addon = DlpWebAddon(settings.proxy, Pipeline(InspectionPool(settings), None))
    gc.unfreeze()
    try:
        assert gc.get_freeze_count() == 0
        addon.running()
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
