"""What a task writes to stderr: kept in its record, and, for a one-shot worker, also written to
the process's own stderr as it comes (engines keep that one when the task crashes)."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator

import pytest

from pymw_admin.wire.encoding import encode_task
from pymw_admin.worker import run as worker


def talks(x: int) -> int:
    print(f"working on {x}", file=sys.stderr)
    sys.stderr.write("caf\u00e9 \udcff\n")  # not UTF-8 as it is: written escaped, never refused
    print("to stdout")
    return x + 1


def talks_and_raises(x: int) -> int:
    print(f"giving up on {x}", file=sys.stderr)
    raise ValueError(x)


@pytest.fixture()
def pipe() -> Iterator[tuple[int, int]]:
    r, w = os.pipe()
    yield r, w
    for fd in (r, w):
        with contextlib.suppress(OSError):  # closed already by the test
            os.close(fd)


def _drain(r: int, w: int) -> str:
    os.close(w)
    chunks = []
    while chunk := os.read(r, 65536):
        chunks.append(chunk)
    return b"".join(chunks).decode()


def test_the_record_keeps_stderr_as_it_was_and_the_descriptor_gets_it_too(
    pipe: tuple[int, int]
) -> None:
    r, w = pipe
    plain = worker.run_task(encode_task("a", talks, (1,)))
    teed = worker.run_task(encode_task("a", talks, (1,)), stderr_fd=w)
    assert plain.ok and teed.ok
    assert teed.stderr == plain.stderr == "working on 1\ncaf\u00e9 \udcff\n"
    assert teed.stdout == "to stdout\n"  # stdout stays the record's alone
    assert _drain(r, w) == "working on 1\ncaf\u00e9 \\udcff\n"


def test_a_task_that_raises_keeps_its_stderr_in_the_record(pipe: tuple[int, int]) -> None:
    r, w = pipe
    record = worker.run_task(encode_task("b", talks_and_raises, (2,)), stderr_fd=w)
    assert not record.ok and record.error_type == "ValueError"
    assert record.stderr == "giving up on 2\n"
    # the traceback is the record's (the master shows it): the descriptor has the task's words
    assert _drain(r, w) == "giving up on 2\n"


def test_a_stderr_that_cannot_be_written_loses_nothing_of_the_record(
    pipe: tuple[int, int]
) -> None:
    r, w = pipe
    os.close(r)  # nobody reads: a write fails with EPIPE
    record = worker.run_task(encode_task("c", talks, (3,)), stderr_fd=w)
    assert record.ok and record.stderr == "working on 3\ncaf\u00e9 \udcff\n"
