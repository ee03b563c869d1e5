"""Text that came from volunteers, the server or a run, made safe to show on a terminal.

A volunteer's stderr or error message can hold escape sequences (OSC 52 writes the clipboard, others
set the title or move the cursor) and bidi overrides that reorder what is shown. Human output (the
CLI's tables and error lines, the messages of the errors a master raises) shows each such character
as a visible escape (``\\x1b``); ``--json`` and the errors' attributes keep the text as it is.
Standard library only.
"""

from __future__ import annotations

import re

# C0 and C1 controls but newline and tab, DEL, and the bidi marks, embeddings and isolates
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _visible(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def shown(text: str) -> str:
    """``text`` with every control, escape and bidi character written out visibly."""
    return _UNSAFE.sub(_visible, text)


def shown_line(text: str) -> str:
    """As :func:`shown`, for one table cell or error line: newlines and tabs written out too."""
    return shown(text).replace("\n", "\\n").replace("\t", "\\t")
