"""backup and restore end to end: a project moves from one test host to another and goes on there,
with a real BOINC client.

Both hosts are testbed/second_host.py's, "vm2" and "vm3": real sshds with their own addresses,
host names, files, processes, MariaDB and Apache, made fresh for the test, and the client is one
of the test's own; nothing other tests use (vm, its projects, the shared client) is touched.

The project (``pmbak``, owner ``boincbak``) is reached by a DNS name, ``bak.pymw-admin.test``
(one line in /etc/hosts), as a project that can move is. On vm2 it gets the app, the client
attached by that URL, and a master that submits four tasks, collects one and ends keeping the
rest (``keep=yes``); the client is then suspended holding what it fetched. ``backup`` writes the
archive (secrets 0600 and named). A restore onto vm2 while the project lives there, or of a
doctored archive of another project, refuses in one line and changes nothing. The old host's
project goes (destroy-project), the name moves to vm3, the restore's dry run changes nothing on
vm3, and ``restore --host vm3`` rebuilds the project there (<host> moved to vm3; a re-run
changes nothing): same work units; the client, resumed, returns what it held and fetches new
work from vm3; a master resuming the tag (``resume=yes``) collects the three results left, each
once, plus a new task's. Skips, saying so, without a BOINC tree.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import stat
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pymw_admin.admin import config
from pymw_admin.admin.remote import connect
from pymw_admin.admin.server import daemons
from testbed import boinc_client, second_host
from testbed import bundle as bundle_bed
from testbed.cache import CACHE
from tests.helpers.cli import json_out, one_error_line, pymw_admin

pytestmark = [pytest.mark.ssh, pytest.mark.boinc, pytest.mark.bundle]

NAME, OWNER = "pmbak", "boincbak"
PROJECT = Path(f"/home/{OWNER}/projects/{NAME}")
DOMAIN = "bak.pymw-admin.test"
MASTER_URL = f"http://{DOMAIN}/{NAME}/"
TAG = "bak"

MASTER = '''
import sys
from pymw_admin.runtime import Master, options


def square(x):
    return x * x


with Master(interface=options.interface_from_args()) as master:
    if sys.argv[-1] == "first":
        for i in range(4):
            master.submit_task(square, (i,))
        _task, value = master.get_result()
        print("GOT", value, flush=True)
    else:
        print("RESUMED", len(master.resumed), flush=True)
        master.submit_task(square, (10,))
        for _ in range(len(master.resumed) + 1):
            _task, value = master.get_result()
            print("GOT", value, flush=True)
'''


def _sql(query: str, on: int) -> list[str]:
    done = second_host.run_in("mysql", "-N", "-B", NAME, "-e", query, index=on)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def _read(path: Path, on: int) -> str:
    return second_host.run_in("cat", str(path), index=on).stdout


def _exists(path: str, on: int) -> bool:
    return second_host.run_in("test", "-e", path, index=on).returncode == 0


def _point_name_at(address: str | None) -> None:
    """The project's DNS name: one /etc/hosts line (None: none)."""
    hosts = Path("/etc/hosts")
    kept = [line for line in hosts.read_text().splitlines() if not line.endswith(f" {DOMAIN}")]
    hosts.write_text("\n".join([*kept, *([f"{address} {DOMAIN}"] if address else [])]) + "\n")


@pytest.fixture
def hosts() -> Iterator[tuple[second_host.Spare, second_host.Spare]]:
    """vm2 and vm3, fresh: nothing of an earlier run."""
    for index in (2, 3):
        second_host.down(index)
    yield second_host.up(2), second_host.up(3)
    for index in (2, 3):
        second_host.down(index)


