"""Each provisioning step's decision, from tables of facts: facts + wanted spec -> exact actions.

An empty list means "converged": that is what makes re-runs and --dry-run honest.
"""

from __future__ import annotations

import pytest

from pymw_admin.admin import boincxml
from pymw_admin.admin.plan import Action
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
from pymw_admin.errors import UsageError

SPEC = ProjectSpec("sandbox", url_base="http://10.0.0.5", host_name="vm",
                   boinc_source="/srv/boinc")
DEBIAN12 = {"ID": "debian", "VERSION_ID": "12", "PRETTY_NAME": "Debian GNU/Linux 12 (bookworm)"}


def kinds(actions: list[Action]) -> list[str]:
    return [a.kind for a in actions]


@pytest.mark.parametrize(("facts", "expected"), [
    (os_check.OSFacts(DEBIAN12, marker=True), []),
    (os_check.OSFacts(DEBIAN12), ["claim"]),
    (os_check.OSFacts({"ID": "debian", "VERSION_ID": "13"}, marker=True), []),
    (os_check.OSFacts({"ID": "ubuntu", "ID_LIKE": "debian", "VERSION_ID": "24.04"}), ["claim"]),
    (os_check.OSFacts({"ID": "linuxmint", "ID_LIKE": "ubuntu debian", "VERSION_ID": "21"}),
     ["claim"]),
    (os_check.OSFacts(DEBIAN12, marker=True, project_dir=True, database_dir=True), []),
    (os_check.OSFacts(DEBIAN12, marker=True, marker_project_dir=SPEC.project_dir,
                      project_dir=True), []),
])
def test_preflight_decides(facts: os_check.OSFacts, expected: list[str]) -> None:
    assert kinds(os_check.decide(facts, SPEC)) == expected


@pytest.mark.parametrize(("facts", "message"), [
    (os_check.OSFacts({"ID": "fedora", "VERSION_ID": "40", "PRETTY_NAME": "Fedora Linux 40"}),
     "unsupported OS: Fedora Linux 40"),
    (os_check.OSFacts({"ID": "debian", "VERSION_ID": "11", "PRETTY_NAME": "Debian 11"}),
     "unsupported OS: Debian 11"),
    (os_check.OSFacts({"ID": "ubuntu", "VERSION_ID": "20.04"}), "ubuntu 22.04 or newer"),
    (os_check.OSFacts({}), "unsupported OS: an unknown OS"),
    (os_check.OSFacts(DEBIAN12, has_apt=False), "no apt-get"),
    (os_check.OSFacts(DEBIAN12, project_dir=True), "was not made by pymw-admin"),
    (os_check.OSFacts(DEBIAN12, database_dir=True), "database named sandbox exists"),
    (os_check.OSFacts(DEBIAN12, source_dir=False), "no BOINC source directory /srv/boinc"),
    # the marker is keyed by the name only: it vouches for the directory it records, no other
    (os_check.OSFacts(DEBIAN12, marker=True, marker_project_dir="/srv/other", project_dir=True),
     "was made in /srv/other .owner boincadm., not in /home/boincadm/projects/sandbox"),
    # the hint names the owner with the directory: the directory alone plans the wrong owner
    (os_check.OSFacts(DEBIAN12, marker=True, marker_project_dir="/home/x/projects/sandbox",
                      marker_owner="x"), "pass --owner x --project-dir /home/x/projects/sandbox"),
])
def test_preflight_refuses(facts: os_check.OSFacts, message: str) -> None:
    with pytest.raises(UsageError, match=message) as info:
        os_check.decide(facts, SPEC)
    assert "\n" not in str(info.value)


def test_marker_parsing() -> None:
    text = "name = 'sandbox'\nowner = 'boincadm'\nproject_dir = '/srv/p x'\n"
    assert os_check.parse_marker(text)["project_dir"] == "/srv/p x"
    assert os_check.parse_marker("garbage\nproject_dir = not quoted\n") == {}


def test_os_release_parsing() -> None:
    text = 'NAME="Debian GNU/Linux"\nVERSION_ID="12"\nID=debian\n# comment\n'
    assert os_check.parse_os_release(text) == {"NAME": "Debian GNU/Linux", "VERSION_ID": "12",
                                               "ID": "debian"}


ALL = frozenset(packages.server_packages())


@pytest.mark.parametrize(("installed", "expected"), [
    (ALL, []),
    (ALL - {"apache2"}, [Action("install", "apache2")]),
    (ALL - {"cron", "git"}, [Action("install", "git cron")]),
    (frozenset(), [Action("install", " ".join(packages.server_packages()))]),
])
def test_packages(installed: frozenset[str], expected: list[Action]) -> None:
    assert packages.decide(packages.PackageFacts(installed), SPEC) == expected


