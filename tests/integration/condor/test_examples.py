"""The PyMW examples run unchanged on the pool: ``python examples/X.py -i condor -c BUNDLE``."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from testbed.condor import Pool
from tests.conftest import EXAMPLES

pytestmark = pytest.mark.condor

# (arguments that keep each run to a few small clusters, what it must print)
EXAMPLES_ON_CONDOR = {
    "monte_pi": (["--tasks", "4"], r"pi is about 3\.1\d+"),
    "null_test": (["--tasks", "20"], r"20 null tasks in [\d.]+ s"),
    "prime_finder": ([], r"17984 primes below 200000; the largest is 199999"),
    "string_counter": ([], r"24000 words, 13 distinct"),
    "genetic_algorithm": (["--generations", "3"], r"best fitness \d+ of 64 after 3 generations"),
}


@pytest.mark.parametrize("name", sorted(EXAMPLES_ON_CONDOR))
def test_example_on_the_condor_interface(
    name: str, pool: Pool, bundle: Path, clean_env: dict[str, str]
) -> None:
    args, expected = EXAMPLES_ON_CONDOR[name]
    env = dict(clean_env, **pool.environ())
    out = subprocess.run(
        [sys.executable, str(EXAMPLES / f"{name}.py"), "-i", "condor", "-c", str(bundle), *args],
        capture_output=True, text=True, timeout=600, env=env, check=False,
    )
    assert out.returncode == 0, out.stderr
    assert re.search(expected, out.stdout), out.stdout


def test_the_numpy_sweep_on_the_condor_interface_with_a_numpy_bundle(
    pool: Pool, clean_env: dict[str, str]
) -> None:
    """A scientist's numpy tasks on the pool: the bundle freezes numpy (``--with numpy``), arrays
    and numpy scalars go in and come back as themselves."""
    pytest.importorskip("numpy")
    from testbed import bundle as bundle_testbed

    bundle = bundle_testbed.up_numpy().root
    env = dict(clean_env, **pool.environ())
    out = subprocess.run(
        [sys.executable, str(EXAMPLES / "numpy_sweep.py"), "-i", "condor", "-c", str(bundle),
         "--points", "6", "--steps", "5000"],
        capture_output=True, text=True, timeout=900, env=env, check=False,
    )
    assert out.returncode == 0, out.stderr
    assert re.search(r"6 damping ratios, 5000 steps each: trajectories \(6, 5000\) float64, "
                     r"start 1\.000\.\.1\.000, mean energy falls monotonically", out.stdout), \
        out.stdout


def test_condor_without_a_worker_is_one_line(
    pool: Pool, tmp_path: Path, clean_env: dict[str, str]
) -> None:
    env = dict(clean_env, **pool.environ())
    out = subprocess.run(
        [sys.executable, str(EXAMPLES / "monte_pi.py"), "-i", "condor"],
        capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path, check=False,
    )
    assert out.returncode != 0
    assert out.stderr.strip().startswith("error: the condor interface needs a worker")
    assert "Traceback" not in out.stderr
