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
as it came; ``<digest>.untrusted`` when untrusted workers (BOINC volunteers) made it, and then any
master decodes it as untrusted, on a trusted interface too. Each is written to a temporary file
and renamed into place, so a reader (or a master killed while writing) never sees half of one.
A file that is not a whole record (the machine itself went down before the data reached the
disk) is read as no result: the task runs again.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from pymw_admin.errors import UsageError
from pymw_admin.wire import encoding

UNTRUSTED = ".untrusted"  # the suffix of a record from untrusted workers


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

    def _path(self, digest: str, trusted: bool) -> Path:
        return self.directory / digest[:2] / (digest if trusted else digest + UNTRUSTED)

    def get(self, digest: str) -> tuple[bytes, bool] | None:
        """The stored result record of a task that returned, and whether it came from trusted
        workers; None when there is none."""
        if not digest:
            return None
        for trusted in (True, False):
            try:
                record = self._path(digest, trusted).read_bytes()
            except OSError:
                continue
            try:
                header = encoding.decode_result_header(record)
            except encoding.EncodingError:
                continue  # not a whole record: run the task again
            if header.ok:
                return record, trusted
        return None

    def put(self, digest: str, record: bytes, trusted: bool = True) -> None:
        """Keep a task's result record. A failure to write costs only a re-run later, so it is
        not the task's error: the result still goes to the caller."""
        if not digest:
            return
        path = self._path(digest, trusted)
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
