"""A Windows app version done by a real BOINC client: Debian's Linux client running it under wine.

deploy-app installs one app version per platform bundle (Windows x86_64 and Linux aarch64 for
the app ``pymwwin``); a second client with ``<alt_platform>windows_x86_64</alt_platform>`` gets
the Windows version, starts its .exe, and binfmt_misc hands it to wine. The task reports that it
ran on Windows with the ``boinc`` module attached to the client's shared memory. deploy-app
refuses a bundle of another Python minor before changing anything, and status counts whom the
versions serve.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from pymw_admin.bundles import targets
from testbed import bundle as bundle_bed
from testbed import wine_client
from testbed.boinc_project import MASTER_URL, PROJECT_DIR, WORK
from testbed.cache import CACHE
from tests.helpers.boinc_master import REPO, Project, start_master, tag, write_script
from tests.helpers.cli import pymw_admin

pytestmark = [pytest.mark.boinc, pytest.mark.ssh, pytest.mark.bundle]
APP = "pymwwin"

WHERE = '''
import sys
from pymw_admin.runtime import Master, options


def where(x):
    import platform

    import boinc
    boinc.fraction_done(0.5)
    return x, platform.system(), boinc.mode(), boinc.is_standalone()


with Master(interface=options.interface_from_args()) as master:
    task = master.submit_task(where, (7,))
    print("WHERE", master.get_result(task)[1], flush=True)
'''


@pytest.fixture(scope="module")
def windows_app(project: Project) -> Iterator[Path]:
    dist = WORK / "dist-other-platforms"
    shutil.rmtree(dist, ignore_errors=True)
    dist.mkdir()
    for platform in (targets.WINDOWS_X86_64, targets.LINUX_AARCH64):
        (dist / platform).symlink_to(bundle_bed.up_platform(platform).root)
    out = pymw_admin("deploy-app", APP, "--project-file", str(project.project_file), "--bundles",
                     str(dist), "--json")
    assert out.returncode == 0, out.stderr + out.stdout
    assert json.loads(out.stdout)["platforms"] == [targets.LINUX_AARCH64, targets.WINDOWS_X86_64]
    wine_client.up()
    wine_client.attach(MASTER_URL)
    stop = threading.Event()

    def kick() -> None:  # the client backs off after "no work": ask again every few seconds
        while not stop.wait(8.0):  # the project asks for 7 s between requests
            wine_client.update(MASTER_URL)

    kicker = threading.Thread(target=kick, daemon=True)
    kicker.start()
    yield dist
    stop.set()
    kicker.join(timeout=10)
    wine_client.boinccmd("--project", MASTER_URL, "detach")
    wine_client.down()


def test_windows_version_runs_under_wine_in_the_real_client(windows_app: Path,
                                                            master_python: str) -> None:
    where = write_script("boinc_where.py", WHERE)
    run = start_master(master_python, where, "-c", APP, "-a", f"tag={tag('win')}")
    run.finish(timeout=600)
    assert run.proc.returncode == 0, run.stderr[-3000:] + wine_client.messages()[-3000:]
    assert "WHERE (7, 'Windows', 'client', False)" in run.stdout, run.stdout
    monte_pi = write_script("monte_pi.py", (REPO / "examples" / "monte_pi.py").read_text())
    pi = start_master(master_python, monte_pi, "-c", APP, "-a", f"tag={tag('winpi')}",
                      "--tasks", "2", "--darts", "50000").finish(timeout=600)
    assert pi.proc.returncode == 0, pi.stderr[-3000:]
    match = re.search(r"pi is about ([0-9.]+)", pi.stdout)
    assert match and abs(float(match.group(1)) - math.pi) < 0.1, pi.stdout


def test_status_counts_whom_the_versions_serve(windows_app: Path, project: Project) -> None:
    out = pymw_admin("status", "--project-file", str(project.project_file), "--json")
    assert out.returncode in (0, 1), out.stderr
    versions = json.loads(out.stdout)["versions"]
    assert {targets.WINDOWS_X86_64, targets.LINUX_AARCH64,
            targets.LINUX_X86_64} <= set(versions["platforms"])
    # the two clients here are Linux x86_64 hosts, which the Linux version serves
    assert versions["hosts_by_platform"].get(targets.LINUX_X86_64, 0) >= 1
    assert versions["hosts_served"] == versions["hosts"] and versions["share"] == 1.0


def test_deploy_refuses_another_python_minor_before_any_change(project: Project,
                                                               tmp_path: Path) -> None:
    source = bundle_bed.up_platform(targets.WINDOWS_X86_64).root
    copy = tmp_path / "dist" / targets.WINDOWS_X86_64
    shutil.copytree(source, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["python"] = "3.99"
    (copy / "manifest.json").write_text(json.dumps(manifest))
    out = pymw_admin("deploy-app", "pymwbad", "--project-file", str(project.project_file),
                     "--bundles", str(tmp_path / "dist"))
    assert out.returncode != 0
    assert "masters run Python 3." in out.stderr + out.stdout
    assert "windows_x86_64 (3.99)" in out.stderr + out.stdout
    assert "Traceback" not in out.stderr
    assert not (PROJECT_DIR / "templates" / "pymwbad_in").exists()
    assert not (PROJECT_DIR / "apps" / "pymwbad").exists()


def test_bundle_build_takes_the_server_python(project: Project, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYMW_EMBED_CACHE", str(CACHE / "python-embed"))  # downloaded once
    out = pymw_admin("bundle", "build", "--platform", targets.WINDOWS_X86_64, "--project-file",
                     str(project.project_file), "--dist", str(tmp_path), "--json")
    assert out.returncode == 0, out.stderr + out.stdout
    # the test host shares this machine's file system: its python3 is this /usr/bin/python3
    server = subprocess.run(["/usr/bin/python3", "-c", "import sys; print('%d.%d' % "
                             "sys.version_info[:2])"], capture_output=True, text=True, check=True)
    minor = server.stdout.strip()
    assert f"building for Python {minor}, the project server's" in out.stdout
    built = json.loads(out.stdout[out.stdout.index("{"):])
    assert built["platform"] == targets.WINDOWS_X86_64 and built["python"] == minor
