"""Run the notebooks top to bottom and store their outputs (pictures included), as they are committed:

    .venv/bin/python notebooks/execute.py                      # full settings (about 15 minutes on 2 cores)
    SIGNVISION_NOTEBOOK_SMALL=1 .venv/bin/python notebooks/execute.py --check   # quick, nothing written

Each runs in a fresh Jupyter kernel in this folder (its paths, like ../../shared/data/sign-digits, are
relative to it); a cell that fails stops it with that cell's error. Progress bars are off in the stored copy.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
NOTEBOOKS = ("course.ipynb", "zindi.ipynb")


def execute(path: Path, *, write: bool, timeout: int = 3600, code_cells: int | None = None) -> float:
    """Run one notebook in a fresh kernel; returns the seconds it took (raises on the first failing cell).
    `code_cells`: only its first N code cells (and the text between them); never written back then."""
    import nbformat
    from nbclient import NotebookClient

    os.environ["SIGNVISION_PROGRESS"] = "0"
    nb = nbformat.read(path, as_version=4)
    if code_cells is not None:
        ends = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"][:code_cells]
        nb.cells, write = nb.cells[: ends[-1] + 1], False
    started = time.perf_counter()
    NotebookClient(
        nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    ).execute()
    if write:
        nbformat.write(nb, path)
    return time.perf_counter() - started


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("notebooks", nargs="*", default=NOTEBOOKS)
    p.add_argument("--check", action="store_true", help="run them without storing the outputs")
    args = p.parse_args(argv)
    for name in args.notebooks:
        seconds = execute(HERE / name, write=not args.check)
        print(f"{name}: ran in {seconds:.0f} s" + ("" if args.check else ", outputs stored"), file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
