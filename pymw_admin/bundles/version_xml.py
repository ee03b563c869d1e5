"""An app version's ``version.xml`` (BOINC's update_versions input), made with lxml from a manifest.

A one-directory bundle is many files. Every one is listed with ``<copy_file/>`` and its path in the
bundle as the logical name: the client creates the subdirectories of a logical name in the slot
(client/app_start.cpp, create_dirs_for_logical_name) and copies the file there, so the slot holds
the bundle's real tree and its main program finds ``_internal/`` next to itself. (Without
copy_file the slot would hold XML soft-link files, which a frozen program cannot load.)

Physical names carry a hash of the file's content and its path in the bundle: BOINC wants a
physical name never to change contents, an unchanged file is then shared by successive app
versions, and two equal files of one bundle get names of their own.

The client starts the main program from the project directory (``../../projects/URL/PHYSICAL``,
client/app_start.cpp), not from the slot, and a frozen program looks for ``_internal/`` next to
its own path. So for a client, ``launcher=True`` makes the main program a small shell launcher
that runs the slot's copy of the bundle's program (its working directory is the slot). A Windows
bundle's main program is a launcher already (it finds ``.\\python.exe`` in the slot).

``<api_version>`` is 7.20.0 for every client: at 6 or later a Unix client shares memory with the
app through the slot's ``boinc_mmap_file``, which the ``boinc`` module's Python protocol uses.
Extra files (``ExtraFile``: the task-signing key, say) are listed by their open name and left in
the project directory; the app resolves them with ``boinc.resolve_filename``.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from lxml import etree

from pymw_admin.bundles.manifest import FileEntry, Manifest

VERSION_XML = "version.xml"
API_VERSION = "7.20.0"
LAUNCHER_LOGICAL = "pymw-launcher"
# exec keeps the pid the client watches; the mode is restored in case a copy lost it
LAUNCHER = """#!/bin/sh
# pymw-admin: run the bundle's program from the slot, where its files are
[ -x "./{program}" ] || chmod u+x "./{program}"
exec "./{program}" "$@"
"""


def launcher_text(manifest: Manifest) -> str:
    return LAUNCHER.format(program=manifest.main_program)


def launcher_name(manifest: Manifest) -> str:
    digest = hashlib.sha256(launcher_text(manifest).encode()).hexdigest()
    return f"pymw_{digest[:16]}_{LAUNCHER_LOGICAL}.sh"


@dataclass(frozen=True)
class ExtraFile:
    """A file added to an app version beside the bundle's (not copied into the slot)."""

    open_name: str
    data: bytes

    @property
    def physical_name(self) -> str:
        return f"pymw_{hashlib.sha256(self.data).hexdigest()[:16]}_{self.open_name}"


def needs_launcher(manifest: Manifest) -> bool:
    """Unix bundles need the shell launcher; a Windows main program finds the slot itself."""
    return not manifest.platform.startswith("windows")


def physical_name(rel: str, entry: FileEntry) -> str:
    """By content and place: update_versions moves each listed file into the download
    directory, so two files of a bundle with the same bytes (numpy ships one LICENSE.md in
    several directories) must not share a physical name."""
    key = hashlib.sha256(f"{entry.sha256}\0{rel}".encode()).hexdigest()
    return f"pymw_{key[:16]}_{PurePosixPath(rel).name}"


def for_client(manifest: Manifest, extra: Sequence[ExtraFile] = ()) -> etree._Element:
    """The ``<version>`` element deploy-app installs for ``manifest``'s platform."""
    return build(manifest, api_version=API_VERSION, launcher=needs_launcher(manifest),
                 extra=extra)


def build(manifest: Manifest, *, api_version: str | None = None,
          launcher: bool = False, extra: Sequence[ExtraFile] = ()) -> etree._Element:
    """The ``<version>`` element for a bundle: the main program first, then every other file.

    ``launcher``: the main program is the launcher (see above), the bundle's program a plain file.
    """
    root = etree.Element("version")
    if launcher:
        file_el = etree.SubElement(root, "file")
        etree.SubElement(file_el, "physical_name").text = launcher_name(manifest)
        etree.SubElement(file_el, "logical_name").text = LAUNCHER_LOGICAL
        etree.SubElement(file_el, "main_program")
    others = sorted(r for r in manifest.files if r != manifest.main_program)
    order = [manifest.main_program, *others]
    for rel in order:
        entry = manifest.files[rel]
        file_el = etree.SubElement(root, "file")
        etree.SubElement(file_el, "physical_name").text = physical_name(rel, entry)
        etree.SubElement(file_el, "logical_name").text = rel
        etree.SubElement(file_el, "copy_file")
        if rel == manifest.main_program and not launcher:
            etree.SubElement(file_el, "main_program")
    for item in extra:
        file_el = etree.SubElement(root, "file")
        etree.SubElement(file_el, "physical_name").text = item.physical_name
        etree.SubElement(file_el, "logical_name").text = item.open_name
    if api_version:
        etree.SubElement(root, "api_version").text = api_version
    return root


def to_bytes(root: etree._Element) -> bytes:
    return bytes(etree.tostring(root, pretty_print=True, xml_declaration=False, encoding="utf-8"))


def stage(
    manifest: Manifest, bundle_dir: Path, dest: Path, *, api_version: str | None = None,
    launcher: bool = False, extra: Sequence[ExtraFile] = (),
) -> Path:
    """Lay out an app version directory for update_versions: files by physical name + version.xml.

    File modes are kept (update_versions marks a file executable from its mode).
    """
    dest.mkdir(parents=True, exist_ok=True)
    for rel, entry in manifest.files.items():
        target = dest / physical_name(rel, entry)
        if not target.exists():
            shutil.copy2(bundle_dir / rel, target)
    if launcher:
        script = dest / launcher_name(manifest)
        script.write_text(launcher_text(manifest))
        script.chmod(0o755)
    for item in extra:
        (dest / item.physical_name).write_bytes(item.data)
    path = dest / VERSION_XML
    path.write_bytes(to_bytes(build(manifest, api_version=api_version, launcher=launcher,
                                    extra=extra)))
    return path


def logical_names(root: etree._Element) -> dict[str, str]:
    """``{logical name: physical name}`` of a version.xml element (tests, deploy checks)."""
    return {
        str(f.findtext("logical_name")): str(f.findtext("physical_name"))
        for f in root.iter("file")
    }


__all__ = ["API_VERSION", "VERSION_XML", "ExtraFile", "build", "for_client", "logical_names",
           "needs_launcher", "physical_name", "stage", "to_bytes"]
