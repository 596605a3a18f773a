"""The example config lists every setting and loads; the example policy override validates."""

from __future__ import annotations

import dataclasses
import importlib.util
import re
from pathlib import Path

from dlp.config import Settings, load_settings
from dlp.model import Action, Channel, Reason, Severity
from dlp.policy import load_policy

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "deploy/config"


def settings_keys(cls: type = Settings, prefix: str = "") -> list[tuple[str, str]]:
    """(section, key) for every leaf setting: ("", "data_dir"), ("inspection.limits", "mime_depth")."""
    out = []
    for f in dataclasses.fields(cls):
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        if dataclasses.is_dataclass(default):
            out += settings_keys(type(default), f"{prefix}{f.name}.")
        else:
            out.append((prefix.rstrip("."), f.name))
    return out


def example_keys(text: str) -> set[tuple[str, str]]:
    section = ""
    found = set()
    for line in text.splitlines():
        header = re.fullmatch(r"\[([\w.]+)\]", line.strip())
        if header:
            section = header.group(1)
            continue
        m = re.match(r"(?:# )?(\w+) = ", line)
        if m:
            found.add((section, m.group(1)))
    return found


def test_every_setting_is_in_the_example() -> None:
    text = (CONFIG / "dlp.toml").read_text()
    missing = set(settings_keys()) - example_keys(text)
    assert not missing, (f"settings missing from deploy/config/dlp.toml: {sorted(missing)}; regenerate with "
                         "`.venv/bin/python deploy/config/make_example.py > deploy/config/dlp.toml`")


def test_example_loads_with_production_values() -> None:
    settings = load_settings(CONFIG / "dlp.toml", environ={})
    assert settings.data_dir == "/var/lib/dlp"
    assert settings.inspection.policy_file == "/etc/dlp/policy.local.yaml"
    assert settings.console.secure_cookies is True


def test_uncommenting_every_default_still_loads(tmp_path: Path) -> None:
    """Each commented line is a valid setting with its real default."""
    text = (CONFIG / "dlp.toml").read_text()
    uncommented = "\n".join(re.sub(r"^# (\w+ = )", r"\1", line) for line in text.splitlines())
    path = tmp_path / "all.toml"
    path.write_text(uncommented)
    loaded = load_settings(path, environ={})
    defaults = Settings()
    assert loaded.inspection.limits == defaults.inspection.limits
    assert loaded.smtp.max_recipients == defaults.smtp.max_recipients


def test_generator_output_matches_the_shipped_example_keys() -> None:
    spec = importlib.util.spec_from_file_location("make_example", CONFIG / "make_example.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert example_keys(module.render()) == set(settings_keys())


def test_example_policy_override_validates() -> None:
    policy = load_policy(CONFIG / "policy.local.yaml")
    rules = {r.name: r for r in policy.rules}
    assert "confidentiality-marker" not in rules  # disabled by the override
    assert rules["sensitive-data-leaving"].severity is Severity.CRITICAL
    assert rules["bulk-contact-to-webmail"].mode == "monitor"
    assert policy.monitor_channels == ("passive",)
    assert policy.uninspected["encrypted_archive"].action_for(str(Channel.SMTP)) is Action.BLOCK
    # The override repeats the shipped reasons (the merge is one level deep): none may be lost.
    shipped = load_policy()
    assert set(shipped.uninspected) <= set(policy.uninspected)
    assert all(reason in {str(r) for r in Reason} for reason in policy.uninspected)
    for name in rules:
        assert re.fullmatch(r"[a-z0-9-]+", name), "rule names are metric labels"
