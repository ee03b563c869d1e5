"""The one small protocol every interface implements: move task files, report completions.

An interface never decodes or runs a task itself. The master hands it ``(task_id, task_file)``
pairs and gets back ``Completion``s: the worker's result record (bytes), or, when the engine lost
the task (a worker died, a job was held, a work unit errored), a one-line ``failure`` saying so.
Retries are the master's decision; ``retryable`` tells it whether trying again can help.
"""

from __future__ import annotations

import queue
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from pymw_admin.wire.encoding import ResultRecord


@dataclass
class Completion:
    task_id: str
    record: bytes | None = None  # the worker's result record, when it produced one
    failure: str = ""  # the engine's one-line reason when there is no record
    retryable: bool = True
    worker: str = ""
    stderr: str = ""  # what the engine captured of the task's stderr, when it failed
    error_type: str = ""  # the engine's name for the failure (default: WorkerLost)
    # the record's header when the interface parsed it already (local, mpi): parsed once
    header: ResultRecord | None = None
    # no outcome: a worker started the task (the master marks it RUNNING); an interface that
    # cannot tell when a task starts never sends one, and its tasks go from submitted to done
    started: bool = False
    # the workers the engine itself gave this task to, with a failure (BOINC: the work unit's
    # failed replicas); 0 when it tried one, or cannot tell
    attempts: int = 0


@dataclass
class WorkerStats:
    name: str
    alive: bool = True
    tasks_done: int = 0
    busy_seconds: float = 0.0
    in_flight: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Interface(Protocol):
    """An engine behind the master: local processes, MPI ranks, HTCondor jobs, BOINC work units."""

    name: str
    trusted: bool  # may results be fully unpickled? False for volunteers' results

    def submit(self, task_id: str, task_file: bytes) -> None:
        """Queue one task; must not block on the task running."""

    def wait(self, timeout: float | None) -> list[Completion]:
        """Block up to ``timeout`` seconds (None: forever) for completions; [] when none came."""

    def cancel(self, task_id: str) -> None:
        """Forget a task the master no longer wants (best effort)."""

    def workers(self) -> list[WorkerStats]:
        """Per-worker figures for status displays."""

    def close(self) -> None:
        """Stop every worker or job this interface started; safe to call twice."""


# --- optional capabilities: the master tests for them with isinstance, nothing else ------------


@runtime_checkable
class BatchSubmitting(Protocol):
    """Optional: an interface that takes many tasks in one call (one pipe write, one schedd
    transaction, one create_work run) instead of one ``submit`` each."""

    def submit_many(self, tasks: list[tuple[str, bytes]]) -> None:
        """Queue ``(task_id, task_file)`` pairs; like ``submit``, never blocks on them running."""


@runtime_checkable
class RetriesItself(Protocol):
    """Optional: an interface whose engine hands a task whose worker failed to another worker
    itself (BOINC sends another replica of the work unit), so its failures come back not
    retryable; the master gives it its ``retries``, which bound the engine's tries instead."""

    def set_retries(self, retries: int) -> None:
        """Try a task on at most ``retries`` + 1 workers (as far as the engine allows)."""


@runtime_checkable
class Resumable(Protocol):
    """Optional: an interface whose tasks outlive the master (HTCondor jobs, BOINC work units).

    A master built on it first asks ``resumed_tasks()`` for the tasks an earlier master with the
    same state left unfinished or uncollected, and adopts them: their completions then arrive
    through ``wait()`` as usual. ``acknowledge(task_id)`` is called once the caller has been handed
    a task's result (or error), so the interface can record it as collected and a later master
    never collects it again: each result exactly once.
    """

    def resumed_tasks(self) -> list[tuple[str, str]]:
        """``(task_id, name)`` of every task an earlier master submitted and did not collect."""

    def acknowledge(self, task_id: str) -> None:
        """The caller has this task's result: never report it again."""


@runtime_checkable
class SharesBlobs(Protocol):
    """Optional: an interface that stages shared blobs (wire.encoding) once per worker, so the
    master sends task files that refer to them by digest instead of carrying them.

    ``put_shared`` comes before the first task that needs the blob; ``drop_shared`` once no
    unfinished task of the master needs it (the interface may keep it on workers a while).
    Large data files become shared blobs as well, unless the interface says its workers may be
    too old to take them so (``shared_data_files = False``: BOINC's deployed app versions).
    """

    def put_shared(self, digest: str, blob: bytes) -> None:
        """Keep ``blob`` to send to each worker before its first task that refers to it."""

    def drop_shared(self, digest: str) -> None:
        """No unfinished task needs this blob any more."""


@runtime_checkable
class SendsAhead(Protocol):
    """Optional, with SharesBlobs: an interface that starts sending a large blob to its workers
    while the master is still hashing it, and knows the blobs it holds by identity.

    ``send_ahead(blob)`` returns a callable the master calls with the digest (None: the hash
    failed, the workers drop what they got); ``put_shared`` for that digest then sends it to
    no worker twice.
    """

    def known_digest(self, blob: bytes) -> str | None:
        """The digest of a blob this interface holds, when ``blob`` is that very object."""

    def send_ahead(self, blob: bytes) -> Callable[[str | None], None]:
        """Start sending ``blob`` to the workers; call the result with its digest."""


@runtime_checkable
class HasLeftovers(Protocol):
    """Optional, with Resumable: what an earlier master left, read without adopting it. A master
    not asked to resume refuses to start while there is any (a BOINC tag), so no run hands out
    another run's results as its own; such an interface also says whether it was asked
    (``resume``)."""

    def leftovers(self) -> list[tuple[str, str]]:
        """``(task_id, name)`` an earlier master submitted and nobody collected or cancelled."""


@runtime_checkable
class Detachable(Protocol):
    """Optional: an interface that can let go of its state and leave its tasks running.

    ``Master.__exit__`` calls ``detach()`` instead of ``close()`` when an exception (Ctrl-C
    included) ends the master, so a later master on the same persistent state resumes the tasks;
    an interface whose state cannot be resumed (a temporary directory) just closes. A clean exit
    still calls ``close()``.
    """

    def detach(self) -> None:
        """Release the state (lock, open files) without stopping the tasks."""


def drain(completions: queue.SimpleQueue[Completion], timeout: float | None) -> list[Completion]:
    """Wait up to ``timeout`` for one completion, then take every other one already there.

    The ``wait`` of interfaces whose worker threads feed a queue.
    """
    try:
        done = [completions.get(timeout=timeout)]
    except queue.Empty:
        return []
    while True:
        try:
            done.append(completions.get_nowait())
        except queue.Empty:
            return done
