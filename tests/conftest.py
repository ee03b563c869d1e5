"""Shared fixtures. Engine fixtures live beside their tests (tests/integration/<engine>/)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pymw_admin.runtime import Master

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


@pytest.fixture
def master() -> Iterator[Master]:
    with Master("local", num_workers=2) as m:
        yield m


@pytest.fixture
def python() -> str:
    return sys.executable


@pytest.fixture
def clean_env() -> dict[str, str]:
    """The environment for a subprocess master, without our own overrides leaking in."""
    return {k: v for k, v in os.environ.items() if not k.startswith("PYMW_")}
