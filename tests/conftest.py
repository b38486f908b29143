"""Fixtures: tiny data made on the spot, and the shared sign-digits folder (skipped where it is absent)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

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
