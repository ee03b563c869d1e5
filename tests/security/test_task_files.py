"""L6: a task file's data-file names stay inside the task's directory, and its task id never
says where that directory is."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest

from pymw_admin.wire import encoding
from pymw_admin.worker import run as worker


def _echo(x: int) -> int:
    return x


def hostile_task(tmp_path: Path, name: str) -> bytes:
    """A task file as an attacker would write it, bypassing encode_task's own check."""
    honest = encoding.encode_task("t1", _echo, (1,), data_files={"ok.txt": b"x"})
    header, payload = encoding.read_task_header(honest)
    body = pickle.loads(payload)
    body["files"] = {name: b"planted"}
    header.data_files = [name]
    return (encoding.TASK_MAGIC + json.dumps(header.__dict__).encode() + b"\n"
            + pickle.dumps(body, protocol=5))


@pytest.mark.parametrize("name", ["../escaped", "{tmp}/absolute", "..", "a/../../b", "a\\b"])
def test_a_data_file_outside_the_task_directory_is_refused(tmp_path: Path, name: str) -> None:
    name = name.format(tmp=tmp_path)
    work = tmp_path / "work"
    work.mkdir()
    record = worker.run_task(hostile_task(tmp_path, name), str(work))
    assert not record.ok and "invalid data file name" in record.error_message
    assert not (tmp_path / "escaped").exists() and not (tmp_path / "absolute").exists()
    assert not (work / "escaped").exists()


@pytest.mark.parametrize("task_id", ["a/b", "../../escaped", "/abs", "x" * 5000, "nul\0id",
                                     ""])
def test_a_task_id_is_no_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                              task_id: str) -> None:
    """The one-shot worker names its temporary directory after the task: an id that is a path
    (or too long, or not a name) must neither crash it nor move the directory."""
    monkeypatch.setattr(worker.tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    record = worker.run_task(encoding.encode_task(task_id, _echo, (5,)))
    assert record.ok and record.task_id == task_id, record.error_message
    assert encoding.decode_value(record, trusted=True) == 5
    assert list((tmp_path / "tmp").iterdir()) == []  # made there, and removed
    assert not (tmp_path / "escaped").exists()


def test_a_task_directory_that_cannot_be_made_is_a_record(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(worker.tempfile, "tempdir", str(tmp_path / "absent"))
    record = worker.run_task(encoding.encode_task("t1", _echo, (5,)))
    assert not record.ok and record.task_id == "t1"
    assert record.error_type == "FileNotFoundError"


def test_the_master_refuses_such_names_too() -> None:
    with pytest.raises(encoding.EncodingError, match="invalid data file name"):
        encoding.encode_task("t1", _echo, (1,), data_files={"../x": b""})


def test_m5_task_files_are_not_writable_by_the_web_servers_group(tmp_path: Path) -> None:
    from pymw_admin.interfaces import boinc
    from tests.unit.test_boinc_interface import make_project

    root = make_project(tmp_path)
    iface = boinc.build(project_home=str(root), app_args="tag=perm")
    iface.submit("a", encoding.encode_task("a", _echo, (1,)))
    iface.flush()  # a batch is signed and staged as it goes to create_work
    written = [p for p in (root / "download").rglob("*") if p.is_file()]
    assert written and all(p.stat().st_mode & 0o777 == 0o644 for p in written)
    iface.close()


def _where() -> str:
    import os

    return os.getcwd()


def test_l6_a_bundle_task_runs_in_its_slot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pymw_admin.bundles import entry

    slot = tmp_path / "slots" / "0"
    slot.mkdir(parents=True)
    (slot / entry.TASK_NAME).write_bytes(encoding.encode_task("t1", _where))
    monkeypatch.chdir(slot)
    with pytest.raises(SystemExit):  # boinc.finish ends the process, as under a client
        entry.main([])
    record = encoding.decode_result_header((slot / entry.RESULT_NAME).read_bytes())
    assert record.ok, record.error_message
    assert encoding.decode_value(record, trusted=True) == str(slot / "pymw_work" / "task")
    assert not (slot / "pymw_work").exists()


@pytest.mark.parametrize("name", ["../escaped", "{tmp}/absolute"])
def test_a_shared_data_file_outside_the_task_directory_is_refused(tmp_path: Path,
                                                                  name: str) -> None:
    """The same for a data file that comes as a shared blob: its name is checked as well."""
    name = name.format(tmp=tmp_path)
    data = b"planted" * 50_000
    shared: dict[str, bytes] = {}
    honest = encoding.encode_task("t1", _echo, (1,), data_files={"ok.bin": data},
                                  shared=shared, inline_shared=False, shared_files=True)
    header, payload = encoding.read_task_header(honest)
    header.data_files = [name]
    forged = (encoding.TASK_MAGIC + json.dumps(header.__dict__).encode() + b"\n"
              + bytes(payload))
    store = encoding.SharedStore()
    store.put(*next(iter(shared.items())))
    work = tmp_path / "work"
    work.mkdir()
    record = worker.run_task(forged, str(work), store)
    assert not record.ok and "invalid data file name" in record.error_message
    assert not (tmp_path / "escaped").exists() and not (tmp_path / "absolute").exists()
