"""``pymw-admin upgrade --boinc-source SRC``: move a project to another BOINC server release.

The plan: build the new source (the init-project build step, reused), then BOINC's own upgrade
procedure, run as the project's owner: ``tools/upgrade`` stops the daemons, copies the new
programs, web and Python files over the project's (config.xml, keys, apps and our own scripts are
not among them) and runs ``html/ops/upgrade_db.php``, which applies the schema updates of
``html/ops/db_update.php`` newer than the project's ``db_revision``; then the daemons start again
and the project is checked from here. Facts: whether the project's programs are the new build's
(by content) and whether its database revision is the new source's latest, so a re-run changes
nothing and an interrupted upgrade continues.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

from pymw_admin.admin.plan import Action, Context, Step
from pymw_admin.admin.server import boinc_build, daemons, verify
from pymw_admin.admin.server.project import SYSTEM_PATH
from pymw_admin.admin.server.spec import ProjectSpec
from pymw_admin.errors import RemoteError, UsageError

# (file in the built tree, its copy in the project): the programs an upgrade must replace
PROGRAMS = (("sched/cgi", "cgi-bin/cgi"), ("sched/file_upload_handler",
                                          "cgi-bin/file_upload_handler"),
            ("sched/feeder", "bin/feeder"), ("sched/transitioner", "bin/transitioner"),
            ("sched/file_deleter", "bin/file_deleter"), ("tools/create_work", "bin/create_work"),
            ("html/inc/util.inc", "html/inc/util.inc"))
REVISION_RE = re.compile(r"array\(\s*(\d+)\s*,\s*\"update_")


@dataclass(frozen=True)
class UpgradeFacts:
    project: bool  # the project directory has a config.xml
    differ: tuple[str, ...]  # project files that are not the build's
    db_revision: int  # the project's db_revision (0: none)
    latest_revision: int  # the newest schema update the source knows


def latest_revision(db_update_php: str) -> int:
    """The newest revision in db_update.php's ``$db_updates`` list (0 when there is none)."""
    return max((int(n) for n in REVISION_RE.findall(db_update_php)), default=0)


def gather(ctx: Context) -> UpgradeFacts:
    host, spec = ctx.host, ctx.wanted
    tree = boinc_build.tree_dir(boinc_build.parse_source(spec.boinc_source))
    project = spec.project_dir
    if not host.run(f"test -e {shlex.quote(project)}/config.xml", user=spec.owner,
                    check=False).ok:
        return UpgradeFacts(False, (), 0, 0)
    # the project's files are read as its owner: root never reads in the owner's directory
    pairs = " ".join(f"{shlex.quote(f'{tree}/{src}')}:{shlex.quote(f'{project}/{dst}')}"
                     for src, dst in PROGRAMS)
    out = host.run(
        f"for p in {pairs}; do a=${{p%%:*}}; b=${{p#*:}}; cmp -s \"$a\" \"$b\" || "
        f"echo \"differ $b\"; done; echo \"rev $(cat {shlex.quote(project)}/db_revision "
        "2>/dev/null)\"", user=spec.owner, check=False).stdout
    differ = tuple(line[7:] for line in out.splitlines() if line.startswith("differ "))
    rev = next((line[4:].strip() for line in out.splitlines() if line.startswith("rev ")), "")
    php = host.read_text(f"{tree}/html/ops/db_update.php", sudo=False) or ""
    return UpgradeFacts(True, differ, int(rev) if rev.isdigit() else 0, latest_revision(php))


def decide(facts: UpgradeFacts, spec: ProjectSpec) -> list[Action]:
    if not facts.project:
        raise UsageError(f"no BOINC project in {spec.project_dir}: make it with init-project")
    actions = []
    if facts.differ:
        actions.append(Action("boinc-upgrade", f"tools/upgrade {spec.project_dir} "
                                               f"({len(facts.differ)} program(s) differ)"))
    if facts.db_revision < facts.latest_revision:
        actions.append(Action("schema", f"upgrade_db.php: revision {facts.db_revision} -> "
                                        f"{facts.latest_revision}"))
    return actions


def apply(ctx: Context, actions: list[Action]) -> None:
    host, spec = ctx.host, ctx.wanted
    tree = boinc_build.tree_dir(boinc_build.parse_source(spec.boinc_source))
    env = f"env USER={shlex.quote(spec.owner)} HOME={shlex.quote(spec.home)} PATH={SYSTEM_PATH}"
    for action in actions:
        if action.kind == "boinc-upgrade":
            ctx.log("running BOINC's tools/upgrade")
            # it asks "Overwrite files?" and upgrade_db.php "apply these updates?": yes to both
            result = host.run(
                f"cd {shlex.quote(tree)}/tools && {env} ./upgrade --srcdir {shlex.quote(tree)} "
                f"{shlex.quote(spec.project_dir)}", user=spec.owner, stdin="y\ny\ny\n",
                check=False, timeout=900, what="tools/upgrade")
            if not result.ok or "Upgrading files... done" not in result.stdout:
                raise RemoteError(f"BOINC's tools/upgrade failed: {result.last_lines()}")
            _check_db_output(result.stdout)
        elif action.kind == "schema":
            ops = shlex.quote(f"{spec.project_dir}/html/ops")
            result = host.run(f"cd {ops} && {env} ./upgrade_db.php", user=spec.owner,
                              stdin="y\n", check=False, timeout=900, what="upgrade_db.php")
            if not result.ok:
                raise RemoteError(f"upgrade_db.php failed: {result.last_lines()}")
            _check_db_output(result.stdout)


def _check_db_output(out: str) -> None:
    """upgrade_db.php says a failed update in its output only (it exits 0)."""
    if "database upgrade failed" in out:
        reason = next((line for line in out.splitlines() if "MySQL error" in line), "")
        raise RemoteError(f"a BOINC schema update failed: {reason or 'see upgrade_db.php'}")


STEP = Step("boinc_upgrade", "upgrade the project's BOINC files and database (tools/upgrade)",
            gather, decide, apply,
            hint="fix the cause and run the same upgrade again; it continues from the facts")

UPGRADE_STEPS: tuple[Step, ...] = (boinc_build.STEP, STEP, daemons.STEP, verify.STEP)
