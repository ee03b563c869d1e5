"""``runs prune`` on the sshd test host: finished runs go, a running one stays, --older-than
keeps the recent ones, --dry-run removes nothing. Its own bare project (and owner), so pruning
never takes runs other tests look at."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from pymw_admin.admin.server.spec import ProjectSpec
from testbed import ssh_host
from tests.helpers.cli import one_error_line, pymw_admin
from tests.integration.runs.conftest import _write_project_file

pytestmark = pytest.mark.ssh

NAME = "pymwprune"  # also its owner's login name


@pytest.fixture(scope="module")
def project(vm: ssh_host.VM, tmp_path_factory: pytest.TempPathFactory) -> Path:
    if subprocess.run(["id", NAME], capture_output=True).returncode != 0:
        subprocess.run(["useradd", "-m", "-s", "/bin/bash", NAME], check=True)
    spec = ProjectSpec(name=NAME, url_base=f"http://{vm.address}/", host_name="vm", owner=NAME)
    root = Path(spec.project_dir)
    shutil.rmtree(root / "pymw" / "runs", ignore_errors=True)
    root.mkdir(parents=True, exist_ok=True)
    (root / "config.xml").write_text("<boinc><config/><daemons/></boinc>\n")
    subprocess.run(["chown", "-R", f"{NAME}:{NAME}", str(root.parent)], check=True)
    return _write_project_file(tmp_path_factory.mktemp("prune") / "pymw-admin.toml", vm, spec)


def _cli(project_file: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return pymw_admin(args[0], "--project-file", str(project_file), *args[1:], timeout=300)


def _ids(project_file: Path) -> set[str]:
    out = _cli(project_file, "runs", "--json")
    assert out.returncode == 0, out.stderr
    return {str(r["id"]) for r in json.loads(out.stdout)}


def test_prune_removes_finished_runs_only(project: Path, tmp_path: Path) -> None:
    quick, slow = tmp_path / "quick.py", tmp_path / "slow.py"
    quick.write_text("print('hi')\n")
    slow.write_text("import time\ntime.sleep(120)\n")
    done = [_cli(project, "run", str(quick)) for _ in range(2)]
    assert all(r.returncode == 0 for r in done), done[0].stderr
    running = _cli(project, "run", "--detach", str(slow))
    assert running.returncode == 0, running.stderr
    alive = running.stdout.strip()
    before = _ids(project)
    assert len(before) == 3

    recent = _cli(project, "runs", "prune", "--older-than", "1h", "--json")
    assert json.loads(recent.stdout)["removed"] == []
    dry = _cli(project, "runs", "prune", "--dry-run", "--json")
    assert len(json.loads(dry.stdout)["removed"]) == 2 and _ids(project) == before

    pruned = _cli(project, "runs", "prune")
    assert pruned.returncode == 0, pruned.stderr
    assert "removed 2 finished run(s)" in pruned.stdout
    assert _ids(project) == {alive}
    assert _cli(project, "stop", alive, "--grace", "1").returncode == 0
    assert _cli(project, "runs", "prune", "--older-than", "0s").returncode == 0
    assert _ids(project) == set()


def test_prune_bad_age_is_one_line(project: Path) -> None:
    line = one_error_line(_cli(project, "runs", "prune", "--older-than", "soon"))
    assert "invalid age 'soon'" in line
