"""Time to the first result with a client attached and nobody pressing "Update": the project asks
clients back soon (next_rpc_delay) while a master has work out, so monte_pi's answer comes in a
minute or two, not after the client's back-off of ten minutes. The time is recorded for the
closing notes (CACHE/boinc-timings.json: monte_pi_no_kick_s)."""

from __future__ import annotations

import math
import re

import pytest

from testbed.boinc_project import PROJECT_DIR
from tests.helpers.boinc_master import REPO, Project, record_timing, start_master, tag, write_script

pytestmark = [pytest.mark.boinc, pytest.mark.ssh, pytest.mark.bundle]


def test_monte_pi_without_hand_kicking(project: Project, master_python: str) -> None:
    config = (PROJECT_DIR / "config.xml").read_text()
    assert "<next_rpc_delay>" in config  # set by init-project
    monte_pi = write_script("monte_pi.py", (REPO / "examples" / "monte_pi.py").read_text())
    run = start_master(master_python, monte_pi, "-a", f"tag={tag('nokick')}", "--tasks", "2",
                       "--darts", "200000").finish(timeout=420)
    record_timing("monte_pi_no_kick_s", round(run.seconds, 1))
    assert run.proc.returncode == 0, run.stderr[-3000:]
    match = re.search(r"pi is about ([0-9.]+)", run.stdout)
    assert match, run.stdout
    assert abs(float(match.group(1)) - math.pi) < 0.1
    # the last master has ended: clients are back to looking in every minute
    assert "<next_rpc_delay>60</next_rpc_delay>" in (PROJECT_DIR / "config.xml").read_text()
