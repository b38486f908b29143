"""Fixtures: tiny data made on the spot, and the shared sign-digits folder (skipped where it is absent); and how
the suite shares the cores when pytest-xdist runs it in one process per core (`make test`, `make test-fast`)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

if int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")) > 1:
    # One process per core, so one thread each (set before PyTorch, NumPy or OpenCV start their pools; the
    # kernels and commands the tests start inherit it). Two processes that each spin a thread per core waste
    # the cores: `make test` took 10 min 1 s with a thread per core in each worker, 8 min 54 s with one.
    os.environ.setdefault("OMP_NUM_THREADS", "1")

sys.path.insert(0, str(Path(__file__).parent))  # tests/helpers.py

from helpers import SIGN_DIGITS, make_zindi  # noqa: E402

os.environ.setdefault("SIGNVISION_PROGRESS", "0")


@pytest.fixture
def tiny_zindi(tmp_path: Path) -> Path:
    return make_zindi(tmp_path / "zindi")


@pytest.fixture(scope="session")
def sign_digits() -> Path:
    if not (SIGN_DIGITS / "Train.csv").is_file():
        pytest.skip(f"{SIGN_DIGITS} is absent (a clone outside the signvision workplace)")
    return SIGN_DIGITS


# The modules that take longest (worker-seconds of `make test` on 2 cores, 2026-12-06: the audit of a planted
# sign-digits 130, the documented examples 127, the worked example 123, the notebooks 98), run first: the
# workers then end together instead of one finishing a two-minute module alone.
LONGEST_FIRST = ("test_audit.py", "test_sign_digits.py", "test_api.py", "test_notebooks.py", "test_serve.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        name = item.path.name
        return LONGEST_FIRST.index(name) if name in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)  # stable: each module's own order is kept
