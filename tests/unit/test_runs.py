"""Runs: the listing's parsing and states, what a run uploads, the server's wheel tags, targets."""

from __future__ import annotations

import io
import json
import subprocess
import tarfile
from pathlib import Path

import pytest

from pymw_admin.admin import runs, target
from pymw_admin.admin.runs import FIELD_SEP, RunInfo, RunPlan, ServerPython
from pymw_admin.errors import ConfigError, UsageError


def _line(*fields: str, meta: str = '{"script": "a.py", "args": []}', reuse: str = "") -> str:
    return FIELD_SEP.join([*fields, reuse, meta])


@pytest.mark.parametrize(
    ("fields", "state"),
    [
        (("1", "100", "1100", "1", "", "1700000000", "", "", "a.py"), "running"),
        (("2", "101", "1101", "0", "0", "1700000000", "1700000005", "", "a.py"), "exited(0)"),
        (("3", "102", "1102", "0", "3", "1700000000", "1700000005", "", "a.py"), "exited(3)"),
        (("4", "103", "1103", "0", "143", "1700000000", "1700000005", "1", "a.py"), "killed"),
        (("5", "104", "1104", "0", "", "1700000000", "", "1", "a.py"), "killed"),
        (("6", "105", "1105", "0", "", "1700000000", "", "", "a.py"), "lost"),
        # pid file not written yet, process not found: nothing to follow
        (("7", "", "", "0", "", "", "", "", "a.py"), "lost"),
    ],
)
def test_states(fields: tuple[str, ...], state: str) -> None:
    [info] = runs.parse_listing(_line(*fields))
    assert info.state == state
    assert info.as_dict()["state"] == state


def test_listing_sorted_numerically_and_junk_skipped() -> None:
    text = "\n".join([
        _line("10", "1", "7", "0", "0", "1", "2", "", "b.py"),
        "garbage line",
        _line("9", "1", "7", "0", "1", "1", "2", "", "a.py"),
        _line("x", "1", "7", "0", "1", "1", "2", "", "a.py"),
    ])
    infos = runs.parse_listing(text)
    assert [i.id for i in infos] == ["9", "10"]
    assert infos[1] == RunInfo("10", "b.py", 7, False, 0, 1.0, 2.0, False, pgid=1, tag="a")


def test_as_json_a_run_has_a_numeric_id_and_its_tag() -> None:
    [info] = runs.parse_listing(_line("12", "100", "1100", "1", "", "1700000000", "", "", "x.py",
                                      meta='{"script": "monte-pi.py", "args": ["-n", "4"]}'))
    data = info.as_dict()
    assert data["id"] == 12 and data["tag"] == "monte_pi"
    assert json.loads(json.dumps(data))["id"] == 12
    assert info.id == "12"  # the run's directory: what logs, attach and stop are given


@pytest.mark.parametrize(
    ("script", "args", "tag"),
    [
        ("monte_pi.py", [], "monte_pi"),
        ("my master.v2.py", ["--tasks", "3"], "my_master_v2"),
        ("__.py", [], "master"),
        ("a.py", ["-a", "tag=run-1"], "run_1"),
        ("a.py", ["-a", "min_quorum=2 tag=r2 keep=yes"], "r2"),
        ("a.py", ["--app-args=tag=x", "-a", "tag=y"], "y"),  # argparse: the last one wins
        ("a.py", ["-atag=z"], "z"),
        ("a.py", ["-a", "min_quorum=2"], "a"),
        ("a.py", ["-n", "4", "-p", "/srv/p", "-a", "tag=t", "rest"], "t"),
        ("a.py", ["-a", "tag="], None),  # the master refuses it
        ("a.py", ["-i", "BOINC", "-a", "tag=t"], "t"),
        ("a.py", ["--", "-a", "tag=theirs"], "a"),  # after --: the script's, not ours
        ("a.py", ["-i", "local", "-a", "tag=t"], None),  # no BOINC, no tag
        ("a.py", ["--interface=mpi"], None),
        ("a.py", ["-a"], None),  # the master refuses its switches: no tag at all
    ],
)
def test_a_runs_tag_is_the_one_its_master_uses(script: str, args: list[str],
                                               tag: str | None) -> None:
    assert runs.boinc_tag(script, args) == tag


def test_the_tag_is_made_as_the_boinc_interface_makes_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from pymw_admin.interfaces import boinc

    for script in ("monte-pi.py", "x.y z.py", "__.py", "ok_1.py"):
        monkeypatch.setattr("sys.argv", [script])
        assert runs.boinc_tag(script, []) == boinc.default_tag()
    options = boinc._parse_app_args("min_quorum=2 tag=a.b-c")
    assert runs.boinc_tag("x.py", ["-a", "min_quorum=2 tag=a.b-c"]) == (
        boinc._TAG_CHARS.sub("_", str(options["tag"])).strip("_"))


@pytest.mark.parametrize("meta", ["", "not json", "[1]", '{"args": "-a tag=x"}',
                                  '{"args": [1]}'])
