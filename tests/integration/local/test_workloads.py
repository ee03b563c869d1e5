"""Realistic workloads on the local interface: scheduling, worker deaths, memory, shared data,
chunked map, thread safety, the Executor and PyMW 0.4 scripts (issue items 1-7)."""

from __future__ import annotations

import concurrent.futures
import gc
import os
import signal
import subprocess
import sys
import threading
import time
import weakref
from pathlib import Path

import pytest

from pymw_admin.runtime import Master, TaskError, TaskState, TaskTimeout, WorkerLost


def square(x: int) -> int:
    return x * x


def add(a: int, b: int, c: int = 0) -> int:
    return a + b + c


def pid_and_sleep(seconds: float) -> int:
    time.sleep(seconds)
    return os.getpid()


def write_pid_then_sleep(path: str, seconds: float) -> int:
    with open(path, "a") as f:
        f.write(f"{os.getpid()}\n")
    time.sleep(seconds)
    return os.getpid()


def wait_for_pids(path: Path, count: int) -> list[int]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if path.exists():
            pids = [int(p) for p in path.read_text().split()]
            if len(pids) >= count:
                return pids
        time.sleep(0.02)
    raise AssertionError("the task never started")


# --- 1. no task waits behind another while a worker is idle; cancel ---


def test_quick_tasks_never_wait_behind_a_hung_one() -> None:
    with Master("local", num_workers=2) as master:
        hung = master.submit_task(time.sleep, (3600,))
        with pytest.raises(TaskTimeout):
            master.get_result(hung, timeout=1)
        quick = [master.submit_task(square, (i,)) for i in range(6)]
        started = time.monotonic()
        assert [master.get_result(t, timeout=20)[1] for t in quick] == [i * i for i in range(6)]
        assert time.monotonic() - started < 20
        assert master.cancel(hung)
        assert hung.state is TaskState.CANCELLED


def test_a_task_dealt_behind_a_long_one_moves_to_the_idle_worker() -> None:
    with Master("local", num_workers=2) as master:
        master.map(square, range(40))  # the workers look "short": deep prefetch
        long = master.submit_task(time.sleep, (30,))
        time.sleep(0.3)
        quick = [master.submit_task(square, (i,)) for i in range(8)]
        for task in master.as_completed(quick, timeout=20):
            assert task.state is TaskState.DONE
        assert not long.finished
        master.cancel(long)


def test_cancel_a_running_task_replaces_its_worker(tmp_path: Path) -> None:
    marker = tmp_path / "pids"
    with Master("local", num_workers=1) as master:
        hung = master.submit_task(write_pid_then_sleep, (str(marker), 3600))
        behind = master.submit_task(square, (5,))
        pid = wait_for_pids(marker, 1)[0]
        assert master.cancel(hung) is True
        with pytest.raises(TaskError, match="cancelled"):
            master.get_result(hung, timeout=5)
        assert master.get_result(behind, timeout=30)[1] == 25
        assert behind.attempts == 1
        deadline = time.monotonic() + 10
        while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not Path(f"/proc/{pid}").exists()
        assert master.cancel(behind) is False  # already finished


def test_cancel_a_queued_task() -> None:
    with Master("local", num_workers=1) as master:
        first = master.submit_task(time.sleep, (1.0,))
        queued = [master.submit_task(square, (i,)) for i in range(5)]
        assert master.cancel(queued[2])
        results = [master.get_result(t, timeout=30)[1] for t in queued if t is not queued[2]]
        assert results == [0, 1, 9, 16]
        master.get_result(first, timeout=30)
        assert master.get_status().counts["cancelled"] == 1


# --- 2. a worker's death fails only the task it was running ---


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def test_a_dying_task_costs_only_itself_with_one_worker() -> None:
    with Master("local", num_workers=1, retries=1) as master:
        bad = master.submit_task(die)
        innocent = [master.submit_task(square, (i,)) for i in range(5)]
        with pytest.raises(WorkerLost):
            master.get_result(bad, timeout=30)
        assert [master.get_result(t, timeout=30)[1] for t in innocent] == [0, 1, 4, 9, 16]
        assert all(t.attempts == 1 for t in innocent)


# --- 3. memory and per-call cost do not grow with history ---


def big_result(n: int) -> bytes:
    return b"x" * n


def test_a_collected_result_is_released() -> None:
    with Master("local", num_workers=1) as master:
        task = master.submit_task(big_result, (1 << 20,))
        got, value = master.get_result(task)
        ref = weakref.ref(task)
        assert len(value) == 1 << 20
        del value, task, got
        gc.collect()
        assert ref() is None  # the master keeps no collected task
        assert master.get_progress().done == 1


