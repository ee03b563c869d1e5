"""upgrade end to end on the sshd test host: a project made from BOINC server 1.6.1, with the app
deployed, is moved to 1.6.2 by BOINC's own upgrade steps; the dry run changes nothing, the
programs become the new build's, the daemons run again, app versions stay, a re-run changes
nothing. Then housekeeping on the same project: a changed bundle deployed with --retire-older
deprecates the older version.

Its own project and owner (``pmupg``, ``boincupg``): the shared test project is never upgraded.
Skips, saying so, without both trees.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from pymw_admin.admin import config
from pymw_admin.admin.remote import HostSpec, connect
from pymw_admin.admin.server import daemons
from testbed import boinc_tree, ssh_host
from testbed import bundle as bundle_bed
from tests.helpers.cli import json_out, pymw_admin

pytestmark = [pytest.mark.ssh, pytest.mark.boinc, pytest.mark.bundle]

NAME, OWNER = "pmupg", "boincupg"
PROJECT = Path(f"/home/{OWNER}/projects/{NAME}")


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _versions() -> list[tuple[str, ...]]:
    out = subprocess.run(
        ["mysql", "-N", "-B", NAME, "-e", "SELECT version_num, platformid, deprecated FROM "
         "app_version ORDER BY id"], capture_output=True, text=True, check=True).stdout
    return [tuple(line.split("\t")) for line in out.splitlines()]


@pytest.fixture(scope="module")
def old_project(vm: ssh_host.VM, tmp_path_factory: pytest.TempPathFactory) -> Path:
    old, new = boinc_tree.find_older(), boinc_tree.find()
    if old is None:
        pytest.skip(boinc_tree.older_missing_reason())
    if new is None:
        pytest.skip(boinc_tree.missing_reason())
    ssh_host.forget_project(NAME, owner=OWNER)
    project_file = tmp_path_factory.mktemp("upgrade") / "pymw-admin.toml"
    json_out(pymw_admin("init-project", NAME, "--host", "vm", "--ssh-config", str(vm.ssh_config),
                        "--owner", OWNER, "--boinc-source", str(old), "--project-file",
                        str(project_file), "--json"))
    json_out(pymw_admin("deploy-app", "--project-file", str(project_file), "--bundles",
                        str(bundle_bed.up().root.parent), "--json"))
    return project_file


def test_upgrade_from_161_to_162(old_project: Path) -> None:
    old, new = boinc_tree.find_older(), boinc_tree.find()
    assert old and new
    assert _sha(PROJECT / "bin" / "feeder") == _sha(old / "sched" / "feeder")
    versions_before = _versions()
    assert versions_before

    dry = json_out(pymw_admin("upgrade", "--boinc-source", str(new), "--project-file",
                              str(old_project), "--dry-run", "--json"))
    step = next(s for s in dry["steps"] if s["step"] == "boinc_upgrade")
    assert step["status"] == "would change"
    assert _sha(PROJECT / "bin" / "feeder") == _sha(old / "sched" / "feeder")

    out = json_out(pymw_admin("upgrade", "--boinc-source", str(new), "--project-file",
                              str(old_project), "--json"))
    statuses = {s["step"]: s["status"] for s in out["steps"]}
    assert statuses["boinc_upgrade"] == "changed" and statuses["daemons"] == "changed"
    for src, dst in (("sched/feeder", "bin/feeder"), ("sched/cgi", "cgi-bin/cgi")):
        assert _sha(PROJECT / dst) == _sha(new / src)
    assert _versions() == versions_before
    host = connect(HostSpec("vm", ssh_config=str(ssh_host.SSH_DIR / "ssh_config")))
    try:
        facts = daemons.status(host, config.load(old_project).project_spec())
    finally:
        host.close()
    assert {"feeder", "transitioner", "file_deleter"} <= facts.running
    assert config.load(old_project).project.boinc_source == str(new)

    again = json_out(pymw_admin("upgrade", "--boinc-source", str(new), "--project-file",
                                str(old_project), "--json"))
    assert again["changes"] == 0


def test_retire_older_deprecates_the_previous_version(old_project: Path, tmp_path: Path) -> None:
    current = bundle_bed.up()
    changed = tmp_path / "bundles" / current.root.name
    shutil.copytree(current.root, changed, symlinks=True)
    extra = changed / "bundle" / "_internal" / "pymw-release-note.txt"
    extra.write_text("a changed bundle: a new app version\n")
    manifest = json.loads((changed / "manifest.json").read_text())
    manifest["files"]["_internal/pymw-release-note.txt"] = {
        "executable": False, "sha256": _sha(extra), "size": extra.stat().st_size}
    (changed / "manifest.json").write_text(json.dumps(manifest, indent=1))
    before = {v for v, _, dep in _versions() if dep == "0"}

    dry = json_out(pymw_admin("deploy-app", "--project-file", str(old_project), "--bundles",
                              str(changed.parent), "--retire-older", "--dry-run", "--json"))
    retire = next(s for s in dry["steps"] if s["step"] == "retire")
    assert retire["status"] == "would change"
    out = json_out(pymw_admin("deploy-app", "--project-file", str(old_project), "--bundles",
                              str(changed.parent), "--retire-older", "--json"))
    rows = _versions()
    live = {v for v, _, dep in rows if dep == "0"}
    assert len(live) == 1 and live.isdisjoint(before)
    assert {v for v, _, dep in rows if dep == "1"} >= before
    assert {s["step"]: s["status"] for s in out["steps"]}["retire"] == "changed"
    again = json_out(pymw_admin("deploy-app", "--project-file", str(old_project), "--bundles",
                                str(changed.parent), "--retire-older", "--json"))
    assert again["changes"] == 0
