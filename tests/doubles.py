"""Test doubles in fabric's and pyinfra's manner.

``RecordingHost`` is a :class:`~pymw_admin.admin.remote.Host` that runs nothing: it answers each
command with the first canned reply whose pattern the command matches (exit 0 and no output
otherwise) and records what would have run, so a step's commands are table-tested without a host.

``FakeInterface`` is an engine whose every submission's outcome the test scripts, for the
master's own logic (retries, acknowledgement, timeouts, cancelling) in milliseconds; the real
engines' tests show the engines work.
"""

from __future__ import annotations

import functools
import queue
import re
from collections.abc import Callable, Sequence
from pathlib import Path

from pymw_admin.admin.remote import Host, Result
from pymw_admin.interfaces.base import Completion, WorkerStats, drain
from pymw_admin.wire.encoding import encode_result
from pymw_admin.worker.run import run_task

# a canned reply: the output (exit 0), or (exit code, stdout)
Reply = str | tuple[int, str]


class RecordingHost(Host):
    def __init__(self, replies: Sequence[tuple[str, Reply]] = (), *, root: bool = True) -> None:
        super().__init__()
        self.name = "recorded"
        self.login_user = "root" if root else "admin"
        self._is_root = root
        self.replies = [(re.compile(pattern), reply) for pattern, reply in replies]
        self.commands: list[str] = []  # as they would run, in order (sudo wrapping included)
        self.stdins: list[bytes | None] = []

    def _exec(self, command: str, stdin: bytes | None, timeout: float | None) -> Result:
        self.commands.append(command)
        self.stdins.append(stdin)
        for pattern, reply in self.replies:
            if pattern.search(command):
                code, out = reply if isinstance(reply, tuple) else (0, reply)
                return Result(command, code, out, "")
        return Result(command, 0, "", "")

    def put(self, local: str | Path, remote: str) -> None:
        self.commands.append(f"put {remote}")

    def get(self, remote: str, local: str | Path) -> None:
        self.commands.append(f"get {remote}")

    def _stream(self, command: str, write: Callable[[bytes], object]) -> int:
        self.commands.append(command)
        return 0


class FakeInterface:
    """An engine the test scripts: each submission takes the next outcome of ``outcomes``.

    ``"ok"`` runs the task here with the real worker code and reports its record; ``"lost"`` is a
    retryable loss (a worker died), ``"refused"`` a loss retrying cannot help, ``"hold"`` keeps
    the task until :meth:`release`. Past the end of ``outcomes`` every task is ``"ok"``. What the
    master asked for is recorded: ``submitted`` (task ids, retries included), ``cancelled``,
    ``closed``.
    """

    name = "fake"
    trusted = True

    def __init__(self, outcomes: Sequence[str] = ()) -> None:
        self.outcomes = list(outcomes)
        self.submitted: list[str] = []
        self.cancelled: list[str] = []
        self.closed = False
        self.held: list[tuple[str, bytes]] = []
        self._done: queue.SimpleQueue[Completion] = queue.SimpleQueue()

    def submit(self, task_id: str, task_file: bytes) -> None:
        self.submitted.append(task_id)
        outcome = self.outcomes.pop(0) if self.outcomes else "ok"
        if outcome == "ok":
            self._done.put(_run(task_id, task_file))
        elif outcome == "lost":
            self._done.put(Completion(task_id, failure="the worker died", worker="fake:1"))
        elif outcome == "refused":
            self._done.put(Completion(task_id, failure="the engine refused it", retryable=False))
        elif outcome == "hold":
            self.held.append((task_id, task_file))
        else:
            raise ValueError(f"unknown outcome {outcome!r}")

    def release(self) -> None:
        """Let every held task finish."""
        held, self.held = self.held, []
        for task_id, task_file in held:
            self._done.put(_run(task_id, task_file))

    def wait(self, timeout: float | None) -> list[Completion]:
        return drain(self._done, timeout)

    def cancel(self, task_id: str) -> None:
        self.cancelled.append(task_id)
        self.held = [(t, b) for t, b in self.held if t != task_id]

    def workers(self) -> list[WorkerStats]:
        return [WorkerStats(name="fake:1")]

    def close(self) -> None:
        self.closed = True


class FakeResumable(FakeInterface):
    """A FakeInterface whose tasks outlive the master: it records acknowledgements and
    detaching."""

    def __init__(self, outcomes: Sequence[str] = ()) -> None:
        super().__init__(outcomes)
        self.acknowledged: list[str] = []
        self.detached = False

    def resumed_tasks(self) -> list[tuple[str, str]]:
        return []

    def acknowledge(self, task_id: str) -> None:
        self.acknowledged.append(task_id)

    def detach(self) -> None:
        self.detached = True


def _run(task_id: str, task_file: bytes) -> Completion:
    return Completion(task_id, record=encode_result(run_task(task_file)), worker="fake:1")


@functools.cache
def task_key_pair() -> tuple[bytes, bytes]:
    """One task key pair (private, public PEM) for the whole test session: making one takes a
    while, and these tests are about what the key signs, not about making keys."""
    from pymw_admin.interfaces.kit import task_signing

    return task_signing.generate()


def install_task_key(project: Path, pair: tuple[bytes, bytes] | None = None) -> bytes:
    """``project/keys/`` holding a task key as deploy-app leaves it; returns the public PEM."""
    private, public = pair or task_key_pair()
    keys = project / "keys"
    keys.mkdir(parents=True, exist_ok=True)
    (keys / "pymw_task_public.pem").write_bytes(public)
    path = keys / "pymw_task_private.pem"
    path.write_bytes(private)
    path.chmod(0o600)
    return public
