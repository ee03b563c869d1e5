"""Every init-project and deploy-app step as a spec: facts in -> commands out, and no command
when the facts say the host has converged.

The step decides from the facts (``decide``) and applies its actions to a RecordingHost, which
runs nothing and records what would run; each expected command is matched by its start, in
order. Gathering facts from canned command output is shown by the last specs.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest

from pymw_admin.admin import boincxml
from pymw_admin.admin.apps import daemons as app_daemons
from pymw_admin.admin.apps import register, scripts, task_key, versions
from pymw_admin.admin.apps.spec import AppSpec
from pymw_admin.admin.plan import Context, run_plan
from pymw_admin.admin.server import (
    apache,
    boinc_build,
    cron,
    daemons,
    database,
    ops_password,
    os_check,
    owner,
    packages,
    project,
)
from pymw_admin.admin.server.spec import ProjectSpec
from pymw_admin.bundles import manifest as mf
from pymw_admin.cli import plan_view
from pymw_admin.errors import ConfigError, UsageError
from tests.doubles import RecordingHost, task_key_pair

SPEC = ProjectSpec("sandbox", url_base="http://10.0.0.5", host_name="vm",
                   boinc_source="/srv/boinc")
HOME = "/home/boincadm"
PROJECT = f"{HOME}/projects/sandbox"
SECRETS = "/etc/pymw-admin/sandbox"
DEBIAN12 = {"ID": "debian", "VERSION_ID": "12", "PRETTY_NAME": "Debian GNU/Linux 12 (bookworm)"}
LINUX = "x86_64-pc-linux-gnu"
AS_OWNER = "sudo -n -H -u boincadm -- sh -c "
# canned output every spec may need: stored secrets read back, a project directory not yet there
REPLIES = [(r"cat -- \S*_password$", "s3cret\n"), (rf"^test -e {PROJECT}$", (1, ""))]
# root reads and writes first check that only root can write the directories (remote.py)
_ROOT_GUARD = re.compile(r"^d=\$\(dirname -- .*?; done && (?:\{ (.*) \}|(.*))$", re.S)
_READ = re.compile(r"^if \[ -e (\S+) \] && .*?; fi; timeout \d+ cat -- \S+$", re.S)


def plain(command: str) -> str:
    """A recorded command as the spec states it: ``cat PATH`` for a read, without root's guard."""
    guarded = _ROOT_GUARD.match(command)
    if guarded:
        command = guarded.group(1) or guarded.group(2)
    if command.startswith(AS_OWNER):
        inner = shlex.split(command[len(AS_OWNER):])[0]
        read = _READ.match(inner)
        return AS_OWNER + shlex.quote(f"cat {read.group(1)}" if read else inner)
    read = _READ.match(command)
    return f"cat {read.group(1)}" if read else command


def apply_from(module: Any, facts: Any, spec: ProjectSpec = SPEC,
               **app: Any) -> tuple[list[str], list[str]]:
    host = RecordingHost(REPLIES)
    actions = module.decide(facts, spec, **app)
    if actions:  # as run_plan: a converged step is never applied
        module.apply(Context(host, spec), actions, **app)
    return [a.kind for a in actions], host.commands


def assert_commands(commands: list[str], expected: list[str]) -> None:
    assert len(commands) == len(expected), "\n".join(commands)
    for command, start in zip(map(plain, commands), expected, strict=True):
        assert command.startswith(start), f"{command!r} does not start with {start!r}"


# --- init-project --------------------------------------------------------------------------------