def test_a_run_whose_arguments_cannot_be_read_has_no_tag(meta: str) -> None:
    [info] = runs.parse_listing(_line("3", "", "", "0", "0", "1", "2", "", "a.py", meta=meta))
    assert info.tag is None and info.as_dict()["tag"] is None


def test_the_listing_reads_a_runs_files(tmp_path: Path) -> None:
    """The shell loop as the server runs it, on a run directory made here."""
    t = target.ProjectTarget(name="p", owner="o", project_dir=str(tmp_path),
                             host=target.HostSpec("h"))
    run = Path(runs.runs_dir(t)) / "4"
    run.mkdir(parents=True)
    # the field separator, a newline, printf's % and \\ in its text: one field all the same
    meta = {"script": "my-master.py", "args": ["-a", "tag=x.y"], "data": ["a\u001f\n%s\\b"]}
    for name, text in {"run.sh": "", "exit": "0\n", "started": "1700000000\n",
                       "ended": "1700000009\n", "script_name": "my-master.py\n",
                       "reuse": "22 2\n", "meta.json": json.dumps(meta, indent=1)}.items():
        (run / name).write_text(text)
    (Path(runs.runs_dir(t)) / "junk").mkdir()  # no run.sh: not a run
    out = subprocess.run(["sh", "-c", runs.listing_command(t)], capture_output=True, text=True,
                         check=True).stdout
    [info] = runs.parse_listing(out)
    assert (info.id, info.script, info.exit_code, info.started, info.tag) == (
        "4", "my-master.py", 0, 1700000000.0, "x_y")
    assert (info.reused, info.computed) == (22, 2)


@pytest.mark.parametrize(("reuse", "counts"), [("22 2", (22, 2)), ("", (None, None)),
                                               ("x 2", (None, None)), ("1 2 3", (None, None))])
def test_a_resumed_run_shows_its_reused_and_new_results(
        reuse: str, counts: tuple[int | None, int | None]) -> None:
    [info] = runs.parse_listing(_line("5", "", "", "0", "0", "1", "2", "", "a.py", reuse=reuse))
    assert (info.reused, info.computed) == counts
    assert (info.as_dict()["reused"], info.as_dict()["computed"]) == counts


@pytest.mark.parametrize("bad", ["", "0", "01", "-1", "1a", "../1"])
def test_bad_run_ids(bad: str) -> None:
    with pytest.raises(UsageError):
        runs.check_run_id(bad)


def test_listing_command_quotes_the_id() -> None:
    t = target.ProjectTarget(name="p", owner="o", project_dir="/home/o/projects/p",
                             host=target.HostSpec("h"))
    assert "for d in 12;" in runs.listing_command(t, "12")
    assert "for d in *;" in runs.listing_command(t)


def _tree(tmp_path: Path) -> Path:
    (tmp_path / "helper.py").write_text("import json\nimport deeper\n")
    (tmp_path / "deeper.py").write_text("X = 1\n")
    (tmp_path / "unused.py").write_text("")
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("from . import sub\n")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "m.py").write_text("")
    (pkg / "__pycache__").mkdir()
    (pkg / "__pycache__" / "x.py").write_text("")
    script = tmp_path / "master.py"
    script.write_text("import os, helper\nfrom pkg.sub import m\nfrom pymw_admin.runtime import "
                      "Master\ntry:\n    import missing_thing\nexcept ImportError:\n    pass\n")
    return script


def test_local_modules_follow_imports(tmp_path: Path) -> None:
    script = _tree(tmp_path)
    assert [str(p) for p in runs.local_modules(script)] == [
        "deeper.py", "helper.py", "pkg/__init__.py", "pkg/sub/__init__.py", "pkg/sub/m.py"]


def test_a_script_with_a_syntax_error_is_one_line(tmp_path: Path) -> None:
    script = tmp_path / "bad.py"
    script.write_text("def (:\n")
    with pytest.raises(UsageError, match="not valid Python"):
        runs.local_modules(script)


def test_data_placement(tmp_path: Path) -> None:
    script = _tree(tmp_path)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "t.csv").write_text("1\n")
    outside = tmp_path.parent / f"{tmp_path.name}-outside.txt"
    outside.write_text("x")
    placed = runs.data_placement(script, [tmp_path / "data" / "t.csv", outside])
    assert [name for _, name in placed] == ["data/t.csv", outside.name]
    with pytest.raises(UsageError, match="no such data file"):
        runs.data_placement(script, [tmp_path / "nope.csv"])


def test_missing_script_is_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no such script"):
        RunPlan.make(tmp_path / "nope.py")


def test_tarball_holds_everything_a_run_needs(tmp_path: Path) -> None:
    script = _tree(tmp_path)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "t.csv").write_text("1\n")
    plan = RunPlan.make(script, ["--tasks", "3", "it's"], [tmp_path / "data"])
    blob = plan.tarball("/home/o/.pymw-admin/venv/bin/python", "/home/o/projects/p")
    with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
        names = set(tar.getnames())
        wrapper = tar.extractfile("run.sh").read().decode()  # type: ignore[union-attr]
        mode = tar.getmember("run.sh").mode
    assert {"master.py", "helper.py", "deeper.py", "pkg/sub/m.py", "data/t.csv", "run.sh",
            "meta.json", "script_name"} <= names
    assert "unused.py" not in names
    assert mode & 0o100
    assert "-u -m pymw_admin.runtime.script_runner master.py --tasks 3 'it'\"'\"'s'" in wrapper
    assert "PYMW_INTERFACE=boinc PYMW_PROJECT_HOME=/home/o/projects/p" in wrapper
    assert "echo $$ > pid.tmp" in wrapper and "trap" in wrapper