def test_get_result_of_a_collected_task_says_so(master: Master) -> None:
    task = master.submit_task(square, (3,))
    assert master.get_result(task)[1] == 9
    with pytest.raises(TaskError, match="collected already"):
        master.get_result(task, timeout=1)


def test_status_counts_are_kept_across_collection(master: Master) -> None:
    master.map(square, range(50))
    status = master.get_status()
    assert status.counts["done"] == 50
    assert master.get_progress().total == 50
    assert master.tasks == []


# --- 4. data sent once per worker ---

BIG = bytes(range(256)) * (12 << 12)  # 12 MiB, module-level like a user's table


def big_len(i: int) -> int:
    return len(BIG) + i


def test_a_big_global_travels_once_per_worker() -> None:
    with Master("local", num_workers=2) as master:
        assert master.map(big_len, range(20)) == [len(BIG) + i for i in range(20)]
        sent = sum(w["extra"].get("shared_bytes_sent", 0) for w in master.get_status().workers)
        assert len(BIG) <= sent <= 2 * len(BIG) + 4096
        tasks = [master.submit_task(big_len, (i,)) for i in range(10)]
        assert [master.get_result(t)[1] for t in tasks] == [len(BIG) + i for i in range(10)]
        sent = sum(w["extra"].get("shared_bytes_sent", 0) for w in master.get_status().workers)
        assert sent <= 2 * len(BIG) + 4096  # same content: no worker got it twice


def test_a_big_global_goes_out_ahead_once_per_worker_and_a_failed_hash_leaves_nothing() -> None:
    from pymw_admin.interfaces.local import LocalInterface

    with Master("local", num_workers=2) as master:
        interface = master.interface
        assert isinstance(interface, LocalInterface)
        named = interface.send_ahead(os.urandom(5 << 20))  # as if its hash had failed
        named(None)
        assert interface.known_digest(BIG) is None and not interface._recent
        assert master.map(big_len, range(3)) == [len(BIG) + i for i in range(3)]
        sent = [w["extra"]["shared_bytes_sent"] for w in master.get_status().workers]
        assert sent == [len(BIG), len(BIG)]  # sent ahead: to each worker, once
        assert interface.known_digest(BIG) is not None  # a later map neither hashes nor sends
        assert master.map(big_len, range(3)) == [len(BIG) + i for i in range(3)]
        assert [w["extra"]["shared_bytes_sent"] for w in master.get_status().workers] == sent


def tunables_seen() -> tuple[str | None, str, str]:
    """GLIBC_TUNABLES as the task sees it, as its process was started with, and as a process
    the task starts sees it."""
    with open("/proc/self/environ", "rb") as f:
        started = dict(v.split(b"=", 1) for v in f.read().split(b"\0") if b"=" in v)
    child = subprocess.run([sys.executable, "-c",
                            "import os; print(os.environ.get('GLIBC_TUNABLES', ''))"],
                           capture_output=True, text=True, check=True).stdout.strip()
    return (os.environ.get("GLIBC_TUNABLES"), started.get(b"GLIBC_TUNABLES", b"").decode(),
            child)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc tunables: Linux only")
def test_workers_start_with_huge_pages_their_tasks_do_not_see_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from pymw_admin.worker import WORKER_TUNABLES

    monkeypatch.delenv("GLIBC_TUNABLES", raising=False)
    with Master("local", num_workers=1) as master:
        assert master.get_result(master.submit_task(tunables_seen))[1] == (
            None, WORKER_TUNABLES, "")
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.check=0")  # the user's own: left alone
    with Master("local", num_workers=1) as master:
        assert master.get_result(master.submit_task(tunables_seen))[1] == (
            "glibc.malloc.check=0", "glibc.malloc.check=0", "glibc.malloc.check=0")


def test_blobs_sent_ahead_through_one_gate_are_written_before_their_digest_is_known() -> None:
    from concurrent.futures import Future

    from pymw_admin.interfaces.serve_child import ServeChild
    from pymw_admin.wire.encoding import digest_of
    from pymw_admin.wire.framing import shared_ahead_frame

    gate = threading.Semaphore(1)  # one copy at a time: none may hold it waiting for the hash
    children = [ServeChild(f"gate-{i}", gate=gate) for i in range(2)]
    try:
        blob = os.urandom(3 << 20)
        digest: Future[bytes] = Future()
        written = [threading.Event() for _ in children]
        for child, event in zip(children, written, strict=True):
            child.send_parts(shared_ahead_frame(memoryview(blob), digest), event.set)
        assert all(event.wait(30) for event in written) and not digest.done()
        digest.set_result(digest_of(blob).encode())
    finally:
        for child in children:
            child.stop()
            child.close_output()
    assert [child.proc.returncode for child in children] == [0, 0]


