"""deploy-app's decisions from tables of facts, BOINC's signature format, and the XML it writes."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from lxml import etree

from pymw_admin.admin import boincxml
from pymw_admin.admin.apps import daemons, register, scripts, signing, versions
from pymw_admin.admin.apps.spec import AppSpec
from pymw_admin.admin.server.spec import ProjectSpec
from pymw_admin.bundles import manifest as mf
from pymw_admin.bundles import version_xml
from pymw_admin.errors import ConfigError, UsageError

SPEC = ProjectSpec(name="proj", url_base="http://h/", host_name="h")
LINUX = "x86_64-pc-linux-gnu"
WINDOWS = "windows_x86_64"


def fake_bundle(tmp_path: Path, platform: str = LINUX, content: bytes = b"v1") -> mf.Bundle:
    root = tmp_path / platform
    (root / "bundle" / "_internal").mkdir(parents=True)
    (root / "bundle" / "pymw-worker").write_bytes(b"#!/bin/sh\n" + content)
    (root / "bundle" / "pymw-worker").chmod(0o755)
    (root / "bundle" / "_internal" / "lib.so").write_bytes(b"lib")
    manifest = mf.Manifest(platform=platform, python="3.11", python_full="3.11.7",
                           main_program="pymw-worker", files=mf.scan(root / "bundle"))
    mf.write(manifest, root)
    return mf.Bundle(root, manifest)


def app_with(*bundles: mf.Bundle) -> AppSpec:
    return AppSpec("pymw", "", tuple(bundles))


# --- register ---------------------------------------------------------------------------------


def test_register_decisions(tmp_path: Path) -> None:
    app = app_with(fake_bundle(tmp_path))
    nothing = register.RegisterFacts({}, frozenset(), None, frozenset({LINUX}))
    assert [a.kind for a in register.decide(nothing, SPEC, app)] == ["list-app", "xadd"]
    done = register.RegisterFacts({"pymw": app.friendly_name}, frozenset(), app.friendly_name,
                                  frozenset({LINUX}))
    assert register.decide(done, SPEC, app) == []
    renamed = register.RegisterFacts({"pymw": "old"}, frozenset(), "old", frozenset({LINUX}))
    assert [a.kind for a in register.decide(renamed, SPEC, app)] == ["list-app", "xadd"]
    no_platform = register.RegisterFacts({"pymw": app.friendly_name}, frozenset(),
                                         app.friendly_name, frozenset())
    assert [a.kind for a in register.decide(no_platform, SPEC, app)] == ["list-platform", "xadd"]


def test_app_names() -> None:
    with pytest.raises(UsageError, match="invalid app name"):
        AppSpec("Py-MW")


# --- scripts and templates ----------------------------------------------------------------------


def test_script_decisions() -> None:
    app = app_with()
    wanted = scripts.wanted_files(app)
    assert [w.rel for w in wanted] == ["bin/pymw_assimilator", "bin/pymw_compare",
                                       "bin/pymw_untrusted.py", "bin/pymw_boinc_contract.py",
                                       "templates/pymw_in", "templates/pymw_out"]
    assert [a.kind for a in scripts.decide(scripts.ScriptFacts({}), SPEC, app)] == ["install"] * 6
    same = {w.rel: (scripts.sha256(w.content), w.mode) for w in wanted}
    assert scripts.decide(scripts.ScriptFacts(same), SPEC, app) == []
    changed = dict(same, **{"bin/pymw_compare": ("0" * 64, 0o755)})
    assert [str(a) for a in scripts.decide(scripts.ScriptFacts(changed), SPEC, app)] == [
        "update bin/pymw_compare"]
    not_executable = dict(same, **{"bin/pymw_assimilator": (same["bin/pymw_assimilator"][0],
                                                            0o644)})
    assert len(scripts.decide(scripts.ScriptFacts(not_executable), SPEC, app)) == 1


# --- versions -----------------------------------------------------------------------------------


def test_version_decisions(tmp_path: Path) -> None:
    linux = fake_bundle(tmp_path)
    app = app_with(linux)
    mark = versions.marker(linux.manifest.digest())
    empty = versions.VersionFacts({}, frozenset())
    assert [str(a) for a in versions.decide(empty, SPEC, app)] == [
        f"add-version pymw 1 {LINUX} (bundle {linux.manifest.digest()})"]
    installed = versions.VersionFacts({(1, LINUX): mark}, frozenset({(1, LINUX)}))
    assert versions.decide(installed, SPEC, app) == []  # unchanged: nothing
    staged_only = versions.VersionFacts({(1, LINUX): mark}, frozenset())
    assert [a.kind for a in versions.decide(staged_only, SPEC, app)] == ["update_versions"]
    # a changed bundle is a new version after the highest the app has, on any platform
    older = versions.VersionFacts({(1, LINUX): "old/launcher1", (4, WINDOWS): "w"},
                                  frozenset({(1, LINUX), (4, WINDOWS), (6, WINDOWS)}))
    assert [a.detail.split()[1] for a in versions.decide(older, SPEC, app)] == ["7"]


def test_two_platforms_one_new_number(tmp_path: Path) -> None:
    app = app_with(fake_bundle(tmp_path), fake_bundle(tmp_path, WINDOWS))
    actions = versions.decide(versions.VersionFacts({}, frozenset({(2, LINUX)})), SPEC, app)
    assert sorted((a.detail.split()[1], a.detail.split()[2]) for a in actions) == [
        ("3", WINDOWS), ("3", LINUX)]


def test_wrong_signing_key_is_refused(tmp_path: Path) -> None:
    app = AppSpec("pymw", "", (fake_bundle(tmp_path),), tmp_path / "key")
    with pytest.raises(ConfigError, match="does not match"):
        versions.decide(versions.VersionFacts({}, frozenset(), key_matches=False), SPEC, app)


def test_update_versions_output_is_read() -> None:
    versions.check_update_output("    App version added successfully; ID=3\n", 1)
    with pytest.raises(Exception, match=r"files .* differ"):
        versions.check_update_output(
            "Error: files apps/a/1/p/x and download/x differ.\nBOINC files are immutable.\n", 1)
    with pytest.raises(Exception, match="no such platform"):
        versions.check_update_output("         no such platform: foo\n", 1)


def test_stage_signs_and_launches(tmp_path: Path) -> None:
    bundle = fake_bundle(tmp_path)
    private, public = signing.generate()
    key = signing.parse_private(private)
    dest = tmp_path / "staged"
    versions.stage(bundle, dest, key, "PEM")
    root = etree.parse(str(dest / "version.xml")).getroot()
    files = root.findall("file")
    assert files[0].findtext("logical_name") == version_xml.LAUNCHER_LOGICAL
    assert files[0].find("main_program") is not None
    assert sum(f.find("main_program") is not None for f in files) == 1
    launcher = dest / files[0].findtext("physical_name")  # type: ignore[operator]
    assert 'exec "./pymw-worker"' in launcher.read_text()
    assert (dest / ".pymw-digest").read_text().strip() == versions.marker(
        bundle.manifest.digest(), "PEM")
    # what its worker understands, for masters (a dot file: update_versions leaves it out)
    assert (dest / ".pymw-features").read_text().split() == bundle.manifest.features
    assert not any(".pymw-features" in (f.findtext("physical_name") or "") for f in files)
    # the task key ships as one more file, left in the project directory, signed like the rest
    named = version_xml.logical_names(root)
    assert (dest / named["pymw_task_key"]).read_bytes() == b"PEM"
    pub = signing.parse_public(public)
    for f in files:
        physical = dest / f.findtext("physical_name")  # type: ignore[operator]
        sig = physical.with_name(physical.name + ".sig").read_text()
        assert signing.verify_digest(signing.md5_hex(physical), sig, pub)
    # the launcher runs the slot's copy of the program, from the slot
    slot = tmp_path / "slot"
    slot.mkdir()
    (slot / "pymw-worker").write_text("#!/bin/sh\necho ran \"$@\"\n")
    out = subprocess.run(["sh", str(launcher), "x"], cwd=slot, capture_output=True, text=True)
    assert out.stdout.strip() == "ran x"


# --- daemons ------------------------------------------------------------------------------------


def test_daemon_decisions() -> None:
    app = app_with()
    wanted = {d.pid_file: d for d in boincxml.app_daemons("pymw")}
    names = frozenset(p.removesuffix(".pid") for p in wanted)
    none = daemons.AppDaemonFacts({}, frozenset())
    assert [a.kind for a in daemons.decide(none, SPEC, app)] == [
        "add-daemon", "add-daemon", "start"]
    assert daemons.decide(daemons.AppDaemonFacts(wanted, names), SPEC, app) == []
    stopped = daemons.AppDaemonFacts(wanted, frozenset(list(names)[:1]))
    assert [a.kind for a in daemons.decide(stopped, SPEC, app)] == ["start"]
    old = dict(wanted)
    first = next(iter(old))
    old[first] = boincxml.Daemon(old[first].cmd + " -d 4", first, old[first].output)
    assert [a.kind for a in daemons.decide(daemons.AppDaemonFacts(old, names), SPEC, app)] == [
        "change-daemon", "start"]


# --- signing ------------------------------------------------------------------------------------


def test_signature_format_and_check(tmp_path: Path) -> None:
    private, public = signing.generate()
    key, pub = signing.parse_private(private), signing.parse_public(public)
    assert signing.matches(key, pub)
    data = tmp_path / "file"
    data.write_bytes(b"hello")
    text = signing.sign_file(data, key)
    lines = text.splitlines()
    assert lines[-1] == "." and all(len(line) == 64 for line in lines[:-1])  # 128 bytes, 32/line
    assert signing.verify_digest(signing.md5_hex(data), text, pub)
    assert not signing.verify_digest("0" * 32, text, pub)
    other = signing.parse_public(signing.generate()[1])
    assert not signing.matches(key, other)
    with pytest.raises(ConfigError):
        signing.parse_private("not a key")
    # the key file round-trips in BOINC's layout: bits, then 32 bytes a line, then "."
    assert private.splitlines()[0] == "1024" and private.rstrip().endswith(".")


# --- XML ----------------------------------------------------------------------------------------


def test_templates() -> None:
    wu = etree.fromstring(boincxml.input_template().encode())
    assert wu.findtext("workunit/file_ref/open_name") == "pymw_task"
    assert wu.find("workunit/file_ref/copy_file") is not None
    result = etree.fromstring(boincxml.output_template().encode())
    assert result.find("file_info/name/OUTFILE_0") is not None
    assert result.find("file_info/url/UPLOAD_URL") is not None
    assert result.findtext("result/file_ref/open_name") == "pymw_result"


def test_config_daemons_edit_is_idempotent() -> None:
    config = ("<boinc><config><host>vm</host></config><daemons><daemon><cmd>feeder -d 3 </cmd>"
              "</daemon></daemons></boinc>")
    wanted = boincxml.app_daemons("pymw")
    once = boincxml.set_daemons(config, wanted)
    assert boincxml.set_daemons(once, wanted) == once
    found = boincxml.configured_daemons(once)
    assert set(found) == {"feeder.pid", *(d.pid_file for d in wanted)}
    assert found["pymw_assimilator_pymw.pid"].cmd == "pymw_assimilator --app pymw"
    assert boincxml.config_value(once, "host") == "vm"


def test_project_xml_edit_is_idempotent() -> None:
    text = "<boinc><platform><name>x</name></platform></boinc>"
    once = boincxml.add_platform(boincxml.add_app(text, "pymw", "PyMW"), LINUX)
    assert boincxml.project_apps(once) == {"pymw": "PyMW"}
    assert boincxml.project_platforms(once) == {"x", LINUX}
    assert boincxml.add_app(once, "pymw", "PyMW") == once
    assert boincxml.add_platform(once, LINUX) == once


def test_plan_view_counts_the_plan_and_shows_step_text_as_is() -> None:
    # init-project and deploy-app share one view; its step count comes from the plan itself
    from rich.console import Console

    from pymw_admin.admin.plan import Context, Step
    from pymw_admin.admin.remote import LocalHost
    from pymw_admin.cli import plan_view

    plan = [Step(f"s{i}", f"step {i} in [/x]", lambda ctx: None, lambda facts, spec: [],
                 lambda ctx, actions: None) for i in range(5)]
    console = Console(record=True, width=200)
    reports = plan_view.run(Context(LocalHost(), SPEC), plan, console, dry_run=False, quiet=False)
    shown = console.export_text()
    assert [r.status for r in reports] == ["already done"] * 5
    assert "[5/5] step 4 in [/x]: already done" in shown
