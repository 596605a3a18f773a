"""The shipped systemd units: systemd-analyze verifies them, they carry the hardening the operators'
guide promises, their command lines parse with dlp's own argument parser, and sysusers/tmpfiles create
the account and directories."""

from __future__ import annotations

import configparser
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from dlp.cli import build_parser

REPO = Path(__file__).resolve().parents[2]
UNITS = REPO / "deploy/systemd"
SERVICES = sorted(UNITS.glob("*.service"))
ANALYZE = shutil.which("systemd-analyze")
DLP_BIN = Path(sys.executable).with_name("dlp")


def unit(path: Path) -> configparser.RawConfigParser:
    parser = configparser.RawConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keys are case-sensitive
    parser.read_string(path.read_text())
    return parser


def test_there_is_one_unit_per_channel_and_an_all_in_one() -> None:
    assert {p.name for p in SERVICES} == {"dlp.service", "dlp-smtp.service", "dlp-proxy.service",
                                          "dlp-console.service", "dlp-sniff.service"}


@pytest.mark.parametrize("path", SERVICES, ids=lambda p: p.name)
def test_units_are_hardened(path: Path) -> None:
    service = unit(path)["Service"]
    assert service["User"] == "dlp" and service["Group"] == "dlp"
    assert service["ExecStart"].startswith("/usr/bin/dlp ")
    assert service["ProtectSystem"] == "strict"
    for flag in ("PrivateTmp", "NoNewPrivileges", "ProtectHome", "ProtectKernelTunables", "ProtectKernelModules",
                 "ProtectControlGroups", "RestrictNamespaces", "RestrictSUIDSGID", "LockPersonality"):
        assert service[flag] == "yes", flag
    assert service["ReadWritePaths"] == "/var/lib/dlp"
    assert service["Restart"] == "on-failure"
    assert re.fullmatch(r"\d+[MG]", service["MemoryMax"])
    assert service["UMask"] == "0077"
    caps = service["CapabilityBoundingSet"].split()
    if path.name == "dlp-sniff.service":
        assert caps == ["CAP_NET_RAW"] and service["AmbientCapabilities"] == "CAP_NET_RAW"
        assert "AF_PACKET" in service["RestrictAddressFamilies"]
    else:
        assert caps == [], "only the sniffer holds a capability"
        assert "AF_PACKET" not in service["RestrictAddressFamilies"]


def _argv(path: Path) -> list[str]:
    command = unit(path)["Service"]["ExecStart"]
    command = command.replace("${DLP_SNIFF_INTERFACE}", "eth1").replace("${DLP_SNIFF_BPF}", "'tcp port 25'")
    return shlex.split(command)[1:]


@pytest.mark.parametrize("path", SERVICES, ids=lambda p: p.name)
def test_command_lines_parse(path: Path) -> None:
    args = build_parser().parse_args(_argv(path))
    assert args.config == "/etc/dlp/dlp.toml"


def test_split_units_cover_each_channel_once_with_distinct_metrics_ports() -> None:
    serving: dict[str, list[str]] = {}
    metrics_ports = []
    for name in ("dlp-smtp.service", "dlp-proxy.service", "dlp-console.service"):
        args = build_parser().parse_args(_argv(UNITS / name))
        for channel in ("smtp", "proxy", "console"):
            if getattr(args, f"{channel}_listen") != "off":
                serving.setdefault(channel, []).append(name)
        metrics_ports.append(args.metrics_listen)
    assert serving == {"smtp": ["dlp-smtp.service"], "proxy": ["dlp-proxy.service"],
                       "console": ["dlp-console.service"]}
    sniff = build_parser().parse_args(_argv(UNITS / "dlp-sniff.service"))
    metrics_ports.append(sniff.metrics)
    assert len(set(metrics_ports)) == len(metrics_ports) and all(metrics_ports)


@pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze not installed")
def test_systemd_analyze_verify(tmp_path: Path) -> None:
    # verify insists that ExecStart's binary exists: point the copies at this venv's dlp.
    assert DLP_BIN.exists()
    for path in [*SERVICES, *UNITS.glob("*.target")]:
        (tmp_path / path.name).write_text(path.read_text().replace("/usr/bin/dlp", str(DLP_BIN)))
    proc = subprocess.run([ANALYZE, "verify", "--man=no", *sorted(map(str, tmp_path.iterdir()))],
                          capture_output=True, text=True, timeout=120)
    if proc.returncode != 0 and "System has not been booted with systemd" in proc.stderr:
        pytest.skip("systemd-analyze cannot run in this container")
    assert proc.returncode == 0 and proc.stderr.strip() == "", proc.stderr


@pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze not installed")
@pytest.mark.parametrize("name", ["dlp.service", "dlp-smtp.service", "dlp-sniff.service"])
def test_exposure_score_stays_low(tmp_path: Path, name: str) -> None:
    copy = tmp_path / name
    copy.write_text((UNITS / name).read_text().replace("/usr/bin/dlp", str(DLP_BIN)))
    proc = subprocess.run([ANALYZE, "security", "--offline=yes", "--no-pager", str(copy)],
                          capture_output=True, text=True, timeout=120)
    m = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", proc.stdout + proc.stderr)
    if m is None:
        pytest.skip(f"systemd-analyze security --offline unavailable: {proc.stderr.strip()[:200]}")
    assert float(m.group(1)) <= 2.5, proc.stdout


@pytest.mark.skipif(shutil.which("systemd-sysusers") is None or shutil.which("systemd-tmpfiles") is None,
                    reason="systemd-sysusers / systemd-tmpfiles not installed")
def test_sysusers_and_tmpfiles_create_account_and_directories(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    subprocess.run(["systemd-sysusers", f"--root={tmp_path}", str(UNITS / "dlp.sysusers.conf")],
                   check=True, capture_output=True, timeout=60)
    passwd = (tmp_path / "etc/passwd").read_text()
    assert re.search(r"^dlp:x:\d+:\d+:[^:]*:/var/lib/dlp:/usr/sbin/nologin$", passwd, re.M), passwd
    subprocess.run(["systemd-tmpfiles", "--create", f"--root={tmp_path}", str(UNITS / "dlp.tmpfiles.conf")],
                   check=True, capture_output=True, timeout=60)
    assert (tmp_path / "var/lib/dlp").stat().st_mode & 0o777 == 0o750
    assert (tmp_path / "var/lib/dlp/keys").stat().st_mode & 0o777 == 0o700
    assert (tmp_path / "etc/dlp").stat().st_mode & 0o777 == 0o750
