"""The interface's files in the project: the assimilator and compare scripts, the templates.

``PROJECT/bin/pymw_assimilator`` (the app's assimilator daemon) and ``pymw_compare`` (which
BOINC's script_validator calls as ``../bin/pymw_compare``), standard-library Python run by the
server's python3, with the comparer's decoder ``PROJECT/bin/pymw_untrusted.py``, the
assimilator's ``PROJECT/bin/pymw_boinc_contract.py``, and
``PROJECT/templates/APP_in`` / ``APP_out`` (create_work reads them for every batch).
"""

from __future__ import annotations

import hashlib
import shlex
from dataclasses import dataclass
from pathlib import Path

from pymw_admin.admin import boincxml
from pymw_admin.admin.apps.common import project_path
from pymw_admin.admin.apps.spec import AppSpec
from pymw_admin.admin.plan import Action, Context
from pymw_admin.admin.project import Project
from pymw_admin.admin.project_scripts import (
    ASSIMILATOR,
    COMPARER,
    CONTRACT_MODULE,
    UNTRUSTED_MODULE,
    script_source,
)
from pymw_admin.wire import boinc_contract, untrusted


@dataclass(frozen=True)
class Wanted:
    rel: str  # path in the project
    content: str
    mode: int


def wanted_files(app: AppSpec) -> list[Wanted]:
    return [
        Wanted(f"bin/{ASSIMILATOR}", script_source(ASSIMILATOR), 0o755),
        Wanted(f"bin/{COMPARER}", script_source(COMPARER), 0o755),
        # the master's own bounded decoder, which the comparer imports from beside itself
        Wanted(f"bin/{UNTRUSTED_MODULE}", Path(untrusted.__file__).read_text(), 0o644),
        # the names and error wording the assimilator shares with the master
        Wanted(f"bin/{CONTRACT_MODULE}", Path(boinc_contract.__file__).read_text(), 0o644),
        Wanted(f"templates/{app.name}_in", boincxml.input_template(), 0o644),
        Wanted(f"templates/{app.name}_out", boincxml.output_template(), 0o644),
    ]


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class ScriptFacts:
    files: dict[str, tuple[str, int]]  # project-relative path -> (sha256, mode) of what is there


def gather(ctx: Context, app: AppSpec) -> ScriptFacts:
    rels = [w.rel for w in wanted_files(app)]
    paths = " ".join(shlex.quote(project_path(ctx.spec, r)) for r in rels)
    # as the owner, whose bin/ and templates/ these are: root never reads there
    out = ctx.host.run(
        f"for f in {paths}; do test -f \"$f\" && echo \"$f $(stat -c %a \"$f\") "
        f"$(timeout 10 sha256sum < \"$f\" | cut -d' ' -f1)\"; done", user=ctx.spec.owner,
        check=False).stdout
    files = {}
    prefix = ctx.spec.project_dir + "/"
    for line in out.splitlines():
        path, mode, digest = line.rsplit(" ", 2)
        files[path.removeprefix(prefix)] = (digest, int(mode, 8))
    return ScriptFacts(files)


def decide(facts: ScriptFacts, spec: Project, app: AppSpec) -> list[Action]:
    actions = []
    for wanted in wanted_files(app):
        there = facts.files.get(wanted.rel)
        if there is None:
            actions.append(Action("install", wanted.rel))
        elif there != (sha256(wanted.content), wanted.mode):
            actions.append(Action("update", wanted.rel))
    return actions


def apply(ctx: Context, actions: list[Action], app: AppSpec) -> None:
    todo = {a.detail for a in actions}
    for wanted in wanted_files(app):
        if wanted.rel in todo:
            ctx.host.write_file(project_path(ctx.spec, wanted.rel), wanted.content,
                                mode=wanted.mode, owner=ctx.spec.owner)
