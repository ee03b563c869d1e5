"""Test doubles in fabric's and pyinfra's manner.

``RecordingHost`` is a :class:`~pymw_admin.admin.remote.Host` that runs nothing: it answers each
command with the first canned reply whose pattern the command matches (exit 0 and no output
otherwise) and records what would have run, so a step's commands are table-tested without a host.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path

from pymw_admin.admin.remote import Host, Result

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