INIT_SPECS = [
    pytest.param(os_check, os_check.OSFacts(DEBIAN12), ["claim"], [
        f"install -d -m 700 -o root -g root {SECRETS}",
        f"f=$(mktemp {SECRETS}/project.XXXXXX)",
    ], id="os_check"),
    pytest.param(packages, packages.PackageFacts(frozenset()), ["install"], [
        "env DEBIAN_FRONTEND=noninteractive apt-get update",
        "env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends git ",
    ], id="packages"),
    pytest.param(owner, owner.OwnerFacts(False, False, None),
                 ["create-user", "add-to-group", "chmod-home"], [
        "if getent group boincadm >/dev/null; then g='-g boincadm'; else g=; fi; "
        f"useradd -m -d {HOME} -s /bin/bash $g boincadm",
        "usermod -a -G boincadm www-data",
        f"chmod g+x {HOME}",
    ], id="owner"),
    pytest.param(database, database.DatabaseFacts(False, False, False, False),
                 ["start", "generate-password", "create-database", "create-user"], [
        "test -e /run/systemd/system",
        "systemctl enable --now mariadb",
        f"install -d -m 700 {SECRETS}",
        f"f=$(mktemp {SECRETS}/db_password.XXXXXX)",
        f"f=$(mktemp {SECRETS}/client.cnf.XXXXXX)",
        "mysql -N -B",  # CREATE DATABASE, on stdin
        f"cat {SECRETS}/db_password",
        "mysql -N -B",  # CREATE USER with the password, on stdin: never in argv
    ], id="database"),
    pytest.param(boinc_build, boinc_build.BuildFacts(True, False, False),
                 ["autosetup", "configure", "build"], [
        "cd /srv/boinc && flock .pymw-admin-build.lock sh -c './_autosetup",
        "cd /srv/boinc && flock .pymw-admin-build.lock sh -c './configure --disable-client "
        "--disable-manager --enable-server",
        "cd /srv/boinc && flock .pymw-admin-build.lock sh -c 'make -C lib",
    ], id="boinc_build"),
    pytest.param(apache, apache.ApacheFacts(True, None, False, frozenset(), restart_needed=True),
                 ["write-site", "enable-modules", "enable-site", "restart"], [
        "f=$(mktemp /etc/apache2/sites-available/pymw-sandbox.conf.XXXXXX)",
        "a2enmod -q cgi",
        "a2enmod -q $(cd /etc/apache2/mods-available && ls php*.load",
        "a2ensite -q pymw-sandbox",
        "apache2ctl configtest",
        "test -e /run/systemd/system",
        "systemctl restart apache2",
    ], id="apache"),
    pytest.param(apache, apache.ApacheFacts(True, None, True,
                                            frozenset({"cgi", "php8.2"})), ["write-site", "reload"],
                 ["f=$(mktemp /etc/apache2/sites-available/pymw-sandbox.conf.XXXXXX)",
                  "apache2ctl configtest", "test -e /run/systemd/system",
                  "systemctl reload apache2"], id="apache-site-changed"),
    pytest.param(ops_password, ops_password.OpsFacts(False, False),
                 ["generate-password", "set-htpasswd"], [
        f"install -d -m 700 {SECRETS}",
        f"f=$(mktemp {SECRETS}/ops_password.XXXXXX)",
        f"cat {SECRETS}/ops_password",
        AS_OWNER + f"'f=$(mktemp {PROJECT}/html/ops/.htpasswd.XXXXXX)",
    ], id="ops_password"),
    pytest.param(cron, cron.CronFacts(False, ""), ["install-crontab", "start"], [
        "crontab -l -u boincadm",
        "crontab -u boincadm -",
        "test -e /run/systemd/system",
        "systemctl enable --now cron",
    ], id="cron"),
    pytest.param(daemons, daemons.DaemonFacts(("feeder",), frozenset(), "", disabled=True),
                 ["start"], [AS_OWNER + f"'cd {PROJECT} && PATH="], id="daemons"),
]


@pytest.mark.parametrize(("module", "facts", "kinds", "commands"), INIT_SPECS)
def test_init_project_step(module: Any, facts: Any, kinds: list[str],
                           commands: list[str]) -> None:
    decided, ran = apply_from(module, facts)
    assert decided == kinds
    assert_commands(ran, commands)


GIT = "https://example.org/boinc.git"
BRANCH_SPEC = ProjectSpec("sandbox", url_base="http://10.0.0.5", host_name="vm",
                          boinc_source=f"{GIT}@master")
COMMIT = "0123456789abcdef0123456789abcdef01234567"
TREE = "/opt/pymw-admin/boinc/master"


