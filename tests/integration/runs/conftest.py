"""Fixtures for runs and status: the sshd test host "vm", a bare project for runs, and (when a
BOINC server tree is present) a real project made by init-project for status.

A run needs only a project directory with a config.xml, owned by the project's owner: the bare
project gives the runs tests a real host, real sudo and real detached processes without a BOINC
build. The status tests need BOINC's database and daemons, so they use init-project.
"""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from pymw_admin.admin import config
from pymw_admin.admin.remote import HostSpec
from pymw_admin.admin.server.spec import ProjectSpec
from testbed import boinc_tree, ssh_host
from tests.helpers.cli import json_out, pymw_admin
from tests.integration.admin.conftest import make_owner

BARE_NAME = "pymwrun"  # also its owner's login name
STATUS_NAME = "pymwstat"


@pytest.fixture(scope="session")
def vm() -> ssh_host.VM:
    return ssh_host.up()


def _write_project_file(path: Path, vm: ssh_host.VM, spec: ProjectSpec) -> Path:
    host = HostSpec("vm", ssh_config=str(vm.ssh_config))
    config.save(config.ProjectFile.from_specs(host, spec), path)
    return path


@pytest.fixture(scope="session")
def bare_project(vm: ssh_host.VM, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project directory (config.xml only) owned by its own user; returns its project file."""
    owner = make_owner(vm, BARE_NAME)
    spec = ProjectSpec(name=BARE_NAME, url_base=f"http://{vm.address}/", host_name="vm",
                       owner=owner)
    config_xml = ("<boinc><config><master_url>http://vm/pymwrun/</master_url></config>"
                  "<daemons/></boinc>")
    ssh_host.as_user(owner, f"rm -rf {spec.project_dir}/pymw/runs && mkdir -p {spec.project_dir} "
                     f"&& echo {shlex.quote(config_xml)} > {spec.project_dir}/config.xml")
    return _write_project_file(tmp_path_factory.mktemp("runs") / "pymw-admin.toml", vm, spec)


@pytest.fixture(scope="session")
def boinc_src() -> Path:
    tree = boinc_tree.find()
    if tree is None:
        pytest.skip(boinc_tree.missing_reason())
    return tree


@pytest.fixture(scope="session")
def status_project(vm: ssh_host.VM, boinc_src: Path,
                   tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real project made by init-project with the pymw app deployed; its project file."""
    import testbed.bundle

    testbed.bundle.up()  # the app's worker: built once, cached
    ssh_host.forget_project(STATUS_NAME)  # fresh counts every session
    project_file = tmp_path_factory.mktemp("status") / "pymw-admin.toml"
    json_out(pymw_admin("init-project", STATUS_NAME, "--host", "vm", "--ssh-config",
                        str(vm.ssh_config), "--boinc-source", str(boinc_src),
                        "--project-file", str(project_file), "--json"))
    deployed = pymw_admin("deploy-app", "--project-file", str(project_file), "--bundles",
                          str(testbed.bundle.DIST))
    assert deployed.returncode == 0, deployed.stderr + deployed.stdout
    return project_file


