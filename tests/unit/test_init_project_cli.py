"""init-project's options before it connects: a re-run finds its host in the project file."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from pymw_admin.admin import config
from pymw_admin.admin.remote import HostSpec
from pymw_admin.admin.server.spec import ProjectSpec
from pymw_admin.cli import app, init_project
from pymw_admin.cli.app import run


class Connected(Exception):
    """Where init-project would have connected: the test ends there, before any SSH."""

    def __init__(self, spec: HostSpec) -> None:
        super().__init__(spec.host)
        self.spec = spec


def _stop_at_connect(spec: HostSpec) -> None:
    raise Connected(spec)


@pytest.fixture
def written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project file an earlier init-project wrote for sandbox on vm."""
    monkeypatch.setattr(init_project, "connect", _stop_at_connect)
    spec = ProjectSpec(name="sandbox", url_base="http://vm/", host_name="vm", owner="adm",
                       project_dir="/srv/sandbox")
    return config.save(config.ProjectFile.from_specs(
        HostSpec("vm", "admin", 2222, "/keys/id", "/keys/ssh_config"), spec),
        tmp_path / "p.toml")


def _init(*args: str) -> HostSpec:
    with pytest.raises(Connected) as connected:
        app(args=["init-project", *args], standalone_mode=False)
    return connected.value.spec


def test_a_rerun_without_host_goes_where_the_project_file_says(written: Path) -> None:
    spec = _init("sandbox", "--project-file", str(written))
    assert (spec.host, spec.user, spec.port, spec.key, spec.ssh_config) == (
        "vm", "admin", 2222, "/keys/id", "/keys/ssh_config")


def test_flags_win_over_the_project_file(written: Path) -> None:
    spec = _init("sandbox", "--project-file", str(written), "--user", "root", "--port", "22")
    assert (spec.host, spec.user, spec.port, spec.key) == ("vm", "root", 22, "/keys/id")
    spec = _init("sandbox", "--project-file", str(written), "--host", "vm")
    assert spec.user == "admin"  # the same host: the same way in
    # another host: none of the file's settings, which are that other host's
    spec = _init("sandbox", "--project-file", str(written), "--host", "other")
    assert (spec.host, spec.user, spec.port, spec.key) == ("other", None, None, None)


@pytest.mark.parametrize("project", ["sandbox", "another"])
def test_no_host_anywhere_is_one_line(project: str, written: Path, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    # no project file at all, or one for another project
    where = tmp_path / "none.toml" if project == "sandbox" else written
    monkeypatch.setattr(sys, "argv", ["pymw-admin", "init-project", project,
                                      "--project-file", str(where)])
    with pytest.raises(SystemExit) as ended:
        run()
    assert ended.value.code == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line == (f"error: init-project {project} needs --host HOST: {where} names no host "
                    f"for project {project}")
