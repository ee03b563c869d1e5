"""A master killed mid-run and restarted on the same state directory collects every result once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import htcondor2
import pytest

from testbed.condor import Pool

pytestmark = pytest.mark.condor
SCRIPT = Path(__file__).with_name("resume_master.py")
ROOT = Path(__file__).resolve().parents[3]


def _run(state: Path, out: Path, worker: Path, phase: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run(
        [sys.executable, str(SCRIPT), str(state), str(out), str(worker), phase],
        capture_output=True, text=True, timeout=600, env=env, check=False,
    )


def test_killed_master_resumes_and_collects_each_result_once(
    pool: Pool, bundle: Path, tmp_path: Path, schedd: htcondor2.Schedd
) -> None:
    state, out = tmp_path / "state", tmp_path / "results.jsonl"
    first = _run(state, out, bundle, "first")
    assert first.returncode == -signal.SIGKILL, first.stderr
    tag = (state / "tag").read_text().strip()
    # the dead master's jobs are still in the queue, and keep running without it
    assert schedd.query(f'PymwTag == "{tag}"', ["JobStatus"])
    time.sleep(8)  # let some finish while no master is alive

    again = _run(state, out, bundle, "again")
    assert again.returncode == 0, again.stderr
    third = _run(state, out, bundle, "again")  # nothing is left: nothing is collected twice
    assert third.returncode == 0, third.stderr

    lines = [json.loads(line) for line in out.read_text().splitlines()]
    submitted = lines[0]["submitted"]
    resumed = [line["resumed"] for line in lines if "resumed" in line]
    results = [line for line in lines if "task" in line]
    assert len(resumed[0]) == 4 and resumed[1] == []
    assert Counter(r["task"] for r in results) == Counter(submitted)  # each exactly once
    assert sorted((r["x"], r["value"]) for r in results) == [(x, x * x) for x in range(6)]

    # and nothing ran twice: one job per task in the schedd's history
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        jobs = schedd.history(f'PymwTag == "{tag}"', ["PymwTask", "JobStatus"])
        ran = Counter(str(ad["PymwTask"]) for ad in jobs)
        if sum(ran.values()) >= 6:
            break
        time.sleep(1)
    assert ran == Counter(submitted)
    assert not schedd.query(f'PymwTag == "{tag}" && JobStatus != 3', ["JobStatus"])


def test_a_killed_plain_script_run_again_gets_every_result_without_running_any_twice(
    pool: Pool, bundle: Path, tmp_path: Path, schedd: htcondor2.Schedd
) -> None:
    """A script that knows nothing of resuming, run again on the same state directory: each
    task it submits again takes the earlier job's result (collected, finished or running)."""
    state, out = tmp_path / "state", tmp_path / "results.jsonl"
    first = _run(state, out, bundle, "first")
    assert first.returncode == -signal.SIGKILL, first.stderr
    tag = (state / "tag").read_text().strip()
    time.sleep(8)  # let some finish while no master is alive

    again = _run(state, out, bundle, "plain")
    assert again.returncode == 0, again.stderr
    assert "resuming 4 task(s) an earlier master left" in again.stderr
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    submitted, final = lines[0]["submitted"], lines[-1]
    assert final["sum"] == sum(x * x for x in range(6))
    assert (final["reused"], final["computed"]) == (6, 0)
    # the four left running are taken over by their own ids; the two collected come from the
    # results the first master kept
    assert len(set(final["tasks"]) & set(submitted)) == 4
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        jobs = schedd.history(f'PymwTag == "{tag}"', ["PymwTask"])
        ran = Counter(str(ad["PymwTask"]) for ad in jobs)
        if sum(ran.values()) >= 6:
            break
        time.sleep(1)
    assert ran == Counter(submitted)  # one job a task: none ran twice
    assert not list((state / "out").iterdir())  # a clean end: nothing left behind
    assert not (state / "results").exists()
