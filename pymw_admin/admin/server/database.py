"""The project's database and its user, with a generated password kept in root-only files.

The password only ever travels on standard input (SQL piped to ``mysql``, files written through
stdin); commands read it from /etc/pymw-admin/NAME/client.cnf, never from argv. Administration
uses root's unix-socket login to the local MariaDB; with ``--db-host`` it uses ``mysql -h HOST``
with root's own ~/.my.cnf on the provisioned host.
"""

from __future__ import annotations

import secrets
import shlex
from dataclasses import dataclass

from pymw_admin.admin.plan import Action, Context, Step
from pymw_admin.admin.project import Project
from pymw_admin.admin.remote import Host
from pymw_admin.admin.server import services
from pymw_admin.admin.server.spec import ProjectSpec
from pymw_admin.errors import RemoteError


@dataclass(frozen=True)
class DatabaseFacts:
    server_up: bool
    password_file: bool
    database: bool
    user_login: bool  # the project's user logs in with the stored password and sees its database


def admin_mysql(spec: ProjectSpec) -> str:
    return f"mysql -h {shlex.quote(spec.db_host)}" if spec.db_host else "mysql"


def user_mysql(spec: Project) -> str:
    """The project user's mysql command line: the password comes from the option file."""
    return f"mysql --defaults-extra-file={shlex.quote(spec.db_client_cnf)} {spec.db_name}"


def sql(host: Host, spec: ProjectSpec, statements: str, *, what: str = "mysql",
        secrets: tuple[str, ...] = ()) -> str:
    """Run SQL as the admin. ``secrets``: what in ``statements`` an error must never show
    (MariaDB's syntax errors quote the statement from the failing point on)."""
    if not secrets:
        return host.sudo(f"{admin_mysql(spec)} -N -B", stdin=statements, what=what).stdout
    try:
        return host.sudo(f"{admin_mysql(spec)} -N -B", stdin=statements, what=what,
                         redact=secrets).stdout
    except RemoteError as exc:
        # "... near '<the rest of the statement>' at line 1": the quote may cut a secret short,
        # where no replacement finds it, so the quote goes altogether
        message = str(exc).split(" near '", 1)[0]
        raise RemoteError(f"{message} (the statement is not shown: it holds a secret)") from None


def gather(ctx: Context) -> DatabaseFacts:
    host, spec = ctx.host, ctx.wanted
    admin = admin_mysql(spec)
    ping = host.sudo(f"{admin} -N -B -e 'SELECT 1'", check=False)
    if not ping.ok:
        return DatabaseFacts(False, host.exists(spec.db_client_cnf), False, False)
    out = host.sudo(
        f"{admin} -N -B -e {shlex.quote(f'SHOW DATABASES LIKE {spec.db_name!r}')}; "
        f"test -e {shlex.quote(spec.db_client_cnf)} && echo @password && "
        f"{user_mysql(spec)} -N -B -e 'SELECT 1' >/dev/null 2>&1 && echo @login", check=False
    ).stdout.split()
    return DatabaseFacts(True, "@password" in out, spec.db_name in out, "@login" in out)


def decide(facts: DatabaseFacts, spec: ProjectSpec) -> list[Action]:
    actions = []
    if not facts.server_up:
        actions.append(Action("start", spec.db_host or "mariadb"))
    if not facts.password_file:
        actions.append(Action("generate-password", spec.db_password_file))
    if not facts.database:
        actions.append(Action("create-database", spec.db_name))
    if not facts.user_login:
        actions.append(Action("create-user", f"{spec.db_user} (all privileges on {spec.db_name})"))
    return actions


def db_password(host: Host, spec: ProjectSpec) -> str:
    text = host.read_text(spec.db_password_file)
    return (text or "").strip()


def apply(ctx: Context, actions: list[Action]) -> None:
    host, spec = ctx.host, ctx.wanted
    user_host = "%" if spec.db_host else "localhost"
    for action in actions:
        if action.kind == "start":
            if spec.db_host:
                continue  # a remote server is the admin's to run; the check below reports it
            services.control(host, "mariadb", "start")
        elif action.kind == "generate-password":
            password = secrets.token_urlsafe(24)
            host.sudo(f"install -d -m 700 {shlex.quote(spec.secrets_dir)}")
            host.write_file(spec.db_password_file, password + "\n", mode=0o600)
            client = f"[client]\nuser={spec.db_user}\npassword={password}\n"
            if spec.db_host:
                client += f"host={spec.db_host}\n"
            host.write_file(spec.db_client_cnf, client, mode=0o600)
        elif action.kind == "create-database":
            sql(host, spec, f"CREATE DATABASE IF NOT EXISTS `{spec.db_name}` CHARACTER SET "
                "utf8mb4 COLLATE utf8mb4_unicode_ci;", what="CREATE DATABASE")
        elif action.kind == "create-user":
            raw = db_password(host, spec)
            password = raw.replace("\\", "\\\\").replace("'", "\\'")
            who = f"'{spec.db_user}'@'{user_host}'"
            sql(host, spec,
                f"CREATE USER IF NOT EXISTS {who} IDENTIFIED BY '{password}';\n"
                f"ALTER USER {who} IDENTIFIED BY '{password}';\n"
                f"GRANT ALL PRIVILEGES ON `{spec.db_name}`.* TO {who};\nFLUSH PRIVILEGES;\n",
                what="CREATE USER", secrets=(raw, password))


STEP = Step("database", "create the database and its user", gather, decide, apply,
            hint="check that MariaDB runs on the host (service mariadb status) and run the same "
                 "command again")