@pytest.mark.parametrize(("facts", "expected"), [
    (owner.OwnerFacts(True, True, 0o750, "boincadm:boincadm", "boincadm"), []),
    (owner.OwnerFacts(False, False, None), ["create-user", "add-to-group", "chmod-home"]),
    (owner.OwnerFacts(True, False, 0o755, "boincadm:boincadm", "boincadm"), ["add-to-group"]),
    (owner.OwnerFacts(True, True, 0o700, "boincadm:boincadm", "boincadm"), ["chmod-home"]),
    # a home root made before the account: useradd keeps it as it is, so it is given back
    (owner.OwnerFacts(False, True, 0o755, "root:root"), ["create-user", "chown-home"]),
    (owner.OwnerFacts(True, True, 0o755, "root:root", "boincadm"), ["chown-home"]),
    (owner.OwnerFacts(True, True, 0o750, "boincadm:root", "boincadm"), ["chown-home"]),
    (owner.OwnerFacts(True, True, 0o750, "boincadm:staff", "staff"), []),
    # the account without a home (removed, or made without -m)
    (owner.OwnerFacts(True, True, None, "", "boincadm"), ["create-home"]),
])
def test_owner(facts: owner.OwnerFacts, expected: list[str]) -> None:
    assert kinds(owner.decide(facts, SPEC)) == expected


def test_owner_plan_says_whose_home_it_was() -> None:
    actions = owner.decide(owner.OwnerFacts(True, True, 0o755, "root:root", "boincadm"), SPEC)
    assert [str(a) for a in actions] == [
        "chown-home boincadm:boincadm /home/boincadm (owned by root:root)"]


@pytest.mark.parametrize(("facts", "expected"), [
    (database.DatabaseFacts(True, True, True, True), []),
    (database.DatabaseFacts(False, False, False, False),
     ["start", "generate-password", "create-database", "create-user"]),
    (database.DatabaseFacts(True, True, True, False), ["create-user"]),
    (database.DatabaseFacts(True, True, False, False), ["create-database", "create-user"]),
    (database.DatabaseFacts(False, True, False, False), ["start", "create-database",
                                                          "create-user"]),
])
def test_database(facts: database.DatabaseFacts, expected: list[str]) -> None:
    assert kinds(database.decide(facts, SPEC)) == expected


def test_database_commands_keep_the_password_out_of_argv() -> None:
    assert "password" not in database.user_mysql(SPEC).replace("defaults-extra-file", "")
    assert database.user_mysql(SPEC).startswith("mysql --defaults-extra-file=/etc/pymw-admin/")


@pytest.mark.parametrize(("text", "kind", "tree"), [
    ("https://github.com/BOINC/boinc.git@server_release/1.6/1.6.2", "git",
     "/opt/pymw-admin/boinc/server_release_1.6_1.6.2"),
    ("https://example.org/boinc#v1", "git", "/opt/pymw-admin/boinc/v1"),
    ("/srv/boinc/", "dir", "/srv/boinc"),
    ("boinc-server-1.6.2.tar.gz", "tarball", "/opt/pymw-admin/boinc/boinc-server-1.6.2"),
    ("https://example.org/b.tgz", "tarball", "/opt/pymw-admin/boinc/b"),
])
def test_boinc_sources(text: str, kind: str, tree: str) -> None:
    source = boinc_build.parse_source(text)
    assert source.kind == kind
    assert boinc_build.tree_dir(source) == tree


def test_boinc_source_garbage_is_one_line() -> None:
    with pytest.raises(UsageError, match="cannot tell what --boinc-source"):
        boinc_build.parse_source("boinc please")


@pytest.mark.parametrize(("facts", "expected"), [
    (boinc_build.BuildFacts(True, True, True, ()), []),  # a built tree is reused
    (boinc_build.BuildFacts(True, False, False), ["autosetup", "configure", "build"]),
    (boinc_build.BuildFacts(True, True, False), ["configure", "build"]),
    (boinc_build.BuildFacts(True, True, True, ("sched/cgi",)), ["build"]),
])
def test_boinc_build(facts: boinc_build.BuildFacts, expected: list[str]) -> None:
    assert kinds(boinc_build.decide(facts, SPEC)) == expected


def test_boinc_build_fetches_git_and_refuses_a_missing_directory() -> None:
    git = ProjectSpec("sandbox", "http://h/", "h")
    assert kinds(boinc_build.decide(boinc_build.BuildFacts(False), git)) == [
        "fetch", "autosetup", "configure", "build"]
    with pytest.raises(UsageError, match="no BOINC source directory /srv/boinc"):
        boinc_build.decide(boinc_build.BuildFacts(False), SPEC)


