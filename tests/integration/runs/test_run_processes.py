"""A run is its master's process group: the master's own pid is what `runs` shows, and killing the
wrapper alone neither makes the run "lost" nor hides the master from `stop`."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from tests.helpers.cli import pymw_admin

pytestmark = pytest.mark.ssh

LONG = "import time\nprint('up', flush=True)\ntime.sleep(120)\n"


def _runs(project_file: Path) -> dict[str, dict]:  # type: ignore[type-arg]
    out = pymw_admin("runs", "--project-file", str(project_file), "--json")
    assert out.returncode == 0, out.stderr
    return {str(r["id"]): r for r in json.loads(out.stdout)}


def test_killing_the_wrapper_leaves_a_run_that_stop_ends(bare_project: Path,
                                                        tmp_path: Path) -> None:
    script = tmp_path / "long_master.py"
    script.write_text(LONG)
    started = pymw_admin("run", "--detach", "--project-file", str(bare_project), str(script))
    assert started.returncode == 0, started.stderr
    run_id = started.stdout.strip()
    info = _runs(bare_project)[run_id]
    master, group = info["pid"], info["pgid"]
    assert master != group  # the master's own pid, not the wrapper's
    assert "long_master.py" in Path(f"/proc/{master}/cmdline").read_bytes().decode()
    os.kill(group, signal.SIGKILL)  # the wrapper only
    time.sleep(0.5)
    assert _runs(bare_project)[run_id]["state"] == "running"
    stopped = pymw_admin("stop", run_id, "--project-file", str(bare_project), "--grace", "5")
    assert stopped.returncode == 0, stopped.stderr
    assert f"run {run_id} stopped: killed" in stopped.stdout
    with pytest.raises(ProcessLookupError):
        os.kill(master, 0)
    assert _runs(bare_project)[run_id]["state"] == "killed"
