"""The project's Apache site (the aliases make_project suggests, plus HTTPS when a certificate is
given), the modules it needs, and a running Apache that has loaded them."""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from pymw_admin.admin.plan import Action, Context, Step
from pymw_admin.admin.server import acme, services
from pymw_admin.admin.server.owner import WEB_USER
from pymw_admin.admin.server.spec import ProjectSpec


@dataclass(frozen=True)
class ApacheFacts:
    running: bool
    site_text: str | None
    site_enabled: bool
    modules: frozenset[str]  # enabled module names (php8.2, cgi, ssl, ...)
    restart_needed: bool = False  # Apache's workers lack the owner's group www-data now has


def site_config(spec: ProjectSpec) -> str:
    """The site file: make_project's suggested aliases, written by us so re-runs can compare."""
    name, root = spec.name, spec.project_dir
    text = f"""# BOINC project {name}: written by pymw-admin init-project; changes are overwritten
Alias /{name}/download {root}/download
Alias /{name}/stats {root}/html/stats
Alias /{name}/user_profile {root}/html/user_profile
Alias /{name} {root}/html/user
Alias /{name}_ops {root}/html/ops
ScriptAlias /{name}_cgi {root}/cgi-bin

<Directory "{root}/keys">
    Require all denied
</Directory>
<Directory "{root}/upload">
    Require all denied
</Directory>
<Directory "{root}/download">
    RemoveType .php .phtml
    Require all granted
</Directory>
<Directory "{root}/html/stats">
    RemoveType .php .phtml
    Require all granted
</Directory>
<Directory "{root}/html/user_profile">
    RemoveType .php .phtml
    Require all granted
</Directory>
<Directory "{root}/html">
    Options Indexes MultiViews
    AllowOverride AuthConfig
    Require all granted
</Directory>
<Directory "{root}/cgi-bin">
    Options ExecCGI
    AllowOverride AuthConfig
    Require all granted
</Directory>
"""
    if spec.https_cert:
        text += f"""
<VirtualHost *:443>
    SSLEngine on
    SSLCertificateFile {spec.https_cert}
    SSLCertificateKeyFile {spec.https_key}
</VirtualHost>
"""
    elif spec.acme_email:
        text += _acme_config(spec)
    return text


def _acme_config(spec: ProjectSpec) -> str:
    """certbot's challenges from its root-owned webroot, and the port-443 host once the
    certificate exists (Apache must serve the challenge before there is one)."""
    challenges = f"{acme.WEBROOT}/.well-known/acme-challenge"
    return f"""
Alias /.well-known/acme-challenge/ {challenges}/
<Directory "{acme.WEBROOT}">
    Options None
    AllowOverride None
    RemoveType .php .phtml
    Require all granted
</Directory>
<IfFile "{acme.cert_file(spec)}">
<VirtualHost *:443>
    ServerName {spec.domain}
    SSLEngine on
    SSLCertificateFile {acme.cert_file(spec)}
    SSLCertificateKeyFile {acme.key_file(spec)}
</VirtualHost>
</IfFile>
"""


def wanted_modules(spec: ProjectSpec) -> tuple[str, ...]:
    return ("cgi", "php", "ssl") if spec.https else ("cgi", "php")


def _has(modules: frozenset[str], wanted: str) -> bool:
    if wanted == "php":
        return any(m.startswith("php") for m in modules)
    if wanted == "cgi":
        return "cgi" in modules or "cgid" in modules
    return wanted in modules


def _workers_lack_owner_group(ctx: Context) -> bool:
    """Does the running Apache predate www-data joining the owner's group? Its workers keep the
    groups they started with, so the fact is read from one of them, not from /etc/group."""
    owner = shlex.quote(ctx.wanted.owner)
    out = ctx.host.run(
        f"getent group {owner} | cut -d: -f3; echo @@; "
        f"for p in $(pgrep -u {WEB_USER} apache2 2>/dev/null); do "
        "grep '^Groups:' /proc/$p/status && break; done", check=False,
    ).stdout
    gid, _, groups = out.partition("@@")
    gid, worker_groups = gid.strip(), groups.split()[1:]
    return bool(gid and groups.strip()) and gid not in worker_groups


def gather(ctx: Context) -> ApacheFacts:
    host, spec = ctx.host, ctx.wanted
    site = spec.apache_site
    enabled = site.replace("sites-available", "sites-enabled")
    mods = host.run("ls /etc/apache2/mods-enabled/ 2>/dev/null", check=False).stdout.split()
    running = services.is_running(host, "apache2")
    return ApacheFacts(
        running,
        host.read_text(site),
        host.exists(enabled),
        frozenset(m[:-5] for m in mods if m.endswith(".load")),
        running and _workers_lack_owner_group(ctx),
    )


def decide(facts: ApacheFacts, spec: ProjectSpec) -> list[Action]:
    actions = []
    if facts.site_text != site_config(spec):
        actions.append(Action("write-site", spec.apache_site))
    missing = [m for m in wanted_modules(spec) if not _has(facts.modules, m)]
    if missing:
        actions.append(Action("enable-modules", " ".join(missing)))
    if not facts.site_enabled:
        actions.append(Action("enable-site", f"pymw-{spec.name}"))
    if not facts.running:
        actions.append(Action("start", "apache2"))
    elif missing or facts.restart_needed:
        actions.append(Action("restart", "apache2"))
    elif actions:
        actions.append(Action("reload", "apache2"))
    return actions


def apply(ctx: Context, actions: list[Action]) -> None:
    host, spec = ctx.host, ctx.wanted
    for action in actions:
        if action.kind == "write-site":
            host.write_file(spec.apache_site, site_config(spec), mode=0o644)
        elif action.kind == "enable-modules":
            for module in action.detail.split():
                if module == "php":
                    # the PHP module Debian installed (php8.2 on Debian 12, php8.4 on 13)
                    host.sudo("a2enmod -q $(cd /etc/apache2/mods-available && ls php*.load | "
                              "head -n1 | sed 's/.load$//')", what="a2enmod php")
                else:
                    host.sudo(f"a2enmod -q {shlex.quote(module)}", what=f"a2enmod {module}")
        elif action.kind == "enable-site":
            host.sudo(f"a2ensite -q pymw-{spec.name}", what="a2ensite")
        elif action.kind in ("start", "restart", "reload"):
            host.sudo("apache2ctl configtest", what="apache2ctl configtest")
            services.control(host, "apache2", action.kind)


STEP = Step("apache", "configure and start Apache", gather, decide, apply,
            hint="see `apache2ctl configtest` and the Apache error log on the host, then run the "
                 "same command again")
