"""Compiles the hot paths; everything else about the package is in pyproject.toml.

The detection modules below are ordinary, typed Python. mypyc turns them into C extension modules,
which run the same code more than twice as fast (`dlp bench core` prints which one ran). One loop is
hand-written C (C_EXTENSIONS): the text of regular XML parts of office files, which must run at memchr
speed. Without a C compiler or mypyc the build goes on: the detection modules run as plain Python with
the same results (tests/detectors/test_compiled.py checks both), and office parts are read by the
general Python path, which the C scanner is held equal to (tests/dlp/extract/test_fast_scan.py).
"""

from __future__ import annotations

import os
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

# The detection engine, the detectors that validate number runs, addresses and IBANs, and exact data
# match's matcher: the code that runs per message and per candidate. Detectors outside this list may
# subclass Detector (allow_interpreted_subclasses).
COMPILED = [
    "detectors/_numbers.py",
    "detectors/base.py",
    "detectors/bank.py",
    "detectors/cards.py",
    "detectors/email.py",
    "detectors/ip.py",
    "detectors/phone.py",
    "detectors/ssn.py",
    "dlp/normalize.py",
    "dlp/edm/matcher.py",  # exact data match's per-message work
]


# Hand-written C, for the one loop that must run at memchr speed: the text of regular XML parts (xlsx,
# docx...). Without it, xmltext reads every part the general way (exact, slower).
C_EXTENSIONS = [Extension("dlp.extract._markup", ["dlp/extract/_markup.c"])]


class OptionalBuildExt(build_ext):
    """A failed compilation leaves the pure-Python modules in place instead of failing the install, and
    never an earlier build of what failed: that would run old code."""

    def run(self) -> None:
        self.failed: set[str] = set()
        try:
            super().run()
        except Exception as error:  # any compiler or linker failure
            _warn(f"compiling failed ({error}); the detectors run as plain Python, office parts the general way")

    def build_extension(self, ext) -> None:
        try:
            super().build_extension(ext)
        except Exception as error:
            self.failed.add(ext.name)
            _warn(f"compiling {ext.name} failed ({error}); it runs as plain Python (or the general path)")
            stale = self.get_ext_filename(ext.name)  # an earlier build beside its source (`make`, pip -e)
            if os.path.exists(stale):
                _warn(f"removing the earlier build {stale}")
                os.remove(stale)

    def copy_extensions_to_source(self) -> None:
        every = self.extensions
        self.extensions = [ext for ext in every if ext.name not in self.failed]
        try:
            super().copy_extensions_to_source()
        finally:
            self.extensions = every


def _warn(message: str) -> None:
    print(f"dlp: {message}", file=sys.stderr)


def _extensions() -> list:
    if os.environ.get("DLP_PURE_PYTHON"):
        return []
    try:
        from mypyc.build import mypycify
    except ImportError:
        _warn("mypyc is not installed; the detectors run as plain Python")
        return C_EXTENSIONS
    # Third-party packages are left out of the type check, installed or not (pip builds in isolation,
    # `make` in the venv): the same build either way, calls into them compiled as ordinary Python calls.
    return [*mypycify(["--ignore-missing-imports", "--no-site-packages", *COMPILED], opt_level="3",
                      group_name="dlp_native"), *C_EXTENSIONS]


setup(ext_modules=_extensions(), cmdclass={"build_ext": OptionalBuildExt})
