"""Remote tracebacks name the master's file and show its source for code sent by value."""

from __future__ import annotations

import types

from pymw_admin.runtime.remote_source import CodePlaces
from pymw_admin.wire import encoding


def outer(x: int) -> int:
    def inner(y: int) -> int:
        return 10 // y

    return inner(x)


def test_a_dynamic_frame_gets_its_file_and_source_line_back() -> None:
    codes: list[types.CodeType] = []
    encoding.pickle_function(outer, {}, codes=codes)
    places = CodePlaces()
    places.add(codes)
    line = outer.__code__.co_firstlineno + 4  # "return inner(x)"
    inner_line = outer.__code__.co_firstlineno + 2
    remote = ("Traceback (most recent call last):\n"
              f'  File "<dynamic-code>", line {line}, in outer\n'
              f'  File "<dynamic-code>", line {inner_line}, in inner\n'
              f'  File "<dynamic-code>", line 3, in unknown\n'
              "ZeroDivisionError: integer division or modulo by zero\n")
    assert places.restore(remote).splitlines() == [
        "Traceback (most recent call last):",
        f'  File "{__file__}", line {line}, in outer',
        "    return inner(x)",
        f'  File "{__file__}", line {inner_line}, in inner',
        "    return 10 // y",
        '  File "<dynamic-code>", line 3, in unknown',  # code it never sent: left as it was
        "ZeroDivisionError: integer division or modulo by zero",
    ]
