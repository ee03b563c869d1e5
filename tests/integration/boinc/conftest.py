"""The BOINC end-to-end fixtures: a project on the sshd test host (init-project), the app deployed
(deploy-app with the testbed's bundle), a real BOINC client attached, and the master's Python.

The project is ``pymwtest`` owned by ``boincpymw`` (its own owner: other projects' clean-ups
never touch its daemons). The test host shares this machine's file system, so masters run here
as the owner, the way an admin runs them on the server. Skips, naming what is missing, without a
BOINC server tree.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator

import pytest

from testbed import boinc_client, boinc_project, boinc_tree, ssh_host
from testbed import bundle as bundle_bed
from testbed.boinc_project import MASTER_URL, NAME, OWNER, WORK
from tests.helpers.boinc_master import REPO, Project, kill_started_masters, record_timing
from tests.helpers.cli import pymw_admin


@pytest.fixture(scope="session")
def project() -> Project:
    if boinc_tree.find() is None:
        pytest.skip(boinc_tree.missing_reason())
    vm = ssh_host.up()
    WORK.mkdir(parents=True, exist_ok=True)
    WORK.chmod(0o755)
    project_file = WORK / "pymw-admin.toml"
    started = time.monotonic()
    out = pymw_admin("init-project", NAME, "--host", "vm", "--ssh-config", str(vm.ssh_config),
                     "--owner", OWNER, "--boinc-source", str(boinc_tree.find()),
                     "--project-file", str(project_file), "--json")
    assert out.returncode == 0, out.stderr + out.stdout
    timings = {"init_project_s": round(time.monotonic() - started, 1)}
    boinc_project.clear_queue()  # an earlier session killed midway leaves unsent work behind
    bundle = bundle_bed.up()
    started = time.monotonic()
    out = pymw_admin("deploy-app", "--project-file", str(project_file), "--bundles",
                     str(bundle.root.parent), "--json")
    assert out.returncode == 0, out.stderr + out.stdout
    timings["deploy_app_s"] = round(time.monotonic() - started, 1)
    boinc_client.up()
    boinc_client.attach(MASTER_URL)
    record_timing("setup", timings)
    return Project(project_file, timings=timings)


@pytest.fixture(scope="session")
def master_python(project: Project) -> str:
    """A Python the owner can run, of the bundle's minor version, with this checkout's
    pymw-admin installed in it (a copy, not an editable link: the checkout may be in a directory
    the owner cannot read, and must be the code under test, not an earlier checkout's)."""
    venv = WORK / "master-venv"
    python = venv / "bin" / "python"
    stamp = venv / "pymw-admin-source"
    wanted = bundle_bed.up().manifest.python
    source = _source_digest()
    if python.exists():
        probe = subprocess.run(
            ["sudo", "-n", "-u", OWNER, str(python), "-c",
             "import sys, pymw_admin; print(f'{sys.version_info[0]}.{sys.version_info[1]}')"],
            capture_output=True, text=True, check=False)
        if probe.returncode != 0 or probe.stdout.strip() != wanted:
            shutil.rmtree(venv)
    if not python.exists():
        base = shutil.which(f"python{wanted}", path="/usr/bin:/usr/local/bin")
        if base is None:
            pytest.skip(f"no system python{wanted} (the bundle's minor version) for the owner")
        subprocess.run([base, "-m", "venv", str(venv)], check=True)
    if not stamp.exists() or stamp.read_text() != source:
        subprocess.run([str(python), "-m", "pip", "install", "-q", "--force-reinstall",
                        str(REPO)], check=True)
        stamp.write_text(source)
        subprocess.run(["chmod", "-R", "a+rX", str(venv)], check=True)
    return str(python)


def _source_digest() -> str:
    digest = hashlib.sha256()
    for path in [*sorted((REPO / "pymw_admin").rglob("*.py")), REPO / "pyproject.toml"]:
        digest.update(path.relative_to(REPO).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


@pytest.fixture(scope="module", autouse=True)
def _no_master_outlives_its_module() -> Iterator[None]:
    """A test stopped by its timeout must not leave a master polling the shared project (a
    module's masters may serve several of its tests: they go when the module ends)."""
    yield
    kill_started_masters()


@pytest.fixture(scope="module")
def kicker(project: Project) -> Iterator[None]:
    """Ask the scheduler for work every few seconds, for the modules that test many things at
    once (the project's own next_rpc_delay is tested without it: test_first_result.py)."""
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(4.0):
            boinc_client.update(MASTER_URL)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    yield
    stop.set()
    thread.join(timeout=10)
