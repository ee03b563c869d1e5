"""`status` tells the truth about a real project: it exits non-zero, saying why, when the web server
or the database is down or the directory is another project's, and its JSON says unknown (null),
never zero, for counts it could not read."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from testbed import boinc_client, ssh_host
from tests.helpers.cli import pymw_admin
from tests.integration.runs.conftest import STATUS_NAME

pytestmark = [pytest.mark.ssh, pytest.mark.boinc]


def _status(project_file: Path, *extra: str) -> tuple[int, dict]:  # type: ignore[type-arg]
    out = pymw_admin("status", "--json", "--project-file", str(project_file), *extra)
    return out.returncode, json.loads(out.stdout)


@pytest.fixture
def stopped(request: pytest.FixtureRequest) -> Iterator[str]:
    """A service of the test host stopped for the test, started again afterwards, with the
    projects' daemons the database took down with it."""
    service = request.param
    ssh_host.run_in_vm("service", service, "stop")
    try:
        yield service
    finally:
        ssh_host.run_in_vm("service", service, "start")
        if service == "mariadb":
            ssh_host.restart_project_daemons()
        # the projects were down for the attached client too: it must not stay away an hour
        boinc_client.forget_backoffs()


def test_a_healthy_project_exits_zero(status_project: Path) -> None:
    code, data = _status(status_project)
    assert code == 0, data["problems"]
    assert data["healthy"] is True and data["web"]["up"] is True
    assert isinstance(data["hosts"], list)


@pytest.mark.parametrize("stopped", ["apache2"], indirect=True)
def test_the_web_server_down_is_unhealthy(status_project: Path, stopped: str) -> None:
    code, data = _status(status_project)
    assert code == 1
    assert data["web"]["up"] is False
    assert any("web server" in p for p in data["problems"]), data["problems"]
    table = pymw_admin("status", "--project-file", str(status_project))
    assert table.returncode == 1
    assert "is unhealthy" in table.stderr and "web server" in table.stderr


@pytest.mark.parametrize("stopped", ["mariadb"], indirect=True)
def test_the_database_down_is_unknown_not_zero(status_project: Path, stopped: str) -> None:
    code, data = _status(status_project)
    assert code == 1
    assert data["database_error"]
    assert data["totals"] is None and data["apps"] is None and data["hosts"] is None


def test_another_projects_directory_is_refused(status_project: Path) -> None:
    real = STATUS_NAME
    project_dir = f"/home/boincadm/projects/{real}"
    code, data = _status(status_project, "--project", "nosuch", "--project-dir", project_dir)
    assert code == 1
    assert any(f"is project {real}'s, not nosuch's" in p for p in data["problems"]), data
    assert data["totals"] is None
