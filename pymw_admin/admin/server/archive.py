"""The backup archive: one local ``.tar.gz`` holding a project, and its manifest.

Members:

    manifest.json    what the archive holds (below); no secret
    database.sql     the project's database, as mysqldump wrote it (a secret: accounts' keys)
    project/...      the parts of the project directory a new host needs (PROJECT_PARTS)

The manifest names the project (name, owner, directory, URL, host name, BOINC source), the
archive's id, the project's identity (the sha256 of its code-signing public key: clients trust
app versions by that key, so two projects with different keys are different projects), and every
secret member. Secret members are mode 0600 inside the archive whatever their mode was on the
host, and the archive file itself is 0600, made new in a directory nobody else can write.

Reading an archive checks every member before anything is unpacked: relative names under
``project/`` with no ``..``, only files, directories and links, and a manifest that names what
is there. A symbolic link that could lead out of the project (an absolute target, or ``..``
past the project directory or after a name) is left out, both when the archive is made and when
it is restored: web-served directories must not gain a way to the rest of the host.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fnmatch
import hashlib
import io
import json
import os
import stat
import tarfile
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from pymw_admin.errors import UsageError

FORMAT = "pymw-admin-backup"
VERSION = 1
MANIFEST = "manifest.json"
DATABASE = "database.sql"
PROJECT_PREFIX = "project/"

# the parts of a project directory that are the project's own (BOINC's programs, web pages and
# logs come from the new host's build and make_project): configuration, keys, apps and their
# versions, work (download/) and uploaded results (upload/), the interface's scripts and
# templates, pymw-admin's state (pymw/: masters' journals, results, runs)
PROJECT_PARTS = ("config.xml", "project.xml", "db_revision", "keys", "apps", "download",
                 "upload", "templates", "html/project", "pymw", "bin/pymw_*")
# project-relative paths whose content is secret (the database password, the signing keys)
SECRET_PATTERNS = ("config.xml", "keys/*private*", "html/ops/.htpasswd")


def is_secret(relative: str) -> bool:
    return any(fnmatch.fnmatchcase(relative, pattern) for pattern in SECRET_PATTERNS)


@dataclass(frozen=True)
class ProjectInfo:
    """The project as the backup found it; nothing secret."""

    name: str
    owner: str
    project_dir: str
    url_base: str
    host_name: str
    long_name: str = ""
    boinc_source: str = ""  # "" = not known (restore then needs --boinc-source)


@dataclass(frozen=True)
class Manifest:
    project: ProjectInfo
    identity: str  # sha256 of keys/code_sign_public ("" when the project has none)
    source_host: str
    secrets: tuple[str, ...]
    files: int
    database_sha256: str
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    created: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                time.gmtime()))
    pymw_admin: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "version": VERSION, **dataclasses.asdict(self),
                "secrets": list(self.secrets)}

    @classmethod
    def from_dict(cls, data: Any, where: str) -> Manifest:
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise UsageError(f"{where} is not a pymw-admin backup (its manifest is not one)")
        if data.get("version") != VERSION:
            raise UsageError(f"{where} is a version {data.get('version')!r} backup; this "
                             f"pymw-admin reads version {VERSION}")
        try:
            project = ProjectInfo(**data["project"])
            return cls(project=project, identity=str(data["identity"]),
                       source_host=str(data["source_host"]),
                       secrets=tuple(str(s) for s in data["secrets"]), files=int(data["files"]),
                       database_sha256=str(data["database_sha256"]), id=str(data["id"]),
                       created=str(data["created"]), pymw_admin=str(data.get("pymw_admin", "")))
        except (KeyError, TypeError, ValueError) as exc:
            raise UsageError(f"{where}: its manifest is incomplete ({exc})") from None


def check_member_name(name: str, where: str) -> str:
    """A member's path relative to the project directory, or a UsageError: no absolute names, no
    ``..``, nothing outside ``project/``."""
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts or not name.startswith(PROJECT_PREFIX):
        raise UsageError(f"{where}: refusing the member {name!r} (outside the project)")
    return name[len(PROJECT_PREFIX):]


def _check_kind(member: tarfile.TarInfo, where: str) -> None:
    if not (member.isfile() or member.isdir() or member.issym() or member.islnk()):
        raise UsageError(f"{where}: refusing the member {member.name!r} (not a file, directory "
                         "or link)")
    if member.islnk():
        check_member_name(member.linkname, where)


def outside_link(relative: str, target: str) -> bool:
    """Whether a symbolic link at project-relative ``relative`` to ``target`` may lead out of
    the project: an absolute target, more ``..`` than directories above the link, or a ``..``
    after a name (the name may be a link itself, so the path cannot be judged by its text)."""
    if target.startswith("/") or not target:
        return True
    ups, named = 0, False
    for part in target.split("/"):
        if part == "..":
            if named:
                return True
            ups += 1
        elif part not in ("", "."):
            named = True
    return ups > len(PurePosixPath(relative).parts) - 1


def project_members(tree_tar: bytes, left_out: list[str] | None = None,
                    ) -> Iterable[tuple[tarfile.TarInfo, bytes | None]]:
    """The members of the project tar the host's owner made (gzip), as archive members under
    ``project/``: secrets 0600, owners dropped, only files, directories and links. Links that
    may lead out of the project are not taken; their names go to ``left_out``."""
    with tarfile.open(fileobj=io.BytesIO(tree_tar), mode="r:gz") as tree:
        for member in tree:
            name = member.name.removeprefix("./").rstrip("/")
            if not name or name == ".":
                continue
            relative = check_member_name(PROJECT_PREFIX + name, "the project's tar")
            if member.issym() and outside_link(relative, member.linkname):
                if left_out is not None:
                    left_out.append(f"{relative} -> {member.linkname}")
                continue
            copy = tarfile.TarInfo(PROJECT_PREFIX + relative)
            copy.type, copy.size, copy.mtime = member.type, member.size, member.mtime
            copy.mode = 0o600 if is_secret(relative) and member.isfile() else member.mode & 0o7777
            copy.linkname = (PROJECT_PREFIX + member.linkname.removeprefix("./")
                             if member.islnk() else member.linkname)
            _check_kind(copy, "the project's tar")
            data = tree.extractfile(member).read() if member.isfile() else None  # type: ignore[union-attr]
            yield copy, data


def _private_dir(directory: Path) -> int:
    """An fd on the archive's directory, or a UsageError: one only this user (or root) can
    write, or a sticky one (/tmp), so nobody else can plant, swap or rename the archive (a
    backup run as root beside the project's owner must not write where the owner can)."""
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise UsageError(f"cannot write the archive in {directory}: {exc.strerror}") from None
    info = os.fstat(fd)
    shared = info.st_mode & 0o022 and not info.st_mode & stat.S_ISVTX
    if info.st_uid not in (os.geteuid(), 0) or shared:
        os.close(fd)
        raise UsageError(f"cannot write the archive in {directory}: another user can write "
                         f"there (uid {info.st_uid}, mode {stat.S_IMODE(info.st_mode):o}); "
                         "choose a directory only you can write")
    return fd


def check_destination(path: Path) -> None:
    """Refuse, before a backup starts, an archive ``write`` would refuse for its directory."""
    os.close(_private_dir(path.parent))


def _create_private(name: str, dir_fd: int, where: Path) -> int:
    """A new 0600 file ``name`` in ``dir_fd``, never an existing file or a link's target: a
    stale one of this user's (a backup that died) is unlinked first, anything else refused."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        try:
            return os.open(name, flags, 0o600, dir_fd=dir_fd)
        except FileExistsError:
            stale = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        if stale.st_uid != os.geteuid() or not (stat.S_ISREG(stale.st_mode)
                                                 or stat.S_ISLNK(stale.st_mode)):
            raise UsageError(f"cannot write the archive {where}: {name} is in the way and is "
                             "not a file of yours; remove it or choose another --output")
        os.unlink(name, dir_fd=dir_fd)  # the link itself, never its target
        return os.open(name, flags, 0o600, dir_fd=dir_fd)
    except OSError as exc:
        raise UsageError(f"cannot write the archive {where}: {exc.strerror}") from None


def write(path: Path, manifest: Manifest, database: bytes,
          members: Iterable[tuple[tarfile.TarInfo, bytes | None]]) -> None:
    """Write the archive at ``path`` (0600, atomically: a failed backup leaves no half archive).

    ``NAME.partial`` is made new (O_EXCL|O_NOFOLLOW) in a directory nobody else can write: a
    stale file or a planted link never decides the mode of a file holding the database's
    password, and the rename is done in the directory that was checked."""
    dir_fd = _private_dir(path.parent)
    partial = path.name + ".partial"
    try:
        fd = _create_private(partial, dir_fd, path)
        try:
            with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz") as archive:
                info = json.dumps(manifest.as_dict(), indent=2).encode()
                _add(archive, MANIFEST, info, 0o644)
                _add(archive, DATABASE, database, 0o600)
                for member, data in members:
                    archive.addfile(member, io.BytesIO(data) if data is not None else None)
            os.rename(partial, path.name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        except OSError as exc:
            _unlink(partial, dir_fd)
            raise UsageError(f"cannot write the archive {path}: {exc.strerror or exc}") from None
        except BaseException:
            _unlink(partial, dir_fd)
            raise
    finally:
        os.close(dir_fd)


def _unlink(name: str, dir_fd: int) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(name, dir_fd=dir_fd)


def _add(archive: tarfile.TarFile, name: str, data: bytes, mode: int) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), mode, int(time.time())
    archive.addfile(info, io.BytesIO(data))


@dataclass(frozen=True)
class Archive:
    """An archive read back and checked: its manifest, the dump, and the project's members."""

    manifest: Manifest
    database: bytes
    members: tuple[tuple[tarfile.TarInfo, bytes | None], ...]
    left_out: tuple[str, ...] = ()  # links that may lead out of the project: not restored

    def project_tar(self) -> bytes:
        """The project's members as a gzip tar relative to the project directory (what the new
        host's owner unpacks)."""
        out = io.BytesIO()
        with tarfile.open(fileobj=out, mode="w:gz") as tree:
            for member, data in self.members:
                relative = member.name[len(PROJECT_PREFIX):]
                if member.issym() and outside_link(relative, member.linkname):
                    continue  # read() left it out already; a restore never makes one
                copy = tarfile.TarInfo(relative)
                copy.type, copy.size, copy.mode, copy.mtime = (member.type, member.size,
                                                               member.mode, member.mtime)
                copy.linkname = (member.linkname[len(PROJECT_PREFIX):] if member.islnk()
                                 else member.linkname)
                tree.addfile(copy, io.BytesIO(data) if data is not None else None)
        return out.getvalue()

    def file(self, relative: str) -> bytes | None:
        for member, data in self.members:
            if member.name == PROJECT_PREFIX + relative:
                return data
        return None


def read(path: Path) -> Archive:
    """Read and check an archive; any problem is one UsageError line naming the file."""
    where = str(path)
    manifest: Manifest | None = None
    database: bytes | None = None
    members: list[tuple[tarfile.TarInfo, bytes | None]] = []
    left_out: list[str] = []
    links: set[str] = set()  # every link's name, taken or left out
    try:
        with tarfile.open(path, mode="r:gz") as archive:
            for member in archive:
                if member.name == MANIFEST:
                    manifest = Manifest.from_dict(json.loads(_data(archive, member)), where)
                elif member.name == DATABASE:
                    database = _data(archive, member)
                else:
                    relative = check_member_name(member.name, where)
                    _check_kind(member, where)
                    if member.issym():
                        links.add(relative)
                        if outside_link(relative, member.linkname):
                            left_out.append(f"{relative} -> {member.linkname}")
                            continue
                    members.append((member, _data(archive, member) if member.isfile()
                                    else None))
    except FileNotFoundError:
        raise UsageError(f"no such archive: {path}") from None
    except (tarfile.TarError, OSError, EOFError, json.JSONDecodeError) as exc:
        raise UsageError(f"{where} is not a readable pymw-admin backup: {exc}") from None
    if manifest is None or database is None:
        raise UsageError(f"{where} is not a pymw-admin backup (no manifest or no database dump)")
    for member, _ in members:
        _check_not_under_link(member.name[len(PROJECT_PREFIX):], links, where)
    if hashlib.sha256(database).hexdigest() != manifest.database_sha256:
        raise UsageError(f"{where}: the database dump does not match its manifest (damaged?)")
    if len([m for m, _ in members if m.isfile()]) != manifest.files:
        raise UsageError(f"{where}: it holds another number of files than its manifest says")
    found = Archive(manifest, database, tuple(members), tuple(left_out))
    if identity(found.file("keys/code_sign_public")) != manifest.identity:
        raise UsageError(f"{where}: its code-signing key is not the one its manifest names "
                         "(damaged?)")
    return found


def _check_not_under_link(relative: str, links: set[str], where: str) -> None:
    """A member inside a linked directory would be unpacked wherever the link points."""
    parents = PurePosixPath(relative).parents
    if any(str(parent) in links for parent in parents):
        raise UsageError(f"{where}: refusing the member {PROJECT_PREFIX + relative!r} (under "
                         "a link)")


def _data(archive: tarfile.TarFile, member: tarfile.TarInfo) -> bytes:
    handle = archive.extractfile(member)
    return handle.read() if handle is not None else b""


def identity(code_sign_public: bytes | None) -> str:
    """The project's identity: the sha256 of its code-signing public key ("" without one)."""
    return hashlib.sha256(code_sign_public).hexdigest() if code_sign_public else ""
