"""Data files on the local interface: a large one is sent to each worker once, as a shared blob,
and still appears to every task as a file of its own in its working directory."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from pymw_admin.runtime import Master
from pymw_admin.wire.encoding import SHARE_THRESHOLD

SIZE = 2 << 20  # 2 MiB: well over SHARE_THRESHOLD


def read_and_spoil(i: int) -> tuple[str, int, list[str]]:
    """What the task saw of its files, before it writes over its copy of the large one."""
    data = Path("table.bin").read_bytes()
    seen = (hashlib.sha256(data).hexdigest(), data[i] + i, sorted(os.listdir(".")))
    with open("table.bin", "ab") as f:  # its own copy: no later task may see this
        f.write(b"spoilt")
    return seen


def bytes_sent(master: Master) -> list[int]:
    return [w["extra"]["shared_bytes_sent"] for w in master.get_status().workers]


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path, bytes]:
    table, note = tmp_path / "table.bin", tmp_path / "note.txt"
    data = os.urandom(SIZE)
    table.write_bytes(data)
    note.write_text("small: inside each task file")
    return table, note, data


def test_twenty_tasks_over_one_data_file_send_it_to_each_worker_once(
        files: tuple[Path, Path, bytes], monkeypatch: pytest.MonkeyPatch) -> None:
    table, note, data = files
    assert SIZE >= SHARE_THRESHOLD
    expected = [(hashlib.sha256(data).hexdigest(), data[i] + i, ["note.txt", "table.bin"])
                for i in range(20)]
    with Master("local", num_workers=2) as master:
        handed: list[int] = []  # the size of every task file the interface was given
        submit_many = master.interface.submit_many  # type: ignore[attr-defined]

        def recording(tasks: list[tuple[str, bytes]]) -> None:
            handed.extend(len(blob) for _, blob in tasks)
            submit_many(tasks)

        monkeypatch.setattr(master.interface, "submit_many", recording)
        assert master.map(read_and_spoil, range(20), data_files=(table, note)) == expected
        assert len(handed) == 20 and sum(handed) < SIZE // 10  # no task file carries it
        sent = bytes_sent(master)
        assert all(n in (0, SIZE) for n in sent) and sum(sent) >= SIZE, sent
        # one task at a time, each reading the file afresh: the same content, not sent again
        tasks = [master.submit_task(read_and_spoil, (i,), data_files=(table, note))
                 for i in range(20)]
        assert [master.get_result(t)[1] for t in tasks] == expected
        assert all(n in (0, SIZE) for n in bytes_sent(master))  # still once per worker at most


def test_a_changed_data_file_is_new_content(files: tuple[Path, Path, bytes]) -> None:
    table, note, data = files
    with Master("local", num_workers=1) as master:
        first = master.submit_task(read_and_spoil, (0,), data_files=(table, note))
        assert master.get_result(first)[1][0] == hashlib.sha256(data).hexdigest()
        table.write_bytes(data[::-1])
        second = master.submit_task(read_and_spoil, (0,), data_files=(table, note))
        assert master.get_result(second)[1][0] == hashlib.sha256(data[::-1]).hexdigest()
        assert first.digest != second.digest
        assert bytes_sent(master) == [2 * SIZE]
