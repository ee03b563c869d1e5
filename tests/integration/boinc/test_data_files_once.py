"""A data file many tasks read goes to a volunteer once: on the real project with the real
client, 20 tasks over one 30 MB ``data_files`` file stage one shared file on the server, and
Apache's log shows the client downloading it once (sticky on the host), not 20 times."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from testbed.boinc_project import PROJECT_DIR
from tests.helpers.boinc_master import Project, record_timing, start_master, tag, write_script

pytestmark = [pytest.mark.boinc, pytest.mark.ssh, pytest.mark.bundle]

ACCESS_LOG = Path("/var/log/apache2/access.log")

SCRIPT = '''
import hashlib, os, sys, tempfile
from pymw_admin.runtime import Master, options


def digest_of_table(i):
    import hashlib
    return hashlib.sha256(open("table.bin", "rb").read()).hexdigest(), i


with Master(interface=options.interface_from_args()) as master:
    path = os.path.join(tempfile.mkdtemp(), "table.bin")
    data = os.urandom(30 * 1024 * 1024)
    with open(path, "wb") as f:
        f.write(data)
    print("DIGEST", hashlib.sha256(data).hexdigest(), flush=True)
    for digest, i in master.map(digest_of_table, range(20), data_files=(path,)):
        print("GOT", i, digest, flush=True)
'''


def test_tasks_sharing_a_data_file_download_it_once(project: Project, master_python: str,
                                                     kicker: None) -> None:
    newest = sorted((PROJECT_DIR / "apps" / "pymw").glob("*/x86_64-pc-linux-gnu/.pymw-features"))
    assert newest and "shared-data-files" in newest[-1].read_text().split(), newest
    before = ACCESS_LOG.stat().st_size
    script = write_script("data_files_once.py", SCRIPT)
    run = start_master(master_python, script, "-a", f"tag={tag('datafile')}").finish(timeout=900)
    record_timing("data_file_20_tasks_s", round(run.seconds, 1))
    assert run.proc.returncode == 0, run.stderr[-3000:]
    digest = re.search(r"^DIGEST (\w+)$", run.stdout, re.M)
    assert digest is not None, run.stdout
    got = re.findall(r"^GOT (\d+) (\w+)$", run.stdout, re.M)
    assert sorted(int(i) for i, _ in got) == list(range(20))
    assert {d for _, d in got} == {digest.group(1)}  # each task read the whole file
    staged = list((PROJECT_DIR / "download").rglob(f"pymw_shared_{digest.group(1)}"))
    assert len(staged) == 1 and staged[0].stat().st_size == 30 * 1024 * 1024
    with ACCESS_LOG.open("rb") as log:
        log.seek(before)
        lines = log.read().decode(errors="replace").splitlines()
    fetched = [ln for ln in lines if f"pymw_shared_{digest.group(1)} " in ln
               and re.search(r'" (200|206) ', ln)]
    assert len(fetched) == 1, fetched
