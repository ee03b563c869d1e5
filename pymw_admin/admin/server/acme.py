"""HTTPS by ACME: certbot obtains the project's certificate, Apache serves it, cron renews it.

certbot answers http-01 challenges through a webroot that only root can write
(:data:`WEBROOT`, served by the project's Apache site), so root never writes where the project
owner can. The site wraps its port-443 host in ``<IfFile cert>``: Apache starts before the first
certificate exists, and this step reloads it once one does. Renewal is a root cron file that runs
``certbot renew`` for this certificate with the same CA (and the CA file a private ACME server
needs), reloading Apache when a new certificate arrives.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from pymw_admin.admin.plan import Action, Context, Step
from pymw_admin.admin.server import services
from pymw_admin.admin.server.spec import ProjectSpec

WEBROOT = "/var/lib/pymw-admin/acme"  # root-owned; Apache reads challenges from here
LIVE = "/etc/letsencrypt/live"
RENEWAL = "/etc/letsencrypt/renewal"
RENEW_BEFORE_DAYS = 30  # certbot's own default: renew a certificate with less left
DEPLOY_HOOK = "apache2ctl graceful"


def cert_name(spec: ProjectSpec) -> str:
    return f"pymw-{spec.name}"


def cert_file(spec: ProjectSpec) -> str:
    return f"{LIVE}/{cert_name(spec)}/fullchain.pem"


def key_file(spec: ProjectSpec) -> str:
    return f"{LIVE}/{cert_name(spec)}/privkey.pem"


def chain_file(spec: ProjectSpec) -> str:
    return f"{LIVE}/{cert_name(spec)}/chain.pem"


def cron_path(spec: ProjectSpec) -> str:
    return f"/etc/cron.d/pymw-admin-certbot-{spec.name}"


def _env(spec: ProjectSpec) -> str:
    """certbot's environment: a private ACME server's CA is trusted for this command only."""
    return f"REQUESTS_CA_BUNDLE={shlex.quote(spec.acme_ca)} " if spec.acme_ca else ""


def certonly_command(spec: ProjectSpec) -> str:
    args = ["certbot", "certonly", "--non-interactive", "--agree-tos", "--no-eff-email",
            "--email", spec.acme_email, "--webroot", "--webroot-path", WEBROOT,
            "--cert-name", cert_name(spec), "--domain", spec.domain,
            "--deploy-hook", DEPLOY_HOOK, "--keep-until-expiring", "--expand"]
    if spec.acme_server:
        args += ["--server", spec.acme_server]
    return _env(spec) + " ".join(shlex.quote(a) for a in args)


def renew_cron(spec: ProjectSpec) -> str:
    """Twice a day, as certbot's own cron file does; certbot renews only what is due."""
    renew = (f"{_env(spec)}certbot renew --quiet --cert-name {shlex.quote(cert_name(spec))} "
             f"--deploy-hook {shlex.quote(DEPLOY_HOOK)}")
    minute = sum(map(ord, spec.name)) % 60  # projects on one host renew at different minutes
    return ("# written by pymw-admin init-project: renews the project's ACME certificate\n"
            "SHELL=/bin/sh\nPATH=/usr/local/sbin:/usr/local/bin:/sbin:/bin:/usr/sbin:/usr/bin\n"
            f"{minute} 3,15 * * * root {renew}\n")


@dataclass(frozen=True)
class AcmeFacts:
    certbot: bool
    webroot_ok: bool  # exists, root-owned, not writable by group or others
    domains: frozenset[str]  # names the current certificate is for (empty: none)
    days_left: int  # until it expires (-1: no certificate)
    renewal_server: str  # the CA the certificate was issued by (certbot's renewal file)
    cron_text: str | None


