"""The benchmark scripts of docs/benchmarks.md still import: one of them renamed or removed a helper another
imported (`submissions.lite0_weights`), and nothing ran them between sessions."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


@pytest.mark.parametrize("script", sorted(p.stem for p in BENCHMARKS.glob("*.py")))
def test_every_benchmark_script_imports_and_says_what_it_measures(script, monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    module = importlib.import_module(script)  # a helper gone from a sibling script: ImportError here
    try:
        assert module.__doc__ and module.__doc__.strip(), f"benchmarks/{script}.py says nothing of what it measures"
    finally:
        sys.modules.pop(script, None)
