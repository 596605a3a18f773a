"""The mypyc-compiled detection hot path (setup.py): same results as the plain-Python modules, never stale."""

from __future__ import annotations

import ast
import importlib
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def compiled_modules() -> list[str]:
    """Module names of setup.py's COMPILED list, read without running setup()."""
    tree = ast.parse((ROOT / "setup.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "COMPILED" for t in node.targets):
            return [p.removesuffix(".py").replace("/", ".") for p in ast.literal_eval(node.value)]
    raise AssertionError("setup.py has no COMPILED list")


# Scans a seeded corpus and prints the matches as JSON; with "pure", the compiled modules are imported
# from their .py sources instead of their extension modules.
SCAN = """
import importlib.util, json, sys
from pathlib import Path
root, mode, names = Path(sys.argv[1]), sys.argv[2], sys.argv[3].split(",")

class PreferSource:
    def find_spec(self, name, path=None, target=None):
        if name not in names:
            return None
        return importlib.util.spec_from_file_location(name, root / (name.replace(".", "/") + ".py"))

if mode == "pure":
    sys.meta_path.insert(0, PreferSource())
from detectors.base import build_detectors, compiled
from dlp.bench.corpus import generate
from dlp.policy import load_policy

detectors = build_detectors(load_policy(None).detectors)
texts = [s.text for s in generate(400_000, seed=11)]
texts += [t.replace(" ", "-") for t in texts[:300]] + ["\\uff14\\uff15\\uff15\\uff16 7375 8689 9855 ssn 078-05-1120"]
out = [sorted([m.entity, m.start, m.end, m.score, m.value, m.label] for m in detectors.scan(t)) for t in texts]
print(json.dumps({"compiled": compiled(), "matches": out}))
"""


def _scan(mode: str) -> dict:
    done = subprocess.run([sys.executable, "-c", SCAN, str(ROOT), mode, ",".join(compiled_modules())],
                          capture_output=True, text=True, timeout=300, cwd=ROOT, check=True)
    return json.loads(done.stdout)


def test_plain_python_and_compiled_modules_find_the_same_matches():
    pure, native = _scan("pure"), _scan("native")
    assert pure["compiled"] is False
    assert sum(map(len, pure["matches"])) > 500  # the corpus carries plenty of sensitive values
    assert native["matches"] == pure["matches"]


def test_no_compiled_module_is_older_than_its_source():
    """An edited .py behind a stale extension module would silently run the old code: `make` rebuilds."""
    for name in compiled_modules():
        module = importlib.import_module(name)
        source = ROOT / (name.replace(".", "/") + ".py")
        if module.__file__ and not module.__file__.endswith(".py"):
            assert Path(module.__file__).stat().st_mtime >= source.stat().st_mtime, (
                f"{module.__file__} is older than {source}: run `make venv` to recompile")
