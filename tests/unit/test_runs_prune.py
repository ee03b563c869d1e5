"""Which runs ``runs prune`` removes, and how it reads an age."""

from __future__ import annotations

import pytest

from pymw_admin.admin.runs import RunInfo
from pymw_admin.admin.runs_prune import parse_age, prunable
from pymw_admin.errors import UsageError


def _run(run_id: str, *, alive: bool = False, exit_code: int | None = 0,
         started: float | None = 100.0, ended: float | None = 200.0) -> RunInfo:
    return RunInfo(run_id, "s.py", 1, alive, exit_code, started, ended, False)


@pytest.mark.parametrize(("text", "seconds"), [("30d", 30 * 86400), ("12h", 43200),
                                               ("90m", 5400), ("45s", 45), ("2", 172800),
                                               ("1.5h", 5400), ("2w", 14 * 86400)])
def test_parse_age(text: str, seconds: float) -> None:
    assert parse_age(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "-1d", "3y", "1 d 2"])
def test_parse_age_refuses(text: str) -> None:
    with pytest.raises(UsageError, match="invalid age"):
        parse_age(text)


def test_running_runs_are_never_pruned() -> None:
    runs = [_run("1"), _run("2", alive=True, exit_code=None, ended=None)]
    assert [r.id for r in prunable(runs, 1000.0, None)] == ["1"]


def test_older_than_counts_from_the_end_or_else_the_start() -> None:
    runs = [_run("1", ended=900.0), _run("2", ended=100.0),
            _run("3", exit_code=None, started=50.0, ended=None),  # lost
            _run("4", exit_code=None, started=None, ended=None)]  # nothing recorded
    assert [r.id for r in prunable(runs, 1000.0, 500.0)] == ["2", "3"]
    assert [r.id for r in prunable(runs, 1000.0, None)] == ["1", "2", "3", "4"]