@pytest.mark.parametrize(("source", "fetch"), [
    # a branch (or tag): cloned, every URL and path after --, the commit checked out recorded
    (f"{GIT}@master",
     f"git clone -q --depth 1 --branch master -- {GIT} {TREE}.partial && "
     f"git -C {TREE}.partial rev-parse --verify -q 'HEAD^{{commit}}' > "
     f"{TREE}.partial/.pymw-admin-commit"),
    ("git://10.0.0.9/boinc#server_release/1.6/1.6.2",
     "git clone -q --depth 1 --branch server_release/1.6/1.6.2 -- git://10.0.0.9/boinc "
     "/opt/pymw-admin/boinc/server_release_1.6_1.6.2.partial && "),
    (f"{GIT}@{COMMIT}",
     f"git init -q -- /opt/pymw-admin/boinc/{COMMIT}.partial && git -C "
     f"/opt/pymw-admin/boinc/{COMMIT}.partial fetch -q --depth 1 -- {GIT} {COMMIT} && "),
])
def test_a_git_source_is_fetched_by_data_git_cannot_read_as_options(source: str,
                                                                   fetch: str) -> None:
    spec = ProjectSpec("sandbox", url_base="http://10.0.0.5", host_name="vm",
                       boinc_source=source)
    tree = boinc_build.tree_dir(boinc_build.parse_source(source))
    decided, ran = apply_from(boinc_build, boinc_build.BuildFacts(False), spec)
    assert decided == ["fetch", "autosetup", "configure", "build"]
    assert_commands(ran[:4], ["install -d -m 755 /opt/pymw-admin/boinc",
                              f"rm -rf {tree}.partial", fetch, f"mv {tree}.partial {tree}"])
    assert ran[2].endswith(f"> {tree}.partial/.pymw-admin-commit")


@pytest.mark.parametrize("source", [
    "--upload-pack=touch /tmp/x;.git@master", "-u.git@x", "--config=x#main",
    f"{GIT}@--upload-pack=x", f"{GIT}#-b", f"{GIT}@a b",
])
def test_a_source_or_ref_git_would_read_as_an_option_is_refused(source: str) -> None:
    with pytest.raises(UsageError, match="starts with '-'"):
        boinc_build.parse_source(source)


def test_the_commit_a_branch_was_built_at_is_in_the_report_on_every_run() -> None:
    built = "exists\nconfigure\nconfigured\n"  # nothing missing: a built tree
    host = RecordingHost([(r"^cd /opt/pymw-admin/boinc/master ", built + f"commit {COMMIT}\n")])
    [report] = run_plan(Context(host, BRANCH_SPEC), [boinc_build.STEP])
    assert report.status == "already done"
    assert report.notes == [f"BOINC source at commit {COMMIT} (pin it: --boinc-source "
                            f"{GIT}@{COMMIT})"]
    assert report.as_dict()["notes"] == report.notes
    assert f"already done — BOINC source at commit {COMMIT}" in plan_view.report_line(0, 1, report)
    pinned = ProjectSpec("sandbox", url_base="http://10.0.0.5", host_name="vm",
                         boinc_source=f"{GIT}@{COMMIT}")
    host = RecordingHost([(rf"^cd /opt/pymw-admin/boinc/{COMMIT} ", built + f"commit {COMMIT}\n")])
    [report] = run_plan(Context(host, pinned), [boinc_build.STEP])
    assert report.notes == [f"BOINC source at commit {COMMIT}"]
    # a tree made before commits were recorded, or a directory source: nothing to say
    host = RecordingHost([(r"^cd /opt/pymw-admin/boinc/master ", built)])
    assert run_plan(Context(host, BRANCH_SPEC), [boinc_build.STEP])[0].notes == []


CONVERGED = [
    pytest.param(os_check, os_check.OSFacts(DEBIAN12, marker=True), id="os_check"),
    pytest.param(packages, packages.PackageFacts(frozenset(packages.server_packages())),
                 id="packages"),
    pytest.param(owner, owner.OwnerFacts(True, True, 0o750, "boincadm:boincadm", "boincadm"),
                 id="owner"),
    pytest.param(database, database.DatabaseFacts(True, True, True, True), id="database"),
    pytest.param(boinc_build, boinc_build.BuildFacts(True, True, True, ()), id="boinc_build"),
    pytest.param(project, project.ProjectFacts(True, 60, True, True, True), id="project"),
    pytest.param(apache, apache.ApacheFacts(True, apache.site_config(SPEC), True,
                                            frozenset({"cgi", "php8.2"})), id="apache"),
    pytest.param(ops_password, ops_password.OpsFacts(True, True), id="ops_password"),
    pytest.param(cron, cron.CronFacts(True, cron.cron_line(SPEC) + "\n"), id="cron"),
    pytest.param(daemons, daemons.DaemonFacts(("feeder",), frozenset({"feeder"}), "vm"),
                 id="daemons"),
]


