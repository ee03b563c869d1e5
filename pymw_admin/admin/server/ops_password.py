"""The password of the project's admin pages (html/ops, user ``admin``), generated and kept in a
root-only file; it reaches htpasswd only on standard input.

html/ops/.htpasswd is in the owner's tree, so htpasswd runs as the owner: run as root there, a
link the owner planted would have root overwrite and hand over any file.
"""

from __future__ import annotations

import secrets
import shlex
from dataclasses import dataclass

from pymw_admin.admin.plan import Action, Context, Step
from pymw_admin.admin.server.spec import ProjectSpec

OPS_USER = "admin"


@dataclass(frozen=True)
class OpsFacts:
    password_file: bool
    htpasswd_ok: bool  # html/ops/.htpasswd accepts the stored password


def htpasswd_path(spec: ProjectSpec) -> str:
    return f"{spec.project_dir}/html/ops/.htpasswd"


def gather(ctx: Context) -> OpsFacts:
    host, spec = ctx.host, ctx.wanted
    password = (host.read_text(spec.ops_password_file) or "").strip()
    if not password:
        return OpsFacts(False, False)
    ok = host.run(f"htpasswd -v -i {shlex.quote(htpasswd_path(spec))} {OPS_USER}",
                  user=spec.owner, stdin=password, check=False).ok
    return OpsFacts(True, ok)


def decide(facts: OpsFacts, spec: ProjectSpec) -> list[Action]:
    actions = []
    if not facts.password_file:
        actions.append(Action("generate-password", spec.ops_password_file))
    if not facts.htpasswd_ok:
        actions.append(Action("set-htpasswd", f"{OPS_USER} in html/ops/.htpasswd"))
    return actions


def apply(ctx: Context, actions: list[Action]) -> None:
    host, spec = ctx.host, ctx.wanted
    for action in actions:
        if action.kind == "generate-password":
            host.sudo(f"install -d -m 700 {shlex.quote(spec.secrets_dir)}")
            host.write_file(spec.ops_password_file, secrets.token_urlsafe(18) + "\n", mode=0o600)
        elif action.kind == "set-htpasswd":
            password = (host.read_text(spec.ops_password_file) or "").strip()
            path = shlex.quote(htpasswd_path(spec))
            # a new file beside it, renamed over it: the owner's umask never exposes it, and a
            # link at the old name is replaced, not followed (Apache reads it through the group)
            host.run(f'f=$(mktemp {path}.XXXXXX) && chmod 640 "$f" && '
                     f'htpasswd -i -B "$f" {OPS_USER} 2>/dev/null && mv -f "$f" {path} '
                     '|| { rm -f "$f"; exit 1; }', user=spec.owner, stdin=password,
                     what="htpasswd")


STEP = Step("ops_password", "set the admin pages' password", gather, decide, apply)