@pytest.fixture
def client(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A BOINC client of the test's own (data directory and RPC port apart from the tests')."""
    data = CACHE / "boinc-client-restore"
    monkeypatch.setattr(boinc_client, "DATA", data)
    monkeypatch.setattr(boinc_client, "PID_FILE", data / "pymw-client.pid")
    monkeypatch.setattr(boinc_client, "RPC_PORT", 31419)
    boinc_client.up()
    yield
    boinc_client.detach(MASTER_URL)
    boinc_client.down()


def _run_master(project_file: Path, script: Path, *args: str,
                timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """``pymw-admin run`` to the end, asking the client to contact the project meanwhile (it backs
    off after "no work", and after the project was away)."""
    done = threading.Event()

    def kick() -> None:
        while not done.wait(10):
            boinc_client.update(MASTER_URL)

    kicker = threading.Thread(target=kick, daemon=True)
    kicker.start()
    try:
        return pymw_admin("run", "--project-file", str(project_file), str(script), "--", *args,
                          timeout=timeout)
    finally:
        done.set()
        kicker.join()


def _running(project_file: Path) -> frozenset[str]:
    host = connect(config.load(project_file).host_spec())
    try:
        return daemons.status(host, config.load(project_file).project_spec()).running
    finally:
        host.close()


def _doctored(original: Path, into: Path) -> Path:
    """The archive with another code-signing key: the archive of a different project."""
    key = b"another project's key\n"
    with tarfile.open(original) as raw, tarfile.open(into, "w:gz") as out:
        for member in raw:
            data = raw.extractfile(member).read() if member.isfile() else None  # type: ignore[union-attr]
            if member.name == "project/keys/code_sign_public":
                data = key
            elif member.name == "manifest.json" and data is not None:
                manifest = json.loads(data)
                manifest["identity"] = hashlib.sha256(key).hexdigest()
                manifest["id"] = "0" * 32  # another project's archive: another archive id
                data = json.dumps(manifest).encode()
            if data is not None:
                member.size = len(data)
            out.addfile(member, io.BytesIO(data) if data is not None else None)
    return into


def test_backup_then_restore_on_another_host(boinc_src: Path,  # first: it may skip
                                             hosts: tuple[second_host.Spare, second_host.Spare],
                                             client: None, tmp_path: Path) -> None:
    old, new = hosts
    _point_name_at(old.address)
    project_file = tmp_path / "pymw-admin.toml"
    script = tmp_path / "squares.py"
    script.write_text(MASTER)
    try:
        json_out(pymw_admin("init-project", NAME, "--host", old.host_name, "--ssh-config",
                            str(old.ssh_config), "--owner", OWNER, "--boinc-source",
                            str(boinc_src), "--url-base", f"http://{DOMAIN}/",
                            "--project-file", str(project_file), "--json"))
        json_out(pymw_admin("deploy-app", "--project-file", str(project_file), "--bundles",
                            str(bundle_bed.up().root.parent), "--json"))
        boinc_client.attach(MASTER_URL)

        first = _run_master(project_file, script, "-a", f"tag={TAG} keep=yes", "first")
        assert first.returncode == 0, first.stderr[-3000:] + first.stdout[-3000:]
        got_first = [int(v) for v in re.findall(r"GOT (\d+)", first.stdout)]
        assert len(got_first) == 1, first.stdout
        # the client keeps what it holds until the project is back, on the new host
        boinc_client.boinccmd("--project", MASTER_URL, "suspend")
        units = _sql("SELECT name FROM workunit ORDER BY id", on=2)
        assert len(units) == 4

        # -- backup ------------------------------------------------------------------------
        archive_path = tmp_path / "pmbak.pymw-backup.tar.gz"
        out = json_out(pymw_admin("backup", "--project-file", str(project_file), "-o",
                                  str(archive_path), "--json"))
        assert stat.S_IMODE(archive_path.stat().st_mode) == 0o600
        manifest = out["manifest"]
        assert manifest["project"]["name"] == NAME and manifest["identity"]
        assert manifest["project"]["url_base"] == f"http://{DOMAIN}/"
        assert {"database.sql", "project/config.xml", "project/keys/code_sign_private",
                "project/keys/upload_private"} <= set(manifest["secrets"])
        with tarfile.open(archive_path) as raw:
            members = {m.name: m for m in raw}
        for secret in manifest["secrets"]:
            assert stat.S_IMODE(members[secret].mode) == 0o600, secret
        assert f"project/pymw/masters/{TAG}/submitted.jsonl" in members
        assert "project/pymw/runs/1/log" in members
        assert any(name.startswith("project/download/") for name in members)
        assert any(name.startswith("project/apps/") for name in members)
        assert {"feeder", "transitioner"} <= _running(project_file)  # running again after

        # -- refusals: the project lives there, or another one does --------------------------
        config_before = _read(PROJECT / "config.xml", on=2)
        there = ["--host", old.host_name, "--ssh-config", str(old.ssh_config),
                 "--project-file", str(tmp_path / "x.toml")]
        same = pymw_admin("restore", str(archive_path), *there)
        assert "this same project" in one_error_line(same)
        doctored = _doctored(archive_path, tmp_path / "other.tar.gz")
        other = pymw_admin("restore", str(doctored), *there)
        assert f"already has a different project {NAME}" in one_error_line(other)
        assert _read(PROJECT / "config.xml", on=2) == config_before
        assert not _exists(f"/etc/pymw-admin/{NAME}/restore", on=2)
        assert not (tmp_path / "x.toml").exists()

        # -- the old host's project goes, the name moves -------------------------------------
        gone = pymw_admin("destroy-project", NAME, "--yes", "--project-file", str(project_file))
        assert gone.returncode == 0, gone.stderr
        assert not _exists(str(PROJECT), on=2)
        _point_name_at(new.address)

        # -- restore onto the new host -------------------------------------------------------
        restored_file = tmp_path / "restored.toml"
        where = ["--host", new.host_name, "--ssh-config", str(new.ssh_config)]
        dry = json_out(pymw_admin("restore", str(archive_path), *where, "--project-file",
                                  str(restored_file), "--dry-run", "--json"))
        planned = {s["step"]: s["status"] for s in dry["steps"]}
        assert planned["restore_files"] == planned["restore_database"] == "would change"
        assert not _exists(f"/etc/pymw-admin/{NAME}", on=3)
        assert not _exists(str(PROJECT), on=3)
        assert not restored_file.exists()

        started = time.monotonic()
        done = json_out(pymw_admin("restore", str(archive_path), *where, "--project-file",
                                   str(restored_file), "--json"))
        restore_seconds = time.monotonic() - started
        statuses = {s["step"]: s["status"] for s in done["steps"]}
        assert statuses["restore_files"] == statuses["restore_database"] == "changed"
        assert statuses["restore_rehost"] == "changed"  # <host> is vm3 now
        config_xml = _read(PROJECT / "config.xml", on=3)
        assert f"<host>{new.host_name}</host>" in config_xml
        assert f"<master_url>{MASTER_URL}</master_url>" in config_xml
        assert _sql("SELECT name FROM workunit ORDER BY id", on=3) == units
        assert {"feeder", "transitioner"} <= _running(restored_file)
        again = json_out(pymw_admin("restore", str(archive_path), *where, "--project-file",
                                    str(restored_file), "--json"))
        assert again["changes"] == 0, again
        refused = pymw_admin("restore", str(doctored), *where, "--project-file",
                             str(tmp_path / "y.toml"))
        assert f"already has a different project {NAME}" in one_error_line(refused)

        # -- the project goes on, on the new host --------------------------------------------
        boinc_client.boinccmd("--project", MASTER_URL, "resume")
        second = _run_master(restored_file, script, "-a", f"tag={TAG} resume=yes", "second")
        assert second.returncode == 0, second.stderr[-3000:] + second.stdout[-3000:]
        assert "RESUMED 3" in second.stdout, second.stdout
        got_second = [int(v) for v in re.findall(r"GOT (\d+)", second.stdout)]
        assert sorted(got_first + got_second) == [0, 1, 4, 9, 100]  # each exactly once
        returned = _sql("SELECT COUNT(*) FROM result WHERE outcome = 1 AND workunitid = "
                        "(SELECT MAX(id) FROM workunit)", on=3)
        assert returned == ["1"]  # the new task's result came from the client, to vm3
        print(f"restore onto {new.host_name} took {restore_seconds:.1f} s", file=sys.stderr)
    finally:
        _point_name_at(None)
