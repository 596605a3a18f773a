"""Live capture from an interface: scapy opens the AF_PACKET socket and attaches the BPF filter; frames
are read raw (no dissection) and the kernel's drop counter (PACKET_STATISTICS) is exported."""

from __future__ import annotations

import logging
import socket
import struct
import time
from collections.abc import Callable, Iterator
from typing import Any

from dlp import metrics
from dlp.channels.passive.reader import LINKTYPE_ETHERNET

_SOL_PACKET = 263
_PACKET_STATISTICS = 6
_PACKET_OUTGOING = 4
_STATS_EVERY = 1.0


class CaptureUnavailable(Exception):
    """The interface cannot be captured on (missing privilege, no such interface, bad filter)."""


class LiveCapture:
    def __init__(self, interface: str, bpf: str | None = None) -> None:
        from scapy.config import conf
        from scapy.error import Scapy_Exception

        # scapy warns that it cannot guess a dissector for loopback frames: we do not dissect with it.
        logging.getLogger("scapy.runtime").setLevel(logging.ERROR)

        self.interface = interface
        self.drops = 0
        self.packets = 0
        self._loopback = interface == "lo" or interface.startswith("lo:")
        try:
            self._sock: Any = _listen_socket(conf)(iface=interface, filter=bpf or None)
        except PermissionError:
            raise CaptureUnavailable(
                f"capturing on {interface} needs CAP_NET_RAW: run as root, or grant it to the interpreter "
                "(setcap cap_net_raw,cap_net_admin=eip $(readlink -f .venv/bin/python))"
            ) from None
        except OSError as exc:
            raise CaptureUnavailable(f"cannot capture on {interface}: {exc.strerror or exc}") from None
        except Scapy_Exception as exc:
            raise CaptureUnavailable(f"cannot capture on {interface}: {exc}") from None
        self._raw: socket.socket = self._sock.ins
        self._raw.settimeout(0.2)
        self.linktype = LINKTYPE_ETHERNET

    def frames(self, stop: Callable[[], bool]) -> Iterator[tuple[float, int, bytes]]:
        """Frames until `stop()` is true; checks it at least every 0.2 s."""
        last_stats = time.monotonic()
        recv = self._raw.recvfrom
        draining_until = 0.0
        while True:
            if not draining_until and stop():
                # What the kernel already queued was seen on the wire before the stop: read it too.
                draining_until = time.monotonic() + 1.0
                self._raw.settimeout(0.05)
            if draining_until and time.monotonic() > draining_until:
                break
            try:
                frame, address = recv(262144)
            except TimeoutError:
                if draining_until:
                    break
                frame = b""
            except InterruptedError:
                continue
            now = time.monotonic()
            if now - last_stats >= _STATS_EVERY:
                last_stats = now
                self.read_drops()
            if not frame:
                continue
            if self._loopback and address[2] == _PACKET_OUTGOING:
                continue  # loopback shows every packet twice: once leaving, once arriving
            self.packets += 1
            yield time.time(), self.linktype, frame
        self.read_drops()

    def read_drops(self) -> int:
        """Kernel drops since the last read (the counter resets when read); added to the metric."""
        try:
            raw = self._raw.getsockopt(_SOL_PACKET, _PACKET_STATISTICS, 8)
        except OSError:
            return 0
        _packets, drops = struct.unpack("II", raw)
        if drops:
            self.drops += drops
            metrics.CAPTURE_DROPS.inc(drops)
        return drops

    def close(self) -> None:
        self._sock.close()


def _listen_socket(conf: Any) -> Any:
    """scapy fills conf.L2listen only once its platform layer is loaded (`scapy.all` does that, slowly)."""
    if conf.L2listen is not None:
        return conf.L2listen
    from scapy.arch.linux import L2ListenSocket

    return L2ListenSocket
