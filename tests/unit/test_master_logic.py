"""The master's own decisions against a scripted engine (tests.doubles.FakeInterface): retries,
each result handed out and acknowledged once, timeouts that lose nothing, cancel, detach."""

from __future__ import annotations

import hashlib
import pickle
import time
from pathlib import Path

import pytest

from pymw_admin.interfaces.base import (
    Completion,
    Detachable,
    Interface,
    Resumable,
    RetriesItself,
)
from pymw_admin.runtime import Master, TaskError, TaskState, TaskTimeout, WorkerLost
from pymw_admin.wire.encoding import task_shared
from tests.doubles import FakeInterface, FakeResumable


def square(x: int) -> int:
    return x * x


def test_the_fakes_declare_what_they_can() -> None:
    assert isinstance(FakeInterface(), Interface)
    assert not isinstance(FakeInterface(), Resumable | Detachable)
    assert isinstance(FakeResumable(), Resumable) and isinstance(FakeResumable(), Detachable)


def test_a_lost_task_is_retried_with_the_same_id() -> None:
    fake = FakeInterface(["lost"])
    with Master(fake, retries=1) as master:
        task = master.submit_task(square, (3,))
        assert master.get_result(task) == (task, 9)
    assert fake.submitted == [task.task_id, task.task_id]
    assert task.attempts == 2


def test_a_task_lost_more_often_than_retries_fails_with_worker_lost() -> None:
    fake = FakeInterface(["lost", "lost"])
    with Master(fake, retries=1) as master:
        task = master.submit_task(square, (3,))
        with pytest.raises(WorkerLost, match="the worker died"):
            master.get_result(task)
    assert len(fake.submitted) == 2


def test_a_loss_retrying_cannot_help_is_not_retried() -> None:
    fake = FakeInterface(["refused"])
    with Master(fake, retries=3) as master:
        task = master.submit_task(square, (3,))
        with pytest.raises(WorkerLost, match="refused"):
            master.get_result(task)
    assert fake.submitted == [task.task_id]


class Replicating(FakeInterface):
    """An engine that hands a failed task to other workers itself, as BOINC does with replicas."""

    def __init__(self) -> None:
        super().__init__()
        self.retries: int | None = None

    def set_retries(self, retries: int) -> None:
        self.retries = retries

    def submit(self, task_id: str, task_file: bytes) -> None:
        self.submitted.append(task_id)
        self._done.put(Completion(task_id, failure="gave up after 3 workers", retryable=False,
                                  attempts=3))


def test_an_engine_that_retries_itself_is_told_the_retries_and_counts_its_attempts() -> None:
    assert isinstance(Replicating(), RetriesItself)
    assert not isinstance(FakeInterface(), RetriesItself)
    fake = Replicating()
    with Master(fake, retries=2) as master:
        assert fake.retries == 2
        task = master.submit_task(square, (3,))
        with pytest.raises(WorkerLost, match="gave up after 3 workers"):
            master.get_result(task)
    assert fake.submitted == [task.task_id]  # not retried again by the master
    assert task.attempts == 3


def test_a_timeout_loses_nothing() -> None:
    fake = FakeInterface(["hold"])
    with Master(fake) as master:
        task = master.submit_task(square, (4,))
        with pytest.raises(TaskTimeout):
            master.get_result(task, timeout=0.2)
        fake.release()
        assert master.get_result(task, timeout=10) == (task, 16)


def test_each_result_is_acknowledged_once() -> None:
    fake = FakeResumable()
    with Master(fake) as master:
        tasks = [master.submit_task(square, (x,)) for x in (1, 2)]
        got = sorted(master.get_result(t)[1] for t in tasks)
        assert got == [1, 4]
        with pytest.raises(TaskError, match="collected already"):
            master.get_result(tasks[0])
    assert sorted(fake.acknowledged) == sorted(t.task_id for t in tasks)


def test_cancel_reaches_the_engine() -> None:
    fake = FakeInterface(["hold"])
    with Master(fake) as master:
        task = master.submit_task(square, (5,))
        assert master.cancel(task)
    assert fake.cancelled == [task.task_id]


def test_an_exception_detaches_a_detachable_engine_and_closes_no_other() -> None:
    resumable, plain = FakeResumable(["hold"]), FakeInterface(["hold"])
    for fake in (resumable, plain):
        with pytest.raises(RuntimeError), Master(fake) as master:
            master.submit_task(square, (1,))
            raise RuntimeError("the script failed")
    assert resumable.detached and not resumable.closed
    assert plain.closed


