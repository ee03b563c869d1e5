"""The master API on the local interface: real worker processes on this machine."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from pymw_admin.interfaces.local import LocalInterface
from pymw_admin.runtime import (
    Master,
    PyMW_Master,
    Task,
    TaskError,
    TaskState,
    TaskTimeout,
    WorkerLost,
    events,
)


def square(x: int) -> int:
    return x * x


def helper_double(x: int) -> int:
    return 2 * x


def uses_helper(x: int) -> int:
    return helper_double(x) + 1


class Boom(Exception):
    pass


def raises_boom(message: str) -> None:
    raise Boom(message)


def prints(x: int) -> int:
    print(f"out {x}")
    import sys

    print(f"err {x}", file=sys.stderr)
    return x


def test_pymw_master_is_master() -> None:
    assert PyMW_Master is Master


def test_default_master_is_local_with_one_worker_per_core() -> None:
    with Master() as master:
        assert master.interface.name == "local"
        assert isinstance(master.interface, LocalInterface)
        assert master.interface.num_workers == (os.cpu_count() or 1)


def test_submit_and_get_that_task(master: Master) -> None:
    task = master.submit_task(square, input_data=(7,))
    assert isinstance(task, Task)
    got, result = master.get_result(task)
    assert got is task and result == 49
    assert task.state is TaskState.DONE
    assert task.submit_time and task.start_time and task.finish_time
    assert task.submit_time <= task.finish_time
    assert task.worker and task.worker.startswith("local-")


def test_get_result_any_task_returns_each_once(master: Master) -> None:
    tasks = [master.submit_task(square, input_data=(i,)) for i in range(10)]
    seen = {}
    for _ in tasks:
        task, result = master.get_result()
        seen[task.task_id] = result
    assert sorted(seen.values()) == [i * i for i in range(10)]
    with pytest.raises(TaskError, match="no task is outstanding"):
        master.get_result()


def test_get_result_from_a_list(master: Master) -> None:
    a = master.submit_task(square, input_data=(2,))
    b = master.submit_task(square, input_data=(3,))
    first, r1 = master.get_result([a, b])
    second, r2 = master.get_result([a, b])
    assert {first, second} == {a, b}
    assert {r1, r2} == {4, 9}


def test_lambdas_and_closures() -> None:
    factor = 3

    def times(x: int) -> int:
        return x * factor

    with Master("local", num_workers=2) as master:
        assert master.get_result(master.submit_task(lambda a, b: a + b, (2, 3)))[1] == 5
        assert master.get_result(master.submit_task(times, (5,)))[1] == 15


def test_map_keeps_input_order(master: Master) -> None:
    assert master.map(square, range(50)) == [i * i for i in range(50)]


def test_as_completed_yields_every_task(master: Master) -> None:
    tasks = [master.submit_task(square, input_data=(i,)) for i in range(8)]
    finished = list(master.as_completed(tasks))
    assert sorted(t.task_id for t in finished) == sorted(t.task_id for t in tasks)
    assert all(t.state is TaskState.DONE for t in finished)


def test_a_raising_task_keeps_type_message_traceback_and_object(master: Master) -> None:
    task = master.submit_task(raises_boom, input_data=("bad input",))
    with pytest.raises(TaskError) as info:
        master.get_result(task)
    err = info.value
    assert err.remote_type == "Boom"
    assert err.remote_message == "bad input"
    assert "raises_boom" in err.remote_traceback
    assert isinstance(err.exception, Boom)
    assert err.task is task and task.state is TaskState.FAILED
    assert str(err) == f"task {task.task_id} raised Boom: bad input"


def test_an_unpicklable_exception_still_reports_its_type(master: Master) -> None:
    def raise_local() -> None:
        class Local(Exception):
            pass

        raise Local("only here")

    with pytest.raises(TaskError) as info:
        master.get_result(master.submit_task(raise_local))
    assert info.value.remote_type == "Local"
    assert info.value.remote_message == "only here"


def test_map_raises_the_first_failure(master: Master) -> None:
    with pytest.raises(TaskError, match="ZeroDivisionError"):
        master.map(lambda x: 1 / x, [1, 0, 2])


def test_timeout_raises_and_loses_nothing(master: Master) -> None:
    task = master.submit_task(time.sleep, input_data=(1.0,))
    with pytest.raises(TaskTimeout, match=r"within 0\.1 s"):
        master.get_result(task, timeout=0.1)
    got, result = master.get_result(task, timeout=30)
    assert got is task and result is None
    assert isinstance(TaskTimeout("x"), TimeoutError)


def test_modules_are_imported_before_the_call(master: Master) -> None:
    def uses_math(x: float) -> float:
        import sys

        return sys.modules["math"].sqrt(x)

    task = master.submit_task(uses_math, input_data=(16.0,), modules=("math",))
    assert master.get_result(task)[1] == 4.0


def test_dep_funcs_travel_by_value(master: Master) -> None:
    task = master.submit_task(uses_helper, input_data=(5,), dep_funcs=(helper_double,))
    assert master.get_result(task)[1] == 11


def test_data_files_appear_in_the_working_directory(master: Master, tmp_path: Path) -> None:
    data = tmp_path / "table.csv"
    data.write_text("a,b\n1,2\n")

    def read_it(name: str) -> tuple[str, str]:
        import os

        return open(name).read(), os.getcwd()

    t1 = master.submit_task(read_it, input_data=("table.csv",), data_files=(data,))
    t2 = master.submit_task(os.listdir, input_data=(".",))
    text, cwd = master.get_result(t1)[1]
    assert text == "a,b\n1,2\n"
    assert Path(cwd) != tmp_path
    assert master.get_result(t2)[1] == []  # each task starts in an empty directory


def test_stdout_and_stderr_are_kept_on_the_task(master: Master) -> None:
    task = master.submit_task(prints, input_data=(4,))
    master.get_result(task)
    assert task.stdout == "out 4\n"
    assert task.stderr == "err 4\n"


def test_script_tasks(master: Master, tmp_path: Path) -> None:
    script = tmp_path / "add.py"
    script.write_text(
        "import sys\n"
        "a, b = pymw_get_input()\n"
        "print('argv', sys.argv[1:])\n"
        "pymw_set_output(a + b)\n"
    )
    task = master.submit_task(script, input_data=(2, 5))
    assert master.get_result(task)[1] == 7
    assert task.stdout == "argv ['2', '5']\n"
    assert task.name == "add.py"


def test_status_and_progress(master: Master) -> None:
    master.map(square, range(6))
    status = master.get_status()
    assert status.interface == "local"
    assert status.counts["done"] == 6
    assert status["counts"]["failed"] == 0
    assert len(status.workers) == 2
    assert sum(w["tasks_done"] for w in status.workers) == 6
    progress = master.get_progress()
    assert (progress.done, progress.failed, progress.total) == (6, 0, 6)
    assert progress.fraction == 1.0


def _pid_then_sleep(path: str, seconds: float) -> int:
    import os
    import time

    with open(path, "a") as f:
        f.write(f"{os.getpid()}\n")
    time.sleep(seconds)
    return os.getpid()


def _wait_for_pids(path: Path, count: int) -> list[int]:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if path.exists():
            pids = [int(p) for p in path.read_text().split()]
            if len(pids) >= count:
                return pids
        time.sleep(0.02)
    raise AssertionError("the task never started")


def test_a_killed_worker_is_replaced_and_its_task_retried(tmp_path: Path) -> None:
    marker = tmp_path / "pids"
    with Master("local", num_workers=2, retries=1) as master:
        task = master.submit_task(_pid_then_sleep, input_data=(str(marker), 1.0))
        first_pid = _wait_for_pids(marker, 1)[0]
        os.kill(first_pid, signal.SIGKILL)
        _, pid = master.get_result(task, timeout=30)
        assert pid != first_pid
        assert task.attempts == 2
        assert all(w["alive"] for w in master.get_status().workers)
        assert master.map(square, range(4)) == [0, 1, 4, 9]


def test_a_task_whose_workers_keep_dying_fails_clearly(tmp_path: Path) -> None:
    def die() -> None:
        import os
        import signal

        os.kill(os.getpid(), signal.SIGKILL)

    with Master("local", num_workers=1, retries=1) as master:
        task = master.submit_task(die)
        with pytest.raises(WorkerLost, match="killed by signal 9"):
            master.get_result(task, timeout=30)
        assert task.attempts == 2
        assert master.get_result(master.submit_task(square, (3,)), timeout=30)[1] == 9


def test_cleanup_leaves_no_worker_process() -> None:
    master = Master("local", num_workers=2)
    master.map(square, range(4))
    assert isinstance(master.interface, LocalInterface)
    pids = master.interface.pids()
    master.cleanup()
    master.cleanup()  # twice is fine
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists()


def test_a_cleaned_up_master_refuses_work() -> None:
    master = Master("local", num_workers=1)
    master.cleanup()
    with pytest.raises(TaskError, match="cleaned up"):
        master.submit_task(square, (1,))


def test_a_missing_data_file_is_a_clear_task_error(master: Master, tmp_path: Path) -> None:
    missing = tmp_path / "nope.csv"
    with pytest.raises(TaskError, match=r"cannot read data file .*nope\.csv"):
        master.submit_task(square, (1,), data_files=(missing,))
    with pytest.raises(TaskError, match="cannot read data file"):
        master.map(square, [1, 2], data_files=(missing,))
    assert master.get_progress().total == 0  # nothing half-submitted


def test_a_batch_with_an_unencodable_item_submits_nothing(master: Master) -> None:
    import threading

    with pytest.raises(TaskError, match="cannot encode the task"):
        master.map(square, [1, threading.Lock(), 3])
    assert master.get_progress().total == 0
    with pytest.raises(TaskError, match="no task is outstanding"):
        master.get_result(timeout=1)


def test_a_task_the_interface_refuses_is_not_waited_for() -> None:
    with Master("local", num_workers=1) as master:
        master.interface.close()
        with pytest.raises(RuntimeError, match="closed"):
            master.submit_task(square, (2,))
        with pytest.raises(TaskError, match="no task is outstanding"):
            master.get_result(timeout=1)


def test_collected_tasks_are_not_waited_for_again(master: Master) -> None:
    a, b = master.submit_task(square, (2,)), master.submit_task(square, (3,))
    master.get_result([a, b], timeout=30)
    master.get_result([a, b], timeout=30)
    with pytest.raises(TaskError, match="collected already"):
        master.get_result([a, b], timeout=1)
    with pytest.raises(TaskError, match="collected already"):  # its result was released
        master.get_result(a, timeout=1)


def test_workers_outlive_the_thread_that_started_them() -> None:
    import threading

    with Master("local", num_workers=1) as master:
        first = threading.Thread(target=lambda: master.map(square, [1, 2]))
        first.start()
        first.join()  # the thread that spawned the worker has ended
        assert isinstance(master.interface, LocalInterface)
        [pid] = master.interface.pids()
        time.sleep(0.5)
        task = master.submit_task(square, (3,))
        assert master.get_result(task, timeout=30)[1] == 9
        assert task.attempts == 1 and master.interface.pids() == [pid]


def wait_for_file(path: str) -> str:
    while not os.path.exists(path):
        time.sleep(0.01)
    return "seen"


def test_a_task_reads_running_while_it_runs_and_done_after(tmp_path: Path) -> None:
    seen: list[tuple[str, str]] = []

    def listen(event: str, task: Task) -> None:
        seen.append((event, task.task_id))

    go = tmp_path / "go"
    events.add_listener(listen)
    try:
        with Master("local", num_workers=1) as master:
            task = master.submit_task(wait_for_file, (str(go),))
            for _ in range(3000):  # a bound, not a timing: the worker starts it in far less
                if task.state is not TaskState.SUBMITTED:
                    break
                time.sleep(0.01)
            assert task.state is TaskState.RUNNING and task.worker == "local-1"
            assert master.get_status().counts["running"] == 1
            go.touch()
            for _ in range(3000):
                if task.finished:
                    break
                time.sleep(0.01)
            assert task.state is TaskState.DONE
            assert master.get_result(task, timeout=0) == (task, "seen")
    finally:
        events.remove_listener(listen)
    assert [event for event, task_id in seen if task_id == task.task_id] == [
        "submitted", "started", "finished"]


def stamped_sleep(seconds: float) -> tuple[int, float, float]:
    start = time.time()
    time.sleep(seconds)
    return os.getpid(), start, time.time()


def test_imap_keeps_every_worker_busy_and_yields_in_input_order() -> None:
    with Master("local", num_workers=2) as master:
        runs = list(master.imap(stamped_sleep, [0.5, 0.5, 2.0, 2.0]))
    (pid0, _, end0), (pid1, start1, _), (pid2, _, end2), (pid3, start3, _) = runs
    # each pair of neighbours ran side by side on the two workers: the second started before the
    # first ended, so no long task waited behind the other
    assert pid0 != pid1 and start1 < end0
    assert pid2 != pid3 and start3 < end2
