"""Shared fixtures. Engine fixtures live beside their tests (tests/integration/<engine>/)."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pymw_admin.runtime import Master

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


def default_sigint() -> None:
    """``preexec_fn`` for a child a test sends SIGINT to: Ctrl-C's default handling, whatever
    our launcher set (``cmd &`` and nohup start us with SIGINT ignored, and a child started
    with it ignored never raises KeyboardInterrupt)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


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


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter,
                            config: pytest.Config) -> None:
    """The order's seed again at the end, where a failure is read (the header is far up, and
    hidden by -q): the same order comes back with it."""
    if config.pluginmanager.hasplugin("randomly"):
        seed = config.getoption("randomly_seed")
        terminalreporter.write_line(f"random order: repeat it with --randomly-seed={seed}")
