"""Task digests: equal work hashes the same in any process; any change to what a worker runs
(function, arguments, kwargs, modules, dep_funcs, data files) changes it."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pymw_admin.runtime import Master
from pymw_admin.wire import encoding
from tests.doubles import FakeInterface


def square(x: int) -> int:
    return x * x


def scaled(x: int, scale: int = 1) -> int:
    return x * scale


def helper_one(x: int) -> int:
    return x + 1


def helper_two(x: int) -> int:
    return x + 2


def digest(executable: object = square, **what: object) -> str:
    return encoding.encode_task_digested("t-1", executable, **what)[1]  # type: ignore[arg-type]


# --- the digest --------------------------------------------------------------------------------


def test_the_digest_leaves_out_the_task_id() -> None:
    first = encoding.encode_task_digested("a-1", square, (3,))[1]
    assert first == encoding.encode_task_digested("b-7", square, (3,))[1]
    assert len(first) == 64


def test_the_digest_changes_with_anything_the_worker_runs(tmp_path: Path) -> None:
    base = digest(scaled, input_data=(3,), kwargs={"scale": 2}, modules=("math",),
                  dep_funcs=(helper_one,), data_files={"t.csv": b"1,2"})
    changed = [
        digest(scaled, input_data=(4,), kwargs={"scale": 2}, modules=("math",),
               dep_funcs=(helper_one,), data_files={"t.csv": b"1,2"}),
        digest(scaled, input_data=(3,), kwargs={"scale": 5}, modules=("math",),
               dep_funcs=(helper_one,), data_files={"t.csv": b"1,2"}),
        digest(scaled, input_data=(3,), kwargs={"scale": 2}, modules=("math", "json"),
               dep_funcs=(helper_one,), data_files={"t.csv": b"1,2"}),
        digest(scaled, input_data=(3,), kwargs={"scale": 2}, modules=("math",),
               dep_funcs=(helper_two,), data_files={"t.csv": b"1,2"}),
        digest(scaled, input_data=(3,), kwargs={"scale": 2}, modules=("math",),
               dep_funcs=(helper_one,), data_files={"t.csv": b"1,3"}),
        digest(scaled, input_data=(3,), kwargs={"scale": 2}, modules=("math",),
               dep_funcs=(helper_one,), data_files={"u.csv": b"1,2"}),
        digest(square, input_data=(3,), kwargs={"scale": 2}, modules=("math",),
               dep_funcs=(helper_one,), data_files={"t.csv": b"1,2"}),
    ]
    assert base not in changed
    assert len(set(changed)) == len(changed)


def test_a_chunk_and_a_single_call_differ() -> None:
    assert digest(square, input_data=(3,)) != digest(square, chunk=[(3,)])


def test_a_script_task_digest_covers_its_bytes(tmp_path: Path) -> None:
    script = tmp_path / "step.py"
    script.write_text("print(1)\n")
    first = digest(script, input_data=(1,))
    assert first == digest(script, input_data=(1,))
    script.write_text("print(2)\n")
    assert digest(script, input_data=(1,)) != first


def test_a_master_reads_data_files_into_the_digest(tmp_path: Path) -> None:
    table = tmp_path / "table.csv"
    table.write_text("1,2\n")
    with Master(FakeInterface()) as master:
        first = master.submit_task(square, (3,), data_files=(table,))
        table.write_text("1,3\n")
        second = master.submit_task(square, (3,), data_files=(table,))
        third = master.submit_task(square, (3,), data_files=(table,))
        assert first.digest != second.digest == third.digest


PROGRAM = """
import json, math, sys
from pymw_admin.runtime import Master
from tests.doubles import FakeInterface

OFFSET = 7

def helper(x):
    return x + OFFSET

def work(x, scale=1):
    return helper(x) * scale + math.floor(x / 2)

