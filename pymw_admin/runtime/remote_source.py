"""Where the code in a remote traceback came from: the master script's file and source lines.

Code that travels by value (functions of the master script, and of modules the workers cannot
import) is rebuilt on the worker with the file name ``<dynamic-code>`` and no source, so its
frames read ``File "<dynamic-code>", line 8, in f``. The master keeps the code objects it sent
(their name, lines and file as it knew them) and puts the file name and the source line back
into the traceback text: the source is on the master's side, read through linecache.
"""

from __future__ import annotations

import linecache
import re
import threading
import types
from collections.abc import Iterable

_DYNAMIC_FRAME = re.compile(r'^(?P<indent>[ \t]*)File "<dynamic-code>", line (?P<line>\d+), '
                            r'in (?P<name>.+)$', re.MULTILINE)


class CodePlaces:
    """The files of the code objects a master sent by value, by function name and lines."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: set[int] = set()  # ids of the code objects indexed (kept alive in _places)
        self._places: dict[str, list[tuple[int, int, str, types.CodeType]]] = {}

    def add(self, codes: Iterable[types.CodeType]) -> None:
        """Index these code objects and the ones nested in them (inner functions, lambdas)."""
        with self._lock:
            pending = list(codes)
            while pending:
                code = pending.pop()
                if id(code) in self._seen:
                    continue
                self._seen.add(id(code))
                pending += [c for c in code.co_consts if isinstance(c, types.CodeType)]
                lines = [line for _, _, line in code.co_lines() if line is not None]
                first = min(lines, default=code.co_firstlineno)
                last = max(lines, default=code.co_firstlineno)
                self._places.setdefault(code.co_name, []).append(
                    (first, last, code.co_filename, code))

    def _file_of(self, name: str, line: int) -> str | None:
        for first, last, filename, _ in self._places.get(name, ()):
            if first <= line <= last:
                return filename
        return None

    def restore(self, traceback: str) -> str:
        """``traceback`` with each ``<dynamic-code>`` frame of known code naming its file and
        followed by its source line (when the file can be read here)."""
        if "<dynamic-code>" not in traceback:
            return traceback

        def frame(match: re.Match[str]) -> str:
            indent, line, name = match["indent"], int(match["line"]), match["name"]
            with self._lock:
                filename = self._file_of(name, line)
            if filename is None:
                return match[0]
            text = f'{indent}File "{filename}", line {line}, in {name}'
            source = linecache.getline(filename, line).strip()
            return f"{text}\n{indent}  {source}" if source else text  # as traceback indents

        return _DYNAMIC_FRAME.sub(frame, traceback)
