"""M5: a volunteer's bundle runs only task files the project's key signed.

Each hostile task file carries a payload that would create a file if it were unpickled; the
bundle's main program, in a slot a client made (init_data.xml, no rehearsal), must refuse it with
one line on stderr and a ``signature`` error record, and the file must not exist: whether the task
comes as a file or in the command line (``--pymw-task=BASE64``, bounded before it is decoded).
"""

from __future__ import annotations

import json
import os
import pickle
from collections.abc import Iterator
from pathlib import Path

import pytest

from pymw_admin.bundles import boinc, entry
from pymw_admin.bundles.slot import init_data_xml, soft_link_xml
from pymw_admin.interfaces.kit.task_signing import TaskSigner, generate
from pymw_admin.wire import encoding, signature
from pymw_admin.wire.boinc_contract import (
    INLINE_TASK_OPTION,
    RESULT_NAME,
    TASK_KEY_NAME,
    TASK_NAME,
)
from tests.doubles import task_key_pair

PLANTED = "planted-by-the-payload"


class _Plant:
    """Unpickling this opens (creates) a file: the proof that a payload was unpickled."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (self.path, "w"))


def hostile_task(where: Path) -> bytes:
    header = {"task_id": "t1", "python": encoding.python_minor(), "kind": "function"}
    return (encoding.TASK_MAGIC + json.dumps(header).encode() + b"\n"
            + pickle.dumps(_Plant(str(where / PLANTED)), protocol=5))


@pytest.fixture
def slot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A slot as a client makes it: init_data.xml without <rehearsal>, soft links to files in
    the project directory."""
    project = tmp_path / "projects" / "example.org_p"
    project.mkdir(parents=True)
    slot = tmp_path / "slots" / "0"
    slot.mkdir(parents=True)
    data = init_data_xml(slot=0, wu_name="wu").replace(b"<rehearsal>1</rehearsal>", b"")
    assert b"<rehearsal>" not in data
    (slot / "init_data.xml").write_bytes(data)
    for name, target in ((TASK_NAME, "wu.task"), (RESULT_NAME, "wu_0_r1_0")):
        (slot / name).write_bytes(soft_link_xml(f"../../projects/example.org_p/{target}"))
    monkeypatch.chdir(slot)
    monkeypatch.setenv("PYMW_BOINC_API", "slot")
    boinc._reset()
    yield project
    boinc._reset()


def ship_key(project: Path, public_pem: bytes) -> None:
    """The app version's key file, as the client leaves it: in the project directory, a soft
    link in the slot."""
    (project / "pymw_0123_pymw_task_key").write_bytes(public_pem)
    Path(TASK_KEY_NAME).write_bytes(
        soft_link_xml("../../projects/example.org_p/pymw_0123_pymw_task_key"))


WAYS = ("file", "inline")
REFUSED = {"file": f"error: {TASK_NAME} refused: ",
           "inline": "error: the command line's task refused: "}


def run_bundle(project: Path, task_file: bytes, way: str = "file") -> encoding.ResultRecord:
    if way == "file":
        (project / "wu.task").write_bytes(task_file)
        args = []
    else:  # as the client passes a work unit's <command_line>
        os.unlink(TASK_NAME)
        args = [INLINE_TASK_OPTION + signature.pack_command_line(task_file)]
    with pytest.raises(SystemExit) as stop:
        entry.main(args)
    assert stop.value.code == 0  # the refusal is a record the master reads, not a crash
    return encoding.decode_result_header((project / "wu_0_r1_0").read_bytes())


def signed(task: bytes, private: bytes | None = None) -> bytes:
    return TaskSigner.from_pem(private or task_key_pair()[0]).sign(task)


CASES = {
    # an attacker who can write the download tree but has not the project's private key
    "unsigned": lambda project: hostile_task(project),
    "signed by another key": lambda project: signed(hostile_task(project), generate()[0]),
    "payload swapped under a good signature": lambda project: (
        lambda good, bad: bad[:bad.index(b"\n", 12) + 1].replace(b"PYMW-TASK 1", b"PYMW-TASK 2")
        + bad[bad.index(b"\n", 12) + 1:] + good[good.rindex(signature.SIGNATURE_MARK):]
    )(signed(encoding.encode_task("t1", divmod, (7, 2))), hostile_task(project)),
    "signature of the honest task appended": lambda project: (
        signature.signed_form(hostile_task(project))
        + signed(encoding.encode_task("t1", divmod, (7, 2)))[-(2 * 256 + 10):]),
}


