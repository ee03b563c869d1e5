"""Start and query system services the same way with or without systemd (containers have none)."""

from __future__ import annotations

import shlex

from pymw_admin.admin.remote import Host


def _systemd(host: Host) -> bool:
    return bool(host.fact("systemd", lambda: host.exists("/run/systemd/system", sudo=False)))


def is_running(host: Host, name: str) -> bool:
    if _systemd(host):
        return host.run(f"systemctl is-active --quiet {shlex.quote(name)}", check=False).ok
    return host.sudo(f"service {shlex.quote(name)} status >/dev/null 2>&1", check=False).ok


def control(host: Host, name: str, action: str) -> None:
    """``action``: start, restart or reload."""
    if _systemd(host):
        if action == "start":
            host.sudo(f"systemctl enable --now {shlex.quote(name)}", what=f"starting {name}")
        else:
            host.sudo(f"systemctl {action} {shlex.quote(name)}", what=f"{action} {name}")
        return
    host.sudo(f"service {shlex.quote(name)} {action}", what=f"{action} {name}", timeout=120)