@pytest.mark.parametrize(("facts", "expected"), [
    (project.ProjectFacts(True, 60, True, True, True), []),
    (project.ProjectFacts(False, 0, False, False, False),
     ["make_project", "load-schema", "set-db-password", "db-revision", "next-rpc-delay",
      "daemon-options", "protect-keys"]),
    (project.ProjectFacts(True, 60, False, True, True), ["set-db-password"]),
    (project.ProjectFacts(True, 60, True, False, True), ["set-db-password"]),
    (project.ProjectFacts(False, 0, False, False, False, dir_exists=False),
     ["make_project", "load-schema", "set-db-password", "db-revision", "next-rpc-delay",
      "daemon-options", "protect-keys"]),
    # make_project was cut short (its marker is there): made again, not refused
    (project.ProjectFacts(False, 0, False, False, False, dir_exists=True, half_made=True),
     ["remove-half-made", "make_project", "load-schema", "set-db-password", "db-revision",
      "next-rpc-delay", "daemon-options", "protect-keys"]),
    (project.ProjectFacts(True, 60, True, True, True, rpc_delay=False), ["next-rpc-delay"]),
    # a project made before the feeder's options (or an admin's edit): set again
    (project.ProjectFacts(True, 60, True, True, True, daemons_ok=False), ["daemon-options"]),
    # make_project's keys are 0644; a project made before this step had them so
    (project.ProjectFacts(True, 60, True, True, True, keys_ok=False), ["protect-keys"]),
])
def test_project(facts: project.ProjectFacts, expected: list[str]) -> None:
    assert kinds(project.decide(facts, SPEC)) == expected


def test_daemons_tuned_reads_the_feeder_and_transitioner_of_config_xml() -> None:
    made = ("<boinc><config/><daemons><daemon><cmd>feeder -d 3 </cmd></daemon>"
            "<daemon><cmd>transitioner -d 3 </cmd></daemon></daemons></boinc>")  # make_project's
    assert not project.daemons_tuned(made)
    feeder_only = boincxml.set_daemons(made, [project.FEEDER])
    assert not project.daemons_tuned(feeder_only)  # as an earlier init-project left it
    tuned = boincxml.set_daemons(made, list(project.TUNED_DAEMONS))
    assert project.daemons_tuned(tuned)
    # replaced, not added
    assert list(boincxml.configured_daemons(tuned)) == ["feeder.pid", "transitioner.pid"]
    assert "--sleep_interval 1" in boincxml.configured_daemons(tuned)["transitioner.pid"].cmd
    assert not project.daemons_tuned("not xml")


def test_project_refuses_a_directory_without_config_xml() -> None:
    # a failed make_project removes the directory, so it must never run on one we did not make
    facts = project.ProjectFacts(False, 0, False, False, False, dir_exists=True)
    with pytest.raises(UsageError, match=r"sandbox exists but has no config\.xml") as info:
        project.decide(facts, SPEC)
    assert "\n" not in str(info.value)


def test_make_project_command_has_no_password() -> None:
    command = project.make_project_command(SPEC, "/srv/boinc", "vm")
    assert "--no_db" in command and "passwd" not in command
    assert "--project_host vm" in command and "--url_base http://10.0.0.5/" in command


def test_config_xml_password_edit() -> None:
    xml = "<boinc>\n<config>\n<db_name>sandbox</db_name>\n<db_passwd></db_passwd>\n</config>\n" \
          "</boinc>"
    edited = project.set_db_password(xml, "s3cret")
    assert project.db_password_in(edited) == "s3cret"
    assert "<db_name>sandbox</db_name>" in edited


SITE = apache.site_config(SPEC)
MODS = frozenset({"php8.2", "cgi", "mpm_prefork", "alias"})


@pytest.mark.parametrize(("facts", "expected"), [
    (apache.ApacheFacts(True, SITE, True, MODS), []),
    (apache.ApacheFacts(False, None, False, frozenset({"alias"})),
     ["write-site", "enable-modules", "enable-site", "start"]),
    (apache.ApacheFacts(True, SITE + "x", True, MODS), ["write-site", "reload"]),
    (apache.ApacheFacts(True, SITE, True, frozenset({"php8.4", "cgid"})), []),
    (apache.ApacheFacts(True, SITE, True, frozenset({"php8.2"})), ["enable-modules", "restart"]),
    (apache.ApacheFacts(True, SITE, True, MODS, restart_needed=True), ["restart"]),
    (apache.ApacheFacts(False, SITE, True, MODS), ["start"]),
])
def test_apache(facts: apache.ApacheFacts, expected: list[str]) -> None:
    assert kinds(apache.decide(facts, SPEC)) == expected


def test_apache_https_site() -> None:
    spec = ProjectSpec("sandbox", "https://h/", "h", https_cert="/c.pem", https_key="/k.pem")
    text = apache.site_config(spec)
    assert "SSLCertificateFile /c.pem" in text and "SSLEngine on" in text
    facts = apache.ApacheFacts(True, text, True, MODS)
    assert apache.decide(facts, spec) == [Action("enable-modules", "ssl"),
                                          Action("restart", "apache2")]


