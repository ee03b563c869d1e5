"""One live master per state directory: a second one would adopt the first one's tasks and both
would collect the same results."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from pymw_admin.errors import UsageError


class StateLock:
    """``DIR/lock``, flocked for the holder's lifetime, with the holder's pid in it (the message a
    second master gets names it)."""

    def __init__(self, fd: int, path: Path) -> None:
        self._fd: int | None = fd
        self.path = path

    @classmethod
    def claim(cls, state_dir: Path, in_use: str) -> StateLock:
        """Take the lock or raise ``UsageError(in_use)``, its ``{pid}`` the holder's pid."""
        path = state_dir / "lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip()
            os.close(fd)
            pid = holder if holder.isdigit() else "unknown"
            raise UsageError(in_use.replace("{pid}", pid)) from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        return cls(fd, path)

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        """Let a later master take the directory; safe to call twice."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
