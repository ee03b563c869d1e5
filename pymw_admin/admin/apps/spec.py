"""What the admin wants deployed: one typed object every deploy step reads."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from pymw_admin.admin.project import checked
from pymw_admin.bundles.manifest import Bundle
from pymw_admin.wire.boinc_contract import APP_NAME

APP_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
DEFAULT_APP = APP_NAME


def check_app_name(name: str) -> str:
    return checked(name, APP_RE, "app name",
                   "use lower-case letters, digits or _, starting with a letter")


@dataclass(frozen=True)
class AppSpec:
    """The app, its bundles (one per platform) and how to sign them."""

    name: str = DEFAULT_APP
    friendly_name: str = ""
    bundles: tuple[Bundle, ...] = field(default_factory=tuple)
    sign_key: Path | None = None  # a BOINC code-signing private key on the admin's machine
    retire_older: bool = False  # deprecate versions older than the deployed one, per platform

    def __post_init__(self) -> None:
        check_app_name(self.name)
        if not self.friendly_name:
            object.__setattr__(self, "friendly_name", f"{self.name} (Python tasks, pymw-admin)")

    def digests(self) -> dict[str, str]:
        """``{platform: manifest digest}`` of the local bundles."""
        return {b.manifest.platform: b.manifest.digest() for b in self.bundles}