def test_server_python_tags() -> None:
    sp = ServerPython.parse("3 11 x86_64 glibc 2.36\n")
    assert sp.tag == "cp311-x86_64-glibc2.36"
    args = sp.pip_platform_args()
    platforms = [args[i + 1] for i, a in enumerate(args) if a == "--platform"]
    assert platforms[:2] == ["linux_x86_64", "manylinux_2_36_x86_64"]
    assert "manylinux_2_17_x86_64" in platforms and "manylinux2014_x86_64" in platforms
    assert "--python-version" in args and args[args.index("--python-version") + 1] == "3.11"
    musl = ServerPython.parse("3 12 aarch64")
    assert musl.pip_platform_args().count("--platform") == 1
    with pytest.raises(Exception, match="Python version"):
        ServerPython.parse("Python not found")


def test_source_hash_changes_with_sources(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("x")
    (tmp_path / "pymw_admin").mkdir()
    (tmp_path / "pymw_admin" / "a.py").write_text("1")
    first = runs.source_hash(tmp_path)
    (tmp_path / "pymw_admin" / "__pycache__").mkdir()
    (tmp_path / "pymw_admin" / "__pycache__" / "a.pyc").write_text("junk")
    assert runs.source_hash(tmp_path) == first
    (tmp_path / "pymw_admin" / "a.py").write_text("2")
    assert runs.source_hash(tmp_path) != first


def test_target_from_flags_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    t = target.resolve(host="10.0.0.5", name="proj", user="admin")
    assert (t.host.host, t.host.user, t.owner) == ("10.0.0.5", "admin", "boincadm")
    assert t.project_dir == "/home/boincadm/projects/proj"
    assert t.db_client_cnf == "/etc/pymw-admin/proj/client.cnf"
    with pytest.raises(ConfigError, match="init-project"):
        target.resolve()
    with pytest.raises(UsageError, match="invalid project name"):
        target.resolve(host="h", name="Bad-Name")


def test_target_from_project_file_with_overrides(tmp_path: Path) -> None:
    from pymw_admin.admin import config
    from pymw_admin.admin.remote import HostSpec
    from pymw_admin.admin.server.spec import ProjectSpec

    spec = ProjectSpec(name="proj", url_base="http://h/", host_name="h", owner="adm",
                       project_dir="/srv/proj")
    path = config.save(config.ProjectFile.from_specs(HostSpec("h", "me", 2222), spec),
                       tmp_path / "p.toml")
    t = target.resolve(path)
    assert (t.host.host, t.host.user, t.host.port, t.owner, t.project_dir) == (
        "h", "me", 2222, "adm", "/srv/proj")
    t2 = target.resolve(path, host="other", user="root")
    assert (t2.host.host, t2.host.user, t2.project_dir) == ("other", "root", "/srv/proj")
    t3 = target.resolve(path, name="second")
    assert t3.project_dir == "/home/adm/projects/second"


def test_requirements_read_from_the_wheel(tmp_path: Path) -> None:
    import zipfile

    wheel = tmp_path / "pymw_admin-0.1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("pymw_admin-0.1.0.dist-info/METADATA",
                         "Name: pymw-admin\nRequires-Dist: lxml>=5\nRequires-Dist: cloudpickle>=3.0"
                         "\nRequires-Dist: mpi4py>=4.0; extra == 'mpi'\n")
    assert runs.venv._requirements(wheel) == ["cloudpickle>=3.0", "lxml>=5"]


def test_runs_use_the_one_system_path() -> None:
    # BOINC's tools and the run script need the same plain PATH: one definition, not two copies
    from pymw_admin.admin import runs
    from pymw_admin.admin.server import project

    assert runs.upload.SYSTEM_PATH is project.SYSTEM_PATH


def test_dropping_a_tag_reads_what_was_cancelled_and_what_was_kept() -> None:
    from pymw_admin.errors import RemoteError
    from tests.doubles import RecordingHost

    t = target.ProjectTarget(name="p", owner="o", project_dir="/home/o/projects/p",
                             host=target.HostSpec("h"))
    host = RecordingHost([("interfaces.boinc drop", "pymw: a note\n@dropped 3 2\n")])
    assert runs.drop_tag(host, t, "my_tag", "/v/bin/python") == (3, 2)
    assert "-m pymw_admin.interfaces.boinc drop /home/o/projects/p my_tag" in host.commands[-1]
    with pytest.raises(RemoteError, match="did not say"):
        runs.drop_tag(RecordingHost([("drop", "@dropped three\n")]), t, "my_tag", "python")
    with pytest.raises(UsageError, match="invalid tag"):
        runs.drop_tag(host, t, "a;b", "python")
