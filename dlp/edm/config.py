"""The policy's `edm:` section: the matching rule (globally and per client), each client's domains, and
what a record of one client sent toward another client's domain does (cross-client contamination).

    edm:
      min_fields: 2          # fields of the same record, one of them identifying
      window_chars: 300      # within this many characters of each other
      clients:
        acme:   {domains: [acme.example, "*.acme.example"]}
        globex: {domains: [globex.example], min_fields: 3}
      contamination:
        action: {smtp: quarantine, web: block, passive: alert, default: quarantine}
        severity: critical
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from dlp.edm.hashing import CLIENT_NAME
from dlp.edm.matcher import Config
from dlp.model import Action, Severity

CONTAMINATION_RULE = "edm-contamination"
_DEFAULT_CONTAMINATION = {"smtp": "quarantine", "web": "block", "passive": "alert", "default": "quarantine"}


class EdmConfigError(ValueError):
    """A bad `edm:` section."""


@dataclass(frozen=True, slots=True)
class ClientSettings:
    name: str
    domains: tuple[str, ...] = ()
    match: Config = field(default_factory=Config)

    def owns_host(self, host: str) -> bool:
        host = host.lower().rstrip(".")
        return any(host == d or fnmatch.fnmatch(host, d) for d in self.domains)


@dataclass(frozen=True, slots=True)
class EdmSettings:
    default: Config = field(default_factory=Config)
    clients: Mapping[str, ClientSettings] = field(default_factory=dict)
    contamination_action: Mapping[str, Action] = field(
        default_factory=lambda: {k: Action(v) for k, v in _DEFAULT_CONTAMINATION.items()})
    contamination_severity: Severity = Severity.CRITICAL

    def config_for(self, client: str) -> Config:
        settings = self.clients.get(client)
        return settings.match if settings else self.default

    def owner_of(self, host: str) -> str | None:
        """The client whose domain `host` is, if any."""
        for name, client in self.clients.items():
            if client.owns_host(host):
                return name
        return None

    def contamination_action_for(self, channel: str) -> Action:
        return self.contamination_action.get(channel, self.contamination_action.get("default", Action.QUARANTINE))


def _positive_int(value: Any, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise EdmConfigError(f"edm: {what} must be a positive integer")
    return value


def _config(spec: Mapping[str, Any], base: Config, where: str) -> Config:
    return Config(
        min_fields=_positive_int(spec.get("min_fields", base.min_fields), f"{where}min_fields"),
        window_chars=_positive_int(spec.get("window_chars", base.window_chars), f"{where}window_chars"),
    )


def parse_edm(section: Any) -> EdmSettings:
    """Parse and validate the `edm:` section (None or empty: defaults, no clients)."""
    if not section:
        return EdmSettings()
    if not isinstance(section, Mapping):
        raise EdmConfigError("edm: must be a mapping")
    unknown = set(section) - {"min_fields", "window_chars", "clients", "contamination"}
    if unknown:
        raise EdmConfigError(f"edm: unknown key {sorted(unknown)[0]!r}")
    default = _config(section, Config(), "")
    clients: dict[str, ClientSettings] = {}
    for name, spec in (section.get("clients") or {}).items():
        name = str(name)
        if not CLIENT_NAME.fullmatch(name):
            raise EdmConfigError(f"edm: client name {name!r}: lowercase letters, digits, '-' and '_'")
        spec = spec or {}
        if not isinstance(spec, Mapping):
            raise EdmConfigError(f"edm: client {name!r} must be a mapping")
        bad = set(spec) - {"domains", "min_fields", "window_chars"}
        if bad:
            raise EdmConfigError(f"edm: client {name!r}: unknown key {sorted(bad)[0]!r}")
        domains = spec.get("domains") or []
        if not isinstance(domains, list):
            raise EdmConfigError(f"edm: client {name!r}: domains must be a list")
        clients[name] = ClientSettings(name, tuple(str(d).lower() for d in domains),
                                       _config(spec, default, f"clients.{name}."))
    cont = section.get("contamination") or {}
    if not isinstance(cont, Mapping):
        raise EdmConfigError("edm: contamination must be a mapping")
    action_spec = cont.get("action", _DEFAULT_CONTAMINATION)
    if isinstance(action_spec, str):
        action_spec = {"default": action_spec}
    try:
        actions = {str(k): Action(v) for k, v in action_spec.items()}
        severity = Severity(cont.get("severity", "critical"))
    except (ValueError, AttributeError):
        raise EdmConfigError("edm: contamination has an unknown action or severity") from None
    return EdmSettings(default, clients, actions, severity)
