"""Resume by content on the BOINC interface, against the fake project of test_boinc_interface:
a script run again after a crash submits its tasks as it always does and gets the complete and
right answer, with no work unit made twice; a clean end or a stop leaves the tag clean.

Work units are queued (``FAKE_CREATE_WORK_QUEUE``) and run here, one by one, by the worker entry
point and the real assimilator script, the way a volunteer and the server would.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pymw_admin.errors import UsageError
from pymw_admin.interfaces import boinc
from pymw_admin.interfaces.base import Completion
from pymw_admin.runtime import Master
from pymw_admin.runtime import master as master_module
from pymw_admin.runtime.errors import TaskError
from pymw_admin.wire import encoding
from tests.unit.test_boinc_interface import calls, make_project, square

_wu_ids = itertools.count(1)


@pytest.fixture
def queued() -> Iterator[None]:
    os.environ["FAKE_CREATE_WORK_QUEUE"] = "1"
    try:
        yield
    finally:
        del os.environ["FAKE_CREATE_WORK_QUEUE"]


def created(root: Path) -> list[str]:
    """The names of every work unit create_work was asked for, in order."""
    return [line.split()[1] for call in calls(root) for line in call["lines"]]


def volunteer(root: Path, tag: str, names: list[str]) -> None:
    """Run these work units and assimilate their results, as a client and the server would."""
    task_dir = Path(boinc.ProjectLayout.read(root).task_dir(tag))
    for name in names:
        out = root / "upload" / f"{name}_0_r1_0"
        subprocess.run([sys.executable, "-m", "pymw_admin.worker.run",
                        str(task_dir / f"{name}.task"), str(out)], check=True)
        subprocess.run(f"../bin/pymw_assimilator {next(_wu_ids)} {out}", shell=True,
                       cwd=root / "tmp_vm", check=True)


def interface(root: Path, tag: str, **settings: object) -> boinc.BoincInterface:
    return boinc.BoincInterface(root, tag=tag, poll_seconds=0.01, **settings)  # type: ignore[arg-type]


def test_a_crashed_script_run_again_gets_the_right_answer_and_no_work_twice(
        tmp_path: Path, queued: None, capfd: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    root = make_project(tmp_path)
    run_dir = tmp_path / "run"  # as `pymw-admin run` gives its master one
    run_dir.mkdir()
    monkeypatch.setenv(master_module.RUN_DIR_ENV, str(run_dir))
    first = Master(interface(root, "sumsq"))
    for n in range(24):
        first.submit_task(square, (n,))
    first.interface.flush()  # type: ignore[attr-defined]
    names = created(root)
    volunteer(root, "sumsq", names[:2])
    collected = [first.get_result(timeout=10)[1] for _ in range(2)]
    assert sorted(collected) == [0, 1]
    first._detach_or_cleanup()  # the master is killed; its work units stay out
    volunteer(root, "sumsq", names[2:12])  # and volunteers go on meanwhile

    with pytest.raises(UsageError, match="tag sumsq holds 22 uncollected task"):
        Master(interface(root, "sumsq"))  # not asked to resume
    second = Master(interface(root, "sumsq"), resume=True)
    assert "resuming 22 task(s) an earlier master left (sumsq)" in capfd.readouterr().err
    for n in range(24):
        second.submit_task(square, (n,))
    volunteer(root, "sumsq", names[12:])  # the ones still out finish
    total = sum(second.get_result(timeout=10)[1] for _ in range(24))
    with pytest.raises(TaskError, match="no task is outstanding"):
        second.get_result(timeout=1)
    second.cleanup()
    assert total == 4324
    assert created(root) == names  # not one work unit more
    assert (second.reused, second.computed) == (24, 0)
    assert (run_dir / master_module.REUSE_FILE).read_text() == "24 0\n"  # for `runs`
    err = capfd.readouterr().err
    assert "24 result(s) from an earlier master, 0 computed anew" in err
    assert "not submitted again" not in err
    # a clean end: nothing is left for the next run, which computes afresh
    assert not list((root / "pymw" / "results").iterdir())
    assert not (root / "pymw" / "masters" / "sumsq" / "results").exists()
    Master(interface(root, "sumsq")).cleanup()


def test_a_subset_and_a_superset_of_the_earlier_tasks(
        tmp_path: Path, queued: None, capfd: pytest.CaptureFixture[str]) -> None:
    root = make_project(tmp_path)
    first = Master(interface(root, "sub"))
    for n in range(10):
        first.submit_task(square, (n,))
    first.interface.flush()  # type: ignore[attr-defined]
    earlier = created(root)
    volunteer(root, "sub", earlier[:3])
    first._detach_or_cleanup()

    second = Master(interface(root, "sub"), resume=True)
    wanted = [*range(5), *range(20, 25)]  # half of the earlier tasks, and five new ones
    tasks = {n: second.submit_task(square, (n,)) for n in wanted}
    second.interface.flush()  # type: ignore[attr-defined]
    new = created(root)[len(earlier):]
    assert len(new) == 5
    volunteer(root, "sub", earlier[3:5] + new)
    got: dict[str, int] = {}
    for _ in wanted:
        task, value = second.get_result(timeout=10)
        assert task.task_id not in got  # nothing twice
        got[task.task_id] = value
    assert got == {tasks[n].task_id: n * n for n in wanted}
    with pytest.raises(TaskError, match="no task is outstanding"):
        second.get_result(timeout=1)  # the earlier tasks the script left out are not handed out
    second.cleanup()
    assert (second.reused, second.computed) == (5, 5)
    assert "5 task(s) an earlier master left were not submitted again: cancelled" \
        in capfd.readouterr().err
    assert sorted((root / "cancelled.log").read_text().split()) == sorted(earlier[5:])
    Master(interface(root, "sub")).cleanup()  # the tag is clean


def test_a_stop_keeps_finished_results_for_the_next_run_and_leaves_the_tag_clean(
        tmp_path: Path, queued: None) -> None:
    root = make_project(tmp_path)
    first = Master(interface(root, "stopped"))
    for n in range(5):
        first.submit_task(square, (n,))
    first.interface.flush()  # type: ignore[attr-defined]
    names = created(root)
    volunteer(root, "stopped", names[:3])
    assert first.get_result(timeout=10)[1] in (0, 1, 4)  # the script read one
    master_module._stopping.set()  # pymw-admin stop: TERM
    try:
        first.cleanup()
    finally:
        master_module._stopping.clear()
    assert sorted((root / "cancelled.log").read_text().split()) == sorted(names[3:])
    assert not list((root / "pymw" / "results").iterdir())  # settled: no file left behind

    again = Master(interface(root, "stopped"))  # not refused: the stop left no leftovers
    for n in range(5):
        again.submit_task(square, (n,))
    again.interface.flush()  # type: ignore[attr-defined]
    assert len(created(root)) == 5 + 2  # only the two that never finished run again
    volunteer(root, "stopped", created(root)[5:])
    assert sum(again.get_result(timeout=10)[1] for _ in range(5)) == 30
    again.cleanup()
    assert (again.reused, again.computed) == (3, 2)


def test_a_clean_end_leaves_nothing_a_later_run_refuses_or_reuses(
        tmp_path: Path, queued: None) -> None:
    root = make_project(tmp_path)
    first = Master(interface(root, "clean"))
    for n in range(3):
        first.submit_task(square, (n,))
    first.interface.flush()  # type: ignore[attr-defined]
    volunteer(root, "clean", created(root))
    first.get_result(timeout=10)  # the script reads one result and ends
    first.cleanup()
    assert not list((root / "pymw" / "results").iterdir())
    assert not (root / "pymw" / "masters" / "clean" / "results").exists()
    second = Master(interface(root, "clean"))  # not refused
    for n in range(3):
        second.submit_task(square, (n,))
    second.interface.flush()  # type: ignore[attr-defined]
    assert len(created(root)) == 6  # computed afresh
    second.cleanup()


def test_a_script_written_for_resumed_still_gets_every_earlier_task(
        tmp_path: Path, queued: None) -> None:
    root = make_project(tmp_path)
    first = Master(interface(root, "old"))
    for n in range(3):
        first.submit_task(square, (n,))
    first.interface.flush()  # type: ignore[attr-defined]
    first._detach_or_cleanup()
    volunteer(root, "old", created(root))
    second = Master(interface(root, "old"), resume=True)
    assert len(second.resumed) == 3
    assert sorted(second.get_result(second.resumed, timeout=10)[1] for _ in range(3)) == [0, 1, 4]
    second.cleanup()
    assert (second.reused, second.computed) == (3, 0)


class DurableEngine:
    """An in-memory engine whose tasks outlive the master: ``left`` are an earlier master's
    (task id -> digest, recorded as the master records them), ``outcomes`` what comes for them."""

    name = "durable"
    trusted = True

    def __init__(self, state_dir: Path, left: dict[str, str],
                 outcomes: dict[str, Completion]) -> None:
        self.state_dir = state_dir
        state_dir.mkdir(exist_ok=True)
        from pymw_admin.runtime.earlier import ContentIndex

        ContentIndex(state_dir).record(list(left.items()))
        self.left = list(left)
        self.outcomes = outcomes
        self.submitted: list[str] = []

    def resumed_tasks(self) -> list[tuple[str, str]]:
        return [(task_id, "square") for task_id in self.left]

    def acknowledge(self, task_id: str) -> None:
        pass

    def submit(self, task_id: str, task_file: bytes) -> None:
        self.submitted.append(task_id)
        self.outcomes[task_id] = Completion(task_id, record=run_here(task_file))

    def wait(self, timeout: float | None) -> list[Completion]:
        found, self.outcomes = list(self.outcomes.values()), {}
        return found

    def workers(self) -> list[object]:
        return []

    def cancel(self, task_id: str) -> None:
        pass

    def close(self) -> None:
        pass


def run_here(task_file: bytes) -> bytes:
    from pymw_admin.worker.run import run_task

    return encoding.encode_result(run_task(task_file))


def digest_of_square(n: int) -> str:
    return encoding.encode_task_digested("x", square, (n,))[1]


def test_an_earlier_task_the_engine_lost_is_run_afresh(tmp_path: Path) -> None:
    lost = Completion("old-1", failure="held", retryable=False)
    done = Completion("old-2", record=run_here(encoding.encode_task("old-2", square, (2,))))
    engine = DurableEngine(tmp_path / "state", {"old-1": digest_of_square(1),
                                                "old-2": digest_of_square(2)},
                           {"old-1": lost, "old-2": done})
    with Master(engine, resume=True) as master:  # type: ignore[arg-type]
        master.get_status()  # the earlier outcomes arrive before the script submits again
        tasks = [master.submit_task(square, (n,)) for n in (1, 2)]
        assert [master.get_result(t, timeout=5)[1] for t in tasks] == [1, 4]
    assert tasks[1].task_id == "old-2"  # its result was the earlier one's
    assert len(engine.submitted) == 1 and tasks[0].task_id == engine.submitted[0]
    assert (master.reused, master.computed) == (1, 1)
