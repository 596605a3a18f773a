"""IP addresses (IP_ADDRESS), v4 and v6, validated by the standard library.

Only public addresses are reported by default (option `include_private: true` adds private, loopback,
link-local and reserved ones): internal addresses fill call-center tickets and are rarely a leak. A
dotted quad after a word like "version", "v" or "build" is a version string, not an address. Score 0.6
(an address alone is weak evidence; no shipped data class uses it). Label: v4 or v6.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from detectors.base import Detector, Pattern, ScanText
from dlp.model import Match

IPV4 = r"\b[0-9]{1,3}(?:\.[0-9]{1,3}){3}\b"
IPV6 = r"[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?:[0-9]{1,3}(?:\.[0-9]{1,3}){3})?"
NOT_AN_ADDRESS = ("version", "ver", "v", "build", "release", "firmware", "rev", "os", "android", "ios",
                  "chrome", "windows", "update", "patch")


class IpDetector(Detector):
    name = "ip_address"
    entities = ("IP_ADDRESS",)

    def __init__(self, options=None) -> None:
        super().__init__(options)
        self.include_private = bool(self.options.get("include_private", False))

    def patterns(self) -> list[Pattern]:
        return [Pattern("v4", IPV4), Pattern("v6", IPV6)]

    def validate(self, text: ScanText, key: str, start: int, end: int) -> Iterable[Match]:
        t = text.text
        candidate = t[start:end]
        if key == "v6":
            # Without "::" an address has all eight groups (six before an embedded IPv4 address):
            # times of day ("13:45:12") end here without an exception from ipaddress.
            colons = candidate.count(":")
            if "::" not in candidate and colons != 7 and not (colons == 6 and "." in candidate):
                return
            if sum(1 for part in candidate.split(":") if part) < 3:
                return
            if (start > 0 and (t[start - 1].isalnum() or t[start - 1] in ":.")) or (end < len(t) and t[end].isalnum()):
                return
        elif start > 0 and t[start - 1] in ".-":
            return  # part of a longer dotted number
        elif end < len(t) - 1 and t[end] == "." and t[end + 1].isdigit():
            return
        # The version-word test first: it is a slice and a split, while parsing and is_global (a walk
        # over the reserved networks) cost ten times as much, and most dotted quads in mail are versions.
        words = text.before(start, 16).replace(":", " ").split()
        if (words and words[-1].rstrip(".") in NOT_AN_ADDRESS) or text.before(start, 1) in ("v", "V"):
            return
        try:
            # A v4 candidate has no ":", so ip_address would only add a failed IPv6 attempt to a failure.
            address = ipaddress.IPv4Address(candidate) if key == "v4" else ipaddress.ip_address(candidate)
        except ValueError:
            return
        if not self.include_private and not address.is_global:
            return
        yield Match("IP_ADDRESS", start, end, 0.6, address.compressed, self.name, f"v{address.version}")
