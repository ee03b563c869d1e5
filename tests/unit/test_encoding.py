"""The task encoding and result records, without any engine."""

from __future__ import annotations

import datetime
import decimal
import json
import os
import pickle
from pathlib import Path

import pytest

from pymw_admin.wire import encoding
from pymw_admin.wire.encoding import PICKLE_PROTOCOL
from pymw_admin.wire.exceptions import dumps_exception
from pymw_admin.worker import run as worker


def add(a: int, b: int) -> int:
    return a + b


def test_task_header_is_readable_without_unpickling() -> None:
    blob = encoding.encode_task("t1", add, (1, 2), modules=("math",))
    header, payload = encoding.read_task_header(blob)
    assert header.task_id == "t1"
    assert header.kind == "function"
    assert header.python == encoding.python_minor()
    assert header.modules == ["math"]
    assert len(payload) > 0


def test_run_task_returns_a_record_with_the_value() -> None:
    record = worker.run_task(encoding.encode_task("t1", add, (2, 3)))
    assert record.ok
    assert encoding.decode_value(record, trusted=True) == 5
    assert record.python == encoding.python_minor()


def test_a_raising_task_gives_an_error_record() -> None:
    record = worker.run_task(encoding.encode_task("t1", lambda: 1 / 0))
    assert not record.ok
    assert record.error_type == "ZeroDivisionError"
    assert "division by zero" in record.error_message
    assert "ZeroDivisionError" in record.error_traceback


def test_a_task_from_another_python_is_refused_before_unpickling() -> None:
    blob = encoding.encode_task("t1", add, (1, 2))
    header, _payload = encoding.read_task_header(blob)
    header.python = "3.99"
    forged = encoding.TASK_MAGIC + json.dumps(header.__dict__).encode() + b"\n" + b"garbage"
    record = worker.run_task(forged)
    assert not record.ok
    assert record.error_kind == "version"
    assert record.error_type == "PythonVersionMismatch"
    assert "3.99" in record.error_message


def test_garbage_is_an_error_record_not_a_crash() -> None:
    record = worker.run_task(b"not a task")
    assert not record.ok
    assert record.error_type == "EncodingError"


def test_result_record_round_trips() -> None:
    record = worker.run_task(encoding.encode_task("t9", add, (1, 1)))
    again = encoding.decode_result_header(encoding.encode_result(record))
    assert again.task_id == "t9"
    assert encoding.decode_value(again, trusted=True) == 2


@pytest.mark.parametrize(
    "value",
    [
        {"a": [1, 2.5, "x", None, True, b"raw"]},
        (1, 2, {3, 4}, frozenset({5})),
        datetime.datetime(2024, 1, 2, 3, 4, 5),
        decimal.Decimal("1.25"),
        complex(1, 2),
    ],
)
def test_untrusted_decoding_rebuilds_plain_data(value: object) -> None:
    assert encoding.loads_untrusted(pickle.dumps(value, protocol=5)) == value


class Evil:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, ("echo pwned",))


def test_untrusted_decoding_refuses_code() -> None:
    with pytest.raises(pickle.UnpicklingError, match="refused"):
        encoding.loads_untrusted(pickle.dumps(Evil()))


def test_missing_data_file_is_a_clear_error(tmp_path: object) -> None:
    with pytest.raises(encoding.EncodingError, match="cannot read data file"):
        encoding.read_data_files(["/nonexistent/file.csv"])


def test_worker_cli_writes_a_result_file(tmp_path: os.PathLike[str]) -> None:
    from pathlib import Path

    task = Path(tmp_path) / "in.task"
    out = Path(tmp_path) / "out.result"
    task.write_bytes(encoding.encode_task("t1", add, (40, 2)))
    assert worker.main([str(task), str(out)]) == 0
    record = encoding.decode_result_header(out.read_bytes())
    assert encoding.decode_value(record, trusted=True) == 42


