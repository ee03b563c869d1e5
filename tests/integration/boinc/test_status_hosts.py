"""`status` lists the volunteer hosts that contacted the project, with platform and last contact."""

from __future__ import annotations

import json
import time

import pytest

from testbed import boinc_client
from tests.helpers.boinc_master import Project
from tests.helpers.cli import pymw_admin

pytestmark = [pytest.mark.boinc, pytest.mark.ssh, pytest.mark.bundle]


def test_status_shows_the_attached_client(project: Project) -> None:
    # attaching is the client's own business: when this test is the session's first on the
    # project, the client may not have made its first scheduler request yet
    deadline = time.monotonic() + 180
    while True:
        out = pymw_admin("status", "--json", "--project-file", str(project.project_file))
        data = json.loads(out.stdout)
        if data["hosts"] or time.monotonic() > deadline:
            break
        boinc_client.update(project.master_url)
        time.sleep(3)
    assert data["hosts"], out.stdout[-2000:]
    host = data["hosts"][0]
    assert host["platform"].startswith("Linux"), host
    assert host["ncpus"] >= 1
    assert time.time() - host["last_contact"] < 24 * 3600
    table = pymw_admin("status", "--project-file", str(project.project_file))
    assert "volunteer hosts" in table.stdout and host["platform"].split()[0] in table.stdout
