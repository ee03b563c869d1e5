"""The MPI worker rank: forwards task batches to a guarded child process and results back.

An MPI rank never runs a task itself. It keeps one child, ``python -m pymw_admin.worker.run
--serve`` (the local interface's worker), and relays frames between the master's MPI messages and
the child's pipes without unpickling them. A task that crashes its process (a segfault,
``os._exit``, the kernel's OOM killer) therefore kills only the child: the rank reports the death,
the master retries or fails the tasks that were in flight, and the rank starts a new child. A dead
MPI process, by contrast, makes MPICH's process manager end the whole job (docs/interfaces/mpi.md).

    python -m pymw_admin.interfaces.mpi_worker [--path SYS_PATH]

is what the master starts in spawn mode; under ``mpiexec`` the ranks other than 0 call ``serve``
from the master script when it builds the interface.
"""

from __future__ import annotations

import ctypes
import os
import select
import socket
import sys
from typing import Any, NoReturn

from pymw_admin.interfaces.serve_child import ServeChild

# message tags between the master and a worker rank (the bodies are bytes)
TAG_TASKS = 11  # master -> rank: a pickled list of task files (the local worker's frame body)
TAG_RESULTS = 12  # rank -> master: a pickled list of result records (the child's frame body)
TAG_DIED = 13  # rank -> master: the child died; body is a one-line reason
TAG_STOP = 14  # master -> rank: finish
TAG_HELLO = 15  # rank -> master: "host pid", once at start
TAG_KILL = 16  # master -> rank: kill the child (a cancelled task is running there)

IDLE_POLL_SECONDS = 0.001  # longest sleep between MPI polls when nothing happens


def serve(comm: Any, master: int, name: str) -> int:
    """Relay tasks from rank ``master`` of ``comm`` to a child until the master says stop.

    Returns the exit status the master asks the worker to end with (its own, when it failed).
    """
    from mpi4py import MPI

    child = ServeChild(name)
    comm.Send([f"{socket.gethostname()} {os.getpid()}".encode(), MPI.BYTE], master, TAG_HELLO)
    status = MPI.Status()
    delay = 0.0
    while True:
        busy = False
        while comm.Iprobe(master, MPI.ANY_TAG, status):
            buf = bytearray(status.Get_count(MPI.BYTE))
            comm.Recv([buf, MPI.BYTE], master, status.Get_tag())
            if status.Get_tag() == TAG_STOP:
                child.stop()
                child.close_output()
                return int(buf or b"0")
            if status.Get_tag() == TAG_KILL:
                child.kill()  # its death is reported below, as any other
                continue
            child.send(buf)
            busy = True
        # wait on the child's results; MPI is looked at again after at most IDLE_POLL_SECONDS
        readable, _, _ = select.select([child.fd], [], [], delay)
        if readable:
            busy = True
            frames = child.read_frames()
            if frames is None:
                reason = child.reason()
                comm.Send([reason.encode(), MPI.BYTE], master, TAG_DIED)
                child.stop()
                child.close_output()
                child = ServeChild(name)
            else:
                for body in frames:
                    comm.Send([body, MPI.BYTE], master, TAG_RESULTS)
        delay = 0.0 if busy else min(IDLE_POLL_SECONDS, max(delay * 2, 0.00005))


def exit_process(code: int) -> NoReturn:
    """End the process as C's ``exit`` does, without the interpreter's own shutdown.

    C exit handlers run: MPICH says goodbye to its process manager in one (PMI finalize), and a
    rank that leaves without it is, to hydra, a crashed rank, whose exit makes hydra SIGKILL every
    rank still running (the job then fails with signal 9, whichever rank lost the race).
    Python's shutdown does not run: no ``finally`` block or exit handler of the master script
    runs on a worker rank.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        c_exit = ctypes.PyDLL(None).exit  # PyDLL keeps the GIL: no Python thread runs meanwhile
    except (OSError, AttributeError):  # no C library to call (not a POSIX system)
        os._exit(code)
    c_exit.argtypes = [ctypes.c_int]
    c_exit(code)
    os._exit(code)  # not reached


def serve_rank_forever(comm: Any, master: int, name: str) -> NoReturn:
    """A worker rank under mpiexec: serve, finalize MPI and end the process without returning."""
    try:
        code = serve(comm, master, name)
    except BaseException as exc:  # report, then let mpiexec end the job
        print(f"pymw mpi worker {name}: {type(exc).__name__}: {exc}", file=sys.stderr)
        sys.stderr.flush()
        os._exit(1)  # a rank that dies: hydra ends the whole job, as it should
    from mpi4py import MPI

    MPI.Finalize()  # returns once the master finalizes too; mpiexec wants every rank to
    # mpiexec does not always report rank 0's status when the others exit 0: echo the master's
    exit_process(code)


def main(argv: list[str] | None = None) -> int:
    """Spawn mode: a worker the master started with MPI_Comm_spawn."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) == 2 and args[0] == "--path":
        for entry in reversed(args[1].split(os.pathsep)):
            if entry and entry not in sys.path:
                sys.path.insert(0, entry)
    from mpi4py import MPI

    parent = MPI.Comm.Get_parent()
    if parent == MPI.COMM_NULL:
        print("pymw mpi worker: not started by a master (MPI_Comm_spawn)", file=sys.stderr)
        return 2
    rank = MPI.COMM_WORLD.Get_rank()
    serve(parent, 0, f"mpi-spawn-{rank}@{socket.gethostname()}")
    parent.Disconnect()
    return 0


if __name__ == "__main__":
    sys.exit(main())
