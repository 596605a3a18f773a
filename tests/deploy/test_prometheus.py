"""promtool validates the shipped scrape config and alert rules and runs the rules' unit tests; every
alert has a test and a runbook section; every dashboard query is valid PromQL."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from promql import REPO, dashboard_expressions, rule_expressions

PROMETHEUS = REPO / "deploy/prometheus"
PROMTOOL = shutil.which("promtool") or ("/usr/bin/promtool" if Path("/usr/bin/promtool").exists() else None)
pytestmark = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool not installed (scripts/install-test-tools installs it)"
)


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    proc = subprocess.run([PROMTOOL, *args], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def test_scrape_config_is_valid() -> None:
    out = promtool("check", "config", str(PROMETHEUS / "prometheus.yml"))
    assert "1 rule files found" in out.stdout + out.stderr


def test_alert_rules_are_valid() -> None:
    promtool("check", "rules", str(PROMETHEUS / "rules/dlp.rules.yml"))


def test_alert_rule_unit_tests_pass() -> None:
    out = promtool("test", "rules", *map(str, sorted((PROMETHEUS / "tests").glob("*.yml"))))
    assert "SUCCESS" in out.stdout


def test_every_alert_has_a_unit_test_and_a_runbook_section() -> None:
    alerts = set(rule_expressions())
    tested: set[str] = set()
    for path in (PROMETHEUS / "tests").glob("*.yml"):
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                if check.get("exp_alerts"):
                    tested.add(check["alertname"])
    assert alerts - tested == set(), "alerts without a firing test"
    guide = (REPO / "docs/operators.md").read_text()
    anchors = {re.sub(r"[^a-z0-9 -]", "", h.lower()).replace(" ", "-")
               for h in re.findall(r"^#+\s+(.+?)\s*$", guide, re.M)}
    rules = yaml.safe_load((PROMETHEUS / "rules/dlp.rules.yml").read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            runbook = rule["annotations"]["runbook"]
            assert runbook.startswith("docs/operators.md#"), rule["alert"]
            assert runbook.split("#", 1)[1] in anchors, f"{rule['alert']}: no section {runbook} in docs/operators.md"


def test_dashboard_queries_are_valid_promql(tmp_path: Path) -> None:
    # promtool has no bare query parser; a recording rule per query gets each one parsed.
    substitutions = {"$__rate_interval": "5m", "$__range": "1h", "$instance": ".*", "$channel": ".*"}
    rules = []
    for n, expr in enumerate(dashboard_expressions()):
        for var, value in substitutions.items():
            expr = expr.replace(var, value)
        assert "$" not in expr, expr
        rules.append({"record": f"dashboard:query_{n}", "expr": expr})
    path = tmp_path / "dashboard.rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    out = promtool("check", "rules", str(path))
    assert f"SUCCESS: {len(rules)} rules found" in out.stdout


def test_a_broken_rule_fails_its_unit_test(tmp_path: Path) -> None:
    """The unit tests can fail: raise one threshold and promtool must report it."""
    rules = (PROMETHEUS / "rules/dlp.rules.yml").read_text().replace("dlp_pool_queue_depth > 50",
                                                                       "dlp_pool_queue_depth > 500")
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules/dlp.rules.yml").write_text(rules)
    (tmp_path / "tests").mkdir()
    shutil.copy(PROMETHEUS / "tests/dlp.rules.test.yml", tmp_path / "tests/dlp.rules.test.yml")
    assert PROMTOOL is not None
    proc = subprocess.run([PROMTOOL, "test", "rules", str(tmp_path / "tests/dlp.rules.test.yml")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "DLPInspectionQueueBacklog" in proc.stdout + proc.stderr