def test_the_blob_gate_never_holds_back_a_batch_of_tasks() -> None:
    from pymw_admin.interfaces.serve_child import GATED_BYTES, ServeChild
    from pymw_admin.wire.encoding import decode_result_header
    from pymw_admin.wire.framing import pack_batch, shared_frame, unpack_batch

    child = ServeChild("gate-closed", gate=threading.Semaphore(0))  # no blob could pass
    try:
        child.send(pack_batch([b"not a task" + b"x" * GATED_BYTES]))
        bodies: list[bytes] = []
        while not bodies:
            frames = child.read_frames()
            assert frames is not None
            bodies += frames
        record = decode_result_header(unpack_batch(bodies[0])[0])
        assert not record.ok and "not a pymw task file" in record.error_message
        # a blob waits for the gate only so long (its holder may be stuck behind a busy child)
        written = threading.Event()
        child.send_parts(shared_frame("0" * 64, os.urandom(GATED_BYTES)), written.set)
        assert written.wait(30)
    finally:
        child.stop()
        child.close_output()


def test_broadcast_sends_an_object_once() -> None:
    table = list(range(200_000))
    with Master("local", num_workers=2) as master:
        shared = master.broadcast(table)

        def pick(data: list[int], i: int) -> int:
            return data[i]

        tasks = [master.submit_task(pick, (shared, i * 1000)) for i in range(20)]
        assert [master.get_result(t)[1] for t in tasks] == [i * 1000 for i in range(20)]


def test_map_streams_a_generator_it_cannot_hold() -> None:
    seen = []

    def items():  # type: ignore[no-untyped-def]
        for i in range(400):
            seen.append(i)
            yield i

    with Master("local", num_workers=2) as master:
        it = master.imap(square, items())
        assert next(it) == 0
        assert len(seen) < 400  # it did not encode everything before the first result
        assert list(it) == [i * i for i in range(1, 400)]


# --- 5. the small bugs ---


def test_get_result_after_cleanup_does_not_block() -> None:
    master = Master("local", num_workers=1)
    task = master.submit_task(time.sleep, (30,))
    master.cleanup()
    with pytest.raises(TaskError, match="cleaned up"):
        master.get_result(task, timeout=5)


def test_one_master_from_many_threads() -> None:
    with Master("local", num_workers=2) as master:
        errors: list[BaseException] = []

        def run(k: int) -> None:
            try:
                for i in range(30):
                    t = master.submit_task(square, (k * 100 + i,))
                    assert master.get_result(t, timeout=60)[1] == (k * 100 + i) ** 2
            except BaseException as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=run, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert not any(t.is_alive() for t in threads)
        assert errors == []


def test_sys_exit_zero_in_a_script_that_set_its_output(master: Master, tmp_path: Path) -> None:
    script = tmp_path / "quits.py"
    script.write_text("import sys\npymw_set_output(pymw_get_input()[0] * 2)\nsys.exit(0)\n")
    assert master.get_result(master.submit_task(script, (21,)))[1] == 42
    script.write_text("import sys\nsys.exit(3)\n")
    with pytest.raises(TaskError, match="SystemExit"):
        master.get_result(master.submit_task(script, ()))


def test_two_data_files_with_one_name_are_refused(master: Master, tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "x.txt").write_text("1")
    (tmp_path / "b" / "x.txt").write_text("2")
    with pytest.raises(TaskError, match=r"x\.txt"):
        master.submit_task(square, (1,), data_files=(tmp_path / "a" / "x.txt",
                                                      tmp_path / "b" / "x.txt"))


def raises_interrupt() -> None:
    raise KeyboardInterrupt("from the task")


def test_a_task_raising_keyboard_interrupt_is_a_task_error(master: Master) -> None:
    task = master.submit_task(raises_interrupt)
    with pytest.raises(TaskError) as info:
        master.get_result(task, timeout=30)
    assert not isinstance(info.value, WorkerLost)
    assert info.value.remote_type == "KeyboardInterrupt"
    assert task.attempts == 1


# --- 6. chunks, several iterables, keyword arguments ---


def test_map_with_chunks_and_several_iterables(master: Master) -> None:
    assert master.map(add, range(100), range(100), chunksize=7) == [2 * i for i in range(100)]
    assert master.map(square, [], chunksize=5) == []
    with pytest.raises(TaskError, match="ZeroDivisionError"):
        master.map(lambda x: 1 / x, [3, 2, 1, 0, 5], chunksize=2)


def test_submit_task_with_keyword_arguments(master: Master) -> None:
    task = master.submit_task(add, (1, 2), kwargs={"c": 10})
    assert master.get_result(task)[1] == 13


# --- 7. a concurrent.futures Executor, PyMW 0.4 scripts ---


class Oops(Exception):
    pass


def oops() -> None:
    raise Oops("own exception")