if __name__ == "__main__":
    with Master(FakeInterface()) as master:
        tasks = [master.submit_task(work, (i,), kwargs={"scale": 3}, dep_funcs=(helper,),
                                    modules=("math",)) for i in range(3)]
        tasks += master.submit_many(work, range(3))
        tasks += [master.submit_task(lambda x: x + OFFSET, (1,))]
        print(json.dumps([t.digest for t in tasks]))
"""


def test_the_same_script_gives_the_same_digests_in_two_processes(tmp_path: Path) -> None:
    script = tmp_path / "digests.py"
    script.write_text(textwrap.dedent(PROGRAM))
    root = Path(__file__).resolve().parents[2]
    runs = []
    for seed in ("1", "2"):  # string hashing differs between the two, as between any two runs
        out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                             check=True, cwd=root,
                             env={**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(root)})
        runs.append(out.stdout)
    assert runs[0] == runs[1]
    assert len(set(json.loads(runs[0]))) == 7


def test_the_same_script_in_another_directory_gives_the_same_digests(tmp_path: Path) -> None:
    """Each `pymw-admin run` is a directory of its own (PROJECT/pymw/runs/ID), and runs the
    script through runtime.script_runner: a re-run must find the earlier run's tasks."""
    root = Path(__file__).resolve().parents[2]
    runs = []
    for where, runner in (("a", ()), ("b", ()), ("c", ("-m", "pymw_admin.runtime.script_runner"))):
        folder = tmp_path / "runs" / where
        folder.mkdir(parents=True)
        (folder / "digests.py").write_text(textwrap.dedent(PROGRAM))
        out = subprocess.run([sys.executable, *runner, "digests.py"], capture_output=True,
                             text=True, check=True, cwd=folder,
                             env={**os.environ, "PYTHONPATH": str(root)})
        runs.append(out.stdout)
    assert runs[0] == runs[1] == runs[2]


def test_a_function_sent_by_value_takes_no_path_of_the_master() -> None:
    """cloudpickle takes a module's __file__ along: on a worker it is the file's name only."""
    import types

    module = types.ModuleType("placed")
    module.__file__ = "/home/someone/projects/p/pymw/runs/7/placed.py"
    exec("def f():\n    return __file__\n", module.__dict__)
    blob = encoding.pickle_function(module.f)
    assert b"/home/someone" not in blob
    assert pickle.loads(blob)() == "placed.py"


def test_a_task_file_gives_back_its_digest(tmp_path: Path) -> None:
    (tmp_path / "step.py").write_text("print(1)\n")
    for executable, what in [
        (scaled, {"input_data": (3,), "kwargs": {"scale": 2}, "modules": ("math",),
                  "dep_funcs": (helper_one,), "data_files": {"t.csv": b"1,2"}}),
        (square, {"chunk": [(1,), (2,)]}),
        (tmp_path / "step.py", {"input_data": (1,)}),
    ]:
        blob, expected = encoding.encode_task_digested("t-9", executable, **what)  # type: ignore[arg-type]
        assert encoding.task_file_digest(blob) == expected
    with pytest.raises(encoding.EncodingError):
        encoding.task_file_digest(encoding.TASK_MAGIC + b'{"task_id": "x", "python": "3", '
                                  b'"kind": "function"}\n' + b"garbage")


def test_a_shared_function_pickle_still_tells_tasks_apart() -> None:
    # map hands every task the same pickled function: its hash is reused, the rest is not
    body = encoding.pickle_function(square, {})
    first = digest(square, input_data=(3,), function_blob=body)
    assert first == digest(square, input_data=(3,), function_blob=body)
    assert first == digest(square, input_data=(3,))  # a function pickled afresh: same bytes
    others = [digest(square, input_data=(4,), function_blob=body),
              digest(square, input_data=(3,), function_blob=body, modules=("math",)),
              digest(square, input_data=(3,), function_blob=body, data_files={"a": b"1"}),
              digest(square, input_data=(3,), function_blob=body, data_files={"a": b"2"}),
              digest(square, input_data=(3,), function_blob=body, dep_funcs=(helper_one,)),
              digest(square, chunk=[(3,)], function_blob=body)]
    assert first not in others and len(set(others)) == len(others)