@pytest.mark.parametrize(
    "blob", [b"PYMW-TASK 1\n", b'PYMW-TASK 1\n{"task_id": "x"', b"PYMW-TASK 1\n{}\n"]
)
def test_a_truncated_task_file_is_an_error_record_not_a_crash(blob: bytes) -> None:
    record = worker.run_task(blob)
    assert not record.ok
    assert record.error_type == "EncodingError"


def test_worker_cli_without_a_workdir_value_is_usage_not_a_crash(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert worker.main(["in.task", "out.result", "--workdir"]) == 2
    assert "usage:" in capsys.readouterr().err
    assert worker.split_workdir(["a", "--workdir", "d", "b"]) == (["a", "b"], "d")


def test_a_big_object_a_function_reads_becomes_one_shared_blob() -> None:
    big = bytes(range(256)) * 4096  # 1 MiB
    table = list(range(100_000))

    def reads() -> int:
        return len(big) + len(table)

    shared: dict[str, bytes] = {}
    body = encoding.pickle_function(reads, shared)
    assert len(body) < 64 * 1024 and len(shared) == 2
    blob = encoding.encode_task("t1", reads, function_blob=body, shared=shared,
                                inline_shared=False)
    assert sorted(encoding.task_shared(blob)) == sorted(shared)
    assert len(blob) < 64 * 1024  # refers to the blobs, does not carry them
    store = encoding.SharedStore()
    for digest, data in shared.items():
        assert encoding.digest_of(data) == digest
        store.put(digest, data)
    record = worker.run_task(blob, store=store)
    assert record.ok and pickle.loads(record.payload) == len(big) + len(table)


def test_shared_blobs_ride_inline_when_nothing_stages_them(tmp_path: Path) -> None:
    handle = encoding.Shared(list(range(50_000)))

    def pick(data: list[int], i: int) -> int:
        return data[i]

    blob = encoding.encode_task("t2", pick, (handle, 7))
    assert encoding.task_shared(blob) == [handle.digest]
    record = worker.run_task(blob)  # a one-shot worker with nothing staged
    assert record.ok and pickle.loads(record.payload) == 7
    # staged as a file beside the task instead (how a file-based engine shares it once)
    bare = encoding.encode_task("t3", pick, (handle, 9), inline_shared=False)
    (tmp_path / f"{encoding.SHARED_FILE_PREFIX}{handle.digest}").write_bytes(handle.blob)
    record = worker.run_task(bare, store=encoding.SharedStore(directory=tmp_path))
    assert record.ok and pickle.loads(record.payload) == 9


def test_a_small_task_file_has_no_shared_field() -> None:
    blob = encoding.encode_task("t4", add, (1, 2))
    assert b'"shared"' not in blob.split(b"\n")[1]


def test_frames_read_back_whole_and_a_shared_blob_as_its_own_bytes() -> None:
    import io

    from pymw_admin.wire import framing

    big = os.urandom(300_000)
    digest = encoding.digest_of(big)
    tasks = framing.pack_batch([b"task one", b"task two"])
    stream = io.BytesIO(b"".join([
        framing.frame(tasks),
        *[bytes(p) for p in framing.shared_frame(digest, big)],
        framing.frame(b""),
        framing.frame(b"short"),
    ]))
    reader = io.BufferedReader(stream)  # type: ignore[arg-type]
    assert framing.unpack_batch(framing.read_message(reader)) == [b"task one", b"task two"]
    got = framing.read_message(reader)
    assert isinstance(got, tuple) and got == (digest, big) and type(got[1]) is bytes
    assert framing.read_message(reader) == b""
    assert framing.read_message(reader) == b"short"
    assert framing.read_message(reader) is None
    cut = io.BufferedReader(io.BytesIO(framing.frame(tasks)[:-3]))  # type: ignore[arg-type]
    assert framing.read_message(cut) is None


def test_a_blob_sent_ahead_carries_its_digest_last() -> None:
    import io

    from pymw_admin.wire import framing

    big = os.urandom(1000)
    digest = encoding.digest_of(big)
    parts = framing.shared_ahead_frame(big, digest.encode())
    stream = io.BufferedReader(io.BytesIO(b"".join(parts)))  # type: ignore[arg-type,misc]
    assert framing.read_message(stream) == (digest, big)


class _Staging:
    """A BlobStaging that records what the pickler asked."""

    def __init__(self, known: dict[int, str]) -> None:
        self.known = known
        self.ahead: list[int] = []
        self.named: list[str | None] = []

    def known_digest(self, blob: bytes) -> str | None:
        return self.known.get(id(blob))

    def send_ahead(self, blob: bytes):  # type: ignore[no-untyped-def]
        self.ahead.append(len(blob))
        return self.named.append


def test_a_large_blob_is_sent_ahead_while_hashed_and_a_known_one_is_not_hashed() -> None:
    big = os.urandom(encoding.SEND_AHEAD_BYTES)
    small = os.urandom(encoding.SHARE_THRESHOLD)

    def reads() -> int:
        return len(big) + len(small)

    staging = _Staging({})
    shared: dict[str, bytes] = {}
    encoding.pickle_function(reads, shared, staging=staging)
    assert staging.ahead == [len(big)]  # the small one is hashed at once, as before
    assert staging.named == [encoding.digest_of(big)] and shared[staging.named[0]] is big

    staging = _Staging({id(big): "b" * 64, id(small): "s" * 64})
    shared = {}
    encoding.pickle_function(reads, shared, staging=staging)
    assert staging.ahead == [] and shared == {"b" * 64: big, "s" * 64: small}


class _Coded(Exception):
    def __init__(self, code: int, where: str) -> None:
        super().__init__(f"code {code}")
        self.code = code
        self.where = where


def test_an_exception_with_its_own_init_is_rebuilt_without_calling_it() -> None:
    payload = dumps_exception(_Coded(7, "worker"), PICKLE_PROTOCOL)
    exc = pickle.loads(payload)
    assert type(exc) is _Coded and exc.args == ("code 7",)
    assert (exc.code, exc.where) == (7, "worker")
    # a built-in exception keeps pickle's own way
    assert pickle.loads(dumps_exception(OSError(2, "gone"), PICKLE_PROTOCOL)).errno == 2


def test_a_module_missing_from_a_bundle_says_how_to_ship_it() -> None:
    try:
        import pymw_no_such_package.sub  # type: ignore[import-not-found]  # noqa: F401
    except ModuleNotFoundError as exc:
        missing = exc
    assert worker.error_message(missing, frozen=True) == (
        "No module named 'pymw_no_such_package' (the bundle lacks it: rebuild the bundle with "
        "--with pymw_no_such_package)")
    assert worker.error_message(ModuleNotFoundError("No module named 'scipy.linalg'",
                                                    name="scipy.linalg"), frozen=True).endswith(
        "rebuild the bundle with --with scipy)")
    # a worker that is not a bundle imports from its own environment: no bundle to rebuild
    assert worker.error_message(missing, frozen=False) == "No module named 'pymw_no_such_package'"


# --- data files as shared blobs ----------------------------------------------------------------

TABLE = bytes(range(256)) * 1100  # over SHARE_THRESHOLD: a shared blob where blobs are staged


def read_files() -> tuple[str, str, list[str]]:
    """What a task sees of its data files: their digests and the directory's names."""
    return (encoding.digest_of(Path("table.bin").read_bytes()),
            Path("note.txt").read_text(), sorted(os.listdir(".")))


def encode_with_files(task_id: str = "t1", shared: dict[str, bytes] | None = None,
                      **options: object) -> tuple[bytes, str]:
    return encoding.encode_task_digested(
        task_id, read_files, data_files={"table.bin": TABLE, "note.txt": b"small"},
        shared={} if shared is None else shared, **options)  # type: ignore[arg-type]


def test_a_large_data_file_travels_as_a_shared_blob_not_in_the_task_file() -> None:
    assert len(TABLE) >= encoding.SHARE_THRESHOLD
    shared: dict[str, bytes] = {}
    blob, digest = encode_with_files(shared=shared, inline_shared=False, shared_files=True)
    table = encoding.digest_of(TABLE)
    header, raw = encoding.read_task_header(blob)
    assert header.data_files == ["note.txt", "table.bin"]
    assert header.file_digests == ["", table]  # the small one stays in the task file
    assert encoding.task_shared(blob) == [table] and shared == {table: TABLE}
    assert shared[table] is TABLE  # staged as it is: no copy
    assert len(blob) < 64 * 1024
    assert pickle.loads(raw)["files"] == {"note.txt": b"small"}
    # the same content digest however the file travels (checkpoints and resume rely on it)
    assert digest == encode_with_files()[1] == encode_with_files(inline_shared=False)[1]
    assert encoding.task_file_digest(blob) == digest


def test_twenty_tasks_over_one_file_share_one_blob_hashed_once(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(encoding, "_last_files", None)
    hashed: list[int] = []
    digest_of = encoding.digest_of

    def counting(data: bytes | memoryview) -> str:
        hashed.append(len(data))
        return digest_of(data)

    monkeypatch.setattr(encoding, "digest_of", counting)
    shared: dict[str, bytes] = {}
    blobs = [encode_with_files(f"t{i}", shared, inline_shared=False, shared_files=True)[0]
             for i in range(20)]
    assert list(shared) == [digest_of(TABLE)]
    assert {tuple(encoding.task_shared(b)) for b in blobs} == {(digest_of(TABLE),)}
    assert hashed.count(len(TABLE)) == 1


def test_the_worker_writes_a_shared_data_file_into_the_task_directory(tmp_path: Path) -> None:
    shared: dict[str, bytes] = {}
    blob, _ = encode_with_files(shared=shared, inline_shared=False, shared_files=True)
    table = encoding.digest_of(TABLE)
    expected = (table, "small", ["note.txt", "table.bin"])
    # sent to a persistent worker (local, MPI), which keeps it for its next tasks
    store = encoding.SharedStore()
    store.put(table, shared[table])
    for _ in range(2):
        record = worker.run_task(blob, store=store)
        assert record.ok, record.error_message
        assert pickle.loads(record.payload) == expected
    # staged as a file beside the task (a BOINC slot): checked against its digest first
    (tmp_path / f"{encoding.SHARED_FILE_PREFIX}{table}").write_bytes(TABLE)
    record = worker.run_task(blob, store=encoding.SharedStore(directory=tmp_path))
    assert record.ok and pickle.loads(record.payload) == expected
    (tmp_path / f"{encoding.SHARED_FILE_PREFIX}{table}").write_bytes(TABLE[:-1] + b"!")
    record = worker.run_task(blob, store=encoding.SharedStore(directory=tmp_path))
    assert not record.ok and "does not match its digest" in record.error_message
    # inlined where nothing stages blobs: the same task file runs on its own
    record = worker.run_task(encode_with_files(shared_files=True)[0])
    assert record.ok and pickle.loads(record.payload) == expected


def test_a_task_file_with_its_data_files_inside_still_runs() -> None:
    """The form every master wrote before data files could be shared blobs (and writes where
    blobs are not staged): no file_digests in the header, every file in the payload."""
    blob, _ = encode_with_files(inline_shared=False)
    header_line = blob.split(b"\n")[1]
    assert b'"file_digests"' not in header_line and b'"shared"' not in header_line
    assert pickle.loads(encoding.read_task_header(blob)[1])["files"]["table.bin"] == TABLE
    record = worker.run_task(blob)
    assert record.ok
    assert pickle.loads(record.payload) == (encoding.digest_of(TABLE), "small",
                                            ["note.txt", "table.bin"])


@pytest.mark.parametrize("digests", [["0" * 64], ["", "../../etc/passwd"], "ab"])
def test_file_digests_that_do_not_fit_the_data_files_are_refused(digests: object) -> None:
    blob, _ = encode_with_files(inline_shared=False, shared_files=True)
    header, raw = encoding.read_task_header(blob)
    header.file_digests = digests  # type: ignore[assignment]
    forged = encoding.TASK_MAGIC + json.dumps(header.__dict__).encode() + b"\n" + bytes(raw)
    record = worker.run_task(forged, store=encoding.SharedStore())
    assert not record.ok and "file_digests does not match data_files" in record.error_message
