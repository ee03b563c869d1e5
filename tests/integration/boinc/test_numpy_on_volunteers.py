"""A scientist's numpy sweep on the real project with the real client doing the work: the app's
bundle freezes numpy (``bundle build --with numpy``, deployed as its own app), every task takes
and returns arrays and numpy scalars, and the master decodes the volunteers' results untrusted."""

from __future__ import annotations

import subprocess

import pytest

from testbed import bundle as bundle_bed
from tests.helpers.boinc_master import REPO, Project, record_timing, start_master, tag, write_script
from tests.helpers.cli import pymw_admin

pytestmark = [pytest.mark.boinc, pytest.mark.ssh, pytest.mark.bundle]

APP = "pymwnp"


def test_the_numpy_sweep_runs_on_volunteers(project: Project, master_python: str,
                                            kicker: None) -> None:
    np = pytest.importorskip("numpy")
    bundle = bundle_bed.up_numpy()
    deployed = pymw_admin("deploy-app", APP, "--project-file", str(project.project_file),
                          "--bundles", str(bundle.root.parent), "--json")
    assert deployed.returncode == 0, deployed.stderr + deployed.stdout
    # the master's numpy, the one the bundle froze: what the scientist has on the server
    subprocess.run([master_python, "-m", "pip", "install", "-q", f"numpy=={np.__version__}"],
                   check=True)
    script = write_script("numpy_sweep.py", (REPO / "examples" / "numpy_sweep.py").read_text())
    run = start_master(master_python, script, "-c", APP, "-a", f"tag={tag('numpy')}",
                       "--points", "4", "--steps", "2000").finish(timeout=900)
    record_timing("numpy_sweep_on_volunteers_s", round(run.seconds, 1))
    assert run.proc.returncode == 0, run.stderr[-3000:]
    assert "4 damping ratios, 2000 steps each: trajectories (4, 2000) float64, start " \
        "1.000..1.000, mean energy falls monotonically" in run.stdout, run.stdout + run.stderr
