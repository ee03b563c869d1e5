"""Tasks through the real bundle: no Python on PATH, in a Debian 13 tree, the boinc module."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from pymw_admin.bundles import slot
from pymw_admin.bundles.manifest import Bundle
from pymw_admin.wire.encoding import TASK_MAGIC, decode_result_header

from .conftest import read_result, write_task

pytestmark = pytest.mark.bundle


def stdlib_task(n: int) -> dict[str, object]:
    """Imports a bundle only has because it carries the whole standard library."""
    import csv
    import decimal
    import io
    import json
    import sqlite3
    import xml.dom.minidom

    db = sqlite3.connect(":memory:")
    db.execute("create table t (x)")
    db.executemany("insert into t values (?)", [(i,) for i in range(n)])
    total = db.execute("select sum(x) from t").fetchone()[0]
    out = io.StringIO()
    csv.writer(out).writerow([total, "a"])
    return {
        "sum": total,
        "third": str(decimal.Decimal(1) / decimal.Decimal(3)),
        "csv": out.getvalue().strip(),
        "json": json.dumps([1]),
        "xml": xml.dom.minidom.parseString("<a>x</a>").documentElement.tagName,
    }


def boinc_task() -> dict[str, object]:
    import boinc  # the tutorial's spelling: the bundle provides it

    boinc.fraction_done(0.25)
    return {
        "mode": boinc.mode(),
        "standalone": boinc.is_standalone(),
        "resolved": boinc.resolve_filename("some_input"),
        "app": boinc.get_app_name(),
        "checkpoint": boinc.time_to_checkpoint(),
    }


def raising_task() -> None:
    raise ValueError("bad input 42")


def test_env_i_no_python_on_path(bundle: Bundle, run_bundle, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    write_task(tmp_path / "task", stdlib_task, 10)
    # `env -i`: no PATH, no PYTHONHOME/PYTHONPATH, nothing that could lead to an interpreter
    probe = subprocess.run(["env", "-i", "env"], capture_output=True, text=True)
    assert probe.stdout.strip() == ""
    done = run_bundle("task", "result", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    record, value = read_result(tmp_path / "result")
    assert record.ok, record.error_traceback
    assert value == {"sum": 45, "third": "0.3333333333333333333333333333", "csv": "45,a",
                     "json": "[1]", "xml": "a"}
    assert record.python == bundle.manifest.python


def test_inside_debian13_tree_without_matching_python(  # type: ignore[no-untyped-def]
    bundle: Bundle, trixie: Path, chroot_dir: Path
) -> None:
    # the tree has no Python of the bundle's minor version (minbase has none at all)
    assert not list((trixie / "usr" / "bin").glob(f"python{bundle.manifest.python}*"))
    shutil.copytree(bundle.dir, chroot_dir / "bundle", symlinks=True)
    write_task(chroot_dir / "task", stdlib_task, 4)
    inside = "/" + str(chroot_dir.relative_to(trixie))
    done = subprocess.run(
        ["chroot", str(trixie), "/usr/bin/env", "-i", f"{inside}/bundle/pymw-worker",
         f"{inside}/task", f"{inside}/result"],
        capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    record, value = read_result(chroot_dir / "result")
    assert record.ok, record.error_traceback
    assert value["sum"] == 6


def test_standalone_boinc_module(run_bundle, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    write_task(tmp_path / "task", boinc_task)
    done = run_bundle("task", "result", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    record, value = read_result(tmp_path / "result")
    assert record.ok, record.error_traceback
    assert value == {"mode": "standalone", "standalone": True, "resolved": "some_input",
                     "app": "pymw-worker", "checkpoint": False}
    # progress went to the log: the worker's own reports on stderr, the task's in its record
    assert "boinc: fraction done 0.00" in done.stderr
    assert "boinc: fraction done 1.00" in done.stderr
    assert "boinc: fraction done 0.25" in record.stderr


def test_logical_names_default_and_task_error(run_bundle, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    write_task(tmp_path / "pymw_task", raising_task)
    done = run_bundle(cwd=tmp_path)  # no arguments: the BOINC logical names
    assert done.returncode == 0, done.stderr  # a task that raised is still a record
    record, _ = read_result(tmp_path / "pymw_result")
    assert not record.ok
    assert record.error_type == "ValueError" and record.error_message == "bad input 42"


def test_refuses_other_python_minor_before_unpickling(  # type: ignore[no-untyped-def]
    bundle: Bundle, run_bundle, tmp_path: Path
) -> None:
    header = {"task_id": "old", "python": "3.99", "kind": "function", "modules": [],
              "data_files": [], "name": "f"}
    # a payload that would blow up if anyone unpickled it
    blob = TASK_MAGIC + json.dumps(header).encode() + b"\n" + b"\x80garbage"
    (tmp_path / "task").write_bytes(blob)
    done = run_bundle("task", "result", cwd=tmp_path)
    assert done.returncode == 0
    assert (f"old: task was pickled by Python 3.99 but this worker runs Python "
            f"{bundle.manifest.python}") in done.stderr
    assert "Traceback" not in done.stderr
    record = decode_result_header((tmp_path / "result").read_bytes())
    assert not record.ok
    assert record.error_kind == "version"
    assert record.error_type == "PythonVersionMismatch"


def test_truncated_task_file_is_one_line_and_an_error_record(  # type: ignore[no-untyped-def]
    run_bundle, tmp_path: Path
) -> None:
    write_task(tmp_path / "whole", stdlib_task, 3)
    whole = (tmp_path / "whole").read_bytes()
    (tmp_path / "task").write_bytes(whole[: whole.index(b"\n", len(TASK_MAGIC))])  # no header end
    done = run_bundle("task", "result", cwd=tmp_path)
    assert "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert errors == [errors[0]] and "task is not a usable task file" in errors[0], done.stderr
    assert "malformed task header" in errors[0]
    # a record was written, so the client uploads it and the master reports the failure
    assert done.returncode == 0
    record = decode_result_header((tmp_path / "result").read_bytes())
    assert not record.ok and "malformed task header" in record.error_message


def test_missing_task_file_is_one_line(run_bundle, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    done = run_bundle("nope", "result", cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr.startswith("error: cannot read the task file nope")
    assert "Traceback" not in done.stderr


def test_slot_with_the_real_boinc_library(bundle: Bundle, tmp_path: Path) -> None:
    """In a slot (init_data.xml present), the bundle drives Debian's libboinc_api.so.7."""
    assert bundle.manifest.boinc_library
    blob_path = tmp_path / "t.task"
    write_task(blob_path, boinc_task, task_id="lib1")
    slot_dir = slot.prepare(tmp_path, 0, bundle, "lib1", blob_path.read_bytes())
    outcome = slot.run(tmp_path, slot_dir, bundle, "lib1", api="library", timeout=60)
    assert outcome.failure() == "", outcome.stderr
    assert "called boinc_finish(0)" in outcome.stderr  # the C library's own message
    assert outcome.result is not None
    record = decode_result_header(outcome.result)
    assert record.ok, record.error_traceback


def test_manifest_matches_the_bundle(bundle: Bundle) -> None:
    from pymw_admin.bundles.manifest import check

    assert check(bundle.manifest, bundle.dir) == []
    assert bundle.manifest.platform == "x86_64-pc-linux-gnu" or os.uname().machine != "x86_64"
    size = sum(f.size for f in bundle.manifest.files.values())
    assert size <= 40_000_000
