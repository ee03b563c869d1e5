"""A master script that exercises the Master API on the mpi interface, one check at a time.

    mpiexec -n 3 python api_checks.py -i mpi [--only NAME]...
    python api_checks.py -i mpi -n 2 [--only NAME]...

Each check prints one JSON line ``{"check": NAME, "ok": bool, "detail": ...}``; the tests read
them. Running all checks in one MPI job keeps the suite fast (one mpiexec, not thirty).
The functions sent to workers live in this script's ``__main__``, as in a user's script.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from pymw_admin.runtime import Master, TaskError, TaskState, TaskTimeout, WorkerLost, options

CHECKS: dict[str, Callable[[Master], object]] = {}


def check(func: Callable[[Master], object]) -> Callable[[Master], object]:
    CHECKS[func.__name__] = func
    return func


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


def where() -> tuple[str, int, int]:
    return socket.gethostname(), os.getpid(), os.getppid()


def pid_then_sleep(path: str, seconds: float) -> int:
    with open(path, "a") as f:
        f.write(f"{os.getpid()}\n")
    time.sleep(seconds)
    return os.getpid()


def wait_for_pids(path: Path, count: int) -> list[int]:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if path.exists():
            pids = [int(p) for p in path.read_text().split()]
            if len(pids) >= count:
                return pids
        time.sleep(0.02)
    raise AssertionError("the task never started")


# --- the checks -------------------------------------------------------------------------------


@check
def submit_and_get_that_task(master: Master) -> None:
    task = master.submit_task(square, input_data=(7,))
    got, result = master.get_result(task, timeout=60)
    assert got is task and result == 49, result
    assert task.state is TaskState.DONE
    assert task.worker and task.worker.startswith("mpi-"), task.worker


@check
def get_result_any_task_returns_each_once(master: Master) -> None:
    tasks = [master.submit_task(square, input_data=(i,)) for i in range(10)]
    seen = {}
    for _ in tasks:
        task, result = master.get_result(timeout=60)
        seen[task.task_id] = result
    assert sorted(seen.values()) == [i * i for i in range(10)]
    try:
        master.get_result()
    except TaskError as exc:
        assert "no task is outstanding" in str(exc)
    else:
        raise AssertionError("get_result() with nothing outstanding returned")


@check
def get_result_from_a_list(master: Master) -> None:
    a = master.submit_task(square, input_data=(2,))
    b = master.submit_task(square, input_data=(3,))
    first, r1 = master.get_result([a, b], timeout=60)
    second, r2 = master.get_result([a, b], timeout=60)
    assert {first, second} == {a, b} and {r1, r2} == {4, 9}


@check
def lambdas_and_closures_from_main(master: Master) -> None:
    factor = 3

    def times(x: int) -> int:
        return x * factor

    assert master.get_result(master.submit_task(lambda a, b: a + b, (2, 3)), timeout=60)[1] == 5
    assert master.get_result(master.submit_task(times, (5,)), timeout=60)[1] == 15


@check
def map_keeps_input_order(master: Master) -> None:
    assert master.map(square, range(500), timeout=60) == [i * i for i in range(500)]


@check
def as_completed_yields_every_task(master: Master) -> None:
    tasks = [master.submit_task(square, input_data=(i,)) for i in range(8)]
    finished = list(master.as_completed(tasks, timeout=60))
    assert sorted(t.task_id for t in finished) == sorted(t.task_id for t in tasks)
    assert all(t.state is TaskState.DONE for t in finished)


@check
def a_raising_task_keeps_type_message_traceback_and_object(master: Master) -> None:
    task = master.submit_task(raises_boom, input_data=("bad input",))
    try:
        master.get_result(task, timeout=60)
    except TaskError as err:
        assert err.remote_type == "Boom" and err.remote_message == "bad input"
        assert "raises_boom" in err.remote_traceback
        assert isinstance(err.exception, Boom)
        assert str(err) == f"task {task.task_id} raised Boom: bad input"
        assert task.state is TaskState.FAILED
    else:
        raise AssertionError("no TaskError")


@check
def an_unpicklable_exception_still_reports_its_type(master: Master) -> None:
    def raise_local() -> None:
        class Local(Exception):
            pass

        raise Local("only here")

    try:
        master.get_result(master.submit_task(raise_local), timeout=60)
    except TaskError as err:
        assert (err.remote_type, err.remote_message) == ("Local", "only here")
    else:
        raise AssertionError("no TaskError")


@check
def map_raises_the_first_failure(master: Master) -> None:
    try:
        master.map(lambda x: 1 / x, [1, 0, 2], timeout=60)
    except TaskError as err:
        assert "ZeroDivisionError" in str(err)
    else:
        raise AssertionError("no TaskError")


@check
def timeout_raises_and_loses_nothing(master: Master) -> None:
    task = master.submit_task(time.sleep, input_data=(1.0,))
    try:
        master.get_result(task, timeout=0.1)
    except TaskTimeout as exc:
        assert "within 0.1 s" in str(exc)
    else:
        raise AssertionError("no TaskTimeout")
    got, result = master.get_result(task, timeout=30)
    assert got is task and result is None


@check
def modules_are_imported_before_the_call(master: Master) -> None:
    def uses_math(x: float) -> float:
        return sys.modules["math"].sqrt(x)

    task = master.submit_task(uses_math, input_data=(16.0,), modules=("math",))
    assert master.get_result(task, timeout=60)[1] == 4.0


@check
def dep_funcs_travel_by_value(master: Master) -> None:
    task = master.submit_task(uses_helper, input_data=(5,), dep_funcs=(helper_double,))
    assert master.get_result(task, timeout=60)[1] == 11


@check
def data_files_travel_with_the_task(master: Master) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        small = Path(tmp) / "table.csv"
        small.write_text("a,b\n1,2\n")
        big = Path(tmp) / "big.bin"
        big.write_bytes(os.urandom(4 << 20))  # several MPI messages' worth

        def read_it(name: str) -> tuple[bytes, str]:
            return open(name, "rb").read(), os.getcwd()

        t1 = master.submit_task(read_it, input_data=("table.csv",), data_files=(small,))
        t2 = master.submit_task(read_it, input_data=("big.bin",), data_files=(big,))
        t3 = master.submit_task(os.listdir, input_data=(".",))
        data, cwd = master.get_result(t1, timeout=60)[1]
        assert data == b"a,b\n1,2\n" and Path(cwd) != Path(tmp)
        assert master.get_result(t2, timeout=60)[1][0] == big.read_bytes()
        assert master.get_result(t3, timeout=60)[1] == []  # each task starts in an empty dir


@check
def stdout_and_stderr_are_kept_on_the_task(master: Master) -> None:
    def prints(x: int) -> int:
        print(f"out {x}")
        print(f"err {x}", file=sys.stderr)
        return x

    task = master.submit_task(prints, input_data=(4,))
    master.get_result(task, timeout=60)
    assert (task.stdout, task.stderr) == ("out 4\n", "err 4\n")


@check
def script_tasks(master: Master) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "add.py"
        script.write_text(
            "import sys\na, b = pymw_get_input()\nprint('argv', sys.argv[1:])\n"
            "pymw_set_output(a + b)\n"
        )
        task = master.submit_task(script, input_data=(2, 5))
    assert master.get_result(task, timeout=60)[1] == 7
    assert task.stdout == "argv ['2', '5']\n"


@check
def tasks_run_outside_the_master_process(master: Master) -> None:
    _host, pid, ppid = master.get_result(master.submit_task(where), timeout=60)[1]
    assert pid != os.getpid() and ppid != os.getpid(), (pid, ppid, os.getpid())


@check
def status_names_every_worker(master: Master) -> dict[str, object]:
    master.map(square, range(6), timeout=60)
    status = master.get_status()
    assert status.interface == "mpi"
    assert status.counts["done"] >= 6 and status["counts"]["submitted"] == 0
    workers = status.workers
    assert all(w["alive"] and w["extra"]["pid"] for w in workers), workers
    return {"workers": len(workers), "mode": workers[0]["extra"]["mode"]}


@check
def a_free_worker_takes_the_next_task(master: Master) -> None:
    slow = master.submit_task(time.sleep, input_data=(3.0,))
    time.sleep(0.3)  # the slow task is running on one worker
    quick = [master.submit_task(square, input_data=(i,)) for i in range(20)]
    for task in master.as_completed(quick, timeout=60):
        assert task.state is TaskState.DONE
    assert not slow.finished, "short tasks waited behind the long one"
    master.get_result(slow, timeout=60)


@check
def a_task_that_kills_its_process_is_retried_then_fails_clearly(master: Master) -> None:
    def die() -> None:
        os.kill(os.getpid(), signal.SIGKILL)

    task = master.submit_task(die)
    try:
        master.get_result(task, timeout=60)
    except WorkerLost as err:
        assert "killed by signal 9" in str(err), str(err)
    else:
        raise AssertionError("no WorkerLost")
    assert task.attempts == 2
    assert master.map(square, range(10), timeout=60) == [i * i for i in range(10)]


@check
def a_killed_task_process_is_retried_and_succeeds(master: Master) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        marker = Path(tmp) / "pids"
        task = master.submit_task(pid_then_sleep, input_data=(str(marker), 1.0))
        first = wait_for_pids(marker, 1)[0]
        os.kill(first, signal.SIGKILL)
        _, pid = master.get_result(task, timeout=60)
        assert pid != first and task.attempts == 2


@check
def the_workers_keep_serving_after_failures(master: Master) -> None:
    assert master.map(square, range(100), timeout=60) == [i * i for i in range(100)]
    assert all(w["alive"] for w in master.get_status().workers)


BIG = bytes(range(256)) * (8 << 12)  # 8 MiB, module-level like a user's table


def big_len(i: int) -> int:
    return len(BIG) + i


def add(a: int, b: int, c: int = 0) -> int:
    return a + b + c


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def raises_interrupt() -> None:
    raise KeyboardInterrupt("from the task")


@check
def quick_tasks_never_wait_behind_a_hung_one(master: Master) -> None:
    hung = master.submit_task(time.sleep, (3600,))
    with contextlib.suppress(TaskTimeout):
        master.get_result(hung, timeout=1)
    quick = [master.submit_task(square, (i,)) for i in range(6)]
    assert [master.get_result(t, timeout=20)[1] for t in quick] == [i * i for i in range(6)]
    assert master.cancel(hung) and hung.state is TaskState.CANCELLED


@check
def cancel_a_running_task_replaces_its_process(master: Master) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        marker = Path(tmp) / "pids"
        hung = master.submit_task(pid_then_sleep, (str(marker), 3600))
        pid = wait_for_pids(marker, 1)[0]
        assert master.cancel(hung)
        deadline = time.monotonic() + 20
        while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not Path(f"/proc/{pid}").exists(), "the hung task's process still runs"
    assert master.map(square, range(10), timeout=60) == [i * i for i in range(10)]


@check
def a_dying_task_costs_only_itself(master: Master) -> None:
    bad = master.submit_task(die)
    innocent = [master.submit_task(square, (i,)) for i in range(8)]
    try:
        master.get_result(bad, timeout=60)
    except WorkerLost:
        pass
    else:
        raise AssertionError("no WorkerLost")
    assert [master.get_result(t, timeout=60)[1] for t in innocent] == [i * i for i in range(8)]
    assert all(t.attempts == 1 for t in innocent), [t.attempts for t in innocent]


@check
def chunked_map_over_several_iterables_and_kwargs(master: Master) -> None:
    assert master.map(add, range(100), range(100), chunksize=7, timeout=60) == [
        2 * i for i in range(100)]
    task = master.submit_task(add, (1, 2), kwargs={"c": 10})
    assert master.get_result(task, timeout=60)[1] == 13


@check
def a_big_global_travels_once_per_worker(master: Master) -> dict[str, int]:
    def shared_bytes_sent() -> int:  # so far: other checks share blobs too (a big data file)
        return sum(w["extra"].get("shared_bytes_sent", 0) for w in master.get_status().workers)

    before = shared_bytes_sent()
    assert master.map(big_len, range(20), timeout=120) == [len(BIG) + i for i in range(20)]
    sent = shared_bytes_sent() - before
    assert len(BIG) <= sent <= 2 * len(BIG) + 4096, sent
    return {"sent": sent}


@check
def a_task_raising_keyboard_interrupt_is_a_task_error(master: Master) -> None:
    task = master.submit_task(raises_interrupt)
    try:
        master.get_result(task, timeout=60)
    except WorkerLost:
        raise AssertionError("its worker was lost") from None
    except TaskError as err:
        assert err.remote_type == "KeyboardInterrupt" and task.attempts == 1
    else:
        raise AssertionError("no TaskError")


@check
def sys_exit_zero_in_a_script_keeps_its_output(master: Master) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "quits.py"
        script.write_text("import sys\npymw_set_output(pymw_get_input()[0] * 2)\nsys.exit(0)\n")
        task = master.submit_task(script, (21,))
    assert master.get_result(task, timeout=60)[1] == 42


class Oops(Exception):
    pass


def oops() -> None:
    raise Oops("own exception")


@check
def an_executor_over_the_mpi_master(master: Master) -> None:
    from concurrent.futures import Executor, as_completed

    from pymw_admin.runtime import PyMWExecutor

    with PyMWExecutor(master=master) as pool:
        assert isinstance(pool, Executor)
        assert pool.submit(add, 1, 2, c=3).result(timeout=60) == 6
        try:
            pool.submit(oops).result(timeout=60)
        except Oops as exc:
            assert str(exc) == "own exception"
        else:
            raise AssertionError("the task's own exception was not raised")
        assert list(pool.map(add, range(40), range(40), chunksize=6, timeout=60)) == [
            2 * i for i in range(40)]
        futures = [pool.submit(square, i) for i in range(10)]
        assert {f.result() for f in as_completed(futures, timeout=60)} == {
            i * i for i in range(10)}


def main() -> int:
    opts = options.parse_args()
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", action="append", default=[])
    args = parser.parse_args(opts.rest)
    master = Master(interface=options.interface_from_args())
    print(f"MASTER CODE RAN pid={os.getpid()}", flush=True)  # never on a worker rank
    names = args.only or list(CHECKS)
    for name in names:
        try:
            detail = CHECKS[name](master)
            line = {"check": name, "ok": True, "detail": detail}
        except BaseException as exc:
            line = {"check": name, "ok": False,
                    "detail": "".join(traceback.format_exception(exc))}
        print(json.dumps(line, default=str), flush=True)
    master.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
