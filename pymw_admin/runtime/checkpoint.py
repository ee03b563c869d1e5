"""A checkpoint: the results of finished tasks, kept on disk by task content.

    submit ──digest──> Checkpoint.get ──hit──> the stored record, decoded as a fresh one
                              │
                              └─miss──> interface ──result record (ok)──> Checkpoint.put

A task's digest (``encoding.task_digest``) covers what its worker runs: the function as pickled,
its arguments and kwargs, modules, dep_funcs and the bytes of its data files. A master run again
over the same directory (after a crash, or with more tasks) hands back the stored result of every
task it ran before instead of running it again. Only tasks that returned are kept: a task that
raised, or whose worker was lost, runs again.

One file per digest, ``DIR/<first two hex digits>/<digest>``, holding the worker's result record
as it came; each is written to a temporary file and renamed into place, so a reader (or a master
killed while writing) never sees half of one. A file that is not a whole record (the machine
itself went down before the data reached the disk) is read as no result: the task runs again.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from pymw_admin.errors import UsageError
from pymw_admin.wire import encoding


class Checkpoint:
    """The result records of finished tasks in ``directory``, by task digest."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self._warned = False
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageError(f"cannot use checkpoint directory {self.directory}: "
                             f"{exc.strerror or exc}") from None

    def __repr__(self) -> str:
        return f"<Checkpoint {self.directory}>"

    def _path(self, digest: str) -> Path:
        return self.directory / digest[:2] / digest

    def get(self, digest: str) -> bytes | None:
        """The stored result record of a task that returned, or None."""
        if not digest:
            return None
        try:
            record = self._path(digest).read_bytes()
        except OSError:
            return None
        try:
            header = encoding.decode_result_header(record)
        except encoding.EncodingError:
            return None  # not a whole record: run the task again
        return record if header.ok else None

    def put(self, digest: str, record: bytes) -> None:
        """Keep a task's result record. A failure to write costs only a re-run later, so it is
        not the task's error: the result still goes to the caller."""
        if not digest:
            return
        path = self._path(digest)
        try:
            path.parent.mkdir(exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
            try:
                with os.fdopen(fd, "wb") as out:
                    out.write(record)
                os.replace(tmp, path)
            except BaseException:
                os.unlink(tmp)
                raise
        except OSError as exc:
            if not self._warned:
                self._warned = True
                print(f"pymw: cannot keep results in checkpoint {self.directory}: "
                      f"{exc.strerror or exc}", file=sys.stderr, flush=True)
