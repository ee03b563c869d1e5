"""One persistent worker process, ``python -m pymw_admin.worker.run --serve``, and its pipes.

The local interface runs several of these; an MPI worker rank runs one and relays to it, so a task
that kills its process kills only this child. Writes go through a thread of their own, so a large
batch never blocks the caller (and a caller holding a lock never deadlocks against a worker that
is itself blocked writing results).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from pymw_admin.wire.framing import HEADER, FrameBuffer
from pymw_admin.worker import ADDED_TUNABLES_ENV, WORKER_TUNABLES

READ_CHUNK = 1 << 20


PIPE_BYTES = 1 << 20  # big task batches and shared blobs pass in fewer, larger writes


def _widen(pipe: object) -> None:
    """Ask Linux for a larger pipe buffer (best effort: other systems keep theirs)."""
    fileno = getattr(pipe, "fileno", None)
    if fileno is None or not hasattr(fcntl, "F_SETPIPE_SZ"):
        return
    with contextlib.suppress(OSError):
        fcntl.fcntl(fileno(), fcntl.F_SETPIPE_SZ, PIPE_BYTES)


GATED_BYTES = 1 << 20  # a part this big of a send_parts frame (a blob) is written holding the gate
GATE_WAIT_SECONDS = 0.5  # then it is written without


class ServeChild:
    def __init__(self, name: str, python: str | None = None,
                 gate: threading.Semaphore | None = None) -> None:
        """``gate``, shared by several children, bounds how many of them are sent a large part at
        once: on few cores, parallel copies of one blob only slow each other and the hash the
        master computes meanwhile, so the first worker has it later and the last no sooner."""
        self.name = name
        self._gate = gate
        env = dict(os.environ)
        # the worker imports what the master can: the script's directory and its sys.path
        env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
        env["PYMW_WORKER_NAME"] = name
        if sys.platform.startswith("linux") and "GLIBC_TUNABLES" not in env:
            env["GLIBC_TUNABLES"] = WORKER_TUNABLES  # shared blobs land faster (worker/__init__)
            env[ADDED_TUNABLES_ENV] = "1"
        self.proc = subprocess.Popen(
            [python or sys.executable, "-m", "pymw_admin.worker.run", "--serve"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
        )
        assert self.proc.stdout is not None
        self.fd = self.proc.stdout.fileno()
        for pipe in (self.proc.stdin, self.proc.stdout):
            _widen(pipe)
        self._frames = FrameBuffer()
        # (parts, on_written, gated) per frame; None ends the writer
        self._outbox: queue.SimpleQueue[
            tuple[list[Any], Callable[[], None] | None, bool] | None] = queue.SimpleQueue()
        threading.Thread(target=self._writer, daemon=True, name=f"{name}-writer").start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _writer(self) -> None:
        stdin = self.proc.stdin
        assert stdin is not None
        while True:
            item = self._outbox.get()
            if item is None:
                break
            parts, on_written, gated = item
            gate = self._gate if gated else None
            try:
                for part in parts:
                    if isinstance(part, Future):  # a digest the master is still computing
                        if on_written is not None:
                            on_written()  # the data is written, only the digest is to come
                            on_written = None
                        part = part.result()
                    if gate is not None and len(part) >= GATED_BYTES:
                        # a child that stops reading (a task holding the GIL for long) holds
                        # the gate: the others wait for it only so long
                        passed = gate.acquire(timeout=GATE_WAIT_SECONDS)
                        try:
                            stdin.write(part)
                            stdin.flush()
                        finally:
                            if passed:
                                gate.release()
                    else:
                        stdin.write(part)
                del parts, item  # a shared blob is the master's: hold no reference while idle
                part = None
                stdin.flush()
            except (BrokenPipeError, OSError):
                break  # whoever reads the child's output sees the death and reports it
            if on_written is not None:
                on_written()
        with contextlib.suppress(OSError):
            stdin.close()

    def send(self, body: bytes | bytearray) -> None:
        """Queue one frame (a packed batch of task files, or a message an MPI rank relays) for
        the child; the body is written as it is, not copied, so the caller must not reuse it."""
        self._outbox.put(([HEADER.pack(len(body)), memoryview(body)], None, False))

    def send_parts(self, parts: list[Any], on_written: Callable[[], None] | None = None) -> None:
        """Queue one frame already split into parts (header first), written without joining; a
        part may be a Future of bytes, written once it is done. ``on_written`` is called (from the
        writing thread) once the parts before the first Future are written, or all are."""
        self._outbox.put((parts, on_written, True))

    def close_input(self) -> None:
        """Close the child's stdin once queued frames are written: an idle child then exits."""
        self._outbox.put(None)

    def read_frames(self) -> list[bytes] | None:
        """Frame bodies the child has written so far (blocks until some bytes come);
        None once its output closed, i.e. it died or stopped."""
        chunk = os.read(self.fd, READ_CHUNK)
        if not chunk:
            return None
        return self._frames.feed(chunk)

    def reason(self) -> str:
        """How the child ended, for a one-line failure."""
        code = self.proc.wait()
        if code < 0:
            return f"was killed by signal {-code} ({signal.Signals(-code).name})"
        return f"exited with status {code}"

    def kill(self) -> None:
        self.proc.kill()

    def stop(self, grace: float = 2.0) -> None:
        """End the child: at once when idle, killed after ``grace`` seconds when busy."""
        self.close_input()
        try:
            self.proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            self.proc.kill()  # a busy child: the master has given its task up
            self.proc.wait()


    def close_output(self) -> None:
        """Close our end of the child's output; for whoever reads it, once reading is over
        (closing it under a reader could hand its descriptor number to another pipe)."""
        if self.proc.stdout is not None:
            self.proc.stdout.close()