@pytest.mark.parametrize(("module", "facts"), CONVERGED)
def test_init_project_step_converged_runs_nothing(module: Any, facts: Any) -> None:
    decided, ran = apply_from(module, facts)
    assert decided == []
    assert ran == []


# --- deploy-app ----------------------------------------------------------------------------------


def bundle(tmp_path: Path) -> mf.Bundle:
    root = tmp_path / LINUX
    (root / "bundle").mkdir(parents=True)
    (root / "bundle" / "pymw-worker").write_bytes(b"#!/bin/sh\n")
    (root / "bundle" / "pymw-worker").chmod(0o755)
    manifest = mf.Manifest(platform=LINUX, python="3.11", python_full="3.11.7",
                           main_program="pymw-worker", files=mf.scan(root / "bundle"))
    mf.write(manifest, root)
    return mf.Bundle(root, manifest)


def test_deploy_register(tmp_path: Path) -> None:
    app = AppSpec("pymw", "", (bundle(tmp_path),))
    nothing = register.RegisterFacts({}, frozenset(), None, frozenset({LINUX}))
    decided, ran = apply_from(register, nothing, app=app)
    assert decided == ["list-app", "xadd"]
    # the project's files are the owner's: read and written as the owner
    assert_commands(ran, [AS_OWNER + f"'cat {PROJECT}/project.xml'",
                          AS_OWNER + f"'f=$(mktemp {PROJECT}/project.xml.", AS_OWNER, AS_OWNER])
    assert ran[2].endswith("bin/xadd'") and ran[3].endswith("touch reread_db'")
    done = register.RegisterFacts({"pymw": app.friendly_name}, frozenset(), app.friendly_name,
                                  frozenset({LINUX}))
    assert apply_from(register, done, app=app) == ([], [])


def test_deploy_files() -> None:
    app = AppSpec("pymw")
    decided, ran = apply_from(scripts, scripts.ScriptFacts({}), app=app)
    wanted = scripts.wanted_files(app)
    assert decided == ["install"] * len(wanted)
    assert len(ran) == len(wanted)
    for command, file in zip(ran, wanted, strict=True):
        assert command.startswith(AS_OWNER + f"'f=$(mktemp {PROJECT}/{file.rel}.XXXXXX)")
        assert f'chmod {file.mode:o} "$f"' in command
    same = {w.rel: (scripts.sha256(w.content), w.mode) for w in wanted}
    assert apply_from(scripts, scripts.ScriptFacts(same), app=app) == ([], [])


def test_deploy_versions(tmp_path: Path) -> None:
    app = AppSpec("pymw", "", (bundle(tmp_path),))
    digest = app.digests()[LINUX]
    public = task_key_pair()[1].decode()
    host = RecordingHost([(r"update_versions", versions.ADDED + "\n"),
                          (r"pymw_task_public\.pem", public)])
    actions = versions.decide(versions.VersionFacts({}, frozenset()), SPEC, app)
    assert [str(a) for a in actions] == [f"add-version pymw 1 {LINUX} (bundle {digest})"]
    versions.apply(Context(host, SPEC), actions, app)
    # the task key is read as the owner; the staged versions go up as one tar the owner
    # unpacks; root never writes the project
    assert_commands(host.commands, [AS_OWNER, "put /tmp/pymw-deploy-",
                                    "chmod 644 /tmp/pymw-deploy-", AS_OWNER,
                                    "rm -f /tmp/pymw-deploy-", AS_OWNER])
    assert "keys/pymw_task_public.pem" in host.commands[0]
    assert "bin/update_versions" in host.commands[5]
    there = versions.VersionFacts({(1, LINUX): versions.marker(digest, public)},
                                  frozenset({(1, LINUX)}), task_key=public)
    assert apply_from(versions, there, app=app) == ([], [])
    # another key, the same bundle: a new version, which ships the new key
    other = versions.VersionFacts(there.dirs, there.db, task_key=public + "\n")
    assert [a.kind for a in versions.decide(other, SPEC, app)] == ["add-version"]