def gather(ctx: Context) -> AcmeFacts:
    host, spec = ctx.host, ctx.wanted
    if not spec.acme_email:
        return AcmeFacts(False, False, frozenset(), -1, "", host.read_text(cron_path(spec)))
    certbot = host.run("command -v certbot >/dev/null", check=False).ok
    webroot = host.sudo(f"stat -c '%U %a' {WEBROOT} 2>/dev/null", check=False).stdout.split()
    webroot_ok = len(webroot) == 2 and webroot[0] == "root" and int(webroot[1], 8) & 0o022 == 0
    cert = shlex.quote(cert_file(spec))
    out = host.sudo(
        f"test -f {cert} || exit 0; openssl x509 -in {cert} -noout -ext subjectAltName "
        f"2>/dev/null | tail -n +2; e=$(openssl x509 -in {cert} -noout -enddate | cut -d= -f2); "
        f'echo "days=$(( ($(date -d "$e" +%s) - $(date +%s)) / 86400 ))"', check=False
    ).stdout
    domains: set[str] = set()
    days = -1
    for line in out.splitlines():
        if line.startswith("days="):
            days = int(line[5:]) if line[5:].lstrip("-").isdigit() else -1
        else:
            domains |= {item.strip()[4:].lower() for item in line.split(",")
                        if item.strip().startswith("DNS:")}
    renewal = host.read_text(f"{RENEWAL}/{cert_name(spec)}.conf") or ""
    server = next((line.split("=", 1)[1].strip() for line in renewal.splitlines()
                   if line.strip().startswith("server") and "=" in line), "")
    return AcmeFacts(certbot, webroot_ok, frozenset(domains), days, server,
                     host.read_text(cron_path(spec)))


def decide(facts: AcmeFacts, spec: ProjectSpec) -> list[Action]:
    if not spec.acme_email:
        # the project no longer wants ACME: its renewal stops (the certificate files stay)
        return [Action("remove-renewal-cron", cron_path(spec))] if facts.cron_text else []
    actions = []
    if not facts.certbot:
        actions.append(Action("install", "certbot"))
    if not facts.webroot_ok:
        actions.append(Action("make-webroot", WEBROOT))
    server_changed = bool(spec.acme_server) and facts.renewal_server not in ("", spec.acme_server)
    via = f" from {spec.acme_server}" if spec.acme_server else ""
    if spec.domain not in facts.domains:
        actions.append(Action("certonly", f"{spec.domain}{via} -> {cert_file(spec)}"))
    elif facts.days_left < RENEW_BEFORE_DAYS or server_changed:
        # due, or from another CA: replaced now rather than kept until it expires
        actions.append(Action("renew-now", f"{spec.domain}{via} -> {cert_file(spec)}"))
    if facts.cron_text != renew_cron(spec):
        actions.append(Action("write-renewal-cron", cron_path(spec)))
    return actions


def apply(ctx: Context, actions: list[Action]) -> None:
    host, spec = ctx.host, ctx.wanted
    for action in actions:
        if action.kind == "install":
            host.sudo("env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "
                      "--no-install-recommends certbot", timeout=1800, what="apt-get install")
        elif action.kind == "make-webroot":
            host.sudo(f"install -d -m 755 -o root -g root {WEBROOT}")
        elif action.kind in ("certonly", "renew-now"):
            force = " --force-renewal" if action.kind == "renew-now" else ""
            host.sudo(certonly_command(spec) + force, timeout=600, what="certbot certonly")
            if services.is_running(host, "apache2"):
                host.sudo("apache2ctl configtest", what="apache2ctl configtest")
                services.control(host, "apache2", "reload")
        elif action.kind == "write-renewal-cron":
            host.write_file(cron_path(spec), renew_cron(spec), mode=0o644)
        elif action.kind == "remove-renewal-cron":
            host.sudo(f"rm -f {shlex.quote(cron_path(spec))}")


STEP = Step("acme", "obtain and renew the HTTPS certificate (ACME)", gather, decide, apply,
            hint="check that the URL base's name reaches this host on port 80 and that the ACME "
                 "server answers, then run the same command again")
