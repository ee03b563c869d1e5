"""destroy-project on the sshd test host: after a confirmation it removes what init-project made
(daemons, cron line, site, database and user, directory, secrets); a wrong answer changes
nothing; a project pymw-admin did not make is refused."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from testbed import ssh_host
from tests.helpers.cli import json_out, pymw_admin

pytestmark = [pytest.mark.ssh, pytest.mark.boinc]

NAME = "cidestroy"


def _destroy(project_file: Path, *extra: str, answer: str = "") -> subprocess.CompletedProcess[str]:
    exe = shutil.which("pymw-admin", path=str(Path(sys.executable).parent))
    assert exe
    return subprocess.run([exe, "destroy-project", NAME, "--project-file", str(project_file),
                           *extra], input=answer, capture_output=True, text=True, timeout=600,
                          check=False)


def test_destroy_project_removes_what_init_project_made(vm: ssh_host.VM, boinc_src: Path,
                                                        tmp_path: Path) -> None:
    ssh_host.forget_project(NAME)
    project_file = tmp_path / "pymw-admin.toml"
    try:
        json_out(pymw_admin("init-project", NAME, "--host", "vm", "--ssh-config",
                            str(vm.ssh_config), "--boinc-source", str(boinc_src),
                            "--project-file", str(project_file), "--json"))
        project = Path(f"/home/boincadm/projects/{NAME}")
        assert (project / "config.xml").is_file()

        refused = _destroy(project_file, answer="not-the-name\n")
        assert refused.returncode == 1 and "not confirmed" in refused.stderr
        assert (project / "config.xml").is_file()

        gone = _destroy(project_file, answer=f"{NAME}\n")
        assert gone.returncode == 0, gone.stderr + gone.stdout
        assert not project.exists()
        assert not Path(f"/etc/pymw-admin/{NAME}").exists()
        assert not Path(f"/etc/apache2/sites-enabled/pymw-{NAME}.conf").exists()
        databases = subprocess.run(["mysql", "-N", "-B", "-e", "SHOW DATABASES"],
                                   capture_output=True, text=True, check=True).stdout.split()
        assert NAME not in databases
        users = subprocess.run(["mysql", "-N", "-B", "-e",
                                f"SELECT User FROM mysql.user WHERE User = '{NAME}'"],
                               capture_output=True, text=True, check=True).stdout.split()
        assert users == []
        tab = subprocess.run(["crontab", "-l", "-u", "boincadm"], capture_output=True,
                             text=True, check=False).stdout
        assert f"projects/{NAME}/bin/start" not in tab

        again = _destroy(project_file, "--yes")
        assert again.returncode == 2 and f"no project {NAME} made by pymw-admin" in again.stderr
    finally:
        ssh_host.forget_project(NAME)
