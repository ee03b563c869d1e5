"""The MPI interface (mpi4py): worker ranks under mpiexec, or workers the master spawns.

Two ways to start a master script:

    mpiexec -n N python script.py -i mpi     # rank 0 is the master, ranks 1..N-1 are workers
    python script.py -i mpi -n N             # the master spawns N workers (MPI_Comm_spawn)

Under mpiexec every rank runs the script up to the point where it builds this interface; there the
ranks other than 0 enter the worker loop (``mpi_worker``) and never return, so only rank 0 runs the
master code. Task files and result records travel as MPI byte messages: data files ride inside the
task file, so no shared file system is needed. A progress thread does all MPI calls on the master:
it hands a free worker the next tasks (several at once while tasks are short, two while they are
long) and collects results while the script is busy elsewhere.

Each worker rank runs its tasks in a child process, so a task that kills its process comes back as
a retryable failure. What MPI itself allows when a whole rank dies: docs/interfaces/mpi.md.
"""

from __future__ import annotations

import atexit
import os
import queue
import shutil
import socket
import sys
import sysconfig
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pymw_admin.errors import EngineUnavailable, UsageError
from pymw_admin.interfaces.base import Completion, WorkerStats, drain
from pymw_admin.interfaces.kit import script_exit
from pymw_admin.interfaces.mpi_worker import (
    IDLE_POLL_SECONDS,
    TAG_DIED,
    TAG_HELLO,
    TAG_KILL,
    TAG_RESULTS,
    TAG_STOP,
    TAG_TASKS,
    serve_rank_forever,
)
from pymw_admin.interfaces.worker_load import WorkerLoad, deal, to_revoke, where
from pymw_admin.wire.framing import (
    FORGET_MAGIC,
    REVOKE_MAGIC,
    REVOKED_MAGIC,
    SHARED_MAGIC,
    ids_record,
    pack_batch,
    read_ids,
    unpack_batch,
)

CLOSE_SECONDS = 10.0  # how long close() waits for the workers to say goodbye


@dataclass(kw_only=True)
class _Rank(WorkerLoad):
    rank: int
    host: str = ""
    pid: int = 0
    child_deaths: int = 0


def find_mpiexec() -> str | None:
    """The mpiexec that belongs to this Python's MPI: the environment's own first, then PATH."""
    for folder in (sysconfig.get_path("scripts"), str(Path(sys.executable).parent)):
        candidate = Path(folder) / "mpiexec"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return shutil.which("mpiexec")


def _import_mpi() -> Any:
    # a size-1 (singleton) MPICH process starts `mpiexec` from PATH when it spawns: make sure the
    # one installed with this environment's MPI is found first
    mpiexec = find_mpiexec()
    if mpiexec is not None:
        folder = str(Path(mpiexec).parent)
        path = os.environ.get("PATH", "")
        if folder not in path.split(os.pathsep):
            os.environ["PATH"] = folder + os.pathsep + path if path else folder
    try:
        from mpi4py import MPI
    except ModuleNotFoundError:
        raise  # make_interface names the missing module and the extra to install
    except (ImportError, RuntimeError) as exc:
        raise EngineUnavailable(
            f"mpi4py cannot load an MPI library ({exc}); pip install 'pymw-admin[mpi]'"
        ) from None
    return MPI


def _script_failed() -> int:
    return 1 if script_exit.ended_by_exception() else 0


