"""The course notebook and the Zindi notebook run top to bottom in a fresh Jupyter kernel, with small settings
(`SIGNVISION_NOTEBOOK_SMALL=1`: 30 photos a class, an epoch or two); any cell that fails fails the test. The
committed copies hold the outputs of a full run (`notebooks/execute.py`)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "notebooks"))


@pytest.mark.slow
@pytest.mark.parametrize("name", ["course.ipynb", "zindi.ipynb"])
def test_the_notebook_runs_top_to_bottom(name, sign_digits, tmp_path, monkeypatch):
    pytest.importorskip("nbclient")
    from execute import execute

    monkeypatch.setenv("SIGNVISION_NOTEBOOK_SMALL", "1")
    monkeypatch.setenv("SIGNVISION_DATA", str(sign_digits))
    monkeypatch.setenv("SIGNVISION_NOTEBOOK_WORK", str(tmp_path / "work"))
    execute(ROOT / "notebooks" / name, write=False, timeout=600)  # raises CellExecutionError on a failing cell
    submissions = list((tmp_path / "work").glob("*/submission.csv"))
    assert len(submissions) == 1
    data = next((p.parent for p in (tmp_path / "work").rglob("Test.csv")), sign_digits)  # the small copy, if any
    sub, test = pd.read_csv(submissions[0]), pd.read_csv(data / "Test.csv")
    classes = sorted(pd.read_csv(data / "Train.csv")["Label"].astype(str).unique())
    assert list(sub.columns) == ["img_IDS", *classes]  # the challenge's format, in sorted class order
    assert sorted(sub["img_IDS"]) == sorted(test["img_IDS"])  # one row per test image
    assert np.allclose(sub[classes].sum(axis=1), 1, atol=1e-4) and sub[classes].min().min() >= 0
    if name == "zindi.ipynb":  # Restart & Run All again: a folder of its own, the first run's kept. Its first
        # two cells choose the folder and write into it (the audit, which refuses a folder that holds one)
        first = sorted(p.name for p in (tmp_path / "work").iterdir())
        execute(ROOT / "notebooks" / name, write=False, timeout=600, code_cells=2)
        second = sorted(p.name for p in (tmp_path / "work").iterdir())
        assert len(second) == 2 and set(first) < set(second) and submissions[0].is_file()
        (new,) = set(second) - set(first)
        assert (tmp_path / "work" / new / "audit" / "summary.json").is_file()


@pytest.mark.parametrize("name", ["course.ipynb", "zindi.ipynb"])
def test_the_committed_notebook_holds_the_outputs_of_a_full_run(name):
    import nbformat

    nb = nbformat.read(ROOT / "notebooks" / name, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.get("execution_count") for c in code), "a cell was not run"
    outputs = [o for c in code for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    pictures = [
        o
        for o in outputs
        if "image/png" in o.get("data", {}) or "data:image/" in o.get("data", {}).get("text/html", "")
    ]
    assert pictures, "no picture among the outputs (a plot, or a run's curves shown as HTML)"
    drawn_after_training = [c for c in code if "feature maps" in c.source or "heatmaps" in c.source]
    for cell in drawn_after_training:  # a user's own plots still show after signvision has drawn
        assert any("image/png" in o.get("data", {}) for o in cell.get("outputs", [])), cell.source[:80]
    text = "".join(str(o.get("text", "")) + str(o.get("data", {}).get("text/plain", "")) for o in outputs)
    assert "small settings" not in text, "the committed copy comes from a quick pass, not a full run"
    assert os.path.getsize(ROOT / "notebooks" / name) < 5_000_000
