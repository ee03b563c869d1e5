"""Text that came from volunteers, the server or a run, made safe to show on a terminal: the
CLI's stream writer, and the character rules it shares with the master's errors
(:mod:`pymw_admin.wire.visible_text`); ``--json`` keeps the text as it is.
"""

from __future__ import annotations

import codecs
from collections.abc import Callable

from pymw_admin.wire.visible_text import shown, shown_line

__all__ = ["safe_writer", "shown", "shown_line"]


def safe_writer(write: Callable[[str], object]) -> Callable[[bytes], None]:
    """A byte sink for a stream of output (logs, attach) that writes it shown, as UTF-8 text."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def take(chunk: bytes) -> None:
        write(shown(decoder.decode(chunk)))

    return take
