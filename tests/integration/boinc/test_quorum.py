"""A replicated run on the real project: with min_quorum=2 the master turns on the project's
<one_result_per_user_per_wu>, so the two replicas of each work unit come from two volunteers
(two real clients with accounts of their own), and they agree through pymw_compare."""

from __future__ import annotations

import math
import re
import subprocess
import threading
import time
from collections.abc import Iterator

import pytest

from testbed import second_client
from testbed.boinc_project import NAME, OWNER, PROJECT_DIR
from tests.helpers.boinc_master import REPO, Project, record_timing, start_master, tag, write_script
from tests.integration.boinc.conftest import kicker  # noqa: F401

pytestmark = [pytest.mark.boinc, pytest.mark.ssh, pytest.mark.bundle]


# as the owner: the setting goes again, so the shared test project's other (quorum 1) tests
# still get a failed replica retried on the same volunteer's host
DROP_SETTING = """
import os, re, sys
path = sys.argv[1]
text = open(path).read()
new = re.sub(r"\\s*<one_result_per_user_per_wu>[^<]*</one_result_per_user_per_wu>", "", text)
if new != text:
    with open(path + ".pymw-test", "w") as f:
        f.write(new)
    os.chmod(path + ".pymw-test", os.stat(path).st_mode & 0o777)
    os.replace(path + ".pymw-test", path)
"""


@pytest.fixture(scope="module")
def second_volunteer(project: Project) -> Iterator[None]:
    second_client.up()
    second_client.attach(project.master_url)
    stop = threading.Event()

    def kick() -> None:
        while not stop.wait(4.0):
            second_client.update(project.master_url)

    thread = threading.Thread(target=kick, daemon=True)
    thread.start()
    yield
    stop.set()
    thread.join(timeout=10)
    second_client.down(project.master_url)  # other tests never wait for a client that is gone
    subprocess.run(["sudo", "-n", "-u", OWNER, "python3", "-c", DROP_SETTING,
                    str(PROJECT_DIR / "config.xml")], check=True)


def _replica_users(wanted_tag: str) -> dict[str, set[str]]:
    """``{work unit: user ids}`` of the successful results of a tag's work units."""
    query = ("SELECT w.name, r.userid FROM result r JOIN workunit w ON r.workunitid=w.id "
             f"WHERE w.name LIKE 'pymw\\_{wanted_tag}\\_%' AND r.outcome=1")
    out = subprocess.run(["mysql", "-N", "-B", NAME, "-e", query], capture_output=True,
                         text=True, check=True).stdout
    users: dict[str, set[str]] = {}
    for line in out.splitlines():
        name, user = line.split("\t")
        users.setdefault(name, set()).add(user)
    return users


@pytest.mark.timeout(900)  # a second client attaching and fetching first
def test_replicas_come_from_different_volunteers_and_agree(
        project: Project, master_python: str, kicker: None,  # noqa: F811
        second_volunteer: None) -> None:
    monte_pi = write_script("monte_pi.py", (REPO / "examples" / "monte_pi.py").read_text())
    run_tag = tag("replicated")
    started = time.monotonic()
    run = start_master(master_python, monte_pi, "-a",
                       f"min_quorum=2 target_nresults=2 tag={run_tag}", "--tasks", "2",
                       "--darts", "100000").finish(timeout=480)
    record_timing("replicated_s", round(time.monotonic() - started, 1))
    assert run.proc.returncode == 0, run.stderr[-3000:] + second_client.messages()[-2000:]
    match = re.search(r"pi is about ([0-9.]+)", run.stdout)
    assert match, run.stdout
    assert abs(float(match.group(1)) - math.pi) < 0.1
    config = (PROJECT_DIR / "config.xml").read_text()
    assert "<one_result_per_user_per_wu>1</one_result_per_user_per_wu>" in config
    users = _replica_users(run_tag)
    assert len(users) == 2 and all(len(u) == 2 for u in users.values()), users
