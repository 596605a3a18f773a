"""Policy: data classes over entities, destination allow-lists, rules with thresholds, actions, severity.

A policy is YAML. The shipped default (dlp/defaults/policy.yaml) is always loaded first; an operator's
file is merged over it: top-level tables merge by key, rules merge by name (a rule with the same name
replaces the shipped one; `enabled: false` switches it off). Errors name the file and line.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from dlp.model import Action, Channel, Finding, Message, Severity, Uninspected


class PolicyError(Exception):
    """An invalid policy; `str()` reads `file:line: what is wrong`."""


@dataclass(frozen=True, slots=True)
class DataClass:
    name: str
    entities: frozenset[str]  # "CREDIT_CARD", or "KEYWORD:confidential_markers" for one keyword list
    min_score: float = 0.5

    def covers(self, finding: Finding) -> bool:
        if finding.score < self.min_score:
            return False
        return finding.entity in self.entities or f"{finding.entity}:{finding.label}" in self.entities


@dataclass(frozen=True, slots=True)
class Destination:
    """Where some data may go: host/domain patterns (web, recipients' domains) and exact recipients."""

    name: str
    domains: tuple[str, ...] = ()  # "crm.example.com", "*.example.com"
    recipients: tuple[str, ...] = ()  # "billing@client.example"

    def allows_host(self, host: str) -> bool:
        host = host.lower().rstrip(".")
        return any(host == d or fnmatch.fnmatch(host, d) for d in self.domains)

    def allows_recipient(self, address: str) -> bool:
        address = address.lower().strip("<>")
        if address in self.recipients:
            return True
        return self.allows_host(address.rpartition("@")[2])


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    classes: tuple[str, ...]
    action: Mapping[str, Action]  # channel name or "default" -> action
    severity: Severity = Severity.MEDIUM
    min_distinct: int = 1
    allow: tuple[str, ...] = ()  # destination names that may receive these classes
    channels: tuple[str, ...] = ()  # empty = every channel
    mode: str = "enforce"  # "enforce" | "monitor"
    description: str = ""

    def action_for(self, channel: str) -> Action:
        return self.action.get(channel, self.action.get("default", Action.ALERT))


@dataclass(frozen=True, slots=True)
class UninspectedRule:
    action: Mapping[str, Action]
    severity: Severity = Severity.MEDIUM

    def action_for(self, channel: str) -> Action:
        return self.action.get(channel, self.action.get("default", Action.QUARANTINE))


@dataclass(frozen=True, slots=True)
class Evaluation:
    """What the policy decided for one message."""

    action: Action  # what the rules call for
    enforced_action: Action  # what the channel does, after monitor-only modes
    severity: Severity
    rules: tuple[str, ...]

    @property
    def monitor_only(self) -> bool:
        return self.enforced_action.rank < self.action.rank


@dataclass(frozen=True, slots=True)
class Policy:
    data_classes: Mapping[str, DataClass]
    destinations: Mapping[str, Destination]
    rules: tuple[Rule, ...]
    uninspected_default: UninspectedRule
    uninspected: Mapping[str, UninspectedRule]
    detectors: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    monitor: bool = False  # global monitor-only
    monitor_channels: tuple[str, ...] = ()
    source: str = "<shipped>"
    raw: Mapping[str, Any] = field(default_factory=dict)  # the merged document, for other modules' sections

    def evaluate(
        self, message: Message, findings: Iterable[Finding], uninspected: Iterable[Uninspected]
    ) -> Evaluation:
        channel = str(message.channel)
        findings = tuple(findings)
        computed: list[Action] = []
        enforced: list[Action] = []
        severities: list[Severity] = []
        matched: list[str] = []
        shadow_all = self.monitor or channel in self.monitor_channels

        def hit(name: str, action: Action, severity: Severity, mode: str) -> None:
            if action is Action.PASS:
                return
            matched.append(name)
            computed.append(action)
            severities.append(severity)
            if shadow_all or mode == "monitor":
                enforced.append(Action.ALERT)
            else:
                enforced.append(action)

        for rule in self.rules if findings else ():  # every rule needs findings of its classes
            if rule.channels and channel not in rule.channels:
                continue
            classes = [self.data_classes[c] for c in rule.classes]
            relevant = [f for f in findings if any(dc.covers(f) for dc in classes)]
            if not relevant or self._allowed(rule, message):
                continue
            if len({f.value_id for f in relevant}) >= rule.min_distinct:
                hit(rule.name, rule.action_for(channel), rule.severity, rule.mode)
        for reason in sorted({u.reason for u in uninspected}):
            urule = self.uninspected.get(str(reason), self.uninspected_default)
            hit(f"uninspected:{reason}", urule.action_for(channel), urule.severity, "enforce")

        return Evaluation(
            action=Action.most_severe(computed),
            enforced_action=Action.most_severe(enforced),
            severity=max(severities, key=lambda s: s.rank, default=Severity.NONE),
            rules=tuple(matched),
        )

    def _allowed(self, rule: Rule, message: Message) -> bool:
        """True when every destination of the message is on one of the rule's allow-lists."""
        if not rule.allow:
            return False
        dests = [self.destinations[d] for d in rule.allow]
        env = message.envelope
        if env.recipients:
            return all(any(d.allows_recipient(r) for d in dests) for r in env.recipients)
        if env.destination:
            host = urlsplit(env.destination).hostname if "://" in env.destination else env.destination
            host = (host or "").rpartition(":")[0] or host or ""
            return any(d.allows_host(host) for d in dests)
        return False


# --------------------------------------------------------------------------------------------- loading

class _LineLoader(yaml.SafeLoader):
    """SafeLoader that remembers the line of every mapping key (as `{key: line}` in `_lines`)."""


class _Doc(dict):  # a mapping that knows the lines of its keys
    lines: dict[str, int]


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> _Doc:
    loader.flatten_mapping(node)
    doc = _Doc()
    doc.lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in doc:
            raise PolicyError(f"{{file}}:{key_node.start_mark.line + 1}: duplicate key {key!r}")
        doc[key] = loader.construct_object(value_node, deep=True)
        doc.lines[str(key)] = key_node.start_mark.line + 1
    return doc


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _parse(text: str, source: str) -> dict[str, Any]:
    try:
        doc = yaml.load(text, Loader=_LineLoader)
    except PolicyError as exc:
        raise PolicyError(str(exc).replace("{file}", source)) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f"{mark.line + 1}" if mark else "?"
        raise PolicyError(f"{source}:{line}: not valid YAML ({getattr(exc, 'problem', exc)})") from None
    if doc is None:
        return _Doc()
    if not isinstance(doc, dict):
        raise PolicyError(f"{source}:1: a policy is a mapping of sections")
    return doc


def _line(doc: Any, key: str) -> int:
    return getattr(doc, "lines", {}).get(key, 0)


def shipped_policy_text() -> str:
    return resources.files("dlp").joinpath("defaults/policy.yaml").read_text(encoding="utf-8")


def load_policy(path: str | Path | None = None, *, include_shipped: bool = True) -> Policy:
    """The shipped policy, with the operator's file at `path` (if any) merged over it."""
    base = _parse(shipped_policy_text(), "<shipped policy>") if include_shipped else _Doc()
    source = "<shipped policy>"
    if path:
        p = Path(path)
        source = str(p)
        try:
            text = p.read_text(encoding="utf-8")
        except OSError as exc:
            raise PolicyError(f"{p}: cannot read ({exc.strerror})") from None
        base = _merge(base, _parse(text, source))
    return _build(base, source)


_TOP_KEYS = {
    "data_classes", "destinations", "rules", "uninspected", "detectors", "keywords", "monitor",
    "windows", "edm", "notifications", "alerts", "version",
}


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Mappings merge key by key at every depth; lists and scalars are replaced, except `rules`,
    which merge by rule name."""
    out = _Doc(base)
    out.lines = {**getattr(base, "lines", {}), **getattr(override, "lines", {})}
    for key, value in override.items():
        if key == "rules" and isinstance(value, list) and isinstance(base.get("rules"), list):
            by_name = {r.get("name"): i for i, r in enumerate(base["rules"]) if isinstance(r, dict)}
            rules = list(base["rules"])
            for r in value:
                name = r.get("name") if isinstance(r, dict) else None
                if name in by_name:
                    rules[by_name[name]] = r
                else:
                    rules.append(r)
            out["rules"] = rules
        elif isinstance(value, dict) and isinstance(base.get(key), dict):
            out[key] = _merge(base[key], value)
        else:
            out[key] = value
    return out


def _action_map(value: Any, where: str) -> dict[str, Action]:
    if isinstance(value, str):
        value = {"default": value}
    if not isinstance(value, dict):
        raise PolicyError(f"{where}: action must be a name or a mapping of channel to action")
    out: dict[str, Action] = {}
    for channel, name in value.items():
        if channel != "default" and channel not in {c.value for c in Channel}:
            raise PolicyError(f"{where}: unknown channel {channel!r}")
        try:
            out[channel] = Action(name)
        except ValueError:
            raise PolicyError(f"{where}: unknown action {name!r} (pass, alert, quarantine, block)") from None
    return out


def _severity(value: Any, where: str) -> Severity:
    try:
        return Severity(value)
    except ValueError:
        raise PolicyError(f"{where}: unknown severity {value!r} (low, medium, high, critical)") from None


def _build(doc: dict[str, Any], source: str) -> Policy:
    def at(node: Any, key: str) -> str:
        return f"{source}:{_line(node, key) or _line(doc, key) or '?'}"

    for key in doc:
        if key not in _TOP_KEYS:
            raise PolicyError(f"{at(doc, key)}: unknown section {key!r}")

    classes: dict[str, DataClass] = {}
    for name, spec in (doc.get("data_classes") or {}).items():
        where = at(doc.get("data_classes"), name)
        if not isinstance(spec, dict) or not isinstance(spec.get("entities"), list) or not spec["entities"]:
            raise PolicyError(f"{where}: data class {name!r} needs a non-empty list of entities")
        classes[name] = DataClass(name, frozenset(map(str, spec["entities"])), float(spec.get("min_score", 0.5)))

    destinations: dict[str, Destination] = {}
    for name, spec in (doc.get("destinations") or {}).items():
        where = at(doc.get("destinations"), name)
        if not isinstance(spec, dict):
            raise PolicyError(f"{where}: destination {name!r} must be a mapping")
        destinations[name] = Destination(
            name,
            tuple(str(d).lower() for d in spec.get("domains", []) or []),
            tuple(str(r).lower() for r in spec.get("recipients", []) or []),
        )

    rules: list[Rule] = []
    seen: set[str] = set()
    rule_list = doc.get("rules") or []
    if not isinstance(rule_list, list):
        raise PolicyError(f"{at(doc, 'rules')}: rules must be a list")
    for spec in rule_list:
        where = f"{source}:{_line(spec, 'name') or _line(doc, 'rules') or '?'}"
        if not isinstance(spec, dict) or not spec.get("name"):
            raise PolicyError(f"{where}: every rule needs a name")
        name = str(spec["name"])
        if name in seen:
            raise PolicyError(f"{where}: two rules are named {name!r}")
        seen.add(name)
        if spec.get("enabled", True) is False:
            continue
        unknown = set(spec) - {
            "name", "classes", "action", "severity", "min_distinct", "allow", "channels", "mode",
            "description", "enabled",
        }
        if unknown:
            raise PolicyError(f"{source}:{_line(spec, sorted(unknown)[0])}: unknown rule key {sorted(unknown)[0]!r}")
        rule_classes = tuple(spec.get("classes") or ())
        for c in rule_classes:
            if c not in classes:
                raise PolicyError(f"{source}:{_line(spec, 'classes')}: rule {name!r} names unknown class {c!r}")
        if not rule_classes:
            raise PolicyError(f"{where}: rule {name!r} needs at least one class")
        allow = tuple(spec.get("allow") or ())
        for d in allow:
            if d not in destinations:
                raise PolicyError(f"{source}:{_line(spec, 'allow')}: rule {name!r} names unknown destination {d!r}")
        mode = spec.get("mode", "enforce")
        if mode not in {"enforce", "monitor"}:
            raise PolicyError(f"{source}:{_line(spec, 'mode')}: mode must be enforce or monitor")
        min_distinct = spec.get("min_distinct", 1)
        if not isinstance(min_distinct, int) or min_distinct < 1:
            raise PolicyError(f"{source}:{_line(spec, 'min_distinct')}: min_distinct must be a positive integer")
        rules.append(
            Rule(
                name=name,
                classes=rule_classes,
                action=_action_map(spec.get("action", "alert"), f"{source}:{_line(spec, 'action')}"),
                severity=_severity(spec.get("severity", "medium"), f"{source}:{_line(spec, 'severity')}"),
                min_distinct=min_distinct,
                allow=allow,
                channels=tuple(spec.get("channels") or ()),
                mode=mode,
                description=str(spec.get("description", "")),
            )
        )

    unins = doc.get("uninspected") or {}
    udefault = UninspectedRule(
        _action_map(unins.get("action", "quarantine"), at(unins, "action")),
        _severity(unins.get("severity", "medium"), at(unins, "severity")),
    )
    by_reason: dict[str, UninspectedRule] = {}
    for reason, spec in (unins.get("reasons") or {}).items():
        where = at(unins.get("reasons"), reason)
        if isinstance(spec, str):
            spec = {"action": spec}
        by_reason[str(reason)] = UninspectedRule(
            _action_map(spec.get("action", "quarantine"), where), _severity(spec.get("severity", "medium"), where)
        )

    monitor = doc.get("monitor") or {}
    if isinstance(monitor, bool):
        monitor = {"all": monitor}
    detectors = {str(k): dict(v or {}) for k, v in (doc.get("detectors") or {}).items()}
    if doc.get("keywords"):
        detectors.setdefault("keywords", {})["lists"] = {k: list(v) for k, v in doc["keywords"].items()}
    policy = Policy(
        data_classes=classes,
        destinations=destinations,
        rules=tuple(rules),
        uninspected_default=udefault,
        uninspected=by_reason,
        detectors=detectors,
        monitor=bool(monitor.get("all", False)),
        monitor_channels=tuple(monitor.get("channels", ()) or ()),
        source=source,
        raw=doc,
    )
    # `edm:` and `windows:` are parsed by their own modules (dlp.edm.config, dlp.windows): check them now.
    from dlp.edm.config import parse_edm
    from dlp.windows import parse_windows

    for section, check in (("edm", lambda: parse_edm(doc.get("edm"))), ("windows", lambda: parse_windows(policy))):
        try:
            check()
        except ValueError as exc:
            raise PolicyError(f"{at(doc, section)}: {exc}") from None
    return policy
