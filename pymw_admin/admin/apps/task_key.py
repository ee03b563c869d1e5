"""The project's task key: masters sign task files with it, the app versions ship its public half.

``PROJECT/keys/pymw_task_private.pem`` (mode 0600) and ``pymw_task_public.pem`` beside it, both the
owner's and written by the owner (``keys/`` is the owner's, and not under ``html/``: the web server
never serves it). Made once; a re-run finds them and changes nothing. The pair is made on the
admin's machine and sent over the SSH connection through stdin, so no server tool is needed and
the private key is never on a command line or written on the admin's disk.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from pymw_admin.admin.apps.common import as_owner, project_path
from pymw_admin.admin.apps.spec import AppSpec
from pymw_admin.admin.plan import Action, Context
from pymw_admin.admin.project import Project
from pymw_admin.errors import ConfigError
from pymw_admin.interfaces.kit import task_signing
from pymw_admin.wire.boinc_contract import TASK_KEY_PRIVATE, TASK_KEY_PUBLIC

PRIVATE = "/".join(TASK_KEY_PRIVATE)
PUBLIC = "/".join(TASK_KEY_PUBLIC)


@dataclass(frozen=True)
class TaskKeyFacts:
    private: str  # "missing", "not a file", or the file's octal mode, e.g. "600"
    public: bool  # the public half is there


def gather(ctx: Context, app: AppSpec) -> TaskKeyFacts:
    # as the owner: keys/ is theirs, so root would follow a link planted there
    script = (f"p={shlex.quote(PRIVATE)}; if [ -L \"$p\" ] || {{ [ -e \"$p\" ] && [ ! -f \"$p\" ]; "
              "}; then echo 'not a file'; elif [ -f \"$p\" ]; then stat -c %a \"$p\"; "
              f"else echo missing; fi; test -f {shlex.quote(PUBLIC)} && echo public || true")
    out = as_owner(ctx.host, ctx.spec, script, what="reading the task key's files").split("\n")
    return TaskKeyFacts(out[0].strip() or "missing", "public" in out[1:])


def decide(facts: TaskKeyFacts, spec: Project, app: AppSpec) -> list[Action]:
    if facts.private == "not a file":
        raise ConfigError(f"{project_path(spec, PRIVATE)} is not a regular file: remove it "
                          "and run deploy-app again")
    if facts.private == "missing":
        return [Action("make-task-key",
                       f"{PRIVATE} (RSA {task_signing.KEY_BITS}, mode 0600) and {PUBLIC}")]
    if not facts.public:
        raise ConfigError(f"{project_path(spec, PUBLIC)} is missing beside the private task key: "
                          f"remove {PRIVATE} too and run deploy-app again (a new key pair)")
    if facts.private != "600":
        return [Action("chmod-task-key", f"{PRIVATE} {facts.private} -> 600")]
    return []


def apply(ctx: Context, actions: list[Action], app: AppSpec) -> None:
    host, spec = ctx.host, ctx.spec
    for action in actions:
        if action.kind == "chmod-task-key":
            as_owner(host, spec, f"chmod 600 {shlex.quote(PRIVATE)}", what="chmod the task key")
        elif action.kind == "make-task-key":
            private, public = task_signing.generate()
            as_owner(host, spec, "mkdir -p keys", what="making keys/")
            # the public half first: cut short between the two, a re-run makes a new pair
            host.write_file(project_path(spec, PUBLIC), public, mode=0o644, owner=spec.owner)
            host.write_file(project_path(spec, PRIVATE), private, mode=0o600, owner=spec.owner)
