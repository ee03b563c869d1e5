"""An aarch64 app version done by a real BOINC client: Debian's arm64 client under qemu-user.

deploy-app installs the aarch64 bundle as the only version of the app ``pymwarm``; Debian's
arm64 BOINC client, run under qemu-user in an arm64 root, gets it, and the task reports that it
ran on aarch64 with the ``boinc`` module attached to the client's shared memory.
"""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from pymw_admin.bundles import targets
from testbed import arm64_client
from testbed import bundle as bundle_bed
from testbed.boinc_project import MASTER_URL, WORK
from tests.helpers.boinc_master import Project, start_master, tag, write_script
from tests.helpers.cli import pymw_admin

pytestmark = [pytest.mark.boinc, pytest.mark.ssh, pytest.mark.bundle]
APP = "pymwarm"

WHERE = '''
from pymw_admin.runtime import Master, options


def where(x):
    import platform

    import boinc
    boinc.fraction_done(0.5)
    return x, platform.machine(), boinc.mode(), boinc.is_standalone()


with Master(interface=options.interface_from_args()) as master:
    task = master.submit_task(where, (5,))
    print("WHERE", master.get_result(task)[1], flush=True)
'''


@pytest.fixture(scope="module")
def arm_app(project: Project) -> Iterator[Path]:
    dist = WORK / "dist-aarch64"
    shutil.rmtree(dist, ignore_errors=True)
    dist.mkdir()
    (dist / targets.LINUX_AARCH64).symlink_to(bundle_bed.up_platform(targets.LINUX_AARCH64).root)
    out = pymw_admin("deploy-app", APP, "--project-file", str(project.project_file), "--bundles",
                     str(dist), "--json")
    assert out.returncode == 0, out.stderr + out.stdout
    assert json.loads(out.stdout)["platforms"] == [targets.LINUX_AARCH64]
    arm64_client.up()
    arm64_client.attach(MASTER_URL)
    stop = threading.Event()

    def kick() -> None:  # the client backs off after "no work": ask again now and then
        while not stop.wait(8.0):
            arm64_client.update(MASTER_URL)

    kicker = threading.Thread(target=kick, daemon=True)
    kicker.start()
    yield dist
    stop.set()
    kicker.join(timeout=10)
    arm64_client.boinccmd("--project", MASTER_URL, "detach")
    arm64_client.down()


def test_aarch64_version_runs_in_the_real_arm64_client(arm_app: Path, master_python: str) -> None:
    where = write_script("boinc_where_arm.py", WHERE)
    run = start_master(master_python, where, "-c", APP, "-a", f"tag={tag('arm')}")
    run.finish(timeout=900)
    assert run.proc.returncode == 0, run.stderr[-3000:] + arm64_client.messages()[-3000:]
    assert "WHERE (5, 'aarch64', 'client', False)" in run.stdout, run.stdout
