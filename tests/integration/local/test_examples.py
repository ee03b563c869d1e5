"""Every example runs unchanged as ``python examples/X.py -i local -n 2`` and prints its answer."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.conftest import EXAMPLES

EXPECTED = {
    "monte_pi": r"pi is about 3\.1\d+",
    "null_test": r"1000 null tasks in [\d.]+ s",
    "prime_finder": r"17984 primes below 200000; the largest is 199999",
    "string_counter": r"24000 words, 13 distinct",
    "genetic_algorithm": r"best fitness \d+ of 64 after 30 generations",
    # arrays in and out: numpy's trajectories and scalars come back as themselves
    "numpy_sweep": r"12 damping ratios, 10000 steps each: trajectories \(12, 10000\) float64, "
                   r"start 1\.000\.\.1\.000, mean energy falls monotonically from 0\.3161 to "
                   r"0\.0114",
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example_on_the_local_interface(name: str, clean_env: dict[str, str]) -> None:
    out = subprocess.run(
        [sys.executable, str(EXAMPLES / f"{name}.py"), "-i", "local", "-n", "2"],
        capture_output=True, text=True, timeout=300, env=clean_env, check=False,
    )
    assert out.returncode == 0, out.stderr
    assert re.search(EXPECTED[name], out.stdout), out.stdout


@pytest.mark.parametrize("alias", ["multicore", "generic"])
def test_pymw_interface_names_are_accepted(alias: str, clean_env: dict[str, str]) -> None:
    out = subprocess.run(
        [sys.executable, str(EXAMPLES / "monte_pi.py"), "-i", alias, "-n", "2", "--tasks", "2"],
        capture_output=True, text=True, timeout=120, env=clean_env, check=False,
    )
    assert out.returncode == 0, out.stderr
    assert "pi is about" in out.stdout
