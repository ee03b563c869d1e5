"""Resume by content: the tasks an earlier master left on a durable engine, matched to the tasks
a master run again submits.

    submit:  (task id, digest) ──> STATE/digests.jsonl ──> interface.submit
    resume:  interface.resumed_tasks() ──digest──> EarlierTasks
    submit again:  digest ──claim──> the earlier task id: not submitted, its result comes back
    the end:  what nobody claimed is counted, and the interface cancels it (or keeps it)

``STATE`` is the interface's own state directory (a BOINC tag's, an HTCondor one). A task's
digest (``encoding.task_digest``) covers what its worker runs, so a claimed task gets exactly the
result the new one would have computed. The results an earlier master took in already live in
``STATE/results`` (a runtime.checkpoint.Checkpoint) until the run ends cleanly.
"""

from __future__ import annotations

import contextlib
import shutil
from collections import deque
from pathlib import Path

from pymw_admin.interfaces.base import Completion
from pymw_admin.interfaces.kit.journal import (
    DIGESTS_FILE,
    KEPT_RESULTS_DIR,
    append_events,
    read_events,
)

RESULTS_DIR = KEPT_RESULTS_DIR


class ContentIndex:
    """Which content each task id of a durable engine carried: written before the engine sees a
    task, so a master that dies a moment later still has the digest of every task it left."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / DIGESTS_FILE

    def record(self, pairs: list[tuple[str, str]]) -> None:
        if pairs:
            append_events(self.path, [{"task_id": t, "digest": d} for t, d in pairs if d])

    def digests(self) -> dict[str, str]:
        return {e["task_id"]: e["digest"] for e in read_events(self.path)
                if isinstance(e.get("task_id"), str) and isinstance(e.get("digest"), str)}

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)


def clear_results(state_dir: Path) -> None:
    """A clean end: the results kept for a re-run go (a later run computes afresh)."""
    with contextlib.suppress(OSError):
        shutil.rmtree(state_dir / RESULTS_DIR)


class EarlierTasks:
    """An earlier master's uncollected tasks, by digest, until a new task claims one.

    A completion for one that nobody claimed yet waits here; the task that claims it then takes
    it in as if its own worker had sent it.
    """

    def __init__(self) -> None:
        self._names: dict[str, str] = {}  # task id -> name, unclaimed
        self._by_digest: dict[str, deque[str]] = {}
        self._waiting: dict[str, Completion] = {}  # an unclaimed task's outcome
        # claimed, but the new task is not registered yet: an outcome for it must still wait
        self._claiming: set[str] = set()

    def add(self, task_id: str, name: str, digest: str) -> None:
        self._names[task_id] = name
        if digest:
            self._by_digest.setdefault(digest, deque()).append(task_id)

    def __len__(self) -> int:
        return len(self._names)

    def __contains__(self, task_id: object) -> bool:
        return task_id in self._names or task_id in self._claiming

    def hold(self, completion: Completion) -> None:
        """An outcome for an unclaimed task (a start notice says nothing worth keeping)."""
        if not completion.started:
            self._waiting[completion.task_id] = completion

    def claim(self, digest: str) -> str | None:
        """The id of an unclaimed earlier task with this content, now claimed; None if none.

        One the engine lost (no record: its host failed, its job was held) is passed over: the
        new task runs afresh instead of inheriting that failure.
        """
        ids = self._by_digest.get(digest) if digest else None
        while ids:
            task_id = ids[0]
            waiting = self._waiting.get(task_id)
            if waiting is not None and waiting.record is None:
                ids.popleft()
                continue  # stays unclaimed: cancelled (settled) with the rest at the end
            ids.popleft()
            if task_id in self._names:
                del self._names[task_id]
                self._claiming.add(task_id)
                return task_id
        return None

    def outcome(self, task_id: str) -> Completion | None:
        """What came for a claimed task before its new task was registered; from now on its
        completions go to that task."""
        self._claiming.discard(task_id)
        return self._waiting.pop(task_id, None)

    def take_all(self) -> list[tuple[str, str]]:
        """Every unclaimed task, ``(task_id, name)``, claimed now (``Master.resumed``)."""
        taken = list(self._names.items())
        self._names.clear()
        self._by_digest.clear()
        return taken
