"""A master script killed mid-run and run again with a checkpoint: each task is run once, and
the script's answer is whole and right. The script is a real file run as its own process; every
call appends a line to a log, so the calls are counted, not guessed. The checkpoint reaches the
master the way a user would give it, ``-a checkpoint=DIR`` on the script's command line."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]

SWEEP = """
import os, signal, sys, time
from pymw_admin.runtime import Master, options

def work(i, log, fail=False):
    # calls of 20 and up wait a while for the test's go-ahead, so the first run is most likely
    # killed before them (the counts below hold either way)
    waited = 0
    while i >= 20 and not os.path.exists(log + ".go") and waited < 300:
        time.sleep(0.01)
        waited += 1
    with open(log, "a") as out:
        out.write(f"{i}\\n")
    if fail and not os.path.exists(log + ".fixed"):
        raise ValueError(f"call {i} failed")
    return i * i

if __name__ == "__main__":
    rest = options.parse_args().rest
    log, first, last, kill_after = rest[0], int(rest[1]), int(rest[2]), int(rest[3])
    failing = {int(x) for x in rest[4].split(",")} if len(rest) > 4 else set()
    total, got = 0, []
    with Master(interface=options.interface_from_args()) as master:
        tasks = [master.submit_task(work, (i, log),
                                    kwargs={"fail": True} if i in failing else None)
                 for i in range(first, last)]
        errors = 0
        for n in range(len(tasks)):
            try:
                task, value = master.get_result()
            except Exception:
                errors += 1
                continue
            total += value
            got.append(tasks.index(task) + first)
            if n + 1 == kill_after:  # the crash: the master and its workers, all at once
                os.killpg(0, signal.SIGKILL)
        # map over the same calls: stored results, in input order
        assert master.map(work, [i for i in range(first, last) if i not in failing],
                          [log] * (last - first - len(failing))) == [
            i * i for i in range(first, last) if i not in failing]
    print("sum", total, "errors", errors, "results", len(got), "distinct", len(set(got)))
"""


def _sweep(tmp_path: Path, first: int, last: int, kill_after: int = 0, failing: str = "",
           checkpoint: Path | None = None) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "sweep.py"
    script.write_text(textwrap.dedent(SWEEP))
    args = [sys.executable, str(script), "-i", "local", "-n", "3",
            "-a", f"checkpoint={checkpoint or tmp_path / 'ck'}",
            "--", str(tmp_path / "calls"), str(first), str(last), str(kill_after)]
    if failing:
        args.append(failing)
    # a session of its own: the crash kills the script's process group, not the test's
    return subprocess.run(args, capture_output=True, text=True, timeout=300,
                          start_new_session=True, cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})


def _calls(tmp_path: Path) -> list[int]:
    log = tmp_path / "calls"
    return [int(line) for line in log.read_text().split()] if log.exists() else []


def _stored(tmp_path: Path) -> int:
    return sum(1 for p in (tmp_path / "ck").rglob("*")
               if p.is_file() and not p.name.startswith(".tmp-"))


def test_a_crashed_sweep_run_again_computes_only_what_is_missing(tmp_path: Path) -> None:
    crashed = _sweep(tmp_path, 0, 40, kill_after=15)
    assert crashed.returncode == -9, crashed.stderr
    first_calls = _calls(tmp_path)
    stored = _stored(tmp_path)
    # every result the master took in was kept, whether or not the script had it yet
    assert 15 <= stored <= len(first_calls)
    (tmp_path / "calls.go").touch()
    again = _sweep(tmp_path, 0, 40)
    assert again.returncode == 0, again.stderr
    assert again.stdout.split() == ["sum", str(sum(i * i for i in range(40))), "errors", "0",
                                    "results", "40", "distinct", "40"]
    second_calls = _calls(tmp_path)[len(first_calls):]
    assert len(second_calls) == 40 - stored  # the map after the loop ran nothing again
    assert sorted(set(first_calls) | set(second_calls)) == list(range(40))
    assert _stored(tmp_path) == 40


def test_a_subset_then_a_superset_lose_and_repeat_nothing(tmp_path: Path) -> None:
    (tmp_path / "calls.go").touch()
    assert _sweep(tmp_path, 0, 30).returncode == 0
    subset = _sweep(tmp_path, 10, 20)
    assert subset.stdout.split()[1] == str(sum(i * i for i in range(10, 20)))
    assert subset.stdout.split()[-4:] == ["results", "10", "distinct", "10"]
    superset = _sweep(tmp_path, 0, 50)
    assert superset.returncode == 0, superset.stderr
    assert superset.stdout.split() == ["sum", str(sum(i * i for i in range(50))), "errors", "0",
                                       "results", "50", "distinct", "50"]
    assert sorted(_calls(tmp_path)) == list(range(50))  # each call ran exactly once


def test_a_task_that_raised_runs_again(tmp_path: Path) -> None:
    (tmp_path / "calls.go").touch()
    first = _sweep(tmp_path, 0, 5, failing="2,3")
    assert first.returncode == 0, first.stderr
    assert first.stdout.split()[:4] == ["sum", str(0 + 1 + 16), "errors", "2"]
    (tmp_path / "calls.fixed").touch()
    again = _sweep(tmp_path, 0, 5, failing="2,3")
    assert again.stdout.split()[:4] == ["sum", str(sum(i * i for i in range(5))), "errors", "0"]
    assert sorted(_calls(tmp_path)) == [0, 1, 2, 2, 3, 3, 4]
