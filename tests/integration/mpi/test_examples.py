"""Every example runs unchanged under ``mpiexec -n 3 ... -i mpi`` and in spawn mode."""

from __future__ import annotations

import re

import pytest

from tests.conftest import EXAMPLES
from tests.integration.local.test_examples import EXPECTED
from tests.integration.mpi.conftest import MODES, Run

pytestmark = pytest.mark.mpi


@pytest.mark.parametrize("mode", sorted(MODES))
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example_on_the_mpi_interface(run_master: Run, mode: str, name: str) -> None:
    out = run_master(mode, EXAMPLES / f"{name}.py")
    assert out.returncode == 0, out.stderr + out.stdout[-3000:]  # mpiexec reports on stdout
    assert re.search(EXPECTED[name], out.stdout), out.stdout
