"""What the assimilator tallies of the tasks it files (PROJECT/pymw/outcomes/APP.json): each
canonical result's header read bounded and by patterns (volunteers' data: never unpickled, never
parsed whole), the tally merged, trimmed and written for status."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from pymw_admin.interfaces.boinc import _TAG_CHARS
from pymw_admin.wire import boinc_contract as contract
from pymw_admin.wire.encoding import ResultRecord, encode_result
from tests.unit.test_boinc_scripts import _import, installed


@pytest.fixture()
def assimilator(tmp_path: Path) -> Any:
    """The installed script as a module."""
    return _import(installed(tmp_path, "pymw_assimilator", "pymw_boinc_contract.py")
                   / "pymw_assimilator")


def header(line: bytes) -> bytes:
    return b"PYMW-RESULT 1\n" + line + b"\npayload"


def upload(tmp_path: Path, data: bytes, name: str = "up") -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


def raised(type_: str = "ValueError", message: str = "bad input") -> bytes:
    record = ResultRecord(task_id="ab-1", ok=False, python="3.11", worker="h", started=1.0,
                          finished=2.0, stdout="out\n", stderr="err\n", error_type=type_,
                          error_message=message, error_traceback="Traceback ...\n")
    record.payload = b"\x80\x05 not a pickle anyone loads"
    return encode_result(record)


# -- the work unit's run tag ----------------------------------------------------------------------
@pytest.mark.parametrize("tag", ["monte_pi", "m", "a_b_c", "X9"])
def test_the_run_tag_is_read_back_from_the_interfaces_names(tag: str) -> None:
    # as interfaces.boinc names a work unit: pymw_TAG_ and the master's task id made a tag
    task_id = f"{uuid.uuid4().hex[:8]}-{17}"
    assert contract.run_tag(f"pymw_{tag}_{_TAG_CHARS.sub('_', task_id)}") == tag


@pytest.mark.parametrize("name", ["pymw_t_ok", "other_app_wu_1", "pymw__deadbeef_1",
                                  "pymw_t_DEADBEEG_1", "pymw_t_deadbeef_", "pymw_t-x_deadbeef_1"])
def test_a_name_no_master_made_has_no_tag(name: str) -> None:
    assert contract.run_tag(name) == ""


# -- reading a header -----------------------------------------------------------------------------
def test_an_honest_records_outcome(tmp_path: Path, assimilator: Any) -> None:
    ok = ResultRecord(task_id="ab-1", ok=True, python="3.11", payload=b"\x80\x05value")
    assert assimilator.task_outcome([upload(tmp_path, encode_result(ok))]).kind == "ok"
    outcome = assimilator.task_outcome([upload(tmp_path, raised(message="bad\nsecond line"))])
    assert (outcome.kind, outcome.error_type, outcome.message) == (
        "raised", "ValueError", "bad")  # the message's first line


def test_the_first_non_empty_upload_counts(tmp_path: Path, assimilator: Any) -> None:
    empty = upload(tmp_path, b"", "empty")
    assert assimilator.task_outcome([empty, upload(tmp_path, raised())]).kind == "raised"
    assert assimilator.task_outcome([empty]).kind == "unreadable"
    assert assimilator.task_outcome([str(tmp_path / "missing")]).kind == "unreadable"


@pytest.mark.parametrize("data", [
    b"not a record at all",
    b"PYMW-TASK 1\n{\"ok\": true}\n",
    header(b"not json"),
    header(b"[true, false]"),
    header(b'{"ok": "false"}'),  # a string, not a bool
    header(b'{"ok": 0}'),
    header(b'{"ok": null}'),
    header(b'{"task_id": "x"}'),
    header(b'{"stdout": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["'),
    header(b""),
])
def test_a_header_that_says_nothing_is_unreadable(tmp_path: Path, assimilator: Any,
                                                  data: bytes) -> None:
    assert assimilator.task_outcome([upload(tmp_path, data)]).kind == "unreadable"


def test_wrong_types_are_left_out(assimilator: Any) -> None:
    fields = assimilator.header_fields(
        b'{"ok": false, "error_type": 12, "error_message": ["a"], "worker": "h"}')
    assert fields == {"ok": False}
    fields = assimilator.header_fields(b'{"ok": false, "error_type": {"a": 1}}')
    assert fields == {"ok": False}  # nothing after an object is read


def test_control_characters_never_reach_a_terminal(tmp_path: Path, assimilator: Any) -> None:
    hostile = raised(type_="Value\x1b]52;c;cHduZWQ=\x07Error\u202e",
                     message="\x1b[2J\x1b]0;title\x07boom\u202egnp.exe\x9b1m\ud800\rover")
    outcome = assimilator.task_outcome([upload(tmp_path, hostile)])
    text = outcome.error_type + outcome.message
    assert not any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F or c == "\u202e" for c in text)
    assert outcome.message == "\\x1b[2J\\x1b]0;title\\x07boom\\u202egnp.exe\\x9b1m\\ud800"
    outcome.message.encode()  # no lone surrogate left
    assert "over" not in outcome.message  # a carriage return ends the first line
    assert " " not in outcome.error_type and outcome.error_type.startswith("Value\\x1b]52")


def test_long_texts_are_cut(tmp_path: Path, assimilator: Any) -> None:
    outcome = assimilator.task_outcome([upload(tmp_path, raised("E" * 5000, "m" * 100_000))])
    assert len(outcome.message) == assimilator.MESSAGE_MAX and outcome.message.endswith("...")
    assert len(outcome.error_type) == assimilator.TYPE_MAX


def test_a_cut_that_splits_an_escape_still_decodes(assimilator: Any) -> None:
    for prefix in range(1, 14):
        message = "x" * (assimilator.TEXT_MAX - prefix) + "\u00e9\U0001f600\\\"" * 8
        line = json.dumps({"ok": False, "error_type": "E", "error_message": message}).encode()
        fields = assimilator.header_fields(line)
        assert message.startswith(fields["error_message"])
        assert len(fields["error_message"]) >= assimilator.TEXT_MAX - 13 - prefix


def test_a_header_past_the_cap_still_says_what_came_first(tmp_path: Path,
                                                           assimilator: Any) -> None:
    """A task that printed megabytes: its header is read to HEADER_MAX and no further."""
    record = ResultRecord(task_id="ab-1", ok=False, python="3.11", error_type="KeyError",
                          error_message="k", stdout="x" * (3 << 20))
    # stdout comes before the error in an honest header: the error is past the cap
    outcome = assimilator.task_outcome([upload(tmp_path, encode_result(record))])
    assert (outcome.kind, outcome.error_type) == ("raised", "(no type)")
    record.ok, record.error_type, record.error_message = True, "", ""
    assert assimilator.task_outcome([upload(tmp_path, encode_result(record))]).kind == "ok"


@pytest.mark.parametrize("body", [
    b'{"ok": false, "error_type": "' + b"\\\\a" * (1 << 19),  # a string that never ends
    b'{"ok": false, "error_type": "' + b'\\"' * (1 << 19),
    b'{"ok": false, ' + b'"k": 1, ' * (1 << 17),  # more fields than a header has
    b"{" + b" " * (1 << 20),
    b'{"ok": false, "error_type": ' + b"[" * (1 << 20),
])
def test_hostile_headers_take_no_time(tmp_path: Path, assimilator: Any, body: bytes) -> None:
    path = upload(tmp_path, b"PYMW-RESULT 1\n" + body + b"\n")
    start = time.monotonic()
    outcome = assimilator.task_outcome([path])
    assert time.monotonic() - start < 1.0
    assert outcome.kind in ("raised", "unreadable")


# -- the tally ------------------------------------------------------------------------------------
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "proj"
    (root / "tmp_vm").mkdir(parents=True)
    (root / "config.xml").write_text("<boinc/>")
    monkeypatch.chdir(root / "tmp_vm")  # where BOINC's daemons run
    return root


def test_the_tally_counts_by_tag_and_type(tmp_path: Path, assimilator: Any,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    root = project(tmp_path, monkeypatch)
    Outcome = assimilator.Outcome
    assimilator.record_outcomes("pymw", [
        ("pymw_mc_deadbeef_1", Outcome("ok")),
        ("pymw_mc_deadbeef_2", Outcome("raised", "ValueError", "bad 2")),
        ("pymw_mc_deadbeef_3", Outcome("raised", "ValueError", "bad 3")),
        ("wu_of_another_kind", Outcome("unreadable")),
    ], now=100.0)
    assimilator.record_outcomes("pymw", [
        (f"pymw_mc_deadbeef_{n}", Outcome("raised", "ValueError", f"bad {n}"))
        for n in (4, 5)], now=200.0)
    path = root / "pymw" / "outcomes" / "pymw.json"
    written = path.read_text()
    assert "\n" not in written.strip()  # one line: status reads it as one
    tally = json.loads(written)
    assert tally["format"] == contract.OUTCOMES_FORMAT and tally["app"] == "pymw"
    mc = tally["tags"]["mc"]
    assert (mc["ok"], mc["raised"], mc["first"], mc["last"]) == (1, {"ValueError": 4}, 100, 200)
    assert [e["message"] for e in mc["examples"]["ValueError"]] == ["bad 5", "bad 4", "bad 3"]
    assert mc["examples"]["ValueError"][0] == {"wu": "pymw_mc_deadbeef_5", "message": "bad 5",
                                                "time": 200.0}
    assert tally["tags"][""]["unreadable"] == 1
    assert oct(path.stat().st_mode & 0o777) == "0o664"


def test_the_tally_stays_small(assimilator: Any) -> None:
    Outcome = assimilator.Outcome
    tally = assimilator.TagTally()
    for n in range(assimilator.OUTCOMES_TYPES + 5):
        tally.add(f"wu_{n}", Outcome("raised", f"Error{n}", "m"), float(n))
    assert len(tally.raised) == assimilator.OUTCOMES_TYPES + 1
    assert tally.raised[assimilator.OTHER_TYPES] == 5
    # which type it was stays in the example's message
    assert tally.examples[assimilator.OTHER_TYPES][0]["message"] == "Error14: m"
    tags = {f"t{n}": assimilator.TagTally(last=float(n))
            for n in range(assimilator.OUTCOMES_TAGS + 10)}
    kept = assimilator.trim_outcomes(tags)
    assert len(kept) == assimilator.OUTCOMES_TAGS and "t0" not in kept and "t59" in kept


@pytest.mark.parametrize("junk", [
    "not json", "[]", '{"tags": []}', '{"tags": {"t": "x"}}', "[" * 100_000,
    '{"tags": {"t": {"ok": "many", "raised": {"E": -3}, "examples": {"E": [1, {"wu": 2}]}, '
    '"last": NaN, "first": Infinity}}}',
])
def test_a_tally_that_is_not_one_counts_for_nothing(tmp_path: Path, assimilator: Any,
                                                    monkeypatch: pytest.MonkeyPatch,
                                                    junk: str) -> None:
    root = project(tmp_path, monkeypatch)
    (root / "pymw" / "outcomes").mkdir(parents=True)
    path = root / "pymw" / "outcomes" / "pymw.json"
    path.write_text(junk)
    assimilator.record_outcomes("pymw", [("pymw_t_deadbeef_1", assimilator.Outcome("ok"))],
                                now=5.0)
    tally = json.loads(path.read_text())
    assert tally["tags"]["t"]["ok"] == 1
    assert all(e.get("wu") != 2 for e in tally["tags"]["t"]["examples"].get("E", []))


def test_a_tally_too_big_to_be_ours_starts_afresh(tmp_path: Path, assimilator: Any,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(assimilator, "OUTCOMES_FILE_MAX", 100)
    path = tmp_path / "pymw.json"
    path.write_text(json.dumps({"tags": {"t": {"ok": 1, "pad": "x" * 200}}}))
    with pytest.raises(ValueError, match="larger than a tally grows"):
        assimilator.load_outcomes(str(path))
