"""Append-only JSON lines: what an engine submitted, finished and handed over, so a master
started later on the same state resumes instead of submitting again.

Each write is flushed and fsynced before the engine acts on it; a line torn by a crash is
skipped on reading, the rest of the journal still counts.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

# beside an engine's journal, the master's own state (runtime.earlier): which content each task
# carried, and the results kept for a re-run of the same script; an engine dropping its state
# (BOINC's `runs drop`) removes them with it
DIGESTS_FILE = "digests.jsonl"
KEPT_RESULTS_DIR = "results"


def read_events(path: Path) -> list[dict[str, Any]]:
    """Every whole JSON object line of ``path`` ([] when there is none)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    events = []
    for line in text.splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue  # a line torn by a crash
        if isinstance(event, dict):
            events.append(event)
    return events


def _write(file: IO[str], events: Iterable[dict[str, Any]]) -> None:
    text = "".join(json.dumps(e, separators=(",", ":")) + "\n" for e in events)
    if not text:
        return
    file.write(text)
    file.flush()
    os.fsync(file.fileno())


def append_events(path: Path, events: Iterable[dict[str, Any]]) -> None:
    """Append and fsync, opening the file for this write only."""
    with path.open("a", encoding="utf-8") as f:
        _write(f, events)


class Journal:
    """A journal kept open for the engine's lifetime (one open, many writes)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file = path.open("a", encoding="utf-8")

    def read(self) -> list[dict[str, Any]]:
        return read_events(self.path)

    def write(self, *events: dict[str, Any]) -> None:
        _write(self._file, events)

    def close(self) -> None:
        self._file.close()
