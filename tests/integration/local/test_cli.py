"""The pymw-admin command: version, rehearse, and bad input as one line with exit != 0."""

from __future__ import annotations

import subprocess
import sys

import pytest

from pymw_admin import __version__
from tests.conftest import EXAMPLES
from tests.helpers.cli import pymw_admin


def test_version() -> None:
    out = pymw_admin("--version")
    assert out.returncode == 0
    assert out.stdout.strip() == f"pymw-admin {__version__}"


def test_help_lists_rehearse() -> None:
    out = pymw_admin("--help")
    assert out.returncode == 0
    assert "rehearse" in out.stdout


def test_rehearse_runs_the_tutorial_example(clean_env: dict[str, str]) -> None:
    out = pymw_admin("rehearse", str(EXAMPLES / "monte_pi.py"), "-n", "2", "--", "--tasks", "4",
                     env=clean_env)
    assert out.returncode == 0, out.stderr
    assert "pi is about" in out.stdout
    assert "4/4" in out.stdout  # the progress display: tasks done / submitted


def test_rehearse_passes_the_scripts_own_arguments(clean_env: dict[str, str]) -> None:
    out = pymw_admin("rehearse", str(EXAMPLES / "prime_finder.py"), "-q", "--", "--limit",
                     "1000", env=clean_env)
    assert out.returncode == 0, out.stderr
    assert "168 primes below 1000" in out.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["rehearse", "no_such_script.py"], "no such script: no_such_script.py"),
        (["rehearse", str(EXAMPLES / "monte_pi.py"), "-n", "0"], "-n needs at least 1 worker"),
        (["rehearse", str(EXAMPLES / "monte_pi.py"), "-n", "x"], "Invalid value"),
        (["no-such-command"], "No such command"),
    ],
)
def test_cli_bad_input_is_one_line(args: list[str], message: str) -> None:
    out = pymw_admin(*args)
    assert out.returncode != 0
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert message in lines[0]
    assert "Traceback" not in out.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-i", "nonsense"], "unknown interface 'nonsense'"),
        (["-n", "0"], "-n needs at least 1 worker"),
        (["-n", "many"], "-n needs a whole number"),
    ],
)
def test_master_script_bad_switches_are_one_line(
    args: list[str], message: str, clean_env: dict[str, str]
) -> None:
    out = subprocess.run([sys.executable, str(EXAMPLES / "monte_pi.py"), *args],
                         capture_output=True, text=True, timeout=60, env=clean_env, check=False)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert message in lines[0]


def test_a_bad_worker_count_in_the_environment_is_one_line(clean_env: dict[str, str]) -> None:
    env = dict(clean_env, PYMW_NUM_WORKERS="many")
    out = subprocess.run([sys.executable, str(EXAMPLES / "monte_pi.py")], capture_output=True,
                         text=True, timeout=60, env=env, check=False)
    assert out.returncode == 2
    assert out.stderr.strip() == "error: PYMW_NUM_WORKERS: -n needs a whole number, not 'many'"
