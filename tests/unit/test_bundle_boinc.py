"""The boinc module without a client: standalone and slot (soft-link files, finish file)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pymw_admin.bundles import boinc
from pymw_admin.bundles.slot import init_data_xml, soft_link_xml


@pytest.fixture(autouse=True)
def fresh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PYMW_BOINC_API", raising=False)
    boinc._reset()
    yield tmp_path
    boinc._reset()


def test_standalone_names_resolve_to_themselves(capsys: pytest.CaptureFixture[str]) -> None:
    assert boinc.init() == 0
    assert boinc.mode() == "standalone"
    assert boinc.is_standalone()
    assert boinc.resolve_filename("in.dat") == "in.dat"
    boinc.fraction_done(0.5)
    boinc.fraction_done(0.501)  # same whole percent: not logged again
    boinc.fraction_done(2.0)  # clamped
    assert capsys.readouterr().err.splitlines() == [
        "boinc: fraction done 0.50", "boinc: fraction done 1.00"]
    assert not boinc.time_to_checkpoint()
    assert boinc.checkpoint_completed() == 0


def test_slot_follows_soft_links_and_writes_finish_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYMW_BOINC_API", "python")
    (tmp_path / "init_data.xml").write_bytes(init_data_xml(slot=3, wu_name="wu"))
    (tmp_path / "in").write_bytes(soft_link_xml("../../projects/p/wu_in"))
    (tmp_path / "plain").write_text("not a link")
    assert boinc.mode() == "slot"
    assert boinc.is_standalone()
    assert boinc.resolve_filename("in") == "../../projects/p/wu_in"
    assert boinc.resolve_filename("plain") == "plain"
    assert boinc.resolve_filename("absent") == "absent"
    assert boinc.get_app_name() == "pymw"
    assert boinc.init_data()["wu_name"] == "wu"
    boinc.init()
    with pytest.raises(SystemExit) as info:
        boinc.finish(0)
    assert info.value.code == 0
    assert (tmp_path / "boinc_finish_called").read_text() == "0\n"


def test_checkpoint_period_from_init_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYMW_BOINC_API", "python")
    (tmp_path / "init_data.xml").write_bytes(
        init_data_xml(slot=0, wu_name="w", checkpoint_period=0))
    boinc.init()
    assert boinc.time_to_checkpoint()


def test_finish_without_init_writes_no_finish_file(tmp_path: Path) -> None:
    # as the C library: boinc_finish without boinc_init leaves no finish file
    with pytest.raises(SystemExit):
        boinc.finish(3)
    assert not (tmp_path / "boinc_finish_called").exists()


def test_standalone_app_name_is_program_name() -> None:
    assert boinc.get_app_name()  # the running program's name, never empty
