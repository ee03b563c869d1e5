"""A master script with a plain ``Master()`` (no options, no interface named) run through
``pymw-admin run`` on the test project works there as with ``options.interface_from_args()``: the
environment the run gives it (PYMW_INTERFACE, PYMW_PROJECT_HOME) is read in one place."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.boinc_master import Project
from tests.helpers.cli import pymw_admin

pytestmark = [pytest.mark.boinc, pytest.mark.ssh, pytest.mark.bundle]

PLAIN = '''
from pymw_admin.runtime import Master


def double(x):
    return 2 * x


with Master() as master:
    print("INTERFACE", master.interface.name, master.interface.layout.root, flush=True)
    task = master.submit_task(double, (21,))
    print("RESULT", master.get_result(task, timeout=600)[1], flush=True)
'''


def test_a_plain_master_runs_on_the_project(project: Project, kicker: None,
                                            tmp_path: Path) -> None:
    script = tmp_path / "plain_master.py"
    script.write_text(PLAIN)
    # the tag is the script's name, the same every session: a session killed midway left its
    # work behind, which a plain run refuses to adopt (as it should)
    dropped = pymw_admin("runs", "drop", "plain_master", "--project-file",
                         str(project.project_file))
    assert dropped.returncode == 0, dropped.stderr + dropped.stdout
    out = pymw_admin("run", "--project-file", str(project.project_file), str(script),
                     timeout=900)
    assert out.returncode == 0, out.stderr + out.stdout
    assert f"INTERFACE boinc {project.dir}" in out.stdout
    assert "RESULT 42" in out.stdout
