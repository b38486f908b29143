"""The package's floor plan: folders by concern that form layers. Each folder imports only from the folders
beneath it (imports inside functions count); the shared modules at the top import no folder; no module import
circle; a few modules at the top and at least six folders; no folder named like a public name; each module says
what it is for; functions stay short."""

from __future__ import annotations

import ast
from pathlib import Path

import signvision as sv

SRC = Path(__file__).resolve().parents[1] / "src" / "signvision"
# bottom to top: a folder may import from the folders before it in this list, never after
LAYERS = ["data", "models", "grouping", "training", "reports", "inference", "auditing", "runs", "cli"]
SHARED = {"errors", "files", "config", "progress", "imports", "logs"}


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(path: Path) -> set[str]:
    """The signvision modules a file imports, inside functions too ("training.loop", "errors", ...)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("signvision"):
            if node.module == "signvision":
                found |= {a.name for a in node.names if a.name != "__version__"}
            else:
                found.add(node.module.removeprefix("signvision."))
        elif isinstance(node, ast.Import):
            found |= {a.name.removeprefix("signvision.") for a in node.names if a.name.startswith("signvision.")}
    return found


def sources() -> list[Path]:
    return sorted(SRC.rglob("*.py"))


def test_folders_form_layers():
    wrong = []
    for path in sources():
        rel = path.relative_to(SRC).parts
        here = rel[0] if len(rel) > 1 else None
        for target in imported(path):
            top = target.split(".")[0]
            if here is None:  # a shared module (the package's __init__ and __main__ only point down)
                if path.name not in ("__init__.py", "__main__.py") and top not in SHARED:
                    wrong.append(f"{path.relative_to(SRC)} (shared) imports {target}")
            elif top not in SHARED and top != here:
                if top not in LAYERS or LAYERS.index(top) > LAYERS.index(here):
                    wrong.append(f"{path.relative_to(SRC)} ({here}) imports {target}, a layer above it")
    assert not wrong, wrong


def test_no_two_folders_import_each_other():
    edges = set()
    for path in sources():
        rel = path.relative_to(SRC).parts
        if len(rel) > 1:
            edges |= {(rel[0], t.split(".")[0]) for t in imported(path) if t.split(".")[0] in LAYERS}
    both = sorted((a, b) for a, b in edges if a < b and (b, a) in edges)
    assert not both, both


def test_no_import_circle():
    graph = {
        module_name(p): {t for t in imported(p) if (SRC / (t.replace(".", "/") + ".py")).is_file()} for p in sources()
    }
    seen, stack = set(), []

    def visit(node):
        if node in stack:
            raise AssertionError("import circle: " + " -> ".join(stack[stack.index(node) :] + [node]))
        if node in seen:
            return
        stack.append(node)
        for nxt in sorted(graph.get(node, ()) - {node}):
            visit(nxt)
        stack.pop()
        seen.add(node)

    for module in sorted(graph):
        visit(module)


def test_folders_and_the_few_shared_modules():
    folders = sorted(p.name for p in SRC.iterdir() if (p / "__init__.py").is_file())
    top = sorted(p.stem for p in SRC.glob("*.py"))
    assert folders == sorted(LAYERS) and len(folders) >= 6
    assert len(top) <= 10 and set(top) <= SHARED | {"__init__", "__main__"}, top
    assert not set(folders) & set(sv.__all__) | {"evaluate", "split", "train", "audit"} & set(folders)


def test_every_module_says_what_it_is_for_and_functions_stay_short():
    missing, too_long = [], []
    for path in sources():
        tree = ast.parse(path.read_text())
        if path.name != "__main__.py" and not ast.get_docstring(tree):
            missing.append(str(path.relative_to(SRC)))
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno + 1 > 80:
                too_long.append(f"{path.relative_to(SRC)}:{node.lineno} {node.name}")
    assert not missing and not too_long, (missing, too_long)
