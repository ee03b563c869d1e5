"""The local interface deals tasks only to workers not receiving a large blob: a task queued
behind a transfer would wait while another worker could start it."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from pymw_admin.interfaces.local import LocalInterface, _Worker
from pymw_admin.interfaces.worker_load import WorkerLoad, to_revoke
from pymw_admin.wire import encoding, framing


class _FakeChild:
    """What the interface sends a worker, recorded; no process."""

    def __init__(self) -> None:
        self.batches: list[list[bytes]] = []
        self.frames: list[tuple[list[Any], Callable[[], None] | None]] = []
        self.pid = 0

    def send(self, body: bytes) -> None:
        self.batches.append(framing.unpack_batch(bytes(body)))

    def send_parts(self, parts: list[Any], on_written: Callable[[], None] | None = None) -> None:
        self.frames.append((parts, on_written))

    def tasks(self) -> list[str]:
        return [encoding.read_task_header(b)[0].task_id for batch in self.batches
                for b in batch if b.startswith(encoding.TASK_MAGIC)]


def _interface(n: int) -> tuple[LocalInterface, list[_FakeChild]]:
    interface = LocalInterface(num_workers=n)
    children = [_FakeChild() for _ in range(n)]
    interface._workers = [_Worker(name=f"w{i}", child=c)  # type: ignore[arg-type]
                          for i, c in enumerate(children)]
    interface._started = True  # no processes, no balancer thread
    return interface, children


def _task(task_id: str, shared: dict[str, bytes] | None = None) -> tuple[str, bytes]:
    return task_id, encoding.encode_task(task_id, len, ("x",), shared=shared,
                                         inline_shared=False)


def test_tasks_go_to_the_worker_that_is_not_receiving_a_blob() -> None:
    interface, (first, second) = _interface(2)
    blob = os.urandom(2 << 20)
    named = interface.send_ahead(blob)
    assert len(first.frames) == len(second.frames) == 1  # on its way to both
    digest = encoding.digest_of(blob)
    named(digest)
    first.frames[0][1]()  # type: ignore[misc]  # the first worker's copy is written
    interface.put_shared(digest, blob)
    interface.submit_many([_task(f"t{i}", {digest: blob}) for i in range(6)])
    assert first.tasks() == ["t0", "t1"]  # a new worker holds two at a time; the rest wait
    assert second.tasks() == []  # still receiving: nothing queued behind its transfer
    assert len(second.frames) == 1  # and the blob is not sent to it twice


def test_tasks_wait_while_every_worker_receives_then_go_to_the_first_done() -> None:
    interface, (first, second) = _interface(2)
    blob = os.urandom(2 << 20)
    named = interface.send_ahead(blob)
    digest = encoding.digest_of(blob)
    named(digest)
    interface.put_shared(digest, blob)
    interface.submit_many([_task(f"t{i}", {digest: blob}) for i in range(3)])
    assert first.tasks() == second.tasks() == []  # behind a transfer on either worker
    second.frames[0][1]()  # type: ignore[misc]
    assert second.tasks() == ["t0", "t1"] and first.tasks() == []


def test_a_blob_sent_with_a_task_makes_its_worker_receive_until_written() -> None:
    interface, (first, second) = _interface(2)
    blob = os.urandom(1 << 20)
    digest = encoding.digest_of(blob)
    interface.put_shared(digest, blob)
    interface.submit_many([_task("t0", {digest: blob})])
    holder, other = (first, second) if first.tasks() else (second, first)
    assert holder.tasks() == ["t0"] and len(holder.frames) == 1  # the blob, then the task
    interface.submit_many([_task("t1", {digest: blob}), _task("t2")])
    assert holder.tasks() == ["t0"]  # receiving: the next tasks go to the other worker
    assert sorted(other.tasks()) == ["t1", "t2"]
    holder.frames[0][1]()  # type: ignore[misc]
    interface.submit_many([_task("t3")])
    assert "t3" in holder.tasks() + other.tasks()


def test_only_ready_workers_count_as_idle_for_taking_tasks_back() -> None:
    busy, receiving = WorkerLoad(name="busy"), WorkerLoad(name="receiving")
    busy.in_flight = {"a": b"", "b": b""}
    busy.last_progress = 0.0  # silent for long: stuck on "a"
    assert to_revoke([busy, receiving], idle=[busy]) == []
    assert [w.name for w, _ in to_revoke([busy, receiving])] == ["busy"]
