"""Slot directories and the bundle interface's judgement, with a shell script as the 'bundle'."""

from __future__ import annotations

from pathlib import Path

import pytest
from lxml import etree

from pymw_admin.bundles import manifest as mf
from pymw_admin.bundles import slot
from pymw_admin.bundles.rehearsal import BundleInterface
from pymw_admin.errors import ConfigError


def script_bundle(root: Path, body: str, python: str = "3.11") -> mf.Bundle:
    d = root / "plat" / "bundle"
    d.mkdir(parents=True)
    (d / "pymw-worker").write_text("#!/bin/sh\n" + body)
    (d / "pymw-worker").chmod(0o755)
    m = mf.Manifest(platform="x86_64-pc-linux-gnu", python=python, python_full=python,
                    main_program="pymw-worker", files=mf.scan(d))
    mf.write(m, d.parent)
    return mf.open_bundle(d.parent)


def test_slot_layout(tmp_path: Path) -> None:
    bundle = script_bundle(tmp_path / "b", "exit 0\n")
    base = tmp_path / "client"
    s = slot.prepare(base, 2, bundle, "t9", b"TASK")
    assert (s / "pymw-worker").is_file()
    link = etree.fromstring((s / "pymw_task").read_bytes())
    assert link.tag == "soft_link"
    target = base / "projects" / slot.PROJECT / "pymw_t9_task"
    assert (s / link.text).resolve() == target.resolve()
    assert (s / link.text).read_bytes() == b"TASK"
    init = etree.parse(str(s / "init_data.xml")).getroot()
    assert init.findtext("slot") == "2" and init.findtext("app_name") == "pymw"


def test_exit_zero_without_finish_file_is_a_failure(tmp_path: Path) -> None:
    bundle = script_bundle(tmp_path / "b", "exit 0\n")
    s = slot.prepare(tmp_path / "c", 0, bundle, "t", b"x")
    run = slot.run(tmp_path / "c", s, bundle, "t")
    assert "no 'boinc_finish_called' file" in run.failure()


def test_nonzero_exit_names_the_last_stderr_line(tmp_path: Path) -> None:
    bundle = script_bundle(tmp_path / "b", "echo first >&2; echo 'error: it broke' >&2; exit 3\n")
    s = slot.prepare(tmp_path / "c", 0, bundle, "t", b"x")
    assert slot.run(tmp_path / "c", s, bundle, "t").failure() == (
        "the bundle exited with status 3: error: it broke")


def test_interface_reports_failures_as_completions(tmp_path: Path) -> None:
    bundle = script_bundle(tmp_path / "b", "echo boom >&2; exit 1\n")
    interface = BundleInterface(bundle, num_workers=1, api="python")
    try:
        interface.submit("a", b"task")
        done = interface.wait(30)
        assert len(done) == 1 and done[0].task_id == "a"
        assert done[0].record is None and "status 1: boom" in done[0].failure
        assert "boom" in done[0].stderr
    finally:
        interface.close()


def test_interface_refuses_another_python(tmp_path: Path) -> None:
    bundle = script_bundle(tmp_path / "b", "exit 0\n", python="2.7")
    with pytest.raises(ConfigError, match=r"runs Python 2\.7"):
        BundleInterface(bundle)