@pytest.mark.parametrize(("facts", "expected"), [
    (ops_password.OpsFacts(True, True), []),
    (ops_password.OpsFacts(False, False), ["generate-password", "set-htpasswd"]),
    (ops_password.OpsFacts(True, False), ["set-htpasswd"]),
])
def test_ops_password(facts: ops_password.OpsFacts, expected: list[str]) -> None:
    assert kinds(ops_password.decide(facts, SPEC)) == expected


LINE = cron.cron_line(SPEC)


@pytest.mark.parametrize(("facts", "expected"), [
    (cron.CronFacts(True, LINE + "\n"), []),
    (cron.CronFacts(True, f"MAILTO=x\n{LINE}\n"), []),
    (cron.CronFacts(True, ""), ["install-crontab"]),
    (cron.CronFacts(False, LINE), ["start"]),
    (cron.CronFacts(True, f"{LINE}\n{LINE}\n"), ["install-crontab"]),  # a duplicate goes
])
def test_cron(facts: cron.CronFacts, expected: list[str]) -> None:
    assert kinds(cron.decide(facts, SPEC)) == expected


def test_two_projects_of_one_owner_keep_their_lines_in_place() -> None:
    other = ProjectSpec("other", url_base="http://10.0.0.5", host_name="vm")
    both = cron.new_crontab(cron.new_crontab("", SPEC), other)
    assert cron.new_crontab(both, SPEC) == both
    assert cron.new_crontab(both, other) == both
    assert kinds(cron.decide(cron.CronFacts(True, both), SPEC)) == []
    old = f"* * * * * cd {SPEC.project_dir} ; {SPEC.project_dir}/bin/start --cron\n"
    assert cron.new_crontab(old, SPEC) == LINE + "\n"  # a line written before the key


def test_cron_keeps_other_lines() -> None:
    assert cron.new_crontab("MAILTO=x\n@daily true\n", SPEC) == f"MAILTO=x\n@daily true\n{LINE}\n"


@pytest.mark.parametrize(("facts", "expected"), [
    (daemons.DaemonFacts(("feeder", "transitioner"), frozenset({"feeder", "transitioner"})), []),
    (daemons.DaemonFacts(("feeder", "transitioner"), frozenset({"feeder"})), ["start"]),
    (daemons.DaemonFacts(("feeder",), frozenset({"feeder"}), disabled=True), ["start"]),
    (daemons.DaemonFacts((), frozenset()), ["start"]),
])
def test_daemons(facts: daemons.DaemonFacts, expected: list[str]) -> None:
    assert kinds(daemons.decide(facts, SPEC)) == expected


def test_daemon_names_from_config_xml() -> None:
    xml = ("<boinc><config><host>vm</host></config><daemons>"
           "<daemon><cmd>feeder -d 3</cmd></daemon>"
           "<daemon><cmd>transitioner -d 3</cmd></daemon>"
           "<daemon><cmd>old</cmd><disabled>1</disabled></daemon>"
           "<daemon><cmd>sample_assimilator --app x</cmd><pid_file>a.pid</pid_file></daemon>"
           "</daemons></boinc>")
    assert daemons.daemon_names(xml) == ("feeder.pid transitioner.pid a.pid", "vm")


@pytest.mark.parametrize("pid_file", ["$(id>/tmp/x).pid", "a;rm -rf ~", "`id`", "../x", "a b",
                                      "..", "x\ny"])
def test_daemon_names_refuse_shell_text(pid_file: str) -> None:
    # config.xml is the owner's file; its names reach a shell, so only plain file names pass
    xml = (f"<boinc><config><host>vm</host></config><daemons>"
           f"<daemon><cmd>feeder</cmd><pid_file>{pid_file.replace('<', '&lt;')}</pid_file>"
           "</daemon><daemon><cmd>transitioner</cmd></daemon></daemons></boinc>")
    assert daemons.daemon_names(xml) == ("transitioner.pid", "vm")


@pytest.mark.parametrize("name", ["Sandbox", "1abc", "a-b", "", "x" * 33, "a b", "a;rm"])
def test_invalid_names(name: str) -> None:
    with pytest.raises(UsageError, match="invalid project name"):
        ProjectSpec(name, "http://h/", "h")


def test_spec_defaults() -> None:
    assert SPEC.project_dir == "/home/boincadm/projects/sandbox"
    assert SPEC.master_url == "http://10.0.0.5/sandbox/"
    assert SPEC.cgi_url == "http://10.0.0.5/sandbox_cgi/"
    with pytest.raises(UsageError, match="both --https-cert and --https-key"):
        ProjectSpec("x", "http://h/", "h", https_cert="/c")
