"""The Master API on the mpi interface, under a real ``mpiexec -n 3`` and in spawn mode.

All checks of ``api_checks.py`` run in one MPI job per launch mode; each is reported as its own
test here.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.integration.mpi.api_checks import CHECKS
from tests.integration.mpi.conftest import HERE, MODES, WORKERS, Run

pytestmark = pytest.mark.mpi

_runs: dict[str, dict[str, Any]] = {}


def _results(run_master: Run, mode: str) -> dict[str, Any]:
    if mode not in _runs:
        out = run_master(mode, HERE / "api_checks.py")
        lines = [json.loads(x) for x in out.stdout.splitlines() if x.startswith("{")]
        _runs[mode] = {
            "rc": out.returncode,
            "stdout": out.stdout,
            "stderr": out.stderr,
            "checks": {line["check"]: line for line in lines},
        }
    return _runs[mode]


@pytest.mark.parametrize("mode", sorted(MODES))
@pytest.mark.parametrize("name", list(CHECKS))
def test_api(run_master: Run, mode: str, name: str) -> None:
    results = _results(run_master, mode)
    line = results["checks"].get(name)
    assert line is not None, f"check never reported (rc {results['rc']}):\n{results['stderr']}"
    assert line["ok"], line["detail"]
    if name == "status_names_every_worker":
        assert line["detail"] == {"workers": WORKERS, "mode": mode}


@pytest.mark.parametrize("mode", sorted(MODES))
def test_master_code_runs_once_and_the_job_ends_cleanly(run_master: Run, mode: str) -> None:
    results = _results(run_master, mode)
    assert results["rc"] == 0, results["stderr"] + results["stdout"][-3000:]  # mpiexec's report
    assert results["stdout"].count("MASTER CODE RAN") == 1, results["stdout"]
