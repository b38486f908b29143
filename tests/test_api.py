"""The public API: every name resolves lazily and is documented with an example that runs; `import signvision`
loads nothing heavy; the README's Python API blocks run as written; the names of earlier versions still answer.
(The package's layers are tested in test_layers.py.)"""

from __future__ import annotations

import doctest
import importlib
import inspect
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import SIGN_DIGITS

import signvision as sv

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "signvision"


def test_import_loads_nothing_heavy():
    heavy = "('torch', 'timm', 'pandas', 'cv2', 'matplotlib', 'sklearn')"
    code = f"import sys, signvision; print(sorted(m for m in {heavy} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# names whose examples train, audit or read trained runs: run in the whole suite (`make test`), not the fast tier
SLOW_EXAMPLES = {"train", "Run", "Audit", "audit", "Predictions", "load_run", "compare_runs", "ensemble", "distill"}
SLOW_EXAMPLES |= {"pseudo_labels", "lr_find", "evaluate_labelled", "submit"}
NEEDS_RUNS = {"Predictions", "load_run", "compare_runs", "ensemble", "distill", "pseudo_labels", "evaluate_labelled"}
SIGN_DIGITS_ARGS = {"model": "lenet", "epochs": 2, "image_size": 32, "log": lambda *_: None}


@pytest.fixture(scope="module")
def examples_folder(tmp_path_factory) -> Path:
    """A working folder whose ../shared is the workplace's (the examples' paths), for the files they write."""
    root = tmp_path_factory.mktemp("examples")
    if SIGN_DIGITS.is_dir():
        (root / "shared").symlink_to(SIGN_DIGITS.parents[1])
    (root / "work").mkdir()
    return root / "work"


@pytest.fixture(scope="module")
def example_runs(examples_folder) -> Path:
    """The runs the examples name, trained small on sign-digits once (~40 s): runs/lenet, two 2-fold runs
    (runs/ksl-lenet, runs/ksl-lenet-plain: no augmentation), their ensemble runs/ksl-ensemble; photo.jpg; and
    held-out/, a folder of class sub-folders of 30 images runs/lenet never trained on (its validation side)."""
    import shutil

    import pandas as pd

    runs = examples_folder / "runs"
    sv.train(SIGN_DIGITS, out=runs / "lenet", **SIGN_DIGITS_ARGS)
    sv.train(SIGN_DIGITS, out=runs / "ksl-lenet", folds=2, **SIGN_DIGITS_ARGS)
    sv.train(SIGN_DIGITS, out=runs / "ksl-lenet-plain", folds=2, augment="none", **SIGN_DIGITS_ARGS)
    sv.ensemble([runs / "ksl-lenet", runs / "ksl-lenet-plain"], out=runs / "ksl-ensemble", log=lambda *_: None)
    shutil.copy(next((SIGN_DIGITS / "Images").glob("*.jpg")), examples_folder / "photo.jpg")
    split = pd.read_csv(runs / "lenet" / "split.csv").merge(pd.read_csv(SIGN_DIGITS / "Train.csv"), on="img_IDS")
    for name, label in split.loc[split["fold"] == "val", ["img_IDS", "Label"]].head(30).itertuples(index=False):
        (examples_folder / "held-out" / str(label)).mkdir(parents=True, exist_ok=True)
        shutil.copy(SIGN_DIGITS / "Images" / f"{name}.jpg", examples_folder / "held-out" / str(label))
    return runs


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW_EXAMPLES else n for n in sv.__all__]
)
def test_every_public_name_is_documented_with_a_running_example(name, examples_folder, request, monkeypatch):
    from signvision.logs import silenced

    obj = getattr(sv, name)
    doc = inspect.getdoc(obj) or ""
    if "../shared/data/sign-digits" in doc and not SIGN_DIGITS.is_dir():
        pytest.skip(f"{name}'s example reads {SIGN_DIGITS}, absent (a clone outside the signvision workplace)")
    if name in NEEDS_RUNS:
        request.getfixturevalue("example_runs")
    monkeypatch.chdir(examples_folder)  # ../shared is the workplace's; what the examples write stays here
    assert "Example" in doc and ">>>" in doc, f"{name}: no example in its docstring"
    if inspect.isfunction(obj):
        assert "Args:" in doc or "Returns" in doc or len(inspect.signature(obj).parameters) <= 2, f"{name}: no Args"
    globs = {"np": np, "torch": torch, "signvision": sv, "sv": sv, **{n: getattr(sv, n) for n in sv.__all__}}
    finder = doctest.DocTestFinder(recurse=False)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    with silenced():  # the progress lines of training are not the example's output
        for test in finder.find(obj, name, globs=globs):
            runner.run(test)
    assert runner.failures == 0, f"{name}: its example fails"


def test_every_public_name_resolves_to_signvision_s_own_object():
    from signvision import _EXPORTS

    for name in sv.__all__:
        module, attribute = _EXPORTS[name]
        obj = getattr(sv, name)
        assert obj is getattr(importlib.import_module(f"signvision.{module}"), attribute), name
        assert getattr(obj, "__module__", "").startswith("signvision."), f"{name} is not signvision's own"
    assert {"train", "audit", "ensemble", "load_run"} <= set(sv.__all__) <= set(dir(sv))


def test_older_names_still_answer():
    assert sv.evaluate is sv.evaluate_loader  # the loop's evaluation, named apart from Run.evaluate
    table, info = sv.Split(table=None, info=None)  # sv.split's result unpacks as before
    assert table is None and info is None


def python_blocks(markdown: str, heading: str) -> list[str]:
    section = markdown.split(f"## {heading}", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


@pytest.mark.slow
def test_the_readme_python_api_runs_as_written(sign_digits, tmp_path, monkeypatch):
    blocks = python_blocks((ROOT / "README.md").read_text(), "Python API")
    assert blocks, "the README has no Python API code"
    (tmp_path / "shared").symlink_to(sign_digits.parents[1])  # ../shared beside the working folder, as here
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, "README.md", "exec"), namespace)
