"""The benchmark scripts of docs/benchmarks.md still fit together: one of them removed a helper another imported
(`submissions.lite0_weights`), and nothing ran them between sessions. Read, not run: each script parses, says
what it measures, and every name it imports from a sibling script is defined there."""

from __future__ import annotations

import ast
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def top_level_names(tree: ast.Module) -> set[str]:
    """The names a module defines at its top level: functions, classes, assignments and imports."""
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {t.id for t in targets if isinstance(t, ast.Name)}
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
    return names


def missing_imports(trees: dict[str, ast.Module]) -> list[str]:
    """ "script: sibling.name" for each name a script imports from a sibling script that does not define it."""
    missing = []
    for script, tree in trees.items():
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module in trees:
                defined = top_level_names(trees[node.module])
                missing += [f"{script}: {node.module}.{a.name}" for a in node.names if a.name not in defined]
    return missing


def test_every_benchmark_script_parses_says_what_it_measures_and_imports_what_its_siblings_define():
    trees = {p.stem: ast.parse(p.read_text(), filename=str(p)) for p in sorted(BENCHMARKS.glob("*.py"))}
    assert len(trees) >= 10
    for script, tree in trees.items():
        assert ast.get_docstring(tree), f"benchmarks/{script}.py says nothing of what it measures"
    missing = missing_imports(trees)
    assert not missing, f"imported from a sibling script that does not define it: {missing}"


def test_the_check_sees_a_helper_gone_from_a_sibling():
    trees = {
        "pseudo_labels": ast.parse("from submissions import RECIPES, lite0_weights\n"),
        "submissions": ast.parse("RECIPES = {}\ndef signvision(): pass\n"),
    }
    assert missing_imports(trees) == ["pseudo_labels: submissions.lite0_weights"]