def test_executor_is_a_real_executor() -> None:
    from pymw_admin.runtime import PyMWExecutor

    with PyMWExecutor(num_workers=2) as pool:
        assert isinstance(pool, concurrent.futures.Executor)
        fut = pool.submit(add, 1, 2, c=3)
        assert fut.result(timeout=30) == 6
        with pytest.raises(Oops, match="own exception"):
            pool.submit(oops).result(timeout=30)
        assert list(pool.map(add, range(50), range(50), chunksize=8)) == [2 * i for i in range(50)]
        futures = [pool.submit(square, i) for i in range(20)]
        done = {f.result() for f in concurrent.futures.as_completed(futures, timeout=60)}
        assert done == {i * i for i in range(20)}
        slow = pool.submit(time.sleep, 3600)
        time.sleep(0.5)
        assert slow.cancel() or not slow.done()


PYMW_04_SCRIPT = """
import time

import pymw_admin.compat as pymw

def double(x):
    return 2 * x

def nothing():
    return "no args"

interface = pymw.interfaces.multicore.MulticoreInterface(num_workers=2)
master = pymw.PyMW_Master(interface=interface)
tasks = [master.submit_task(double, input_data=(i,)) for i in range(5)]
t0 = master.submit_task(nothing, input_data=None)
print("progress", master.get_progress(t0) in (0.0, 0.5, 1.0))
total = 0
for task in tasks:
    t, r = master.get_result(task)
    total += r
print("total", total)
t, r = master.get_result(t0)
print("nothing", r)
t1 = master.submit_task(double, input_data=(7,))
print("nonblocking", master.get_result(t1, blocking=False) in ((None, None), (t1, 14)))
print("blocking", master.get_result(t1)[1])
t2 = master.submit_task(double, input_data=(8,))
while True:  # 0.4's polling loop: it hung for ever when a poll never looked at the workers
    t, r = master.get_result(t2, blocking=False)
    if t is not None:
        break
    time.sleep(0.05)
print("polled", r, master.get_progress(t2))
status = master.get_status()
print("status", sorted(status), len(status["tasks"]) >= 0)
print("generic", pymw.interfaces.generic.GenericInterface is not None)
print("names", all(hasattr(pymw.interfaces, n) for n in ("mpi", "condor", "boinc")))
"""


def test_a_pymw_04_script_runs_with_the_compat_import(tmp_path: Path) -> None:
    script = tmp_path / "old_script.py"
    script.write_text(PYMW_04_SCRIPT)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYMW_")}
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         timeout=120, env=env, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [
        "progress True",
        "total 20",
        "nothing no args",
        "nonblocking True",
        "blocking 14",
        "polled 16 1.0",
        "status ['interface_status', 'tasks'] True",
        "generic True",
        "names True",
    ]


OWN_INIT_SCRIPT = """
from pymw_admin.runtime import Master, PyMWExecutor, TaskError

class MyErr(Exception):
    def __init__(self, code, where="here"):
        super().__init__(f"code {code}")
        self.code = code
        self.where = where

def fail(code):
    raise MyErr(code, where="worker")

with PyMWExecutor(num_workers=1) as pool:
    try:
        pool.submit(fail, 7).result()
    except MyErr as exc:
        print("executor", exc.code, exc.where, exc)
with Master(num_workers=1) as master:
    task = master.submit_task(fail, (8,))
    try:
        master.get_result(task)
    except TaskError as err:
        print("master", type(err.exception).__name__, err.exception.code, err.exception.args)
"""


def test_an_exception_with_its_own_init_comes_back_as_itself(tmp_path: Path) -> None:
    script = tmp_path / "own_init.py"
    script.write_text(OWN_INIT_SCRIPT)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYMW_")}
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         timeout=120, env=env, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["executor 7 worker code 7", "master MyErr 8 ('code 8',)"]


TRACEBACK_SCRIPT = """
from pymw_admin.runtime import Master, TaskError

def helper(x):
    return 1 / x

def task(x):
    y = x - 1
    return helper(y)

with Master(num_workers=1) as master:
    try:
        master.get_result(master.submit_task(task, (1,)))
    except TaskError as err:
        print(err.remote_traceback)
"""


def test_a_remote_traceback_names_the_master_script_and_shows_its_lines(tmp_path: Path) -> None:
    script = tmp_path / "master_script.py"
    script.write_text(TRACEBACK_SCRIPT)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYMW_")}
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         timeout=120, env=env, check=False)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    frames = lines[lines.index(f'  File "{script}", line 9, in task'):]
    assert frames[:4] == [f'  File "{script}", line 9, in task', "    return helper(y)",
                          f'  File "{script}", line 5, in helper', "    return 1 / x"]
    assert "<dynamic-code>" not in out.stdout