@pytest.mark.parametrize("way", WAYS)
@pytest.mark.parametrize("case", sorted(CASES))
def test_a_task_the_key_did_not_sign_is_refused_before_unpickling(
        slot: Path, case: str, way: str, capfd: pytest.CaptureFixture[str]) -> None:
    ship_key(slot, task_key_pair()[1])
    record = run_bundle(slot, CASES[case](slot), way)
    assert not (slot / PLANTED).exists() and not Path(PLANTED).exists()
    assert (record.ok, record.error_kind, record.error_type) == (
        False, "signature", "TaskSignatureError")
    assert record.task_id == "?"  # nothing of the refused file is believed
    errors = [ln for ln in capfd.readouterr().err.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith(REFUSED[way]), errors


@pytest.mark.parametrize("argument", [
    "A" * (entry.INLINE_MAX_CHARS + 4),  # longer than any master sends: never decoded
    "not base64!",
    "QUJD\nREVG",
    "",
])
def test_an_unusable_command_line_task_is_refused(
        slot: Path, argument: str, capfd: pytest.CaptureFixture[str]) -> None:
    ship_key(slot, task_key_pair()[1])
    os.unlink(TASK_NAME)
    with pytest.raises(SystemExit) as stop:
        entry.main([INLINE_TASK_OPTION + argument])
    assert stop.value.code == 0
    record = encoding.decode_result_header((slot / "wu_0_r1_0").read_bytes())
    assert not record.ok and record.task_id == "?"
    errors = [ln for ln in capfd.readouterr().err.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith("error: the command line's task "), errors
    assert len(errors[0]) < 200  # one line, not the argument echoed back


def test_two_command_line_tasks_are_a_usage_error(slot: Path) -> None:
    assert entry.main([INLINE_TASK_OPTION + "QUJD", INLINE_TASK_OPTION + "QUJD"]) == 2
    assert entry.main([INLINE_TASK_OPTION + "QUJD", "task", "result"]) == 2


def test_under_a_client_a_missing_key_is_a_refusal(
        slot: Path, capfd: pytest.CaptureFixture[str]) -> None:
    record = run_bundle(slot, signed(hostile_task(slot)))  # even a signed one: nothing to check
    assert not (slot / PLANTED).exists()
    assert record.error_kind == "signature" and "no task key" in record.error_message
    assert "deploy the app again" in capfd.readouterr().err


def test_an_unusable_key_is_a_refusal(slot: Path) -> None:
    ship_key(slot, b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")
    record = run_bundle(slot, signed(hostile_task(slot)))
    assert not (slot / PLANTED).exists()
    assert "task key is unusable" in record.error_message


@pytest.mark.parametrize("way", WAYS)
def test_a_signed_task_runs(slot: Path, way: str) -> None:
    ship_key(slot, task_key_pair()[1])
    record = run_bundle(slot, signed(encoding.encode_task("t1", divmod, (7, 2))), way)
    assert record.ok and record.task_id == "t1"
    assert encoding.decode_value(record, trusted=False) == (3, 1)


@pytest.mark.parametrize("way", WAYS)
def test_a_shared_blob_is_checked_by_the_digest_the_signed_header_names(
        slot: Path, way: str) -> None:
    """The blob beside the task is not signed itself: its sha256 must be the digest in the
    signed header, or it is never unpickled."""
    ship_key(slot, task_key_pair()[1])
    honest = encoding.Shared(list(range(10)))
    task = encoding.encode_task("t1", len, (honest,), inline_shared=False)
    assert encoding.read_task_header(task)[0].shared == [honest.digest]
    name = encoding.SHARED_FILE_PREFIX + honest.digest
    # the attacker's blob under the honest name beside the task file (a task in the command
    # line: in the slot, where the client copies a work unit's files)
    beside = slot if way == "file" else Path.cwd()
    (beside / name).write_bytes(pickle.dumps(_Plant(str(slot / PLANTED))))
    record = run_bundle(slot, signed(task), way)
    assert not (slot / PLANTED).exists()
    assert not record.ok and "does not match its digest" in record.error_message
    (beside / name).write_bytes(honest.blob)
    if way == "inline":
        Path(TASK_NAME).write_bytes(b"")  # run_bundle takes the file's soft link away again
    record = run_bundle(slot, signed(task), way)
    assert record.ok and encoding.decode_value(record, trusted=False) == 10


def test_a_rehearsal_slot_without_a_key_is_the_trusted_path(slot: Path) -> None:
    """rehearse --bundle runs the master's own tasks on its own machine: no key, no check."""
    Path("init_data.xml").write_bytes(init_data_xml(slot=0, wu_name="wu"))  # <rehearsal>1
    boinc._reset()
    plain = encoding.encode_task("t1", divmod, (7, 2))
    assert run_bundle(slot, plain).ok
    boinc._reset()
    assert run_bundle(slot, signed(plain)).ok
