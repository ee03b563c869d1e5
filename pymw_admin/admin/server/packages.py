"""The Debian/Ubuntu packages a BOINC server needs: build tools, MariaDB, Apache with PHP, cron."""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from pymw_admin.admin.plan import Action, Context, Step
from pymw_admin.admin.server.spec import ProjectSpec

BUILD = ("git", "make", "g++", "pkg-config", "autoconf", "automake", "libtool", "m4",
         "libmariadb-dev", "libmariadb-dev-compat", "libcurl4-openssl-dev", "libssl-dev",
         "nlohmann-json3-dev", "libzip-dev")
# BOINC's tools start with `#!/usr/bin/env python` and use MySQLdb
RUNTIME = ("python3", "python-is-python3", "python3-mysqldb", "mariadb-server", "mariadb-client",
           "apache2", "apache2-utils", "libapache2-mod-php", "php-cli", "php-mysql", "php-xml",
           "php-gd", "php-mbstring", "cron", "curl", "ca-certificates", "sudo", "procps", "tar")


def server_packages() -> tuple[str, ...]:
    return BUILD + RUNTIME


@dataclass(frozen=True)
class PackageFacts:
    installed: frozenset[str]


def gather(ctx: Context) -> PackageFacts:
    names = " ".join(server_packages())
    out = ctx.host.run(
        f"dpkg-query -W -f='${{Package}} ${{Status}}\\n' {names} 2>/dev/null", check=False
    ).stdout
    installed = {line.split()[0] for line in out.splitlines()
                 if line.endswith("install ok installed")}
    return PackageFacts(frozenset(installed))


def decide(facts: PackageFacts, spec: ProjectSpec) -> list[Action]:
    missing = [p for p in server_packages() if p not in facts.installed]
    return [Action("install", " ".join(missing))] if missing else []


def apply(ctx: Context, actions: list[Action]) -> None:
    packages = " ".join(shlex.quote(p) for a in actions for p in a.detail.split())
    env = "env DEBIAN_FRONTEND=noninteractive"
    ctx.host.sudo(f"{env} apt-get update -qq", timeout=900, what="apt-get update")
    ctx.host.sudo(f"{env} apt-get install -y -qq --no-install-recommends {packages}",
                  timeout=3600, what="apt-get install")


STEP = Step("packages", "install the server's packages", gather, decide, apply,
            hint="check the host's apt sources (apt-get update) and run the same command again")