def test_deploy_task_key() -> None:
    app = AppSpec("pymw")
    facts = task_key.TaskKeyFacts
    kinds, commands = apply_from(task_key, facts("missing", False), app=app)
    assert kinds == ["make-task-key"]
    # made here, written by the owner through stdin: public first, then private 0600
    assert_commands(commands, [AS_OWNER, AS_OWNER + f"'f=$(mktemp {PROJECT}/keys/pymw_task_pu",
                               AS_OWNER + f"'f=$(mktemp {PROJECT}/keys/pymw_task_pr"])
    assert "chmod 600" in commands[2] and "BEGIN" not in commands[2]
    assert apply_from(task_key, facts("644", True), app=app)[0] == ["chmod-task-key"]
    assert apply_from(task_key, facts("600", True), app=app) == ([], [])
    with pytest.raises(ConfigError, match="not a regular file"):
        task_key.decide(facts("not a file", True), SPEC, app)
    with pytest.raises(ConfigError, match=r"pymw_task_public\.pem is missing"):
        task_key.decide(facts("600", False), SPEC, app)


def test_deploy_daemons() -> None:
    app = AppSpec("pymw")
    daemons_wanted = boincxml.app_daemons(app.name)
    wanted = {d.pid_file: d for d in daemons_wanted}
    pid_files = [d.pid_file for d in daemons_wanted]
    config = "<boinc><config><host>vm</host></config><daemons/></boinc>\n"
    host = RecordingHost([(rf"cat -- {PROJECT}/config.xml'?$", config),
                          (r"pid_vm", "\n".join(pid_files) + "\n")])
    missing = app_daemons.AppDaemonFacts({}, frozenset())
    actions = app_daemons.decide(missing, SPEC, app)
    assert [a.kind for a in actions] == ["add-daemon"] * len(daemons_wanted) + ["start"]
    app_daemons.apply(Context(host, SPEC), actions, app)
    assert_commands(host.commands, [
        AS_OWNER + f"'cat {PROJECT}/config.xml'",
        AS_OWNER + f"'f=$(mktemp {PROJECT}/config.xml.XXXXXX)",
        AS_OWNER + f"'cat {PROJECT}/config.xml'",
        AS_OWNER,  # bin/start
        AS_OWNER + f"'cat {PROJECT}/config.xml'",
        "sudo -n -H -u boincadm -- sh -c 'test -e",  # which daemons run now
    ])
    assert host.commands[3].endswith("bin/start'")
    assert all(d.cmd.split()[0] in host.stdins[1].decode() for d in daemons_wanted)
    running = frozenset(p.removesuffix(".pid") for p in wanted)
    converged = app_daemons.AppDaemonFacts(wanted, running)
    assert apply_from(app_daemons, converged, app=app) == ([], [])


# --- facts from canned output: a plan over a converged host changes nothing --------------------


def test_owner_and_apache_read_their_facts_and_run_nothing_when_converged() -> None:
    site = apache.site_config(SPEC)
    host = RecordingHost([
        (r"^id -u boincadm", "exists\n@@\nboincadm\n@@\nwww-data boincadm\n@@\n750 "
                             "boincadm:boincadm\n"),
        (r"^ls /etc/apache2/mods-enabled", "cgi.load php8.2.load\n"),
        (r"cat -- /etc/apache2/sites-available/pymw-sandbox.conf", site),
        (r"^getent group boincadm", "1004\n@@\nGroups:\t33 1004\n"),
    ])
    reports = run_plan(Context(host, SPEC), [owner.STEP, apache.STEP])
    assert [r.status for r in reports] == ["already done", "already done"]
    assert not [c for c in host.commands if c.startswith(("useradd", "usermod", "a2en",
                                                          "systemctl restart", "systemctl rel"))]


def test_apache_restarts_when_its_workers_lack_the_owner_group() -> None:
    """A fact, not a note from the owner step: a re-run after a failure in between still
    restarts Apache."""
    host = RecordingHost([
        (r"^ls /etc/apache2/mods-enabled", "cgi.load php8.2.load\n"),
        (r"cat -- /etc/apache2/sites-available/pymw-sandbox.conf", apache.site_config(SPEC)),
        (r"^getent group boincadm", "1004\n@@\nGroups:\t33\n"),
    ])
    facts = apache.gather(Context(host, SPEC))
    assert facts.restart_needed
    assert [a.kind for a in apache.decide(facts, SPEC)] == ["restart"]

