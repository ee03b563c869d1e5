"""The backup archive and the restore's decisions, without a host: what goes in, which members
are secret (0600, named in the manifest), what a damaged or hostile archive gets, and when a
restore refuses a host."""

from __future__ import annotations

import hashlib
import io
import json
import stat
import tarfile
from pathlib import Path

import pytest

from pymw_admin.admin.project import Project
from pymw_admin.admin.server import archive, backup, os_check, restore
from pymw_admin.admin.server.spec import ProjectSpec
from pymw_admin.errors import UsageError
from tests.doubles import RecordingHost

DEBIAN12 = {"ID": "debian", "VERSION_ID": "12", "PRETTY_NAME": "Debian GNU/Linux 12 (bookworm)"}
SPEC = ProjectSpec("sandbox", url_base="http://10.0.0.5/", host_name="newhost",
                   boinc_source="/srv/boinc")
CONFIG = ("<boinc><config><master_url>http://old.example/sandbox/</master_url>"
          "<download_url>http://old.example/sandbox/download</download_url>"
          "<upload_url>http://old.example/sandbox_cgi/file_upload_handler</upload_url>"
          "<host>oldhost</host><long_name>Sand Box</long_name>"
          "<db_passwd>s3cret</db_passwd></config></boinc>")


def _tree(entries: list[tuple[str, bytes | None, int, bytes]]) -> bytes:
    """A gzip tar like the owner's: (name, data or None for a directory, mode, type)."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tree:
        for name, data, mode, kind in entries:
            info = tarfile.TarInfo(name)
            info.mode, info.type = mode, kind
            if kind == tarfile.SYMTYPE:
                info.linkname = "config.xml"
            info.size = len(data) if data is not None else 0
            tree.addfile(info, io.BytesIO(data) if data is not None else None)
    return out.getvalue()


TREE = [
    ("config.xml", CONFIG.encode(), 0o640, tarfile.REGTYPE),
    ("keys", None, 0o700, tarfile.DIRTYPE),
    ("keys/code_sign_private", b"PRIVATE", 0o600, tarfile.REGTYPE),
    ("keys/code_sign_public", b"PUBLIC", 0o644, tarfile.REGTYPE),
    ("keys/upload_private", b"UPRIVATE", 0o644, tarfile.REGTYPE),  # loose on the host: 0600 here
    ("upload", None, 0o2770, tarfile.DIRTYPE),
    ("upload/1a/pymw_x_0_r1_0", b"result", 0o660, tarfile.REGTYPE),
    ("pymw/masters/t/submitted.jsonl", b'{"task_id": "1", "wu": "w"}\n', 0o644,
     tarfile.REGTYPE),
    ("html/project/link.inc", None, 0o777, tarfile.SYMTYPE),
]


def _manifest(members: list[tuple[tarfile.TarInfo, bytes | None]], dump: bytes) -> archive.Manifest:
    info = backup.project_info(CONFIG, Project("sandbox"), "/srv/boinc")
    return archive.Manifest(
        project=info, identity=archive.identity(b"PUBLIC"), source_host="old",
        secrets=(archive.DATABASE, *(m.name for m, _ in members if m.isfile() and
                                     archive.is_secret(m.name.removeprefix("project/")))),
        files=sum(1 for m, _ in members if m.isfile()),
        database_sha256=hashlib.sha256(dump).hexdigest())


@pytest.mark.parametrize(("path", "secret"), [
    ("config.xml", True), ("keys/code_sign_private", True), ("keys/upload_private", True),
    ("keys/code_sign_public", False), ("project.xml", False), ("upload/1a/x", False),
    ("html/ops/.htpasswd", True), ("pymw/runs/1/log", False),
])
def test_which_files_are_secret(path: str, secret: bool) -> None:
    assert archive.is_secret(path) is secret


def test_project_info_comes_from_config_xml() -> None:
    info = backup.project_info(CONFIG, Project("sandbox"), "/srv/boinc")
    assert (info.url_base, info.host_name, info.long_name) == ("http://old.example/", "oldhost",
                                                              "Sand Box")
    assert info.project_dir == "/home/boincadm/projects/sandbox"
    with pytest.raises(UsageError, match="does not end with 'other/'"):
        backup.project_info(CONFIG, Project("other"), "")


def test_round_trip_keeps_secrets_0600_and_names_them(tmp_path: Path) -> None:
    members = list(archive.project_members(_tree(TREE)))
    dump = b"CREATE TABLE app (id int);\n"
    manifest = _manifest(members, dump)
    path = tmp_path / "b.tar.gz"
    archive.write(path, manifest, dump, members)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert not list(tmp_path.glob("*.partial"))

    with tarfile.open(path) as raw:
        modes = {m.name: stat.S_IMODE(m.mode) for m in raw}
    assert modes["database.sql"] == 0o600
    assert modes["project/config.xml"] == 0o600
    assert modes["project/keys/upload_private"] == 0o600
    assert modes["project/keys/code_sign_public"] == 0o644
    assert modes["project/upload"] == 0o2770
    assert set(manifest.secrets) == {"database.sql", "project/config.xml",
                                     "project/keys/code_sign_private",
                                     "project/keys/upload_private"}

    back = archive.read(path)
    assert back.manifest == manifest
    assert back.database == dump
    assert back.file("keys/code_sign_public") == b"PUBLIC"
    with tarfile.open(fileobj=io.BytesIO(back.project_tar()), mode="r:gz") as tree:
        names = {m.name: m for m in tree}
    assert names["keys/code_sign_private"].mode & 0o777 == 0o600
    assert names["html/project/link.inc"].issym()
    assert "upload/1a/pymw_x_0_r1_0" in names


@pytest.mark.parametrize(("name", "kind", "why"), [
    ("../escape", tarfile.REGTYPE, "outside the project"),
    ("pymw/../../escape", tarfile.REGTYPE, "outside the project"),
    ("upload/fifo", tarfile.FIFOTYPE, "not a file, directory or link"),
    ("dev", tarfile.CHRTYPE, "not a file, directory or link"),
])
def test_hostile_members_of_the_owners_tar_are_refused(name: str, kind: bytes, why: str) -> None:
    tree = _tree([(name, b"x" if kind == tarfile.REGTYPE else None, 0o644, kind)])
    with pytest.raises(UsageError, match=why):
        list(archive.project_members(tree))


LINKS = {  # name -> target, as a hostile owner may leave them in a web-served directory
    "html/project/link.inc": ("config.xml", True),
    "html/project/public": ("../../keys/code_sign_public", True),
    "html/project/cnf": ("/etc/pymw-admin/sandbox/client.cnf", False),
    "html/project/root": ("/", False),
    "html/project/up": ("../../../../etc/passwd", False),
    "html/project/hop": ("link.inc/../../../..", False),  # '..' after a name: any link's way
    "pymw/up": ("../..", False),
    "html/project/dot": ("./config.inc", True),
}


def _linked_tree() -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tree:
        for name, data in [("config.xml", CONFIG.encode()), ("keys/code_sign_public", b"PUBLIC")]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tree.addfile(info, io.BytesIO(data))
        for name, (target, _) in LINKS.items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tree.addfile(info)
    return out.getvalue()


@pytest.mark.parametrize(("name", "target", "kept"),
                         [(name, target, kept) for name, (target, kept) in LINKS.items()])
def test_which_links_may_lead_out_of_the_project(name: str, target: str, kept: bool) -> None:
    assert archive.outside_link(name, target) is not kept


def test_a_backup_leaves_out_links_that_lead_out_of_the_project(tmp_path: Path) -> None:
    left_out: list[str] = []
    members = list(archive.project_members(_linked_tree(), left_out))
    links = {m.name.removeprefix("project/"): m.linkname for m, _ in members if m.issym()}
    assert links == {name: target for name, (target, kept) in LINKS.items() if kept}
    assert sorted(left_out) == sorted(f"{name} -> {target}"
                                      for name, (target, kept) in LINKS.items() if not kept)


def test_a_restore_never_makes_a_link_out_of_the_project(tmp_path: Path) -> None:
    # an archive written by an older pymw-admin (or by hand) that holds such links
    members = list(archive.project_members(_linked_tree()))
    hostile: list[tuple[tarfile.TarInfo, bytes | None]] = [
        (_symlink("project/" + name, target), None)
        for name, (target, kept) in LINKS.items() if not kept]
    path = tmp_path / "b.tar.gz"
    archive.write(path, _manifest(members, b"d"), b"d", [*members, *hostile])
    back = archive.read(path)
    assert len(back.left_out) == len(hostile)
    with tarfile.open(fileobj=io.BytesIO(back.project_tar()), mode="r:gz") as tree:
        made = {m.name: m.linkname for m in tree if m.issym()}
    assert made == {name: target for name, (target, kept) in LINKS.items() if kept}
    assert not any(archive.outside_link(name, target) for name, target in made.items())


def test_a_restore_refuses_a_member_under_a_link(tmp_path: Path) -> None:
    members = list(archive.project_members(_linked_tree()))
    inside = tarfile.TarInfo("project/html/project/public/planted")
    with pytest.raises(UsageError, match="under a link"):
        archive.read(_archive_with(tmp_path, inside, members=members))
    outside = tarfile.TarInfo("project/html/project/top/planted/evil")
    with pytest.raises(UsageError, match="under a link"):
        archive.read(_archive_with(tmp_path, outside, members=[
            *members, (_symlink("project/html/project/top", "/"), None)]))


def _symlink(name: str, target: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = tarfile.SYMTYPE, target
    return info


def test_an_archive_that_cannot_be_written_is_one_line(tmp_path: Path) -> None:
    members = list(archive.project_members(_tree(TREE)))
    with pytest.raises(UsageError, match=r"cannot write the archive .*No such file"):
        archive.write(tmp_path / "absent" / "b.tar.gz", _manifest(members, b"d"), b"d", members)


def test_a_stale_partial_archive_never_decides_its_mode(tmp_path: Path) -> None:
    members = list(archive.project_members(_tree(TREE)))
    stale = tmp_path / "b.tar.gz.partial"
    stale.write_bytes(b"left by a backup that died")
    stale.chmod(0o644)
    archive.write(tmp_path / "b.tar.gz", _manifest(members, b"d"), b"d", members)
    assert stat.S_IMODE((tmp_path / "b.tar.gz").stat().st_mode) == 0o600
    assert not stale.exists()


def test_a_link_planted_as_the_partial_archive_is_not_followed(tmp_path: Path) -> None:
    members = list(archive.project_members(_tree(TREE)))
    target = tmp_path / "elsewhere"
    target.write_text("not an archive\n")
    target.chmod(0o644)
    (tmp_path / "b.tar.gz.partial").symlink_to(target)
    archive.write(tmp_path / "b.tar.gz", _manifest(members, b"d"), b"d", members)
    assert target.read_text() == "not an archive\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    written = tmp_path / "b.tar.gz"
    assert not written.is_symlink() and stat.S_IMODE(written.stat().st_mode) == 0o600
    assert archive.read(written).database == b"d"


@pytest.mark.parametrize("mode", [0o775, 0o777])
def test_an_archive_is_not_written_where_others_can_write(tmp_path: Path, mode: int) -> None:
    members = list(archive.project_members(_tree(TREE)))
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(mode)
    with pytest.raises(UsageError, match="another user can write there"):
        archive.write(shared / "b.tar.gz", _manifest(members, b"d"), b"d", members)
    assert list(shared.iterdir()) == []


def test_a_backup_into_a_shared_directory_is_refused_before_the_host_is_asked(
        tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    host = RecordingHost()
    with pytest.raises(UsageError, match="another user can write there"):
        backup.backup(host, Project("sandbox"), shared / "b.tar.gz")
    assert host.commands == []


def test_a_sticky_directory_takes_the_archive_but_not_over_what_is_in_the_way(
        tmp_path: Path) -> None:
    members = list(archive.project_members(_tree(TREE)))
    sticky = tmp_path / "tmp"
    sticky.mkdir()
    sticky.chmod(0o1777)
    archive.write(sticky / "b.tar.gz", _manifest(members, b"d"), b"d", members)
    assert stat.S_IMODE((sticky / "b.tar.gz").stat().st_mode) == 0o600
    (sticky / "c.tar.gz.partial").mkdir()
    with pytest.raises(UsageError, match=r"c\.tar\.gz\.partial is in the way"):
        archive.write(sticky / "c.tar.gz", _manifest(members, b"d"), b"d", members)
    assert not (sticky / "c.tar.gz").exists()


def _archive_with(tmp_path: Path, extra: tarfile.TarInfo | None = None,
                  dump: bytes = b"dump",
                  members: list[tuple[tarfile.TarInfo, bytes | None]] | None = None) -> Path:
    members = list(archive.project_members(_tree(TREE))) if members is None else members
    path = tmp_path / "b.tar.gz"
    archive.write(path, _manifest(members, b"dump"), dump, members)
    if extra is None:
        return path
    with tarfile.open(path) as raw:
        items = [(m, raw.extractfile(m).read() if m.isfile() else None)  # type: ignore[union-attr]
                 for m in raw]
    with tarfile.open(path, "w:gz") as out:
        for member, data in [*items, (extra, b"")]:
            out.addfile(member, io.BytesIO(data) if data is not None else None)
    return path


def test_a_damaged_or_doctored_archive_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="does not match its manifest"):
        archive.read(_archive_with(tmp_path, dump=b"another dump"))
    absolute = tarfile.TarInfo("/etc/cron.d/evil")
    with pytest.raises(UsageError, match="outside the project"):
        archive.read(_archive_with(tmp_path, absolute))
    members = list(archive.project_members(_tree(TREE)))
    forged = archive.Manifest(**{**_manifest(members, b"dump").__dict__,
                                 "identity": archive.identity(b"ANOTHER")})
    archive.write(tmp_path / "forged.tar.gz", forged, b"dump", members)
    with pytest.raises(UsageError, match="code-signing key is not the one its manifest names"):
        archive.read(tmp_path / "forged.tar.gz")
    (tmp_path / "junk.tar.gz").write_bytes(b"not a tar")
    with pytest.raises(UsageError, match="not a readable pymw-admin backup"):
        archive.read(tmp_path / "junk.tar.gz")
    with pytest.raises(UsageError, match="no such archive"):
        archive.read(tmp_path / "absent.tar.gz")
    wrong = io.BytesIO()
    with tarfile.open(fileobj=wrong, mode="w:gz") as out:
        data = json.dumps({"format": "something-else"}).encode()
        info = tarfile.TarInfo("manifest.json")
        info.size = len(data)
        out.addfile(info, io.BytesIO(data))
    (tmp_path / "other.tar.gz").write_bytes(wrong.getvalue())
    with pytest.raises(UsageError, match="not a pymw-admin backup"):
        archive.read(tmp_path / "other.tar.gz")


def _claim(**changes: object) -> restore.ClaimFacts:
    facts = restore.ClaimFacts(os_check.OSFacts(DEBIAN12), "newhost", "id1", "key1", "")
    return restore.ClaimFacts(**{**facts.__dict__, **changes})  # type: ignore[arg-type]


@pytest.mark.parametrize(("facts", "expected"), [
    (_claim(), ["claim"]),  # an empty host: claimed for this archive
    (_claim(claimed="id1", os=os_check.OSFacts(DEBIAN12, marker=True), identity="other"),
     []),  # this archive's restore (its keys may still be make_project's): go on
])
def test_restore_claims_an_empty_host_or_continues_its_own(facts: restore.ClaimFacts,
                                                         expected: list[str]) -> None:
    assert [a.kind for a in restore.claim_decide(facts, SPEC)] == expected


@pytest.mark.parametrize(("facts", "message"), [
    (_claim(os=os_check.OSFacts(DEBIAN12, marker=True), identity="other"),
     "already has a different project sandbox"),
    (_claim(os=os_check.OSFacts(DEBIAN12, marker=True), identity=""),
     "already has a different project sandbox"),
    (_claim(os=os_check.OSFacts(DEBIAN12, marker=True), identity="key1"),
     "this same project, not restored from this archive"),
    (_claim(os=os_check.OSFacts(DEBIAN12, marker=True), identity="key1", claimed="id0"),
     "this same project"),
    (_claim(os=os_check.OSFacts(DEBIAN12, project_dir=True)), "was not made by pymw-admin"),
    (_claim(os=os_check.OSFacts(DEBIAN12, database_dir=True)), "database named sandbox"),
])
def test_restore_refuses_a_host_with_another_project(facts: restore.ClaimFacts,
                                                     message: str) -> None:
    with pytest.raises(UsageError, match=message):
        restore.claim_decide(facts, SPEC)


def test_a_moved_project_gets_its_new_url_and_host_name() -> None:
    moved = restore.moved_config(CONFIG, "http://old.example/", "https://new.example/",
                                 "newhost")
    assert "<master_url>https://new.example/sandbox/</master_url>" in moved
    assert "<download_url>https://new.example/sandbox/download</download_url>" in moved
    assert "<upload_url>https://new.example/sandbox_cgi/file_upload_handler" in moved
    assert "<host>newhost</host>" in moved and "old.example" not in moved
    assert "<db_passwd>s3cret</db_passwd>" in moved  # the project step replaces it afterwards
    same = restore.moved_config(CONFIG, "http://old.example/", "http://old.example/", "oldhost")
    assert "http://old.example/sandbox/" in same


@pytest.mark.parametrize(("facts", "expected"), [
    (restore.RehostFacts("http://10.0.0.5/", SPEC.master_url, "newhost", 0), []),
    (restore.RehostFacts("http://old/", "http://old/sandbox/", "oldhost", 3),
     ["config", "database-urls"]),
    (restore.RehostFacts("http://old/", "http://old/sandbox/", "oldhost", -1),
     ["config", "database-urls"]),
    (restore.RehostFacts("http://10.0.0.5/", SPEC.master_url, "oldhost", 0), ["config"]),
    (restore.RehostFacts("http://old/", SPEC.master_url, "newhost", 0, schedulers_old=True),
     ["schedulers"]),
])
def test_rehost_decides(facts: restore.RehostFacts, expected: list[str]) -> None:
    assert [a.kind for a in restore.rehost_decide(facts, SPEC)] == expected


def test_files_and_database_are_loaded_once_per_archive() -> None:
    assert restore.files_decide(restore.StampFacts(True, 9), SPEC) == []
    assert [a.kind for a in restore.files_decide(restore.StampFacts(False, 9), SPEC)] == ["unpack"]
    assert restore.db_decide(restore.StampFacts(True, 9), SPEC) == []
    assert [a.kind for a in restore.db_decide(restore.StampFacts(False, 9), SPEC)] == [
        "load-dump"]


def test_the_wanted_project_is_the_archives_with_what_was_asked(tmp_path: Path) -> None:
    members = list(archive.project_members(_tree(TREE)))
    manifest = _manifest(members, b"dump")
    spec = restore.wanted_spec(manifest, host_name="newhost")
    assert (spec.name, spec.url_base, spec.host_name, spec.boinc_source) == (
        "sandbox", "http://old.example/", "newhost", "/srv/boinc")
    moved = restore.wanted_spec(manifest, url_base="https://new.example/", host_name="h",
                                boinc_source="/opt/boinc")
    assert (moved.url_base, moved.boinc_source) == ("https://new.example/", "/opt/boinc")
    unknown = archive.Manifest(**{**manifest.__dict__, "project": archive.ProjectInfo(
        **{**manifest.project.__dict__, "boinc_source": ""})})
    with pytest.raises(UsageError, match="give --boinc-source"):
        restore.wanted_spec(unknown, host_name="h")
