"""The public API: every name resolves lazily and is documented with an example that runs; `import signvision`
loads nothing heavy; the README's Python API blocks run as written; no import circle; no file over 450 lines
and no function over 80."""

from __future__ import annotations

import ast
import doctest
import inspect
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import signvision as sv

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "signvision"


def test_import_loads_nothing_heavy():
    heavy = "('torch', 'timm', 'pandas', 'cv2', 'matplotlib', 'sklearn')"
    code = f"import sys, signvision; print(sorted(m for m in {heavy} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("name", sv.__all__)
def test_every_public_name_is_documented_with_a_running_example(name):
    obj = getattr(sv, name)
    doc = inspect.getdoc(obj) or ""
    assert "Example" in doc and ">>>" in doc, f"{name}: no example in its docstring"
    if inspect.isfunction(obj):
        assert "Args:" in doc or "Returns" in doc or len(inspect.signature(obj).parameters) <= 2, f"{name}: no Args"
    globs = {"np": np, "torch": torch, "signvision": sv, **{n: getattr(sv, n) for n in sv.__all__}}
    finder = doctest.DocTestFinder(recurse=False)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for test in finder.find(obj, name, globs=globs):
        runner.run(test)
    assert runner.failures == 0, f"{name}: its example fails"


def test_dir_lists_the_public_names():
    assert set(sv.__all__) <= set(dir(sv)) and "train" in sv.__all__ and "audit" in sv.__all__


def python_blocks(markdown: str, heading: str) -> list[str]:
    section = markdown.split(f"## {heading}", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


def test_the_readme_python_api_runs_as_written(sign_digits, tmp_path, monkeypatch):
    blocks = python_blocks((ROOT / "README.md").read_text(), "Python API")
    assert blocks, "the README has no Python API code"
    (tmp_path / "shared").symlink_to(sign_digits.parents[1])  # ../shared beside the working folder, as here
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, "README.md", "exec"), namespace)


def imports_of(path: Path) -> set[str]:
    """The signvision modules a file imports at its top level (not inside functions)."""
    found = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("signvision."):
            found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[1] for a in node.names if a.name.startswith("signvision.")}
    return found


def all_imports_of(path: Path) -> set[str]:
    """Every signvision module a file imports, inside functions too."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("signvision."):
            found.add(node.module.split(".")[1])
    return found


def test_no_import_circle():
    graph = {p.stem: all_imports_of(p) - {p.stem} for p in SRC.glob("*.py") if p.stem != "__init__"}
    seen, stack = set(), []

    def visit(node):
        if node in stack:
            raise AssertionError("import circle: " + " -> ".join(stack[stack.index(node) :] + [node]))
        if node in seen:
            return
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            visit(nxt)
        stack.pop()
        seen.add(node)

    for module in sorted(graph):
        visit(module)


def test_files_and_functions_stay_small():
    too_long = []
    for path in sorted(SRC.glob("*.py")):
        source = path.read_text()
        if len(source.splitlines()) > 450:
            too_long.append(f"{path.name}: {len(source.splitlines())} lines")
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno + 1 > 80:
                too_long.append(f"{path.name}:{node.lineno} {node.name}: {node.end_lineno - node.lineno + 1} lines")
    assert not too_long, too_long
