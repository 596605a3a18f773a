"""The web channel for `dlp serve`: mitmproxy 12 running inside the serve event loop with the DLP addon.

`start_service(runtime, host, port)` builds a mitmproxy Master with only the addons a forward (or
transparent) proxy needs, binds the listener (port 0 = a free port), and returns a Service whose
`describe()` names the bound address, the mode and the CA certificate agents must trust.
"""

from __future__ import annotations

import asyncio
import logging
import re
from pathlib import Path
from typing import Any

from mitmproxy import options as mitm_options
from mitmproxy.addons import block, core, disable_h2c, next_layer, proxyserver, tlsconfig
from mitmproxy.master import Master

from dlp.channels.web_addon import DlpWebAddon
from dlp.config import ProxySettings, Settings
from dlp.logs import get_logger

log = get_logger("dlp.web")

CA_CERT_NAME = "mitmproxy-ca-cert.pem"
MODES = ("regular", "transparent")


class ProxyConfigError(ValueError):
    """A proxy setting that cannot work; raised at start-up with the key's name."""


def confdir(settings: Settings) -> Path:
    return Path(settings.proxy.confdir) if settings.proxy.confdir else settings.data_path / "mitmproxy"


def ignore_pattern(host: str) -> str:
    """mitmproxy's ignore_hosts takes regexes over `host:port`; operators write host names and
    `*.example.com` wildcards (the wildcard also covers the bare domain)."""
    host = host.strip().lower().rstrip(".")
    if host.startswith("*."):
        return rf"^(?:.+\.)?{re.escape(host[2:])}:\d+$"
    return rf"^{re.escape(host)}:\d+$"


def mitm_option_values(proxy: ProxySettings, host: str, port: int, conf: Path) -> dict[str, Any]:
    """The mitmproxy options that make it a DLP proxy (shared with the `mitmdump -s` shim's docs)."""
    if proxy.mode not in MODES:
        raise ProxyConfigError(f"proxy.mode must be one of {', '.join(MODES)}, got {proxy.mode!r}")
    if proxy.fail_mode not in {"block", "open"}:
        raise ProxyConfigError(f"proxy.fail_mode must be 'block' or 'open', got {proxy.fail_mode!r}")
    if proxy.max_body_bytes <= 0:
        raise ProxyConfigError("proxy.max_body_bytes must be positive")
    values: dict[str, Any] = {
        "listen_host": host,
        "listen_port": port,
        "mode": [proxy.mode],
        "confdir": str(conf),
        "ignore_hosts": [ignore_pattern(h) for h in proxy.passthrough_hosts],
        # Never stream: a streamed request body reaches the server before inspection. mitmproxy's single
        # body_size_limit bounds what it buffers (requests and responses with a declared length alike);
        # larger requests are refused 413.
        "stream_large_bodies": None,
        "body_size_limit": str(proxy.max_body_bytes),
        "validate_inbound_headers": True,  # refuses CL+TE, duplicate CL, obs-fold (request smuggling)
        "connection_strategy": "lazy",  # no upstream connection before a verdict
        "http3": False,  # QUIC is dropped at the firewall; browsers fall back to TCP
        "rawtcp": False,  # non-HTTP in a tunnel is parsed as HTTP and refused, never relayed uninspected
    }
    if proxy.upstream_trusted_ca:
        values["ssl_verify_upstream_trusted_ca"] = proxy.upstream_trusted_ca
    return values


class ProxyService:
    name = "proxy"

    def __init__(self, master: Master, addon: DlpWebAddon, proxy: ProxySettings, conf: Path,
                 address: tuple[str, int]) -> None:
        self.master = master
        self.addon = addon
        self.proxy = proxy
        self.confdir = conf
        self.address = address

    def describe(self) -> str:
        host, port = self.address
        shown = f"[{host}]" if ":" in host else host
        return (f"{shown}:{port} ({self.proxy.mode} proxy; fail mode {self.proxy.fail_mode}; "
                f"CA at {self.confdir / CA_CERT_NAME})")

    async def stop(self, grace: float) -> None:
        """Close the listeners, let requests being inspected finish (up to `grace`), then stop."""
        servers = self.master.addons.get("proxyserver")
        await servers.servers.update([])
        try:
            await asyncio.wait_for(self.addon.idle(), grace)
        except TimeoutError:
            log.warning("proxy_stop_grace_exceeded", in_flight=self.addon.in_flight)
        await self.master.done()


def build_master(addon: DlpWebAddon, values: dict[str, Any]) -> Master:
    """A Master with only what a forward/transparent proxy needs (no flow view, no scripts, no dumper).
    Must be called inside the running loop: mitmproxy binds its context to it."""
    opts = mitm_options.Options()
    master = Master(opts, event_loop=asyncio.get_running_loop(), with_termlog=False)
    master.addons.add(
        core.Core(),
        block.Block(),  # refuses clients from public addresses in regular mode
        disable_h2c.DisableH2C(),
        proxyserver.Proxyserver(),
        next_layer.NextLayer(),
        tlsconfig.TlsConfig(),
        addon,  # after NextLayer: our next_layer hook sees its decision
    )
    opts.update(**values)
    return master


async def start_service(runtime: Any, host: str, port: int) -> ProxyService:
    settings: Settings = runtime.settings
    proxy = settings.proxy
    conf = confdir(settings)
    conf.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        values = mitm_option_values(proxy, host, port, conf)
    except ProxyConfigError as exc:
        raise OSError(str(exc)) from None
    # mitmproxy logs each connection at info level; its warnings still reach our (redacting) logs.
    logging.getLogger("mitmproxy").setLevel(logging.WARNING)
    addon = DlpWebAddon(proxy, runtime.pipeline)
    master = build_master(addon, values)
    servers = master.addons.get("proxyserver")
    # What master.run() does, minus the process-wide bits (it would install its exception handler and
    # an eager task factory on the loop every other dlp service shares).
    if not await servers.setup_servers() or not servers.listen_addrs():
        await servers.servers.update([])
        raise OSError(f"the proxy could not listen on {host}:{port} (address in use?)")
    await master.running()
    bound = servers.listen_addrs()[0]
    log.info("proxy_listening", mode=proxy.mode, port=bound[1])
    return ProxyService(master, addon, proxy, conf, (bound[0], bound[1]))
