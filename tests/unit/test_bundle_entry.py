"""The bundle's main program run in-process (standalone, no client): how it writes its record."""

from __future__ import annotations

import json
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


def _fake_dist(site: Path, dist: str, module: str, body: str) -> None:
    (site / f"{module}.py").write_text(body)
    info = site / f"{dist}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    (info / "RECORD").write_text(f"{module}.py,,\n")


def test_selfcheck_imports_distributions_and_names_the_one_that_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    site = tmp_path / "site"
    site.mkdir()
    # the module name differs from the distribution's: found through its RECORD
    _fake_dist(site, "Good-Dist", "gooddist_mod", "__version__ = '1.0'\n")
    _fake_dist(site, "bad-dist", "baddist_mod",
               "try:\n    import no_such_library_here\nexcept ImportError as e:\n"
               "    raise ImportError('libfoo.so: cannot open shared object file') from e\n")
    monkeypatch.syspath_prepend(str(site))
    code = entry.main(["--pymw-selfcheck", "Good-Dist", "bad-dist"])
    report = json.loads(capsys.readouterr().out)
    assert code == 1
    assert report["imported"] == {"Good-Dist": "1.0"}
    # the innermost cause, on one line
    assert report["failed"] == {"bad-dist": "ModuleNotFoundError: No module named "
                                            "'no_such_library_here'"}


def test_selfcheck_takes_only_distribution_names(capsys: pytest.CaptureFixture[str]) -> None:
    assert entry.main(["--pymw-selfcheck", "os; rm -rf /"]) == 2
    assert "usage" in capsys.readouterr().err


def digest_of_table() -> str:
    import hashlib

    return hashlib.sha256(Path("table.bin").read_bytes()).hexdigest()


def test_a_data_file_staged_beside_the_task_appears_in_the_tasks_directory(
    tmp_path: Path,
) -> None:
    """As a client leaves a work unit's inputs in its slot: the task file and the data file's
    shared blob (``pymw_shared_<digest>``, a constant input of the work unit)."""
    from pymw_admin.wire.encoding import SHARED_FILE_PREFIX, decode_value, encode_task

    table = bytes(range(256)) * 2048
    shared: dict[str, bytes] = {}
    (tmp_path / "task").write_bytes(encode_task(
        "t1", digest_of_table, data_files={"table.bin": table}, shared=shared,
        inline_shared=False, shared_files=True))
    [(digest, blob)] = shared.items()
    (tmp_path / f"{SHARED_FILE_PREFIX}{digest}").write_bytes(blob)
    with pytest.raises(SystemExit):
        entry.main(["task", "result"])
    record = decode_result_header((tmp_path / "result").read_bytes())
    assert record.ok, record.error_message
    assert decode_value(record, trusted=True) == digest
