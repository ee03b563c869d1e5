"""The bundle's main program run in-process (standalone, no client): how it writes its record."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from pymw_admin.bundles import boinc, entry
from pymw_admin.wire.encoding import ResultRecord, decode_result_header, encode_task
from pymw_admin.worker import run as worker


@pytest.fixture(autouse=True)
def fresh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PYMW_BOINC_API", raising=False)
    boinc._reset()
    yield tmp_path
    boinc._reset()


def test_the_record_goes_through_the_workers_one_atomic_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    written: list[tuple[str, ResultRecord]] = []
    real = worker.write_record

    def spy(path: str | os.PathLike[str], record: ResultRecord) -> None:
        written.append((os.fspath(path), record))
        real(path, record)

    monkeypatch.setattr(worker, "write_record", spy)
    (tmp_path / "task").write_bytes(encode_task("t1", divmod, (7, 2)))
    with pytest.raises(SystemExit) as stop:  # boinc.finish(0) ends the program
        entry.main(["task", "result"])
    assert stop.value.code == 0
    assert [(p, r.task_id, r.ok) for p, r in written] == [("result", "t1", True)]
    assert decode_result_header((tmp_path / "result").read_bytes()).ok
    assert sorted(p.name for p in tmp_path.iterdir()) == ["boinc_finish_called", "result", "task"]
