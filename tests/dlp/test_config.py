"""Settings: defaults, TOML file, environment and flag overrides, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from dlp.config import ConfigError, load_settings, parse_listen


def test_defaults_are_loopback() -> None:
    s = load_settings(environ={})
    for listen in (s.smtp.listen, s.proxy.listen, s.console.listen, s.metrics.listen):
        assert listen.startswith("127.0.0.1:")
    assert s.smtp.next_hop == ""


def test_file_then_environment_then_flags(tmp_path: Path) -> None:
    cfg = tmp_path / "dlp.toml"
    cfg.write_text('data_dir = "/srv/dlp"\n[smtp]\nnext_hop = "127.0.0.1:10026"\nmax_recipients = 50\n'
                   '[inspection.limits]\narchive_depth = 3\n')
    s = load_settings(cfg, environ={})
    assert (s.data_dir, s.smtp.next_hop, s.smtp.max_recipients) == ("/srv/dlp", "127.0.0.1:10026", 50)
    assert s.inspection.limits.archive_depth == 3
    s = load_settings(cfg, environ={"DLP_SMTP_MAX_RECIPIENTS": "7", "DLP_DATA_DIR": "/x"})
    assert (s.smtp.max_recipients, s.data_dir) == (7, "/x")
    s = load_settings(cfg, {"smtp.max_recipients": 9, "smtp.next_hop": None}, environ={"DLP_SMTP_MAX_RECIPIENTS": "7"})
    assert s.smtp.max_recipients == 9 and s.smtp.next_hop == "127.0.0.1:10026"


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("[smtp]\nnext_hopp = 'x'\n", "unknown setting smtp.next_hopp"),
        ("[smtp]\nmax_recipients = 'many'\n", "smtp.max_recipients has the wrong type"),
        ("[smtp\n", "dlp.toml"),
        ("smtp = 3\n", "[smtp] must be a table"),
    ],
)
def test_bad_config_names_the_key(tmp_path: Path, text: str, words: str) -> None:
    cfg = tmp_path / "dlp.toml"
    cfg.write_text(text)
    with pytest.raises(ConfigError, match=words.replace("[", r"\[").replace("]", r"\]")):
        load_settings(cfg, environ={})


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such config file"):
        load_settings(tmp_path / "absent.toml", environ={})


@pytest.mark.parametrize(
    ("value", "expected"),
    [("127.0.0.1:25", ("127.0.0.1", 25)), ("[::1]:8080", ("::1", 8080)), ("off", None), (":0", ("127.0.0.1", 0))],
)
def test_parse_listen(value: str, expected: object) -> None:
    assert parse_listen(value, "x") == expected


def test_parse_listen_rejects_garbage() -> None:
    with pytest.raises(ConfigError, match="expected HOST:PORT"):
        parse_listen("localhost", "smtp.listen")