class MPIInterface:
    """Master side of the MPI interface. Built on a worker rank, it never returns (see module)."""

    name = "mpi"
    trusted = True

    def __init__(self, num_workers: int | None = None) -> None:
        MPI = _import_mpi()
        self._MPI = MPI
        world = MPI.COMM_WORLD
        host = socket.gethostname()
        if world.Get_size() > 1:
            if world.Get_rank() != 0:
                serve_rank_forever(world, 0, f"mpi-{world.Get_rank()}@{host}")
            self.mode = "mpiexec"
            self._comm = world
            self._spawned = False
            ranks = list(range(1, world.Get_size()))
            if num_workers is not None and num_workers != len(ranks):
                print(
                    f"warning: -n {num_workers} ignored: mpiexec started {len(ranks)} worker "
                    f"rank(s) (mpiexec -n {len(ranks) + 1})",
                    file=sys.stderr,
                )
            names = [f"mpi-{r}" for r in ranks]
            script_exit.watch()
        else:
            if num_workers is None:
                num_workers = os.cpu_count() or 1
            if num_workers < 1:
                raise UsageError(f"the mpi interface needs at least 1 worker, not {num_workers}")
            self.mode = "spawn"
            self._comm = self._spawn(MPI, num_workers)
            self._spawned = True
            ranks = list(range(num_workers))
            names = [f"mpi-spawn-{r}" for r in ranks]
        self.num_workers = len(ranks)
        self._ranks = [_Rank(rank=r, name=n) for r, n in zip(ranks, names, strict=True)]
        self._by_rank = {w.rank: w for w in self._ranks}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._pending: deque[tuple[str, bytes]] = deque()
        self._suspects: deque[tuple[str, bytes]] = deque()  # held by a child that died
        self._cancelled: set[str] = set()
        self._shared: dict[str, bytes] = {}  # digest -> the shared-blob message for a rank
        self._outbox: list[tuple[int, int, bytes]] = []  # (rank, tag, body) for the thread
        self._completions: queue.SimpleQueue[Completion] = queue.SimpleQueue()
        self._closing = False
        self._closed = False
        self._failure: str = ""
        self._thread = threading.Thread(target=self._progress, daemon=True, name="pymw-mpi")
        self._thread.start()
        atexit.register(self.close)  # mpi4py finalizes after this; the workers must be told

    def _spawn(self, MPI: Any, num_workers: int) -> Any:
        path = os.pathsep.join(p for p in sys.path if p)
        try:
            return MPI.COMM_SELF.Spawn(
                sys.executable,
                args=["-m", "pymw_admin.interfaces.mpi_worker", "--path", path],
                maxprocs=num_workers,
            )
        except MPI.Exception as exc:
            raise EngineUnavailable(
                f"this MPI could not spawn {num_workers} worker(s) ({exc.Get_error_string()}); "
                "start the script with mpiexec -n N+1 instead"
            ) from None

    # --- the progress thread: every MPI call on the master happens here -------------------------

    def _progress(self) -> None:
        MPI = self._MPI
        comm = self._comm
        status = MPI.Status()
        sends: list[tuple[Any, bytes]] = []
        delay = 0.0
        try:
            while True:
                busy = False
                while comm.Iprobe(MPI.ANY_SOURCE, MPI.ANY_TAG, status):
                    buf = bytearray(status.Get_count(MPI.BYTE))
                    source, tag = status.Get_source(), status.Get_tag()
                    comm.Recv([buf, MPI.BYTE], source, tag)
                    self._on_message(source, tag, buf)
                    del buf  # hold no result while waiting for the next message
                    busy = True
                with self._lock:
                    closing = self._closing
                    batches = [] if closing else self._dispatch_locked()
                for rank, tag, body in batches:
                    sends.append((comm.Isend([body, MPI.BYTE], rank, tag), body))
                    busy = True
                if sends:
                    sends = [(req, body) for req, body in sends if not req.Test()]
                if closing:
                    break
                if not busy:
                    self._wake.wait(delay)
                    self._wake.clear()
                delay = 0.0 if busy else min(IDLE_POLL_SECONDS, max(delay * 2, 0.00005))
            self._say_goodbye(sends)
        except Exception as exc:  # an MPI error: report every task in flight, never hang
            self._failure = f"MPI failed: {exc}"
            with self._lock:
                self._fail_all_locked(self._failure)

    def _say_goodbye(self, sends: list[tuple[Any, bytes]]) -> None:
        MPI = self._MPI
        comm = self._comm
        code = str(_script_failed()).encode()
        stops = [comm.Isend([code, MPI.BYTE], w.rank, TAG_STOP) for w in self._ranks if w.alive]
        deadline = time.monotonic() + CLOSE_SECONDS
        status = MPI.Status()
        pending = stops + [req for req, _ in sends]
        while pending and time.monotonic() < deadline:
            # late results are read (and dropped) so that no worker blocks on sending them
            while comm.Iprobe(MPI.ANY_SOURCE, MPI.ANY_TAG, status):
                buf = bytearray(status.Get_count(MPI.BYTE))
                comm.Recv([buf, MPI.BYTE], status.Get_source(), status.Get_tag())
            pending = [req for req in pending if not req.Test()]
            time.sleep(IDLE_POLL_SECONDS)
        if self._spawned and not pending:
            self._comm.Disconnect()  # collective with the workers, which disconnect on stop

    def _on_message(self, source: int, tag: int, buf: bytearray) -> None:
        worker = self._by_rank.get(source)
        if worker is None:
            return
        if tag == TAG_RESULTS:
            records = unpack_batch(buf)
            del buf
            with self._lock:
                for blob in records:
                    notices = worker.started(blob, self._cancelled)
                    if notices is not None:
                        for notice in notices:
                            self._completions.put(notice)
                        continue
                    given_back = read_ids(REVOKED_MAGIC, blob)
                    if given_back is not None:
                        back = worker.revoked(given_back)
                        self._pending.extendleft(
                            reversed([t for t in back if t[0] not in self._cancelled]))
                        self._cancelled.difference_update(given_back)
                        continue
                    completion = worker.finished(blob)
                    if completion.task_id not in self._cancelled:
                        self._completions.put(completion)
                    self._cancelled.discard(completion.task_id)
        elif tag == TAG_DIED:
            reason = buf.decode(errors="replace")
            with self._lock:
                worker.child_deaths += 1
                running, suspects = worker.lost()
                if running is not None and running not in self._cancelled:
                    self._completions.put(
                        Completion(
                            running,
                            failure=f"worker {worker.name}: the task's process {reason} "
                            "while running the task",
                            worker=worker.name,
                        )
                    )
                self._cancelled.discard(running or "")
                self._suspects.extend(t for t in suspects if t[0] not in self._cancelled)
                self._cancelled.difference_update(t[0] for t in suspects)
        elif tag == TAG_HELLO:
            host, _, pid = buf.decode(errors="replace").partition(" ")
            with self._lock:
                worker.host, worker.pid = host, int(pid or 0)
                worker.name = f"{worker.name}@{host}"

    def _dispatch_locked(self) -> list[tuple[int, int, bytes]]:
        sends, self._outbox = self._outbox, []
        for worker, blobs in deal(self._ranks, self._pending, self._suspects):
            for digest in worker.shared_to_send(blobs):
                body = self._shared.get(digest)
                if body is not None:  # the rank relays it to its child like a task frame
                    sends.append((worker.rank, TAG_TASKS, body))
                    worker.shared_bytes_sent += len(body)
            sends.append((worker.rank, TAG_TASKS, pack_batch(blobs)))
        if not self._pending and not self._suspects:
            for worker, ask in to_revoke(self._ranks):
                sends.append((worker.rank, TAG_TASKS, pack_batch([ask])))
        return sends

    def _fail_all_locked(self, reason: str) -> None:
        for worker in self._ranks:
            for task_id in worker.in_flight:
                self._completions.put(
                    Completion(task_id, failure=reason, retryable=False, worker=worker.name)
                )
            worker.in_flight.clear()
            worker.alive = False
        for task_id, _ in [*self._pending, *self._suspects]:
            self._completions.put(Completion(task_id, failure=reason, retryable=False))
        self._pending.clear()
        self._suspects.clear()

    # --- the Interface protocol ------------------------------------------------------------------

    def submit(self, task_id: str, task_file: bytes) -> None:
        self.submit_many([(task_id, task_file)])

    def submit_many(self, tasks: list[tuple[str, bytes]]) -> None:
        with self._lock:
            if self._closing:
                raise RuntimeError("the mpi interface is closed")
            if self._failure:
                for task_id, _ in tasks:
                    self._completions.put(
                        Completion(task_id, failure=self._failure, retryable=False)
                    )
                return
            self._pending.extend(tasks)
        self._wake.set()

    def wait(self, timeout: float | None) -> list[Completion]:
        return drain(self._completions, timeout)

    def put_shared(self, digest: str, blob: bytes) -> None:
        # the message is made once for all ranks: one copy of the blob, however many get it
        body = SHARED_MAGIC + digest.encode() + b"\n" + blob
        with self._lock:
            self._shared[digest] = body

    def drop_shared(self, digest: str) -> None:
        with self._lock:
            self._shared.pop(digest, None)
            for worker in self._ranks:
                if digest in worker.has_shared:
                    worker.has_shared.discard(digest)
                    self._outbox.append((worker.rank, TAG_TASKS,
                                         pack_batch([FORGET_MAGIC + digest.encode()])))
        self._wake.set()

    def cancel(self, task_id: str) -> None:
        """Drop a pending task, take back a dealt one, or have the rank kill the child running
        it (the rank starts another)."""
        with self._lock:
            before = len(self._pending) + len(self._suspects)
            self._pending = deque(t for t in self._pending if t[0] != task_id)
            self._suspects = deque(t for t in self._suspects if t[0] != task_id)
            if len(self._pending) + len(self._suspects) != before:
                return
            worker, running = where(self._ranks, task_id)
            if worker is None:
                return
            self._cancelled.add(task_id)
            if running:
                self._outbox.append((worker.rank, TAG_KILL, b""))
            else:
                worker.revoking.add(task_id)
                self._outbox.append((worker.rank, TAG_TASKS,
                                     pack_batch([ids_record(REVOKE_MAGIC, [task_id])])))
        self._wake.set()

    def workers(self) -> list[WorkerStats]:
        with self._lock:
            return [w.stats(rank=w.rank, host=w.host, pid=w.pid, child_deaths=w.child_deaths,
                            mode=self.mode) for w in self._ranks]

    def close(self) -> None:
        with self._lock:
            if self._closing:
                return
            self._closing = True
        self._wake.set()
        self._thread.join(CLOSE_SECONDS + 5.0)
        self._closed = True


def build(num_workers: int | None = None, **_: object) -> MPIInterface:
    return MPIInterface(num_workers=num_workers)