class FakeStager(FakeInterface):
    """A FakeInterface that stages shared blobs (``SharesBlobs``): it records them."""

    def __init__(self, outcomes: list[str], shared_data_files: bool = True) -> None:
        super().__init__(outcomes)
        self.staged: dict[str, bytes] = {}
        self.shared_data_files = shared_data_files  # False: workers built before (BOINC)

    def put_shared(self, digest: str, blob: bytes) -> None:
        self.staged[digest] = blob

    def drop_shared(self, digest: str) -> None:
        del self.staged[digest]


BIG_BYTES = bytes(range(256)) * 2048  # 512 KiB: shared, as its own blob


def byte_at(i: int) -> int:
    return BIG_BYTES[i]


def test_tasks_over_one_big_bytes_object_hash_it_once(monkeypatch: pytest.MonkeyPatch) -> None:
    from pymw_admin.wire import encoding

    hashed: list[int] = []
    digest_of = encoding.digest_of

    def counting(blob: bytes) -> str:
        hashed.append(len(blob))
        return digest_of(blob)

    monkeypatch.setattr(encoding, "digest_of", counting)
    fake = FakeStager(["hold"] * 6)
    with Master(fake) as master:
        tasks = [master.submit_task(byte_at, (i,)) for i in range(5)]
        assert list(fake.staged.values()) == [BIG_BYTES]
        assert hashed.count(len(BIG_BYTES)) == 1  # while tasks hold it, its digest is known
        for task in tasks:
            master.cancel(task)
        assert fake.staged == {}  # nothing keeps it (nor its name) once no task needs it
        master.submit_task(byte_at, (0,))
        assert hashed.count(len(BIG_BYTES)) == 2


def test_a_large_data_file_is_staged_once_for_a_map_where_workers_take_it(
        tmp_path: Path) -> None:
    table = tmp_path / "table.bin"
    table.write_bytes(BIG_BYTES)
    digest = hashlib.sha256(BIG_BYTES).hexdigest()
    digests = []
    for takes_files in (True, False):
        fake = FakeStager(["hold"] * 20, shared_data_files=takes_files)
        with Master(fake) as master:
            tasks = master.submit_many(square, range(20), data_files=(table,))
            digests.append([t.digest for t in tasks])
            sizes = [len(blob) for _, blob in fake.held]
            if takes_files:
                assert fake.staged == {digest: BIG_BYTES}
                assert max(sizes) < 16 * 1024
                assert {tuple(task_shared(blob)) for _, blob in fake.held} == {(digest,)}
            else:
                assert fake.staged == {} and min(sizes) > len(BIG_BYTES)
    assert digests[0] == digests[1]  # the same work by content, however the file travels


def test_a_zero_timeout_and_a_tasks_state_see_what_the_engine_already_reported() -> None:
    with Master(FakeInterface()) as master:  # "ok": the result is there once submitted
        polled = master.submit_task(square, (3,))
        assert master.get_result(polled, timeout=0) == (polled, 9)
        read = master.submit_task(square, (4,))
        assert read.state is TaskState.DONE and read.finished
        assert master.get_result(read, timeout=0) == (read, 16)


def test_a_lost_task_retried_is_submitted_again_and_counted_once() -> None:
    fake = FakeInterface(["lost"])
    with Master(fake, retries=1) as master:
        task = master.submit_task(square, (3,))
        assert master.get_result(task, timeout=10) == (task, 9)
        assert master.get_status().counts == {
            "queued": 0, "submitted": 0, "running": 0, "done": 1, "failed": 0, "cancelled": 0}


def test_a_pickled_task_is_a_snapshot_without_its_master() -> None:
    with Master(FakeInterface()) as master:
        task = master.submit_task(square, (3,))
        copy = pickle.loads(pickle.dumps(task))
    assert copy.task_id == task.task_id and copy._refresh is None


class _SlowLook(FakeInterface):
    """An engine whose every look is a query (HTCondor's schedd), counted."""

    def __init__(self) -> None:
        super().__init__(["hold"])
        self.looks = 0

    def wait(self, timeout: float | None) -> list[Completion]:
        self.looks += 1
        time.sleep(0.02)
        return super().wait(timeout)


def test_reading_states_in_a_loop_does_not_query_a_slow_engine_each_time() -> None:
    fake = _SlowLook()
    with Master(fake) as master:
        task = master.submit_task(square, (3,))
        states = {task.state for _ in range(50)}
        assert states == {TaskState.SUBMITTED}
        assert fake.looks == 1  # the next look waits 100 times as long as this one took
        fake.release()
        assert master.get_result(task, timeout=10) == (task, 9)
