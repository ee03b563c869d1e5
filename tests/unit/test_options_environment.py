"""The PYMW_* environment is read in one place: the switches' defaults and a plain ``Master()``
see the same values (``pymw-admin run`` gives a script its project directory that way)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pymw_admin.errors import EngineUnavailable
from pymw_admin.runtime import Master, options


def test_the_switches_default_to_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {"PYMW_INTERFACE": "boinc", "PYMW_NUM_WORKERS": "3",
                        "PYMW_PROJECT_HOME": "/srv/p", "PYMW_APP_PATH": "app",
                        "PYMW_APP_ARGS": "tag=x"}.items():
        monkeypatch.setenv(name, value)
    assert options.parse_args([]) == options.from_environment() == options.Options(
        "boinc", 3, "/srv/p", "app", "tag=x")
    assert options.parse_args(["-i", "local", "-n", "1"]).project_home == "/srv/p"


def test_a_plain_master_gets_the_project_home(monkeypatch: pytest.MonkeyPatch,
                                              tmp_path: Path) -> None:
    monkeypatch.setenv("PYMW_INTERFACE", "boinc")
    monkeypatch.setenv("PYMW_PROJECT_HOME", str(tmp_path / "elsewhere"))
    # the boinc interface looked where the environment said, as interface_from_args() does
    with pytest.raises(EngineUnavailable, match="elsewhere is not a BOINC project directory"):
        Master()
    with pytest.raises(EngineUnavailable, match="elsewhere is not a BOINC project directory"):
        options.interface_from_args([], exit_on_error=False)


def test_a_double_dash_ends_our_switches_and_is_dropped() -> None:
    opts = options.parse_args(["-n", "2", "--extra", "--", "-i", "x", "--", "y"])
    assert opts.num_workers == 2  # and "-i x", after the "--", was not read as ours
    assert opts.rest == ["--extra", "-i", "x", "--", "y"]
