"""The checkpoint: results kept by task digest come back instead of running again; errors and
lost tasks are never kept; ``-a checkpoint=DIR`` reaches the master."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from pymw_admin.errors import UsageError
from pymw_admin.runtime import Master, TaskError
from pymw_admin.runtime.checkpoint import Checkpoint
from pymw_admin.runtime.options import build_interface, parse_args, split_app_args
from pymw_admin.wire import encoding
from tests.doubles import FakeInterface


def square(x: int) -> int:
    return x * x


def boom(x: int) -> int:
    raise ValueError(f"no {x}")


# --- the store ---------------------------------------------------------------------------------


def _record(value: object, ok: bool = True) -> bytes:
    return encoding.encode_result(encoding.ResultRecord(
        task_id="x-1", ok=ok, python=encoding.python_minor(), payload=pickle.dumps(value)))


def test_a_stored_record_comes_back_as_written(tmp_path: Path) -> None:
    store = Checkpoint(tmp_path / "ck")
    record = _record([1, 2])
    store.put("ab" * 32, record)
    assert store.get("ab" * 32) == (record, True)
    assert store.get("cd" * 32) is None
    assert [p.name for p in (tmp_path / "ck" / "ab").iterdir()] == ["ab" * 32]  # no temp left


def test_a_broken_or_failed_record_is_no_result(tmp_path: Path) -> None:
    store = Checkpoint(tmp_path)
    (tmp_path / "ab").mkdir()
    (tmp_path / "ab" / ("ab" * 32)).write_bytes(_record(1)[:5])
    assert store.get("ab" * 32) is None
    store.put("cd" * 32, _record(ValueError("x"), ok=False))
    assert store.get("cd" * 32) is None


def test_an_unusable_directory_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(UsageError, match="checkpoint directory"):
        Checkpoint(tmp_path / "file" / "ck")
    fake = FakeInterface()
    with pytest.raises(UsageError, match="checkpoint directory"):
        Master(fake, checkpoint=tmp_path / "file" / "ck")
    assert fake.closed  # its workers are not left behind


# --- the master --------------------------------------------------------------------------------


def test_a_stored_result_is_handed_back_without_running(tmp_path: Path) -> None:
    first = FakeInterface()
    with Master(first, checkpoint=tmp_path) as master:
        assert master.map(square, range(5)) == [0, 1, 4, 9, 16]
    second = FakeInterface()
    with Master(second, checkpoint=tmp_path) as master:
        assert master.map(square, range(8)) == [x * x for x in range(8)]
        task = master.submit_task(square, (2,))
        assert master.get_result(task) == (task, 4)
        assert master.get_progress().done == 9
    assert len(first.submitted) == 5
    assert len(second.submitted) == 3  # 5, 6 and 7: the rest were stored


def test_a_task_that_raised_is_not_stored(tmp_path: Path) -> None:
    for _ in range(2):
        fake = FakeInterface()
        with Master(fake, checkpoint=tmp_path) as master:
            task = master.submit_task(boom, (1,))
            with pytest.raises(TaskError, match="no 1"):
                master.get_result(task)
        assert fake.submitted == [task.task_id]  # run both times


def test_a_lost_task_is_not_stored(tmp_path: Path) -> None:
    with Master(FakeInterface(["refused"]), checkpoint=tmp_path) as master:
        task = master.submit_task(square, (3,))
        with pytest.raises(TaskError):
            master.get_result(task)
    assert not list(tmp_path.rglob("*"))


def test_as_completed_yields_stored_tasks(tmp_path: Path) -> None:
    with Master(FakeInterface(), checkpoint=tmp_path) as master:
        master.map(square, range(3))
    fake = FakeInterface(["hold"])
    with Master(fake, checkpoint=tmp_path) as master:
        tasks = master.submit_many(square, range(4))
        seen = []
        for task in master.as_completed(tasks):
            seen.append(master.get_result(task)[1])
            if len(seen) == 3:
                fake.release()
        assert sorted(seen) == [0, 1, 4, 9]
    assert len(fake.submitted) == 1



# --- -a checkpoint=DIR -------------------------------------------------------------------------


def test_app_args_give_the_master_its_checkpoint(tmp_path: Path) -> None:
    assert split_app_args(f"tag=run1 checkpoint={tmp_path} keep=yes") == (
        {"checkpoint": str(tmp_path)}, "tag=run1 keep=yes")
    assert split_app_args(f"checkpoint={tmp_path}") == ({"checkpoint": str(tmp_path)}, None)
    assert split_app_args(None) == ({}, None)
    assert split_app_args("--flag  'a  b'") == ({}, "--flag  'a  b'")
    with pytest.raises(UsageError, match="needs a value"):
        split_app_args("checkpoint=")
    interface = build_interface(parse_args(["-i", "local", "-n", "1", "-a",
                                            f"checkpoint={tmp_path / 'ck'}"]))
    with Master(interface) as master:
        assert master.checkpoint is not None
        assert master.checkpoint.directory == tmp_path / "ck"


class Volunteers(FakeInterface):
    trusted = False


class Gift:
    """Not plain data: an untrusted decoder refuses to rebuild it."""


def make_gift(x: int) -> Gift:
    return Gift()


def test_a_result_from_untrusted_workers_stays_untrusted(tmp_path: Path) -> None:
    with Master(Volunteers(), checkpoint=tmp_path) as master:
        assert master.map(square, range(3)) == [0, 1, 4]
        task = master.submit_task(make_gift, (1,))
        with pytest.raises(TaskError, match="cannot decode"):
            master.get_result(task)
    assert sorted(p.name[64:] for p in tmp_path.rglob("*") if p.is_file()) == [
        ".untrusted"] * 3
    # a trusted master reading them decodes them as untrusted all the same
    fake = FakeInterface()
    with Master(fake, checkpoint=tmp_path) as master:
        assert master.map(square, range(4)) == [0, 1, 4, 9]
    assert len(fake.submitted) == 1


def test_a_trusted_master_decodes_an_untrusted_record_as_untrusted(tmp_path: Path) -> None:
    # a task of plain code (a class pickled by value need not pickle to the same bytes twice)
    # whose kept record, from untrusted workers, holds what only a full unpickler rebuilds
    digest = encoding.encode_task_digested("x-1", square, (7,))[1]
    record = encoding.encode_result(encoding.ResultRecord(
        task_id="x-1", ok=True, python=encoding.python_minor(), payload=pickle.dumps(Gift())))
    Checkpoint(tmp_path).put(digest, record, trusted=False)
    fake = FakeInterface()
    with Master(fake, checkpoint=tmp_path) as master:
        task = master.submit_task(square, (7,))
        assert task.digest == digest
        with pytest.raises(TaskError, match="cannot decode"):
            master.get_result(task)
    assert fake.submitted == []
