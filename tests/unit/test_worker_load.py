"""How tasks are dealt to workers: spread evenly, deep queues only while tasks stay short."""

from __future__ import annotations

import time
from collections import deque

from pymw_admin.interfaces.worker_load import (
    DEEP_PREFETCH,
    SHALLOW_PREFETCH,
    WorkerLoad,
    deal,
    to_revoke,
)
from pymw_admin.wire import encoding, framing


def _pending(n: int) -> deque[tuple[str, bytes]]:
    return deque((f"t{i}", b"task") for i in range(n))


def _record(task_id: str, seconds: float) -> bytes:
    now = time.time()
    return encoding.encode_result(encoding.ResultRecord(
        task_id=task_id, ok=True, python=encoding.python_minor(), started=now - seconds,
        finished=now))


def _short_task_worker(name: str) -> WorkerLoad:
    worker = WorkerLoad(name=name)
    for i in range(5):
        worker.in_flight[f"warm{i}"] = None
        worker.finished(_record(f"warm{i}", 0.0001))
    return worker


def test_new_workers_get_two_tasks_each() -> None:
    workers = [WorkerLoad(name="a"), WorkerLoad(name="b")]
    pending = _pending(10)
    batches = deal(workers, pending)
    assert [len(blobs) for _, blobs in batches] == [SHALLOW_PREFETCH, SHALLOW_PREFETCH]
    assert len(pending) == 10 - 2 * SHALLOW_PREFETCH


def test_short_tasks_fill_deep_queues_but_spread_evenly() -> None:
    workers = [_short_task_worker("a"), _short_task_worker("b")]
    assert workers[0].prefetch() == DEEP_PREFETCH
    batches = deal(workers, _pending(20))
    assert sorted(len(blobs) for _, blobs in batches) == [10, 10]


def test_long_tasks_bring_the_queue_back_to_two() -> None:
    worker = _short_task_worker("a")
    worker.in_flight["slow"] = None
    worker.finished(_record("slow", 0.5))
    assert worker.prefetch() == SHALLOW_PREFETCH


def test_a_worker_silent_for_longer_than_a_short_task_gets_no_more() -> None:
    worker = _short_task_worker("a")
    worker.in_flight["running"] = None
    worker.last_progress = time.monotonic() - 1.0
    assert worker.prefetch() == SHALLOW_PREFETCH


def test_dead_workers_get_nothing() -> None:
    dead = WorkerLoad(name="dead", alive=False)
    assert deal([dead], _pending(3)) == []


def test_a_worker_stuck_on_a_long_task_comes_after_a_busy_quick_one() -> None:
    stuck, quick = _short_task_worker("stuck"), _short_task_worker("quick")
    stuck.in_flight["long"] = None
    stuck.last_progress = time.monotonic() - 2.0
    quick.in_flight["short"] = None
    (chosen, _blobs), = deal([stuck, quick], _pending(1))
    assert chosen is quick


def test_a_worker_dying_with_one_task_fails_that_task() -> None:
    worker = WorkerLoad(name="a")
    worker.in_flight["t1"] = b"task"
    assert worker.lost() == ("t1", [])


def test_a_worker_dying_with_several_tasks_makes_them_suspects() -> None:
    worker = WorkerLoad(name="a")
    worker.in_flight.update({"t1": b"1", "t2": b"2"})
    running, suspects = worker.lost()
    assert running is None and [tid for tid, _ in suspects] == ["t1", "t2"]
    idle, other = WorkerLoad(name="b"), WorkerLoad(name="c")
    batches = deal([idle, other], _pending(4), deque(suspects))
    # each suspect alone on a worker holding nothing; the pending tasks wait
    assert sorted(len(blobs) for _, blobs in batches) == [1, 1]
    assert idle.isolated == "t1" and other.isolated == "t2" and idle.room() == 0


def test_an_idle_worker_takes_back_what_a_stuck_one_holds_unstarted() -> None:
    stuck, idle = WorkerLoad(name="stuck"), WorkerLoad(name="idle")
    stuck.in_flight.update({"long": b"l", "queued": b"q"})
    stuck.last_progress = time.monotonic() - 1.0
    [(asked, record)] = to_revoke([stuck, idle])
    assert asked is stuck and framing.read_ids(framing.REVOKE_MAGIC, record) == ["queued"]
    assert to_revoke([stuck, idle]) == []  # asked once
    assert stuck.revoked(["queued"]) == [("queued", b"q")]
    assert list(stuck.in_flight) == ["long"] and not stuck.revoking


def test_nothing_is_taken_back_while_no_worker_idles() -> None:
    a, b = WorkerLoad(name="a"), WorkerLoad(name="b")
    a.in_flight.update({"x": b"", "y": b""})
    b.in_flight["z"] = b""
    a.last_progress = time.monotonic() - 1.0
    assert to_revoke([a, b]) == []


def test_waiting_suspects_go_before_pending_tasks() -> None:
    busy = WorkerLoad(name="busy")
    busy.in_flight["long"] = b""
    suspects = deque([("s1", b"s")])
    pending = _pending(3)
    assert deal([busy], pending, suspects) == []  # busy takes nothing more: it will empty
    busy.in_flight.clear()
    [(_, blobs)] = deal([busy], pending, suspects)
    assert blobs == [b"s"] and len(pending) == 3


def test_neighbouring_tasks_go_to_different_workers() -> None:
    # imap over durations [1, 1, 4, 4] on two workers: dealt a then a, b then b, the long ones
    # queued on one worker while the other idled after the short ones (6 s instead of 5)
    workers = [WorkerLoad(name="a"), WorkerLoad(name="b")]
    deal(workers, _pending(4))
    assert [list(w.in_flight) for w in workers] == [["t0", "t2"], ["t1", "t3"]]
